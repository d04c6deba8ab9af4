"""The ``mail2case`` command line: one module per command group."""
