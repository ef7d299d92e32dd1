"""Render the leaderboard folder as a static page and a Markdown table.

Every entry is validated first (:mod:`.validate`); an invalid entry stops the render, so the
page only ever shows numbers that recompute from their verdicts. An entry is verified only by
its signed verification record (:mod:`.verification`). Only verified entries within the
judge-error limit are ranked, by net mitigation (mitigation share minus degradation share) with
its paired bootstrap interval; entries whose intervals overlap share a rank. The others are
listed below with the reason. Figures nobody re-measured (cost, timings, image metrics the
verification did not recompute, package versions) carry a "self-reported" mark.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from .._io import atomic_write_text
from ..errors import MissingInputError, ValidationError
from ..metrics import net_mitigation
from ..records import LABELS
from .names import md_cell, name_key
from .page import (  # noqa: F401 - figure_texts, SELF_REPORTED re-exported (tests, benchmarks)
    SELF_REPORTED,
    _net_text,
    _pct,
    _rank_text,
    _status_text,
    figure_texts,
    html_page,
)
from .pinned import PINNED_FILE, Pinned, load_pinned
from .schema import migrate
from .validate import DatasetResolver, ValidationReport, read_entry, shipped_dataset, validate_file
from .verification import KeyCheck, load_checked_key

README_START = "<!-- leaderboard:start -->"
README_END = "<!-- leaderboard:end -->"
#: Bootstrap of the net-mitigation intervals: the defaults of ``metrics.aggregate``, fixed by
#: the leaderboard (not taken from the entry) so that every entry is ranked alike.
RANK_N_BOOT = 1000
RANK_SEED = 0


@dataclasses.dataclass
class Row:
    """One entry as the page shows it.

    Attributes:
        file: The entry's file name.
        entry: The validated entry (read as version 2).
        report: Its validation report (with the verification's verdict).
        net: Net mitigation (``None`` when nothing was labelled).
        net_interval: Its paired bootstrap 95% interval.
        rank: Its rank (``None``: not ranked, see ``report.unranked``) within its group.
        tie: Another ranked entry of its group has the same rank.
        group: ``(dataset config, judge family)``: entries are ranked only within a group.
        group_title: The group's heading on the page.
    """

    file: str
    entry: dict[str, Any]
    report: ValidationReport
    net: float | None = None
    net_interval: list[float] | None = None
    rank: int | None = None
    tie: bool = False
    group: tuple[str, str] = ("", "")
    group_title: str = ""

    @property
    def verified(self) -> bool:
        """A valid signed verification record verifies the entry."""
        return self.report.verified

    def share(self, *labels: str) -> float | None:
        """Summed share of ``labels`` (``None`` when nothing was labelled)."""
        dist = self.entry["metrics"]["distribution"]
        values = [dist.get(label) for label in labels]
        return None if any(v is None for v in values) else round(sum(values), 6)

    @property
    def mitigation(self) -> float | None:
        """Share of mitigation-major plus mitigation-minor."""
        return self.share("mitigation-major", "mitigation-minor")

    @property
    def degradation(self) -> float | None:
        """Share of degradation-minor plus degradation-major."""
        return self.share("degradation-minor", "degradation-major")

    def image_metric(self, field: str) -> tuple[float | None, bool]:
        """``(value, recomputed)``: the verification's recomputation when it made one, else
        the entry's own (self-reported) figure."""
        record = self.report.verification.record if self.report.verification else None
        if self.verified and record is not None:
            figure = record["image_metrics"].get(field)
            if isinstance(figure, dict) and figure.get("recomputed") is not None:
                return figure["recomputed"], True
        return self.entry["metrics"].get(field), False

    def to_dict(self) -> dict[str, Any]:
        """The figures the page's script sorts and draws."""
        e = self.entry
        m = e["metrics"]
        cost = e["cost"].get("method") or {}
        lpips, lpips_recomputed = self.image_metric("lpips")
        return {
            "file": self.file,
            "name": e["name"],
            "submitter": e.get("submitter") or "",
            "method": e["method"]["name"],
            "backbone": e["backbone"]["preset"],
            "dataset": e["dataset"]["config"],
            "judge": f"{e['judge']['backend']}/{e['judge']['model_id']}",
            "n": m["n_samples"],
            "judge_errors": m["judge_errors"],
            "distribution": {label: m["distribution"].get(label) for label in LABELS},
            "intervals": {label: m["intervals"].get(label) for label in LABELS},
            "net": self.net,
            "net_interval": self.net_interval,
            "mitigation": self.mitigation,
            "no_change": m["distribution"].get("no-change"),
            "degradation": self.degradation,
            "lpips": lpips,
            "lpips_recomputed": lpips_recomputed,
            "seconds_per_image": cost.get("seconds_per_image"),
            "peak_memory_bytes": cost.get("peak_memory_bytes"),
            "judge_cost_usd": (e["cost"].get("judge") or {}).get("cost_usd"),
            "judge_thinking_tokens": (e["cost"].get("judge") or {}).get("thinking_tokens"),
            "package": e["package"]["version"],
            "rank": self.rank,
            "tie": self.tie,
            "status": self.report.status,
            "attempts": self.report.attempts,
            "verified": self.verified,
            "unranked": list(self.report.unranked),
            "submitted": e["submitted"],
        }


def entry_files(folder: str | Path) -> list[Path]:
    """The entry files of a leaderboard folder (``entries/*.json``, sorted by name).

    Raises:
        MissingInputError: If the folder does not exist (exit code 2; a validation error too).
        ValidationError: If it has no ``entries/`` folder (the wrong folder: give the one
            holding ``entries/`` and ``pinned.json``) or no entry file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInputError(
            f"Leaderboard folder {str(folder)!r} does not exist.",
            hint="Give the repository's leaderboard/ folder.",
        )
    if not (folder / "entries").is_dir():
        inside = " (it is an entries folder itself)" if folder.name == "entries" else ""
        raise ValidationError(
            f"{str(folder)!r} is not a leaderboard folder: it has no entries/ folder{inside}.",
            hint="Give the folder that holds entries/, verifications/ and pinned.json "
            "(e.g. leaderboard/).",
        )
    files = sorted((folder / "entries").glob("*.json"))
    if not files:
        raise ValidationError(
            f"{str(folder / 'entries')!r} holds no entry (*.json).",
            hint="Add an entry (`slim-eval submit RUN --out FOLDER/entries/NAME.json`).",
        )
    return files


def folder_pinned(folder: str | Path) -> Pinned:
    """The ``pinned.json`` beside a leaderboard folder's ``entries/``.

    Raises:
        ValidationError: If it is missing (the wrong folder, or one without its pins).
    """
    path = Path(folder) / PINNED_FILE
    if not path.is_file():
        raise ValidationError(
            f"{str(folder)!r} has no {PINNED_FILE} beside entries/.",
            hint=f"Give the leaderboard folder that holds {PINNED_FILE}, or name one with "
            "--pinned FILE.",
        )
    return load_pinned(path)


def rank_rows(rows: list[Row]) -> list[Row]:
    """Rank the rows in place, group by group, and return them in page order.

    Rows are ranked only against rows of their own group (dataset config, judge family):
    shares from another config or another judge measure something else. Within a group, ranked
    are the verified rows within the judge-error limit (``report.unranked`` empty); a ranked
    row's rank is 1 + the number of ranked rows whose whole net-mitigation interval lies above
    its own; rows sharing a rank are ties. Page order: groups by name; in each, ranked rows by
    rank, then net mitigation (best first), then name; then the unranked rows by status
    (reproduced ones first) and net mitigation.
    """
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault(row.group, []).append(row)
    out: list[Row] = []
    for key in sorted(groups):
        out += _rank_group(groups[key])
    return out


#: Listing order of the statuses of unranked rows (reproduced ones before the rest).
STATUS_ORDER = ("verified", "unverified", "rejected", "listed, not reproduced")


def _rank_group(rows: list[Row]) -> list[Row]:
    for row in rows:
        labels = [r["label"] for r in row.entry["verdicts"] if r["label"] is not None]
        row.net, row.net_interval = net_mitigation(labels, n_boot=RANK_N_BOOT, seed=RANK_SEED)
    ranked = [r for r in rows if not r.report.unranked and r.net_interval is not None]
    for row in ranked:
        row.rank = 1 + sum(1 for o in ranked if o.net_interval[0] > row.net_interval[1])
    for row in ranked:
        row.tie = sum(1 for o in ranked if o.rank == row.rank) > 1

    def net_key(r: Row) -> tuple:
        return (-(r.net if r.net is not None else -2.0), r.entry["name"], r.file)

    def status_key(r: Row) -> int:
        status = r.report.status
        return STATUS_ORDER.index(status) if status in STATUS_ORDER else len(STATUS_ORDER)

    unranked = [r for r in rows if r.rank is None]
    ranked.sort(key=lambda r: (r.rank, *net_key(r)))
    unranked.sort(key=lambda r: (status_key(r), *net_key(r)))
    return ranked + unranked


def _group(entry: dict[str, Any], pinned: Pinned) -> tuple[tuple[str, str], str]:
    """The ranking group of an entry and its heading."""
    config = entry["dataset"]["config"]
    pin = pinned.for_config(config)
    judge = entry["judge"]
    if pin is not None and not pin.differences(judge):
        family = pin.family
        title = f"{config}, judged by the {family} pin ({pin.backend}/{pin.model_id})"
    else:
        family = f"{judge['backend']}/{judge['model_id']}"
        title = f"{config}, judged by {family} (not the pinned judge: never ranked)"
    return (config, family), title


#: A leaderboard entry's file name: lowercase letters, digits, '.', '_' and '-'.
ENTRY_FILE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}\.json$")


def _name_clashes(rows: list[Row]) -> None:
    """Each display name belongs to one entry (compared by :func:`.names.name_key`).

    The entry the maintainers recorded first keeps it, whatever their decision (a record's
    date is theirs, not the submitter's; a rejected entry's name is not freed for another
    submitter); among entries without a record, the file name decides. The others are
    listed, never ranked, until renamed.
    """

    def seniority(r: Row) -> tuple:
        record = r.report.verification.record if r.report.verification else None
        return (0, record["date"], r.file) if record else (1, "", r.file)

    owner: dict[str, Row] = {}
    for row in sorted(rows, key=seniority):
        key = name_key(row.entry["name"])
        if key in owner:
            row.report.unranked.append(
                f"its display name is the one of {owner[key].file} (names are compared after "
                "Unicode normalisation, case folding and removing invisible characters); "
                "rename it"
            )
        else:
            owner[key] = row


def collect(
    folder: str | Path,
    *,
    pinned: Pinned | None = None,
    dataset: DatasetResolver = shipped_dataset,
    key: KeyCheck | None = None,
) -> list[Row]:
    """Load, validate and verify every entry; rows in page order (:func:`rank_rows`).

    Args:
        folder: The leaderboard folder (``entries/``, ``verifications/``, the public key).
        pinned: The pinned configuration (default: ``pinned.json`` in ``folder``).
        dataset: Dataset reference resolver.
        key: The public key (default: the pinned key file in ``folder``).

    Raises:
        ValidationError: Listing every problem of every invalid entry.
    """
    cache: dict[str, Any] = {}

    def cached(config: str):
        if config not in cache:
            try:
                cache[config] = dataset(config)
            except ValidationError as exc:
                cache[config] = exc
        if isinstance(cache[config], ValidationError):
            raise cache[config]
        return cache[config]

    files = entry_files(folder)
    pinned = pinned or folder_pinned(folder)
    key = key or load_checked_key(Path(folder) / pinned.key_file, pinned)
    rows, problems = [], []
    for path in files:
        if not ENTRY_FILE_NAME.match(path.name):
            problems.append(
                f"{path.name!r}: an entry file name is lowercase letters, digits, '.', '_' "
                "and '-', ending in .json"
            )
            continue
        report = validate_file(
            path,
            pinned=pinned,
            dataset=cached,
            records=Path(folder) / "verifications",
            key=key,
        )
        if not report.ok:
            problems += [f"{path.name}: {p}" for p in report.problems]
            continue
        entry = migrate(read_entry(path)[1])[0]
        group, title = _group(entry, pinned)
        rows.append(Row(path.name, entry, report, group=group, group_title=title))
    if problems:
        raise ValidationError(
            f"{len(problems)} problem(s) in the leaderboard entries:\n  " + "\n  ".join(problems),
            hint="Fix or remove the invalid entries (`slim-eval validate` lists the same).",
        )
    _name_clashes(rows)
    return rank_rows(rows)


#: The Markdown table's header.
MD_HEADER = (
    "| Rank | Method | Backbone | Data | Net mitigation [95% CI] | Mitigation | No change | "
    "Degradation | Judge errors | LPIPS | s / image | Peak memory | Judge cost | Package | "
    "Status |\n" + "|---" * 15 + "|"
)


def markdown_table(rows: list[Row]) -> str:
    """The README tables: one per group (dataset config, judge family), rows in page order.

    Every cell is escaped (:func:`.names.md_cell`): no entry text can add a row, a link, an
    image, HTML or a table marker.
    """
    if not rows:
        return "_No entries yet._\n"
    parts = []
    for key in dict.fromkeys(r.group for r in rows):
        group = [r for r in rows if r.group == key]
        lines = [f"**{md_cell(group[0].group_title)}**", "", MD_HEADER]
        for row in group:
            d = row.to_dict()
            f = figure_texts(d)
            by = f" (by {d['submitter']})" if d["submitter"] else " (no submitter)"
            cells = [
                _rank_text(d),
                d["name"] + by,
                f["backbone"],
                f"{d['dataset']} ({d['n']})",
                _net_text(d),
                _pct(d["mitigation"]),
                _pct(d["no_change"]),
                _pct(d["degradation"]),
                str(d["judge_errors"]),
                f["lpips"],
                f["cost"],
                f["memory"],
                f["judge_cost"],
                f["package"],
                _status_text(d),
            ]
            lines.append("| " + " | ".join(md_cell(c) for c in cells) + " |")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def update_readme(path: str | Path, table: str) -> None:
    """Replace the text between the leaderboard markers of a README with ``table``.

    Raises:
        ValidationError: If the README lacks the markers.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if text.count(README_START) != 1 or text.count(README_END) != 1:
        raise ValidationError(
            f"{path} must hold {README_START} and {README_END} once each "
            f"(found {text.count(README_START)} and {text.count(README_END)}).",
            hint="Keep exactly one pair of marker lines where the table goes.",
        )
    start, end = text.find(README_START), text.find(README_END)
    if end < start:
        raise ValidationError(
            f"{path}: {README_END} comes before {README_START}.",
            hint="Put the start marker first.",
        )
    if README_START in table or README_END in table:  # md_cell escapes; never trust it alone
        raise ValidationError("The table holds a leaderboard marker; nothing was written.")
    new = text[: start + len(README_START)] + "\n" + table + text[end:]
    atomic_write_text(path, new)


def render(
    folder: str | Path,
    out: str | Path,
    *,
    pinned: Pinned | None = None,
    dataset: DatasetResolver = shipped_dataset,
    readme: str | Path | None = None,
    key: KeyCheck | None = None,
) -> list[Row]:
    """Validate the entries of ``folder`` and write ``out/index.html`` and ``out/leaderboard.md``
    (and the models table, ``out/models.md`` and ``out/models.html``).

    Args:
        folder: The leaderboard folder (entries in ``folder/entries/*.json``).
        out: Output folder for the page.
        pinned: The pinned configuration (default: ``pinned.json`` in ``folder``).
        dataset: Dataset reference resolver (default: the shipped SLIM).
        readme: A README whose marked table is replaced, if given.
        key: The public key (default: the pinned key file in ``folder``).

    Returns:
        The rows, in page order.
    """
    rows = collect(folder, pinned=pinned, dataset=dataset, key=key)
    out = Path(out)
    table = markdown_table(rows)
    atomic_write_text(out / "index.html", html_page(rows))
    atomic_write_text(out / "leaderboard.md", table)
    from .models_table import model_rows, models_html, models_markdown

    models = model_rows(rows)  # the second table: which backbone leaks (models.md, models.html)
    atomic_write_text(out / "models.md", models_markdown(models))
    atomic_write_text(out / "models.html", models_html(models))
    if readme is not None:
        update_readme(readme, table)
    return rows
