"""Fixtures: complete run directories written with the record classes, and a fake SLIM."""

from __future__ import annotations

import io

import pytest

from slim_leakage._io import atomic_write_bytes, sha256_bytes
from slim_leakage.leaderboard.build import load_pinned
from slim_leakage.leaderboard.validate import DatasetReference
from slim_leakage.metrics import aggregate
from slim_leakage.records import LABELS, Generation, Sample, Verdict
from slim_leakage.rundir import RunDir

FINGERPRINT = "f" * 16


def _png(seed: int, shade: int) -> bytes:
    from PIL import Image

    img = Image.new("RGB", (8, 8), (seed * 37 % 256, shade, 90))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def make_samples(n: int = 10) -> list[Sample]:
    """``n`` pair samples over two subsets and two families."""
    return [
        Sample(
            id=f"p{i:03d}",
            prompt=f"a cat and a cheetah in scene {i}",
            entities=("cat", "cheetah"),
            seed=100 + i,
            subset=("simple", "interaction")[i % 2],
            family=("big-cats", "birds")[i // 5 % 2],
            config="pairs",
        )
        for i in range(n)
    ]


def make_run(root, *, method="deleaker", labels=None, judge=None, n=10):
    """Write a finished, judged run like `slim-eval run` does, with real PNG files."""
    samples = make_samples(n)
    labels = labels or [LABELS[i % 5] if i != 3 else None for i in range(n)]
    pinned = load_pinned()["judge"]
    judge = judge or {**pinned, "decoding": {"temperature": 0.0}}
    generations, verdicts = [], []
    for i, s in enumerate(samples):
        for role, folder, shade in (("vanilla", "vanilla", 10), ("method", method, 200)):
            data = _png(i, shade)
            rel = f"images/{folder}/{s.id}.png"
            atomic_write_bytes(root / rel, data)
            generations.append(
                Generation(
                    sample_id=s.id,
                    role=role,
                    method="vanilla" if role == "vanilla" else method,
                    path=rel,
                    sha256=sha256_bytes(data),
                    seed=s.seed,
                    width=8,
                    height=8,
                    seconds=0.5,
                )
            )
        lab = labels[i]
        verdicts.append(
            Verdict(sample_id=s.id, method=method, label=lab, order_flip=(i == 1), judge="g")
            if lab
            else Verdict(sample_id=s.id, method=method, label=None, error="timeout")
        )
    metrics = aggregate(verdicts, samples, method=method, n_boot=200)
    manifest = {
        "schema": 1,
        "package_version": "0.1.0",
        "git_commit": "abc123",
        "method": {"name": method, "config": {"alpha": 1.0}},
        "backbone": {"name": "tiny-random", "family": "flux", "dtype": "float32"},
        "dataset": {"config": "pairs", "fingerprint": FINGERPRINT, "n_samples": n},
        "judge": judge,
        "cost": {
            "vanilla": {"seconds_per_image": 0.5, "images_timed": n, "peak_memory_bytes": None},
            "method": {"seconds_per_image": 0.75, "images_timed": n, "peak_memory_bytes": 1024},
        },
    }
    run = RunDir(root)
    run.write_manifest(manifest)
    run.write_samples(samples)
    for record in (*generations, *verdicts):
        run.records.append(record)
    run.write_metrics(metrics)
    return run.root


@pytest.fixture
def finished_run(tmp_path):
    return make_run(tmp_path / "run")


@pytest.fixture
def run_factory(tmp_path):
    def factory(name="run", **kwargs):
        return make_run(tmp_path / name, **kwargs)

    return factory


@pytest.fixture
def fake_slim(monkeypatch):
    """Make the 'shipped' SLIM config `pairs` the fixture samples (10 of them)."""
    from slim_leakage.errors import ValidationError
    from slim_leakage.leaderboard import validate

    def resolver(config):
        if config != "pairs":
            raise ValidationError(f"Unknown dataset config {config!r}.")
        return DatasetReference("pairs", FINGERPRINT, tuple(make_samples(10)))

    monkeypatch.setattr(validate, "shipped_dataset", resolver)
    return resolver


# --- headless Chromium over the DevTools protocol ---------------------------------------------

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


class Page:
    """A minimal DevTools-protocol client for one page (navigate, evaluate, click, press)."""

    def __init__(self, ws_url: str):
        import contextlib

        from websockets.sync.client import connect

        self._stack = contextlib.ExitStack()
        self._ws = self._stack.enter_context(connect(ws_url, max_size=None, open_timeout=10))
        self._id = 0
        self.console: list[str] = []
        self.send("Runtime.enable")
        self.send("Page.enable")

    def send(self, method: str, params: dict | None = None, timeout: float = 10.0):
        import json
        import time

        self._id += 1
        msg_id = self._id
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            raw = self._ws.recv(timeout=max(0.01, deadline - time.monotonic()))
            msg = json.loads(raw)
            if msg.get("method") == "Runtime.exceptionThrown":
                self.console.append(json.dumps(msg["params"]["exceptionDetails"])[:500])
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def eval(self, expression: str):
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 10.0):
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError(f"{expression!r} stayed false for {timeout} s; console: {self.console}")

    def goto(self, url: str):
        self.send("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete'")

    def click(self, selector: str):
        """A real mouse click in the middle of the element (not a synthetic JS click)."""
        import json

        box = self.eval(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            " el.scrollIntoView({block: 'center', inline: 'center'});"
            " const r = el.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1},
            )

    def press(self, key: str):
        """A real key press (``key`` is a single character such as ``"3"``)."""
        params = {"key": key, "text": key, "code": f"Digit{key}" if key.isdigit() else key}
        self.send("Input.dispatchKeyEvent", {"type": "keyDown", **params})
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", "key": key})

    def close(self):
        self._stack.close()


class Browser:
    """Headless Chromium started offline with a fresh profile; ``new_page()`` opens a tab."""

    def __init__(self, executable: str, profile):
        import re
        import subprocess
        import time

        self.proc = subprocess.Popen(
            [
                executable,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-dev-shm-usage",
                f"--user-data-dir={profile}",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        self.port = None
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                break
            match = re.search(r"ws://127\.0\.0\.1:(\d+)/", line)
            if match:
                self.port = int(match.group(1))
                break
        if self.port is None:
            self.proc.kill()
            raise RuntimeError("chromium did not report its DevTools port")

    def new_page(self) -> Page:
        import json
        import urllib.request

        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT"
        )
        with urllib.request.urlopen(req, timeout=10) as res:
            target = json.loads(res.read())
        return Page(target["webSocketDebuggerUrl"])

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """A headless Chromium for the whole session; skips only when no Chromium is installed."""
    import shutil

    executable = next((shutil.which(n) for n in CHROMIUM_NAMES if shutil.which(n)), None)
    if executable is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    pytest.importorskip("websockets", reason="the browser tests drive Chromium with websockets")
    b = Browser(executable, tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


@pytest.fixture
def page(browser):
    p = browser.new_page()
    yield p
    p.close()
