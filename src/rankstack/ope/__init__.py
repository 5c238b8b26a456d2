"""Off-policy evaluation: estimators of a policy's value from another policy's logs."""
