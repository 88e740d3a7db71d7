"""Fault injection with real components: a TCP proxy that can cut a service off and bring it
back, so a test can take PostgreSQL or Redis away from a running shipyard server."""
