"""mail2case: the composition root (CLI, config, logging, supervisor)."""
