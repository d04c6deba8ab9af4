"""Agents' mail: who is an agent, on what evidence, their commands and what is relayed."""
