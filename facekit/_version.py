"""The package version, in its own module so that nothing imports the whole package for it."""

__version__ = "0.1.0"
