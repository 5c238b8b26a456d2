"""Declarative business rules: YAML declarations (config), compiled engine (engine), slate constraints (slate)."""
