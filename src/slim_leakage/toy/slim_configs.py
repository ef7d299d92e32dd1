"""The toy SLIM configs ``toy-pairs``, ``toy-triplets`` and ``toy-controls``.

They are made by the SLIM builder from the toy vocabulary: one family per look-alike family of
the toy world (each its own category, so controls pair entities of different families), and
templates that write exactly the captions the toy model was trained on ("A tiger and a
leopard"). Reference images follow the run's one rule (``slim_leakage.reference_images``:
"a tiger", seed 0).

:func:`build_toy_slim` is how the shipped ``slim_leakage/slim/data/data/toy-*.parquet`` files
are made; a test rebuilds them and requires the result to be identical, so a change to the toy
vocabulary that would leave them stale fails.
"""

from __future__ import annotations

import os

from .world import FAMILIES

#: Seeds per prompt: the toy world has few distinct prompts, so each gets several seeds.
PAIR_SEEDS = 8
TRIPLET_SEEDS = 8
CONTROL_SEEDS = 4


def toy_taxonomy():
    """The toy vocabulary as a SLIM :class:`~slim_leakage.slim.taxonomy.Taxonomy`."""
    from ..slim.taxonomy import Taxonomy, make_family

    families = []
    for fam in FAMILIES:
        members = [
            (noun, f"A {fam.shape} in {fam.name} colour covered in a white {pattern} pattern.")
            for noun, pattern in fam.members
        ]
        families.append(make_family(fam.name, fam.name, "toy", members))
    return Taxonomy("toy-world", families)


def toy_templates():
    """Templates that reproduce the toy captions."""
    from ..slim.templates import Template, TemplateSet

    return TemplateSet(
        name="toy-world",
        templates=(
            Template("toy-pair", "toy", "{a0} and {a1}"),
            Template("toy-triplet", "toy", "{a0}, {a1} and {a2}"),
        ),
    )


def toy_config_specs():
    """The three toy configs."""
    from ..slim.builder import ConfigSpec

    return (
        ConfigSpec(
            name="toy-pairs",
            kind="pair",
            subsets=("toy",),
            description="Toy world: two look-alikes of one family (same shape and colour, different pattern)",
            seeds_per_prompt=PAIR_SEEDS,
        ),
        ConfigSpec(
            name="toy-triplets",
            kind="triplet",
            subsets=("toy",),
            description="Toy world: the three look-alikes of one family",
            seeds_per_prompt=TRIPLET_SEEDS,
        ),
        ConfigSpec(
            name="toy-controls",
            kind="control",
            subsets=("toy",),
            description="Toy world: two entities of different families (different colour and shape)",
            seeds_per_prompt=CONTROL_SEEDS,
        ),
    )


def build_toy_slim(out_dir: str | os.PathLike):
    """Build the toy configs into a SLIM folder (other configs there are kept)."""
    from ..slim.builder import build

    return build(toy_taxonomy(), toy_templates(), out_dir, toy_config_specs(), source="toy-world")
