"""``slim-eval dataset export-prompts``: what an external generator must draw for a run.

Writes one JSON line per image (:func:`slim_leakage.backbones.folder.export_rows`): each
sample's ``id``, ``prompt``, ``seed``, ``width``, ``height``, then one reference row per entity.
Save each image as ``<id>.png`` beside the file and run with ``--backbone images
--backbone-arg folder=DIR``.
"""

from __future__ import annotations

from ._common import print_json_last


def add_arguments(p) -> None:
    """The options of ``export-prompts``."""
    p.add_argument("--config", required=True, help="SLIM config or samples file")
    p.add_argument("--out", required=True, help="the prompts file to write (DIR/prompts.jsonl)")
    p.add_argument("--limit", type=int, default=None, help="only the first N samples")
    p.add_argument("--width", type=int, default=512, help="image width (512, the paper's)")
    p.add_argument("--height", type=int, default=512, help="image height (512)")
    p.add_argument("--no-references", action="store_true", help="no single-entity reference rows")
    p.add_argument("--json", action="store_true", help="print one JSON object last")


def run(args) -> int:
    """Write the prompts file; returns the exit code."""
    import json
    from pathlib import Path

    from .._io import atomic_write_text
    from ..backbones.folder import export_rows
    from ..errors import UsageError
    from ..slim import load_samples

    for name in ("width", "height"):
        if getattr(args, name) < 1:
            raise UsageError(
                f"--{name} {getattr(args, name)} must be positive.", hint=f"Pass --{name} 512"
            )
    samples = load_samples(args.config, limit=args.limit)
    rows = export_rows(
        samples, width=args.width, height=args.height, references=not args.no_references
    )
    out = Path(args.out)
    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    summary = {
        "out": str(out),
        "samples": len(samples),
        "rows": len(rows),
        "width": args.width,
        "height": args.height,
    }
    if args.json:
        print_json_last(summary)
    else:
        print(
            f"wrote {len(rows)} rows ({len(samples)} samples, {len(rows) - len(samples)} "
            f"references) to {out}; save each image as <id>.png in {out.parent}, then run with "
            f"--backbone images --backbone-arg folder={out.parent}"
        )
    return 0
