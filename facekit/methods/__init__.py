"""One module per paper; each exposes a ``load(profile, seed)`` for its trained model."""
