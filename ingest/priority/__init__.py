"""Priority inference: the policy's features read from the customer's text (pure)."""
