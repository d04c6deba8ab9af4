"""Configuration: the TOML reader, the settings it validates into, the IMAP tables."""
