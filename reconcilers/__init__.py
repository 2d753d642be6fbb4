"""Reconcilers: return the environment to its declared state, sweep leftovers."""
