"""What a team sets up for its keys: guardrails (policies and budgets) and presets (request templates)."""
