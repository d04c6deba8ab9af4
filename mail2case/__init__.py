"""mail2case: the composition root (CLI, config, logging, the daemon)."""
