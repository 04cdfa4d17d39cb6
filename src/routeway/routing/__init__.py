"""Choosing endpoints: the plan of attempts for one request (health and load balancing build on it)."""
