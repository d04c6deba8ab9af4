"""The analysis: the pure core run on one message, in a bounded worker process."""
