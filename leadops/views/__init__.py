"""The read side: queries that only read, for the CLI, the web pages and reports; one module
per subject. Nothing here writes."""
