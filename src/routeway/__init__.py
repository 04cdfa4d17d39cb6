"""routeway: a self-hostable OpenRouter."""

__version__ = "0.1.0"
