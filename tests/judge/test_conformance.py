"""Conformance: every registered judge backend keeps the judge contract, driven by the runner.

Parametrised over ``JUDGES.names()``, so a built-in or plug-in backend is covered without
writing a test (the last test shows a plug-in picked up). Every backend judges the same items:
two toy-world entities in rendered toy images (the ``oracle`` reads toy images; the others
answer any image). By convention a backend with a ``base_url`` option is pointed at the local
protocol server, which speaks both the OpenAI and the Gemini protocol, with a throwaway
``api_key`` where it takes one; ``hf-local`` gets a tiny random model built in code, whose
answers never parse (so it shows the error path); any other backend is built with its defaults.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slim_leakage.judge import JUDGES, PROTOCOL, JudgeItem, JudgeLike, LeakageCheck, get_judge
from slim_leakage.judge.testing import ScriptedServer
from slim_leakage.records import LABELS, Sample, StageResult, Verdict

#: Backends whose offline stand-in cannot give a usable answer (a random model).
GARBLED = {"hf-local"}
KEY = "sk-conformance-0123456789"
N_ITEMS = 3


def toy_items(root: Path) -> list[JudgeItem]:
    """A clean and a leaky toy image of a tiger and a leopard, compared three ways."""
    from slim_leakage.toy.world import place, render

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    layout = place(("tiger", "leopard"), rng)

    def png(name: str, array) -> Path:
        Image.fromarray(array).save(root / name)
        return root / name

    clean = png("clean.png", render(layout).image)
    leaky = png("leaky.png", render(layout, patterns=["striped", "striped"]).image)
    refs = {e: png(f"{e}.png", render(place((e,), rng)).image) for e in ("tiger", "leopard")}
    pairs = [(leaky, clean), (clean, leaky), (clean, clean)]
    return [
        JudgeItem(
            Sample(
                id=f"t{i}", prompt="A tiger and a leopard", entities=("tiger", "leopard"), seed=i
            ),
            "m",
            vanilla,
            method,
            refs,
        )
        for i, (vanilla, method) in enumerate(pairs)
    ]


@pytest.fixture(params=JUDGES.names())
def name(request):
    return request.param


@pytest.fixture
def server():
    with ScriptedServer() as srv:
        yield srv


@pytest.fixture
def build(name, server, tmp_path, request):
    """``build(**options)``: the judge ``name`` set up to answer offline."""
    cls = JUDGES.get(name)
    backend_options = getattr(cls, "options", {})

    def _build(**options):
        options.setdefault("cache_dir", str(tmp_path / "cache"))
        options.setdefault("backoff_base", 0.01)
        if name == "hf-local":
            options.update(model=str(request.getfixturevalue("tiny_vlm")), device="cpu")
            options.setdefault("max_output_tokens", 4)
        if "base_url" in backend_options:
            options["base_url"] = server.url
        if "api_key" in backend_options:
            options["api_key"] = KEY
        return get_judge(name, **options)

    return _build


@pytest.fixture
def items(tmp_path):
    return toy_items(tmp_path / "images")


def test_keeps_the_judge_contract(name, build):
    judge = build()
    assert isinstance(judge, JudgeLike)
    judge.check()  # offline, with what the conventions give it
    params = inspect.signature(judge.judge).parameters
    assert {"on_stage", "progress", "on_verdict"} <= set(params)
    assert judge.name == f"{judge.backend.name}/{judge.backend.model}"
    assert judge.backend.name == name


def test_describes_itself_without_secrets(name, build):
    judge = build()
    info = judge.describe()
    assert info["backend"] == name and info["model_id"] == judge.backend.model
    assert info["prompt_versions"] == PROTOCOL.prompt_versions()
    assert info["decoding"] == judge.decoding.to_dict()
    assert info["decoding"]["temperature"] == 0.0 and info["decoding"]["seed"] == 0
    assert KEY not in json.dumps(info)


def test_judges_every_item_and_records_every_stage(name, build, items, server):
    judge = build()
    records: list[StageResult] = []
    streamed: list[Verdict] = []
    verdicts = judge.judge(
        items, on_stage=records.append, on_verdict=streamed.append, progress=False
    )
    assert [v.sample_id for v in verdicts] == [i.sample.id for i in items]
    assert sorted(streamed, key=lambda v: v.sample_id) == verdicts
    assert all(v.judge == judge.name and v.method == "m" for v in verdicts)
    assert judge.stats.judged == N_ITEMS and judge.stats.calls > 0
    if "base_url" in getattr(JUDGES.get(name), "options", {}):
        assert server.count() == judge.stats.calls  # every call went over the wire
    if name in GARBLED:
        assert all(v.label is None and v.error for v in verdicts)
        assert judge.stats.errors == N_ITEMS
        assert {r.stage for r in records} == {"extraction"} and all(r.error for r in records)
        return
    assert all(v.label in LABELS and v.error is None for v in verdicts), [v.error for v in verdicts]
    assert judge.stats.errors == 0
    for item in items:
        mine = [r for r in records if r.sample_id == item.sample.id]
        assert sorted((r.stage, r.order, r.output.get("image")) for r in mine) == sorted(
            [
                ("extraction", None, None),
                ("typicality", None, "vanilla"),
                ("typicality", None, "method"),
                ("ranking", "ab", None),
                ("ranking", "ba", None),
            ],
            key=str,
        )
        assert all(r.error is None and r.key and r.version == "v1" for r in mine)
    for verdict in verdicts:
        assert set(verdict.scores) == {"typicality", "borrowed", "orders"}
        assert set(verdict.scores["typicality"]) == {"vanilla", "method"}


def test_honours_the_cache(name, build, items):
    first = build()
    verdicts = first.judge(items, progress=False)
    first.close()
    again = build()
    assert again.judge(items, progress=False) == verdicts
    if name in GARBLED:
        # Only answers that parsed are stored: nothing was, so everything is asked again.
        assert len(again.cache) == 0 and again.stats.calls == first.stats.calls
        return
    # Six questions per item, every one answered from the cache.
    assert again.stats.calls == 0 and again.stats.cache_hits == 6 * N_ITEMS
    uncached = build(cache=False)
    assert uncached.judge(items, progress=False) == verdicts
    assert uncached.stats.calls >= first.stats.calls and uncached.stats.cache_hits == 0


def test_checks_single_images(name, build, items):
    checks = build().check_leakage(
        [(i.sample, i.method_image, i.reference_images) for i in items], progress=False
    )
    assert [c.sample_id for c in checks] == [i.sample.id for i in items]
    assert all(isinstance(c, LeakageCheck) for c in checks)
    if name in GARBLED:
        assert all(c.leaky is None and c.error for c in checks)
    else:
        assert all(isinstance(c.leaky, bool) and c.error is None for c in checks)
        assert all(set(c.scores) == {"typicality", "borrowed_features", "present"} for c in checks)


PLUGIN = """
import json

from slim_leakage.judge import JUDGES
from slim_leakage.judge.backends.base import Backend, BackendResponse
from slim_leakage.judge.testing import default_answer


@JUDGES.register("conformance-plugin")
class Plugin(Backend):
    name = "conformance-plugin"
    default_model = "rules-v1"
    description = "a plug-in registered before collection"

    async def complete(self, requests):
        return [BackendResponse(text=default_answer(r)) for r in requests]
"""


def test_a_registered_plugin_is_covered_without_a_new_test(tmp_path):
    (tmp_path / "conformance_plugin.py").write_text(PLUGIN)
    import slim_leakage

    src = str(Path(slim_leakage.__file__).parents[1])
    path = os.pathsep.join([str(tmp_path), src, os.environ.get("PYTHONPATH", "")])
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "conformance_plugin",
            __file__,
            "-k",
            "conformance-plugin and not plugin_is_covered",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
        cwd=Path(__file__).parents[2],
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "5 passed" in out.stdout, out.stdout[-2000:]
