"""The leaderboard's pinned judges (one per dataset family) and its verification key.

``leaderboard/pinned.json`` (shipped as ``slim_leakage/leaderboard/pinned.json``; a test keeps
the two equal) says, for each family of dataset configs, which judge the maintainers re-judge
entries with, and which public key signs their verification records:

.. code-block:: json

    {"schema_version": 2,
     "verification_key": {"algorithm": "ed25519", "file": "...pem", "sha256": "..."},
     "families": {"toy": {"configs": ["toy-pairs", ...], "deterministic": true,
                          "judge": {"backend": "oracle", "model_id": "toy-oracle-v1",
                                    "served_model_ids": [], "prompt_versions": {...}}},
                  "slim": {...}}}

``judge.model_id`` is the model requested; ``judge.served_model_ids`` lists the model ids the
service may report having served for it (empty: not pinned yet, so a served id is recorded but
not compared). ``deterministic`` says whether every label must reproduce exactly when
re-judged (the oracle) or whether the threshold comes from the judge's measured
self-agreement (a VLM).
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import MissingInputError, ValidationError

#: File name of the pinned configuration (package data, mirrored in ``leaderboard/``).
PINNED_FILE = "pinned.json"
#: The version of the pinned configuration this package reads.
PINNED_VERSION = 2
_JUDGE_KEYS = ("backend", "model_id", "prompt_versions")


@dataclasses.dataclass(frozen=True)
class PinnedJudge:
    """The judge pinned for one family of dataset configs.

    Attributes:
        family: The family's name (``toy``, ``slim``).
        configs: The dataset configs it covers.
        backend: Judge backend.
        model_id: The model id requested from the backend.
        served_model_ids: Model ids the service may report having served (empty: not pinned).
        prompt_versions: Stage name -> prompt version.
        deterministic: Every label must reproduce when re-judged.
    """

    family: str
    configs: tuple[str, ...]
    backend: str
    model_id: str | None
    served_model_ids: tuple[str, ...]
    prompt_versions: dict[str, str]
    deterministic: bool

    def identity(self) -> dict[str, Any]:
        """Backend, requested model id and prompt versions, as an entry's ``judge`` holds them."""
        return {
            "backend": self.backend,
            "model_id": self.model_id,
            "prompt_versions": dict(self.prompt_versions),
        }

    def differences(self, judge: dict[str, Any], *, where: str = "judge") -> list[str]:
        """How ``judge`` (an entry's or a record's judge) differs from this pin (empty: same).

        The served model id is compared only when ``judge`` carries one and the pin lists the
        served ids it accepts.
        """
        want = self.identity()
        out = [
            f"{where}.{key} is {judge.get(key)!r}, the leaderboard pins {want[key]!r} for "
            f"the {self.family} configs"
            for key in _JUDGE_KEYS
            if judge.get(key) != want[key]
        ]
        served = judge.get("served_model_id")
        if served is not None and self.served_model_ids and served not in self.served_model_ids:
            out.append(
                f"{where}.served_model_id is {served!r}; the pinned {self.model_id!r} must be "
                f"served as one of {list(self.served_model_ids)}"
            )
        return out


@dataclasses.dataclass(frozen=True)
class Pinned:
    """The parsed pinned configuration.

    Attributes:
        families: Family name -> its pinned judge.
        key_algorithm: Signature algorithm of verification records (``ed25519``).
        key_file: File name of the public key, in the leaderboard folder.
        key_sha256: SHA-256 of the raw public key bytes.
        raw: The file's JSON, as read.
    """

    families: dict[str, PinnedJudge]
    key_algorithm: str
    key_file: str
    key_sha256: str
    raw: dict[str, Any]

    def for_config(self, config: str) -> PinnedJudge | None:
        """The judge pinned for a dataset config, or ``None`` when no family covers it."""
        for pin in self.families.values():
            if config in pin.configs:
                return pin
        return None


def _malformed(where: str, what: str) -> ValidationError:
    return ValidationError(
        f"{where}: {what}.",
        hint="Restore the file from the repository (docs/leaderboard.md describes its format).",
    )


def parse_pinned(data: Any, where: str = PINNED_FILE) -> Pinned:
    """Check and parse the JSON of a pinned configuration.

    Raises:
        ValidationError: Naming the first malformed field.
    """
    if not isinstance(data, dict) or data.get("schema_version") != PINNED_VERSION:
        got = data.get("schema_version") if isinstance(data, dict) else None
        raise _malformed(where, f"schema_version is {got!r}, this version reads {PINNED_VERSION}")
    key = data.get("verification_key")
    if not isinstance(key, dict) or not all(
        isinstance(key.get(k), str) for k in ("algorithm", "file", "sha256")
    ):
        raise _malformed(where, "verification_key needs string algorithm, file and sha256")
    families = data.get("families")
    if not isinstance(families, dict) or not families:
        raise _malformed(where, "families must map family names to pinned judges")
    parsed: dict[str, PinnedJudge] = {}
    seen: dict[str, str] = {}
    for name, fam in families.items():
        judge = fam.get("judge") if isinstance(fam, dict) else None
        configs = fam.get("configs") if isinstance(fam, dict) else None
        ok = (
            isinstance(judge, dict)
            and isinstance(configs, list)
            and all(isinstance(c, str) for c in configs)
            and isinstance(fam.get("deterministic"), bool)
            and isinstance(judge.get("backend"), str)
            and (judge.get("model_id") is None or isinstance(judge.get("model_id"), str))
            and isinstance(judge.get("served_model_ids"), list)
            and all(isinstance(s, str) for s in judge["served_model_ids"])
            and isinstance(judge.get("prompt_versions"), dict)
        )
        if not ok:
            raise _malformed(
                where,
                f"families.{name} needs configs, deterministic and judge {{backend, model_id, "
                "served_model_ids, prompt_versions}",
            )
        for config in configs:
            if config in seen:
                raise _malformed(
                    where, f"config {config!r} is in families {seen[config]} and {name}"
                )
            seen[config] = name
        parsed[name] = PinnedJudge(
            family=name,
            configs=tuple(configs),
            backend=judge["backend"],
            model_id=judge["model_id"],
            served_model_ids=tuple(judge["served_model_ids"]),
            prompt_versions={str(k): str(v) for k, v in judge["prompt_versions"].items()},
            deterministic=fam["deterministic"],
        )
    return Pinned(
        families=parsed,
        key_algorithm=key["algorithm"],
        key_file=key["file"],
        key_sha256=key["sha256"],
        raw=data,
    )


def load_pinned(path: str | Path | None = None) -> Pinned:
    """The leaderboard's pinned configuration.

    Args:
        path: A pinned-config JSON file; by default the copy shipped with the package.

    Raises:
        MissingInputError: If the file is missing (exit code 2, a validation error too).
        ValidationError: If the file is malformed.
    """
    try:
        if path is None:
            text = resources.files("slim_leakage.leaderboard").joinpath(PINNED_FILE).read_text()
            where = f"slim_leakage/leaderboard/{PINNED_FILE}"
        else:
            text = Path(path).read_text(encoding="utf-8")
            where = str(path)
        data = json.loads(text)
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise MissingInputError(
            f"Pinned judge configuration {str(path)!r} does not exist or is not a file.",
            hint="Pass an existing pinned.json, or leave out --pinned to use the one beside "
            "the leaderboard's entries/ folder.",
        ) from exc
    except json.JSONDecodeError as exc:
        raise ValidationError(f"Pinned judge configuration is not JSON ({exc}).") from exc
    return parse_pinned(data, where)


def judge_identity(description: dict[str, Any] | None) -> dict[str, Any]:
    """Backend, model ids and prompt versions out of a manifest's ``judge`` description.

    ``served_model_id`` is kept when the description has one (the model the service reported).
    """
    description = description or {}
    versions = description.get("prompt_versions") or description.get("prompts") or {}
    out = {
        "backend": str(description.get("backend") or description.get("name") or "unknown"),
        "model_id": description.get("model_id") or description.get("model"),
        "prompt_versions": {str(k): str(v) for k, v in dict(versions).items()},
    }
    if description.get("served_model_id") is not None:
        out["served_model_id"] = str(description["served_model_id"])
    return out


def pinned_beside(entry_path: str | Path) -> Pinned:
    """The ``pinned.json`` beside the ``entries/`` folder an entry file sits in, else the
    shipped one (an entry file outside a leaderboard folder)."""
    folder = Path(entry_path).resolve().parent
    beside = folder.parent / PINNED_FILE
    if folder.name == "entries" and beside.is_file():
        return load_pinned(beside)
    return load_pinned()
