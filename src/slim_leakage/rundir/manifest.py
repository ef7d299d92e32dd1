"""The manifest's seal: a digest of everything in ``manifest.json``, so a hand edit is named.

Every time the run writes its manifest it adds ``seal``: the SHA-256 of the rest of the file
and a short digest of each value in it (by its dotted path, such as ``method.config.alpha``).
A reader recomputes both: when the whole digest differs, the paths whose digests differ are the
edited fields. The seal guards against edits, not against forgery: anyone can compute a new
one; the leaderboard recomputes what matters from the per-sample verdicts anyway.

A manifest written before seals existed has none; it is accepted as it is, except that its
``identity`` must still hash to its ``config_hash``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .._config import config_hash

#: The manifest key that holds the seal.
SEAL = "seal"
#: Hex digits kept of each field's digest (a changed value is caught, the file stays short).
FIELD_DIGEST_LENGTH = 12


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False).encode()


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted path -> value of every leaf (a non-empty mapping is walked into; anything else,
    lists included, is a leaf)."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_leaves(inner, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def _body(manifest: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in manifest.items() if k != SEAL}


def seal(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with a fresh ``seal`` (any old one replaced), as the last key."""
    body = _body(manifest)
    fields = {
        path: hashlib.sha256(_canonical(value)).hexdigest()[:FIELD_DIGEST_LENGTH]
        for path, value in _leaves(body).items()
    }
    return {
        **body,
        SEAL: {"sha256": hashlib.sha256(_canonical(body)).hexdigest(), "fields": fields},
    }


def edited_fields(manifest: dict[str, Any]) -> list[str]:
    """The dotted paths of the fields changed since the manifest was sealed (empty: none).

    An unsealed manifest (written before seals) is only checked for its ``identity`` against
    its ``config_hash``.
    """
    body = _body(manifest)
    if SEAL not in manifest:
        has_both = "identity" in body and "config_hash" in body
        if has_both and config_hash(body["identity"]) != body["config_hash"]:
            return ["identity (or config_hash): they no longer match"]
        return []
    stamp = manifest[SEAL]
    if not isinstance(stamp, dict) or not isinstance(stamp.get("fields"), dict):
        return [SEAL]
    try:
        whole = hashlib.sha256(_canonical(body)).hexdigest()
    except ValueError:  # NaN or an infinity was written in by hand
        whole = ""
    if whole == stamp.get("sha256"):
        return []
    recorded = stamp["fields"]
    now = _leaves(body)
    edited = []
    for path in sorted(set(now) | set(recorded)):
        if path not in now:
            edited.append(f"{path} (removed)")
        elif path not in recorded:
            edited.append(f"{path} (added)")
        else:
            try:
                digest = hashlib.sha256(_canonical(now[path])).hexdigest()
            except ValueError:
                digest = ""
            if digest[:FIELD_DIGEST_LENGTH] != recorded[path]:
                edited.append(path)
    return edited or [f"{SEAL}.sha256"]


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values, types included (1 and 1.0, or True and 1, differ)."""
    return _canonical_or_repr(a) == _canonical_or_repr(b)


def _canonical_or_repr(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """What differs between two nested JSON values, one ``path was X, now Y`` per leaf.

    Never empty when the values differ as JSON (types included).
    """
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            if key not in new:
                out.append(f"{prefix}{key} was {old[key]!r}, now absent")
            elif key not in old:
                out.append(f"{prefix}{key} was absent, now {new[key]!r}")
            elif not _same(old[key], new[key]):
                out.extend(differences(old[key], new[key], f"{prefix}{key}."))
        return out
    if _same(old, new):
        return []
    return [f"{prefix.rstrip('.') or 'the value'} was {old!r}, now {new!r}"]
