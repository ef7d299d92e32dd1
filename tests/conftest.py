"""Shared test fixtures: everything offline, tiny models built in code, caches in tmp_path."""

from __future__ import annotations

import os
import sys

import pytest

# Never touch the network or a user's caches, even at import time of test modules.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config, items):
    """Markers that skip by themselves: gpu (no CUDA), slow and network (opt-in by env var)."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    run_slow = os.environ.get("SLIM_RUN_SLOW") == "1"
    run_network = os.environ.get("SLIM_RUN_NETWORK") == "1"
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow; set SLIM_RUN_SLOW=1 to run"))
        if "network" in item.keywords and not run_network:
            item.add_marker(pytest.mark.skip(reason="network; set SLIM_RUN_NETWORK=1 to run"))


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path, monkeypatch):
    """Point every cache and home directory at tmp_path and keep hubs offline."""
    home = tmp_path / "_home"
    home.mkdir()
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "hf" / "datasets"))
    monkeypatch.setenv("TORCH_HOME", str(home / "torch"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("SLIM_CACHE_DIR", str(home / "slim-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    yield


@pytest.fixture
def run_dir(tmp_path):
    """A fresh run directory path (not created)."""
    return tmp_path / "run"


@pytest.fixture(scope="session")
def tiny_flux_pipeline():
    """A random-weight FluxPipeline at toy size (1 double + 1 single block), built once."""
    pytest.importorskip("diffusers")
    from slim_leakage.backbones.tiny import build_tiny_flux_pipeline

    return build_tiny_flux_pipeline(seed=0)


@pytest.fixture
def make_tiny_flux():
    """Factory: ``make_tiny_flux(num_layers=2, num_single_layers=2, ...)`` builds a fresh pipeline."""
    pytest.importorskip("diffusers")
    from slim_leakage.backbones.tiny import build_tiny_flux_pipeline

    return build_tiny_flux_pipeline


@pytest.fixture(scope="session")
def tiny_backbone():
    """The ``tiny-random`` backbone preset loaded on CPU in float32."""
    pytest.importorskip("diffusers")
    from slim_leakage.backbones import load_backbone

    return load_backbone("tiny-random", device="cpu", dtype="float32")


@pytest.fixture
def t5_tokenizer():
    """The in-memory T5 tokenizer of the tiny backbone."""
    pytest.importorskip("transformers")
    from slim_leakage.backbones.tiny import make_t5_tokenizer

    return make_t5_tokenizer()


@pytest.fixture
def cli(capsys):
    """Run ``slim-eval`` in-process: ``cli("ls", "methods") -> (exit_code, stdout, stderr)``."""
    from slim_leakage.cli.main import main

    def _run(*argv: str):
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    return _run


PYTHON = sys.executable


@pytest.fixture
def chromium_dom(tmp_path):
    """``chromium_dom(url) -> str``: the DOM after scripts ran, from headless Chromium."""
    import shutil
    import subprocess

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")

    def dump(url: str, timeout: float = 60) -> str:
        profile = tmp_path / f"chromium-profile-{len(list(tmp_path.iterdir()))}"
        cmd = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=2000",
            "--dump-dom",
            url,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout

    return dump
