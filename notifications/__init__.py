"""Outgoing mail: Jinja2 templates, rendering, transports and the outbox sender."""
