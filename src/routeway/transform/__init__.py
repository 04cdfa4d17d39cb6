"""Turning each upstream's answer into OpenRouter's shape: pure functions, no I/O."""
