"""MIME: raw RFC 5322 bytes to a ``ParsedMail`` (pure: no I/O, no clock)."""
