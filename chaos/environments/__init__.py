"""Environments the experiments run against: local processes (default) or Docker Compose."""
