"""Receiving support mail and turning it into case messages."""
