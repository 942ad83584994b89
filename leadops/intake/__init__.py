"""Lead intake: sources (CSV files, HubSpot, web forms) read raw records (`records`);
`validate` normalises each, `importer` de-duplicates and stores them by the rules of
`merge`, and `quarantine` works the records and files it refused."""
