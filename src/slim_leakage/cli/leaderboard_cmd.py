"""`slim-eval leaderboard render|keygen`: the page and table, and the maintainers' key pair."""

from __future__ import annotations


def add_parser(sub) -> None:
    """Register ``leaderboard`` and its actions."""
    p = sub.add_parser("leaderboard", help="render the leaderboard page; make its signing key")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    r = actions.add_parser(
        "render",
        help="validate every entry and write OUT/index.html and OUT/leaderboard.md",
        description=(
            "Validate every entry in DIR/entries/*.json (an invalid one stops the render), "
            "check its verification record in DIR/verifications/, rank the verified entries "
            "by net mitigation and write a static page (sortable table, 5-way bars, cost, "
            "verified badge) and a Markdown table."
        ),
    )
    r.add_argument("folder", metavar="DIR", help="the leaderboard folder (e.g. leaderboard/)")
    r.add_argument("--out", required=True, metavar="SITE", help="output folder for the page")
    r.add_argument(
        "--readme",
        metavar="FILE",
        help="also replace the table between the leaderboard markers of this README",
    )
    r.add_argument(
        "--pinned", metavar="FILE", help="pinned config (default: DIR/pinned.json, beside entries/)"
    )
    r.set_defaults(func=run)
    k = actions.add_parser(
        "keygen",
        help="make a new Ed25519 key pair for signing verification records",
        description=(
            "Write a new private key (mode 0600; keep it outside the repository) and its "
            "public key, and pin the public key's fingerprint in each --pinned file. Then "
            "verify every entry again with the new key (docs/leaderboard.md, 'Rotating the "
            "key')."
        ),
    )
    k.add_argument("--private", required=True, metavar="FILE", help="new private key (PEM)")
    k.add_argument(
        "--public",
        required=True,
        metavar="FILE",
        help="where to write the public key (the leaderboard folder's key file)",
    )
    k.add_argument(
        "--pinned",
        action="append",
        default=[],
        metavar="FILE",
        help="a pinned.json whose verification_key to update (repeatable: the leaderboard's "
        "and the package's copy)",
    )
    k.set_defaults(func=keygen)


def run(args) -> int:
    """Render and report what was written."""
    from ..leaderboard import validate as v
    from ..leaderboard.pinned import load_pinned
    from ..leaderboard.render import render

    rows = render(
        args.folder,
        args.out,
        pinned=load_pinned(args.pinned) if args.pinned else None,  # default: DIR/pinned.json
        dataset=v.shipped_dataset,
        readme=args.readme,
    )
    verified = sum(1 for r in rows if r.verified)
    ranked = sum(1 for r in rows if r.rank is not None)
    print(
        f"rendered {len(rows)} entr{'y' if len(rows) == 1 else 'ies'} ({verified} verified, "
        f"{ranked} ranked) to {args.out}/index.html and {args.out}/leaderboard.md"
        + (f"; updated {args.readme}" if args.readme else "")
    )
    return 0


def keygen(args) -> int:
    """Write the key pair and pin the new public key."""
    import json
    from pathlib import Path

    from .._io import atomic_write_bytes, atomic_write_json
    from ..errors import UsageError
    from ..leaderboard import signing
    from ..leaderboard.pinned import parse_pinned

    pinned_docs = []
    for path in args.pinned:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UsageError(
                f"Cannot read the pinned config {path!r} ({exc}).",
                hint="Give the leaderboard's pinned.json (and the package's copy).",
            ) from exc
        parse_pinned(doc, path)
        pinned_docs.append((path, doc))
    private_pem, public_pem = signing.generate_key_pair()
    signing.write_private_key(args.private, private_pem)
    atomic_write_bytes(args.public, public_pem)
    digest = signing.public_key_sha256(signing.load_public_key(args.public))
    for path, doc in pinned_docs:
        doc["verification_key"] = {
            "algorithm": signing.ALGORITHM,
            "file": Path(args.public).name,
            "sha256": digest,
        }
        atomic_write_json(path, doc)
    print(f"wrote the private key {args.private} (mode 0600; keep it out of the repository)")
    print(f"wrote the public key {args.public} (fingerprint {digest})")
    for path, _ in pinned_docs:
        print(f"pinned it in {path}")
    return 0
