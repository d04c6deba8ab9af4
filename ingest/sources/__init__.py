"""Where raw mail comes from: SMTP, IMAP and standard input."""
