"""The example shop: services, catalog, journeys and invariants used by the game day."""
