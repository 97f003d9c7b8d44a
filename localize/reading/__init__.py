"""Reading what merchants hand us: a catalog file's bytes as text and records (`textfile`;
`spreadsheet` and `xlsx` for workbooks), its rows as products (`catalog`, with `fields`: which
columns reach the model), and the glossary and translation memories a run is given."""
