"""Declarative business rules: YAML declarations (rule_config), compiled engine (engine), slate constraints (slate)."""
