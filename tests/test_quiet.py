"""Quiet by default: quantisation libraries only when asked, library warnings summarised."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

from slim_leakage._quiet import _package_of, summarised_warnings

CHILD = """
import importlib.util, sys
from slim_leakage._quiet import allow_quantizers, keep_quantizers_out
assert keep_quantizers_out()
import diffusers.utils.import_utils as du
hidden = (du.is_bitsandbytes_available(), du.is_torchao_available())
allow_quantizers()
shown = (du.is_bitsandbytes_available(), du.is_torchao_available())
installed = tuple(importlib.util.find_spec(n) is not None for n in ("bitsandbytes", "torchao"))
print(hidden, shown == installed, "bitsandbytes" in sys.modules)
"""


def test_quantisation_libraries_stay_out_until_asked_for():
    pytest.importorskip("diffusers")
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[-2] == "(False, False) True False"


def test_library_warnings_are_summarised_once():
    said = []
    with warnings.catch_warnings(), summarised_warnings(said.append):
        warnings.simplefilter("always")
        for _ in range(3):
            warnings.warn_explicit(
                "old API", DeprecationWarning, "/x/site-packages/diffusers/utils.py", 1
            )
        warnings.warn_explicit("other", UserWarning, "/x/site-packages/torch/nn.py", 2)
    assert said == ["note: 4 warning(s) from libraries (diffusers 3, torch 1); --debug shows them"]
    assert _package_of("/src/slim_leakage/run.py") == "slim_leakage"
