"""Fixtures: complete run directories written with the record classes, and a fake SLIM."""

from __future__ import annotations

import io

import pytest

from slim_leakage._io import atomic_write_bytes, sha256_bytes
from slim_leakage.leaderboard.pinned import load_pinned, parse_pinned
from slim_leakage.leaderboard.validate import DatasetReference
from slim_leakage.metrics import aggregate
from slim_leakage.records import LABELS, Generation, Sample, Verdict
from slim_leakage.rundir import RunDir

FINGERPRINT = "f" * 16
#: The code state a record names when the tests sign it (a committed tree).
CLEAN_SOURCE = {"version": "0.1.0", "git_commit": "0" * 40, "dirty": False}


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
    pinned = load_pinned().families["slim"].identity()
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
        "method": {"name": method, "config": {"alpha": 1.0} if method == "deleaker" else {}},
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


class Maintainers:
    """A throwaway maintainers' key pair, pinned in a copy of the shipped configuration.

    Attributes:
        private_key: The private key object (sign records with it).
        private_path: Its PEM file.
        public_path: The public key's PEM file.
        pinned: The shipped pinned configuration with this key's fingerprint.
    """

    def __init__(self, folder):
        from slim_leakage.leaderboard import signing

        private_pem, public_pem = signing.generate_key_pair()
        folder.mkdir(parents=True, exist_ok=True)
        self.private_path = folder / "maintainers.pem"
        signing.write_private_key(self.private_path, private_pem)
        self.private_key = signing.load_private_key(self.private_path)
        self.public_path = folder / signing.PUBLIC_KEY_FILE
        self.public_path.write_bytes(public_pem)
        raw = load_pinned().raw
        self.pinned_raw = {
            **raw,
            "verification_key": {
                **raw["verification_key"],
                "sha256": signing.public_key_sha256(signing.load_public_key(self.public_path)),
            },
        }
        self.pinned = parse_pinned(self.pinned_raw)

    def install(self, leaderboard):
        """Put the public key and pinned.json in a leaderboard folder; returns the folder."""
        import json
        import shutil

        leaderboard.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.public_path, leaderboard / self.public_path.name)
        (leaderboard / "pinned.json").write_text(json.dumps(self.pinned_raw))
        return leaderboard

    def sign(self, record):
        """The signed record file of ``record``."""
        return self.sign_with_pin(self.pinned, record)

    def sign_with_pin(self, pinned, record):
        """Sign through ``sign_record``, which checks the key against ``pinned``."""
        from slim_leakage.leaderboard.verification import sign_record

        return sign_record(record, self.private_key, pinned)

    def sign_unchecked(self, record):
        """A record file signed with this key whatever is pinned (what a forger can make)."""
        from slim_leakage.leaderboard import signing

        return {"record": record, "signature": signing.sign(record, self.private_key)}


class ReplayJudge:
    """A judge that answers with given labels (``None``: a judge error)."""

    def __init__(self, labels):
        self.labels = labels
        self.seen = []

    def judge(self, items, on_stage=None, progress=True):
        self.seen = list(items)
        return [
            Verdict(sample_id=i.sample.id, method=i.method, label=self.labels[i.sample.id])
            if self.labels[i.sample.id]
            else Verdict(sample_id=i.sample.id, method=i.method, label=None, error="timeout")
            for i in self.seen
        ]


def sign_verification(entry_path, run_dir, maintainers, *, labels=None, seconds=None, dataset=None):
    """Re-judge an entry file with replayed labels (default: its own; ``seconds``: the labels
    of the two self-agreement passes, default the same) and write its signed record where
    ``validate`` looks for it; returns the record."""
    import json

    from slim_leakage.leaderboard.rejudge import verify_entry_file
    from slim_leakage.leaderboard.verification import record_path

    entry = json.loads(entry_path.read_text())
    labels = labels or {r["sample_id"]: r["label"] for r in entry["verdicts"]}
    record = verify_entry_file(
        entry_path,
        run_dir,
        pinned=maintainers.pinned,
        dataset=dataset,
        judge=ReplayJudge(labels),
        second_judges=[ReplayJudge(x) for x in seconds or (labels, labels)],
        image_metrics=(),
        # the fixture runs are written, not generated: they stand in for the regeneration
        regenerated=run_dir,
        source=CLEAN_SOURCE,
    )
    path = record_path(entry_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(maintainers.sign(record), indent=2))
    return record


@pytest.fixture
def maintainers(tmp_path):
    """A throwaway maintainers' key (:class:`Maintainers`); never the project's key."""
    return Maintainers(tmp_path / "maintainers")


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


@pytest.fixture
def serve():
    """``serve(session) -> url``: a labelling server on 127.0.0.1, stopped after the test."""
    import threading

    from slim_leakage.annotate.server import make_server

    servers = []

    def start(session):
        server = make_server(session, port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        host, port = server.server_address[:2]
        return f"http://{host}:{port}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
