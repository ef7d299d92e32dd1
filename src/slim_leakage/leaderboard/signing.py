"""Ed25519 signatures of verification records, through the ``cryptography`` package.

The maintainers hold the private key outside the repository; the public key is committed in
``leaderboard/`` and pinned by its SHA-256 in ``pinned.json``. A signature covers the
canonical JSON bytes of a record (:func:`canonical_bytes`: sorted keys, no spaces, UTF-8), so
reformatting a record file does not break it and changing any value does.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from typing import Any

from .._io import sha256_bytes
from ..errors import UsageError, ValidationError, require

#: The signature algorithm of verification records.
ALGORITHM = "ed25519"
#: The public key's file name in the leaderboard folder.
PUBLIC_KEY_FILE = "verification-key-ed25519.pub.pem"


def _ed25519():
    return require(
        "cryptography.hazmat.primitives.asymmetric.ed25519",
        "leaderboard",
        feature="Signing and checking leaderboard verification records",
    )


def _serialization():
    _ed25519()
    from cryptography.hazmat.primitives import serialization

    return serialization


def canonical_bytes(doc: Any) -> bytes:
    """The bytes a signature covers: JSON with sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(
        doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def generate_key_pair() -> tuple[bytes, bytes]:
    """A new key pair as ``(private PEM (PKCS8, unencrypted), public PEM)``."""
    ser = _serialization()
    private = _ed25519().Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def write_private_key(path: str | Path, pem: bytes) -> None:
    """Create ``path`` readable by its owner only (mode 0600) and write ``pem`` to it.

    Raises:
        UsageError: If the file exists (a key is never overwritten).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise UsageError(
            f"{str(path)!r} exists; a private key is never overwritten.",
            hint="Choose a new file name, or move the old key away first.",
        ) from exc
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())


def _load_pem(path: str | Path, *, private: bool):
    """The Ed25519 key in a PEM file (a private key for signing, a public one for checking)."""
    error = UsageError if private else ValidationError
    what = "private key" if private else "public key"
    fix = (
        "Give the maintainers' key (--key FILE); `slim-eval leaderboard keygen` makes one."
        if private
        else f"Restore the leaderboard's {PUBLIC_KEY_FILE} from the repository."
    )
    path = Path(path)
    if not path.is_file():
        raise error(f"The {what} {str(path)!r} does not exist.", hint=fix)
    ser = _serialization()
    ed = _ed25519()
    try:
        if private:
            key = ser.load_pem_private_key(path.read_bytes(), password=None)
        else:
            key = ser.load_pem_public_key(path.read_bytes())
    except (ValueError, TypeError) as exc:
        raise error(f"{str(path)!r} is not an unencrypted PEM {what} ({exc}).", hint=fix) from exc
    wanted = ed.Ed25519PrivateKey if private else ed.Ed25519PublicKey
    if not isinstance(key, wanted):
        raise error(f"{str(path)!r} holds a {type(key).__name__}, not an Ed25519 {what}.", hint=fix)
    return key


def load_private_key(path: str | Path):
    """The Ed25519 private key in a PEM file.

    Raises:
        UsageError: If the file is missing or does not hold an unencrypted Ed25519 key.
    """
    return _load_pem(path, private=True)


def load_public_key(path: str | Path):
    """The Ed25519 public key in a PEM file.

    Raises:
        ValidationError: If the file is missing or does not hold an Ed25519 public key.
    """
    return _load_pem(path, private=False)


def public_key_sha256(public_key) -> str:
    """SHA-256 (hex) of the raw 32 public key bytes: the key's fingerprint."""
    return sha256_bytes(public_key.public_bytes_raw())


def public_pem(private_key) -> bytes:
    """The PEM form of the public half of ``private_key``."""
    ser = _serialization()
    return private_key.public_key().public_bytes(
        ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo
    )


def sign(doc: Any, private_key) -> dict[str, str]:
    """Sign ``doc``: ``{"algorithm", "public_key_sha256", "value"}`` (value in base64)."""
    signature = private_key.sign(canonical_bytes(doc))
    return {
        "algorithm": ALGORITHM,
        "public_key_sha256": public_key_sha256(private_key.public_key()),
        "value": base64.b64encode(signature).decode("ascii"),
    }


def check_signature(doc: Any, signature: dict[str, Any], public_key) -> str | None:
    """Why ``signature`` does not sign ``doc`` with ``public_key``; ``None`` when it does."""
    if signature.get("algorithm") != ALGORITHM:
        return f"signature algorithm is {signature.get('algorithm')!r}, not {ALGORITHM!r}"
    expected = public_key_sha256(public_key)
    if signature.get("public_key_sha256") != expected:
        return (
            f"signed by key {str(signature.get('public_key_sha256'))[:16]}..., the leaderboard's "
            f"key is {expected[:16]}..."
        )
    try:
        value = base64.b64decode(str(signature.get("value")), validate=True)
    except (binascii.Error, ValueError):
        return "signature value is not base64"
    try:
        data = canonical_bytes(doc)
    except ValueError as exc:
        return f"the record cannot be put in canonical form ({exc})"
    from cryptography.exceptions import InvalidSignature

    try:
        public_key.verify(value, data)
    except InvalidSignature:
        return "the signature does not match the record (it was changed after signing)"
    return None
