"""The flow format: reading YAML with positions, the pydantic models, and whole-flow checks."""
