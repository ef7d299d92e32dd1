"""Fixtures of the method tests: the tiny SANA backbone (built in code, no download)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_sana():
    """The tiny SANA pipeline wrapped through the ``sana`` preset (32x32, 3 steps, CFG 4.5)."""
    pytest.importorskip("diffusers")
    from slim_leakage.backbones.sana import tiny_sana_backbone

    return tiny_sana_backbone()
