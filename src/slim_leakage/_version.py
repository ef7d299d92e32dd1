"""The package version, on the lowest floor: run manifests record it, and the root exports it."""

__version__ = "0.1.0"
