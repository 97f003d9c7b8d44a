"""Checking every answer before it is kept: the JSON and the platform's rules (`validate`), the
product's figures (`figures`), the language (`language`), markup and spreadsheet cells that
must not run (`sanitize`), and how a listing and a store string differ (`job_kinds`, `strings`)."""
