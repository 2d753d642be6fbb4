"""The game day: failure experiments against the example shop (examples/shop)."""
