"""The built-in Toxiproxy-compatible proxy (stdlib only)."""
