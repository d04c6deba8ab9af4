"""Triage: what a parsed message is, whose it is and which case it answers (pure)."""
