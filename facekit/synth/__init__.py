"""The synthetic face world: parameters, renderers, datasets and data cards."""
