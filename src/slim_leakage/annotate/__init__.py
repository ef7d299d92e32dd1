"""A local web page for collecting human labels on a run (``slim-eval annotate``).

The page shows a sample's prompt and its vanilla and method images side by side, in an order
randomised per annotator and sample (and recorded), takes one of five answers by click or by
the keys 1-5, and appends one row to a labels CSV in the format ``slim-eval agree`` reads.
"""

from .server import AnnotationSession, make_server

__all__ = ["AnnotationSession", "make_server"]
