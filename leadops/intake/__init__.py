"""Lead intake: sources read raw records, `importer` validates, de-duplicates and stores them."""
