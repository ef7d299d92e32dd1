"""Command-line interface of slim-leakage (``slim-eval``)."""

from .main import main

__all__ = ["main"]
