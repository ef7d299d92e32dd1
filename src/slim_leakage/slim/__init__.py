"""SLIM (Semantic Leakage in IMages): the data set, its builder, importer, verifier and loaders.

Loading needs no torch::

    from slim_leakage.slim import load_slim, load_samples, list_configs

    ds = load_slim("pairs")                 # datasets.Dataset, the test split
    samples = load_samples("pairs", limit=8)  # typed Sample records

The builder (:mod:`.builder`) turns a :class:`~.taxonomy.Taxonomy` and a
:class:`~.templates.TemplateSet` into a Hub-layout folder, whose format (Parquet files and the
dataset card) :mod:`.hub_format` writes and reads; :mod:`.official` imports the published
release; :mod:`.verify` keeps the samples a judge finds leaky.
"""

from __future__ import annotations

from . import taxonomy
from .load import (
    data_root,
    dataset_fingerprint,
    describe_configs,
    list_configs,
    load_samples,
    load_slim,
    resolve,
)

__all__ = [
    "data_root",
    "dataset_fingerprint",
    "describe_configs",
    "list_configs",
    "load_samples",
    "load_slim",
    "resolve",
    "taxonomy",
]
