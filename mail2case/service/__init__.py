"""The daemon as a service: its stages, the process child, reload, probes and metrics."""
