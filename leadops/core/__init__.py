"""The core every other package stands on: settings, the database (engines, migrations,
bulk SQL), the clock, config files, keys and tokens, locks, rate limits, credentials,
progress and signal handling. Imports nothing else from leadops."""
