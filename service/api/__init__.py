"""Thin FastAPI routers: each parses, calls one function that does the work, and answers."""
