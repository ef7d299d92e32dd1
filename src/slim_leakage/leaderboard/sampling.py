"""Which samples a verification reproduces, drawn from a seed the submitter cannot compute.

A subset drawn from the entry's own hash can be ground offline: a forger edits whitespace until
the draw misses every forged row. Here the seed is derived from the maintainers' Ed25519
signature over the entry's SHA-256 (:func:`subset_seed`). Ed25519 signatures are deterministic
(RFC 8032), so the maintainers get the same seed every time, anyone holding the public key can
check it (:func:`check_seed`), and nobody without the private key can compute it before
submitting.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from ..metrics import splitmix64

#: The message the seed signature covers is this prefix followed by the entry's SHA-256 hex.
SEED_CONTEXT = b"slim-leakage/verification-subset-seed/v1\n"
SEED_RULE = (
    "seed = first 13 hex digits of SHA-256(Ed25519 signature by the maintainers' key of "
    "'slim-leakage/verification-subset-seed/v1\\n' + the entry's SHA-256 hex) as an integer; "
    "the labelled samples are ordered by their SplitMix64 output under that seed (output k for "
    "the k-th labelled sample in dataset order) and the first `size` are taken; every judge "
    "error is added"
)
RANDOM_RULE = (
    "a self-check without the maintainers' key: the seed is random (os.urandom), so the draw "
    "says nothing a submitter could plan for"
)


def _seed_from_signature(signature: bytes) -> int:
    return int(hashlib.sha256(signature).hexdigest()[:13], 16)  # 52 bits: exact in JSON


def subset_seed(private_key: Any, entry_sha256: str) -> tuple[int, str]:
    """``(seed, signature in base64)`` for an entry, from the maintainers' private key."""
    signature = private_key.sign(SEED_CONTEXT + entry_sha256.encode("ascii"))
    return _seed_from_signature(signature), base64.b64encode(signature).decode("ascii")


def check_seed(public_key: Any, entry_sha256: str, seed: int, signature_b64: str) -> str | None:
    """Why ``seed`` is not the maintainers' seed for the entry (``None``: it is)."""
    from cryptography.exceptions import InvalidSignature

    try:
        signature = base64.b64decode(signature_b64, validate=True)
        public_key.verify(signature, SEED_CONTEXT + entry_sha256.encode("ascii"))
    except (binascii.Error, ValueError, InvalidSignature):
        return "the subset seed's signature does not check against the leaderboard's key"
    if _seed_from_signature(signature) != seed:
        return "the subset seed is not the one its signature gives"
    return None


def choose_samples(
    entry: dict, seed: int | None, size: int | None = None, *, rule: str = SEED_RULE
) -> tuple[list[str], dict[str, Any]]:
    """The sample ids to reproduce (in dataset order) and the record's ``sampling`` block.

    Args:
        entry: The entry.
        seed: The subset seed (:func:`subset_seed`); unused when every sample is taken.
        size: Labelled samples to draw; ``None`` (or at least their number) takes all.
        rule: How the seed was made (recorded).
    """
    rows = entry["verdicts"]
    labelled = [r["sample_id"] for r in rows if r["label"] is not None]
    if size is None or size >= len(labelled) or seed is None:
        ids = [r["sample_id"] for r in rows]
        return ids, {
            "mode": "all",
            "size": len(ids),
            "seed": None,
            "rule": "every sample of the entry",
            "sample_ids": ids,
        }
    keys = [int(k) for k in splitmix64(seed, len(labelled))]
    drawn = {sid for _, sid in sorted(zip(keys, labelled))[:size]}
    ids = [r["sample_id"] for r in rows if r["label"] is None or r["sample_id"] in drawn]
    return ids, {
        "mode": "subset",
        "size": len(ids),
        "seed": seed,
        "rule": rule.replace("`size`", str(size)),
        "sample_ids": ids,
    }
