"""The `secrets` check: fake keys planted in arguments and environment, every written file scanned."""

from __future__ import annotations

from pathlib import Path

from .common import (
    FAKE_ARG_KEY,
    FAKE_GEMINI_KEY,
    FAKE_HF_TOKEN,
    FAKE_OPENAI_KEY,
    SECRETS,
    Workspace,
    cli,
    run_argv,
)


# -- 4. secrets ----------------------------------------------------------------------------------
def scan_for_secrets(roots: list[Path], secrets: tuple[str, ...] = SECRETS) -> tuple[int, list]:
    """Scan every file under ``roots`` for the secrets (UTF-8, UTF-16 and base64 forms).

    Returns:
        (files scanned, one "file: secret..." entry per hit).
    """
    import base64

    forms = []
    for secret in secrets:
        raw = secret.encode()
        forms += [(secret, raw), (secret, secret.encode("utf-16-le"))]
        # base64 of the key at each of the three alignments a longer text could give it
        for shift in range(3):
            encoded = base64.b64encode(b"x" * shift + raw)[4 if shift else 0 :][:-4]
            forms.append((secret, encoded))
    scanned, where = 0, []
    for root in roots:
        paths = [root] if root.is_file() else (sorted(root.rglob("*")) if root.exists() else [])
        for path in paths:
            if not path.is_file() or path.is_symlink():
                continue
            data = path.read_bytes()
            scanned += 1
            for secret, form in forms:
                if form in data:
                    where.append(f"{path}: {secret[:12]}...")
                    break
    return scanned, where


def check_secrets(ws: Workspace, log=print) -> dict:
    """Plant fake keys in the environment and the arguments; scan every written file."""
    run = ws.path("secrets-run")
    cache = ws.path("secrets-cache")
    env = {
        "OPENAI_API_KEY": FAKE_OPENAI_KEY,
        "GEMINI_API_KEY": FAKE_GEMINI_KEY,
        "HF_TOKEN": FAKE_HF_TOKEN,
    }
    code, _, err = cli(
        run_argv(run, ws.samples, ws.url, cache, judge_args={"api_key": FAKE_ARG_KEY}), env=env
    )
    entry = ws.path("secrets-entry.json")
    steps = {"run": code}
    if code == 0:
        steps["submit"] = cli(["submit", str(run), "--out", str(entry)], env=env)[0]
        steps["judge"] = cli(
            [
                "judge",
                str(run),
                "--judge",
                "openai-compatible",
                "--judge-arg",
                f"base_url={ws.url}",
                "--judge-arg",
                f"cache_dir={cache}",
                "--judge-arg",
                f"api_key={FAKE_ARG_KEY}",
                "--no-progress",
            ],
            env=env,
        )[0]
        steps["report"] = cli(["report", str(run)], env=env)[0]
    scanned, where = scan_for_secrets([run, cache, entry])
    found = len(where)
    keyed = sum(1 for r in ws.server.requests if r.has_auth)
    log(f"secrets: steps {steps}, scanned {scanned} files, found {found}")
    return {
        "secrets_files_scanned": scanned,
        "secrets_found": found,
        "secrets_where": where,
        "secrets_steps": steps,
        "secrets_requests_with_key_header": keyed,
        "secrets_error": None if code == 0 else err.strip()[-500:],
    }
