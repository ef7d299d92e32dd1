"""`slim-eval annotate`: a local page for labelling a run's image pairs by hand."""

from __future__ import annotations


def add_parser(sub) -> None:
    """Register ``annotate``."""
    p = sub.add_parser(
        "annotate",
        help="label a run's image pairs in a local web page (writes a labels CSV)",
        description=(
            "Serve a page on 127.0.0.1 showing each sample's prompt and its two images in a "
            "randomised order; answers (click or keys 1-5) are appended to --labels as "
            "sample_id,method,annotator,label. Stop with Ctrl-C; run again to resume."
        ),
    )
    p.add_argument("run", metavar="RUN", help="the run directory")
    p.add_argument("--annotator", required=True, help="your name, written in every row")
    p.add_argument(
        "--labels", default="labels.csv", metavar="FILE", help="labels CSV (default labels.csv)"
    )
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0: any free one)")
    p.add_argument("--seed", type=int, default=0, help="seed of the left/right order")
    p.set_defaults(func=run)


def run(args) -> int:
    """Serve until interrupted."""
    from ..annotate import AnnotationSession, make_server
    from ..annotate.server import MIN_VIEW_S
    from ..errors import UsageError
    from ..rundir import load_run
    from ..rundir.outputs import guard_output

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a port number.", hint="Use e.g. 8765.")
    run_data = load_run(args.run)
    guard_output(args.labels, flag="--labels", append=True)  # appended to: resumes labelling
    session = AnnotationSession(
        run_data, args.labels, args.annotator, seed=args.seed, min_view_s=MIN_VIEW_S
    )
    try:
        server = make_server(session, port=args.port)
    except OSError as exc:
        raise UsageError(
            f"Cannot listen on 127.0.0.1:{args.port} ({exc}).",
            hint="Pick another --port, or --port 0 for any free one.",
        ) from exc
    host, port = server.server_address[:2]
    left = len(session.pending())
    print(
        f"annotating {session.method} as {session.annotator}: {left} of "
        f"{len(session.samples)} samples left; labels go to {args.labels}"
    )
    print(f"open http://{host}:{port}/ (Ctrl-C stops; run again to resume)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
