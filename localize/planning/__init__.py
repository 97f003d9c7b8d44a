"""Planning a run before anything is sent: the jobs of each product (`jobs`), a job's request
and fingerprint (`prepared`, with `prompts` and `rules`), what becomes of each job (`plan`, with
`verdicts`: up to date, kept, held, reused, or sent), how jobs share requests (`packing`), and
the dry run that prices it all (`estimate`, with `calibration`; `preview` shows one request)."""
