"""Forgeries: every way a submitter might try to earn a rank without earning it, as cases.

Each kind starts from a real entry: a toy-world run made here (`slim-eval --method deleaker`,
the embedded toy backbone and the oracle judge), submitted with `slim-eval submit`, and verified
with `slim-eval verify-entry` under a throwaway maintainers' key generated for the check (it
stands in for the project's key, whose private half a forger does not hold; the pinned
configuration is the shipped one with this key's fingerprint). A kind copies that leaderboard
folder, tampers with it the way a forger would, and asks for what the forger wants:

- ``verified``: the forged entry shown as verified by ``validate`` and the page;
- ``ranked``: the forged entry ranked on the page;
- ``valid``: the forged entry accepted by ``validate`` at all (tampers that must be refused);
- ``verify``: a "verified" decision from the maintainers' own ``verify-entry`` re-judge;
- ``measured``: a self-reported figure shown on the page without its "self-reported" mark;
- ``interval``: a net-mitigation interval other than the one the leaderboard computes itself;
- ``shed``: an entry the maintainers rejected shown as anything but "rejected" after an edit or
  a rename (a rejection sticks);
- ``inject``: entry text turned into Markdown or HTML on the page or in the README table (an
  extra row, a link, an image, a marker, a script);
- ``mixed``: an entry measured with another judge ranked in the same table as the base.

The maintainers' re-judge is their real procedure: the subset seed comes from their key's
signature, and the images are regenerated from the forged entry's own declaration (method,
config, backbone preset, shipped config), once per declaration.

A forgery is *accepted* when the forger gets it. ``forgeries_accepted`` must be 0.

Usage: python benchmarks/forgeries.py [--run RUN] [--json]   (also run by reliability.py)
"""

# ruff: noqa: F405 - the kit's names (Case, BASE ...) come from its star import
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling forgeries_*.py files

import forgeries_cases  # noqa: E402
import forgeries_more  # noqa: E402
from forgeries_kit import *  # noqa: E402, F403 - re-exported: callers use forgeries.X
from forgeries_kit import (  # noqa: E402, F401 - _record_forgery re-exported for the tests
    _record_forgery,
    _write,
)


def cases() -> list:
    """Every forgery kind with the tamper that makes it."""
    return forgeries_cases.cases() + forgeries_more.cases()


# -- judging a case -----------------------------------------------------------------------------
def judge_case(case: Case, base: Base, folder: Path) -> tuple[bool, str]:
    """Whether the forger got what it wanted, and what the leaderboard said instead."""
    from slim_leakage.errors import SlimError
    from slim_leakage.leaderboard.render import collect, figure_texts, html_page, markdown_table
    from slim_leakage.leaderboard.validate import validate_file
    from slim_leakage.metrics import net_mitigation

    target = folder / "entries" / case.target
    if case.goal == "verify":
        run = folder / "run" if (folder / "run").is_dir() else base.run
        subset = case.options.get("subset")
        if subset is not None:
            labelled = sum(1 for r in base.entry["verdicts"] if r["label"] is not None)
            subset = max(1, int(subset * labelled))
        try:
            record = base.verify(target, run, subset)
        except SlimError as exc:
            return False, f"verify-entry refused: {exc.message.splitlines()[0]}"
        decision = record["decision"]
        return decision["verified"], "; ".join(decision["reasons"])[:200] or "verified"
    report = validate_file(target, pinned=base.pinned, dataset=base.dataset)
    if case.goal == "valid":
        return report.ok, (report.problems[0] if report.problems else "valid")[:200]
    if case.goal == "shed":  # a rejection must follow the entry through edits and renames
        said = f"{report.status}; " + "; ".join(report.unranked or report.problems)
        return report.ok and report.status != "rejected", said[:200]
    if not report.ok and case.goal != "inject":
        return False, f"invalid: {report.problems[0]}"[:200]
    try:
        rows = collect(folder, pinned=base.pinned, dataset=base.dataset)
    except SlimError as exc:
        return False, f"render refused: {' '.join(exc.message.split())}"[:200]
    if case.goal == "inject":
        return _injected(rows, markdown_table(rows), html_page(rows))
    row = next(r for r in rows if r.file == case.target)
    said = f"{row.report.status}; " + "; ".join(row.report.unranked)
    if case.goal == "verified":
        return row.verified, said[:200]
    if case.goal == "ranked":
        return row.rank is not None, said[:200]
    if case.goal == "mixed":  # ranked in the base's table though measured otherwise
        base_row = next(r for r in rows if r.file == BASE)
        return row.group == base_row.group, f"group {row.group}; {said}"[:200]
    if case.goal == "measured":
        text = figure_texts(row.to_dict())[case.options["figure"]]
        page = html_page([row])
        marked = text.endswith("(self-reported)") and 'class="self-reported"' in page
        return not marked, text
    if case.goal == "interval":
        labels = [r["label"] for r in row.entry["verdicts"] if r["label"] is not None]
        own = net_mitigation(labels, n_boot=1000, seed=0)[1]
        return row.net_interval != own, f"interval {row.net_interval} (own {own})"
    raise ValueError(f"unknown goal {case.goal!r}")


def _injected(rows: list, table: str, page: str) -> tuple[bool, str]:
    """Whether entry text got into the Markdown table or the page as markup."""
    import re

    from slim_leakage.leaderboard.render import README_END, README_START

    lines = [ln for ln in table.splitlines() if ln.startswith("|")]
    groups = len({r.group for r in rows})
    expected = len(rows) + 2 * groups  # rows plus each table's header and rule
    cells = [len(re.split(r"(?<!\\)\|", ln)) for ln in lines]
    if len(lines) != expected or len(set(cells)) != 1:
        return True, f"{len(lines)} table lines, {expected} expected; cells {sorted(set(cells))}"
    if README_START in table or README_END in table or "<" in table.replace("&lt;", ""):
        return True, "a marker or raw HTML reached the table"
    if re.search(r"(?<!\\)\]\(", table) or re.search(r"(?<!\\)!\[", table):
        return True, "a Markdown link or image reached the table"
    # the page has its own <script>; what an entry could smuggle in is markup with its payload
    for marker in ("<script>alert", "<img src", "<iframe", 'href="http'):
        if marker in page.lower():
            return True, f"{marker!r} reached the page"
    return False, "escaped in the table and the page"


#: Unforged controls: the real entry must get each of these, or the check proves nothing.
CONTROLS = (
    Case("control: the real entry is verified", "verified", BASE),
    Case("control: the real entry is ranked", "ranked", BASE),
    Case("control: the real entry passes the maintainers' re-judge", "verify", BASE),
    Case("control: a re-serialised copy of the real entry is valid", "valid"),
    Case("control: the real entry is not shown as rejected", "shed", BASE),
    Case("control: the real entry is in its own group's table", "mixed", BASE),
)


def check_forgeries(
    root: Path,
    *,
    run: Path | None = None,
    limit: int | None = None,
    dataset=None,
    base: Base | None = None,
    log=print,
) -> dict:
    """Make the base entry, then try every forgery kind against it.

    Args:
        root: An empty working folder.
        run: A finished toy run to start from (default: make one).
        limit: Only the first N samples (tests; needs ``dataset``).
        dataset: The dataset resolver (default: the shipped SLIM).
        base: A base made by :func:`make_base` (then ``run``, ``limit``, ``dataset`` are unused).
        log: Where progress lines go.

    Returns:
        ``forgeries_tried``, ``forgeries_accepted``, the accepted kinds, per-goal counts, the
        controls passed (the real entry itself is verified, ranked, re-judged and valid) and
        one row per kind.

    Raises:
        RuntimeError: If a control fails (the harness could then accept nothing at all).
    """
    started = time.perf_counter()
    base = base or make_base(root / "base", run=run, limit=limit, dataset=dataset)
    log(f"forgeries: base entry made and verified in {time.perf_counter() - started:.0f} s")
    controls = []
    for case in CONTROLS:
        folder = root / "control"
        shutil.copytree(base.folder, folder)
        _write(folder, f"entries/{FORGED}", entry_text(base.entry))
        got, said = judge_case(case, base, folder)
        controls.append({"kind": case.name, "passed": got, "said": said})
        shutil.rmtree(folder)
    folder = root / "control"
    shutil.copytree(base.folder, folder)
    from slim_leakage.leaderboard.render import collect, html_page, markdown_table

    rows = collect(folder, pinned=base.pinned, dataset=base.dataset)
    fake_row = "| 1 | fake | toy | toy-pairs (96) | +99% |" + " x |" * 10
    got, said = _injected(rows, markdown_table(rows) + fake_row + "\n", html_page(rows))
    controls.append({"kind": "control: an injected table row is detected", "passed": got,
                     "said": said})  # fmt: skip
    shutil.rmtree(folder)
    if not all(c["passed"] for c in controls):
        raise RuntimeError(f"a control failed, the forgery check would prove nothing: {controls}")
    rows = []
    for i, (case, apply) in enumerate(cases()):
        folder = root / f"case-{i:02d}"
        shutil.copytree(base.folder, folder)
        t0 = time.perf_counter()
        try:
            apply(base, folder)
        except Exception as exc:  # noqa: BLE001 - a broken tamper proves nothing: counted
            rows.append({"kind": case.name, "goal": case.goal, "accepted": False,
                         "said": f"setup failed: {type(exc).__name__}: {exc}"[:200],
                         "seconds": 0.0})  # fmt: skip
            log(f"forgery SETUP FAILED: {case.name} -> {rows[-1]['said']}")
            shutil.rmtree(folder, ignore_errors=True)
            continue
        try:
            accepted, said = judge_case(case, base, folder)
        except Exception as exc:  # noqa: BLE001 - a crash is counted, and is no acceptance
            accepted, said = False, f"crash: {type(exc).__name__}: {exc}"[:200]
        rows.append(
            {
                "kind": case.name,
                "goal": case.goal,
                "accepted": accepted,
                "said": said,
                "seconds": round(time.perf_counter() - t0, 2),
            }
        )
        log(f"forgery {'ACCEPTED' if accepted else 'refused'}: {case.name} -> {said[:120]}")
        shutil.rmtree(folder, ignore_errors=True)
    goals = {g: sum(1 for r in rows if r["goal"] == g) for g in GOALS}
    return {
        "forgeries_tried": len(rows),
        "forgeries_accepted": sum(1 for r in rows if r["accepted"]),
        "forgeries_accepted_kinds": [r["kind"] for r in rows if r["accepted"]],
        "forgeries_crashed": sum(1 for r in rows if r["said"].startswith("crash:")),
        "forgery_crashes": sum(1 for r in rows if r["said"].startswith("crash:")),
        "forgery_setup_failures": sum(1 for r in rows if r["said"].startswith("setup failed:")),
        "forgery_controls": controls,
        "forgery_goals": goals,
        "forgery_controls_passed": len(controls),
        "forgery_rows": rows,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a finished toy deleaker run to start from")
    parser.add_argument(
        "--limit",
        type=int,
        help="a base run of only the first N toy-pairs samples (validated as that config's "
        "first N samples; for a quick check)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    dataset = None
    if args.limit:
        from slim_leakage.leaderboard.validate import DatasetReference, shipped_dataset
        from slim_leakage.slim import dataset_fingerprint, load_samples

        head = DatasetReference(
            "toy-pairs",
            dataset_fingerprint("toy-pairs"),
            tuple(load_samples("toy-pairs"))[: args.limit],
        )

        def dataset(config):
            return head if config == "toy-pairs" else shipped_dataset(config)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="slim-forgeries-") as tmp:
        figures = check_forgeries(
            Path(tmp), run=args.run, limit=args.limit, dataset=dataset, log=log
        )
    print(json.dumps(figures, sort_keys=True) if args.json else json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
