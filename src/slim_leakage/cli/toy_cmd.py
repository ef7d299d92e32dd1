"""``slim-eval toy``: train, measure and render the embedded toy world.

- ``slim-eval toy train --out DIR [--export WEIGHTS]`` trains the toy model from a fixed seed
  (resumes from ``DIR/checkpoint.pt``), and exports a diffusers folder;
- ``slim-eval toy measure [--what generation|oracle|blocks|all]`` measures mask localisation,
  vanilla leakage with its control, the oracle's detection and false-alarm rates, and (blocks)
  each block type's own mask localisation per step;
- ``slim-eval toy leakage RUN|SWEEP ...`` reads a finished run's (or every sweep variant's)
  images with the oracle and reports the leakage rate with Wilson intervals;
- ``slim-eval toy render tiger leopard --out scene.png`` draws a ground-truth scene.

Machine-readable output (``--json``) is one JSON object on the last line.
"""

from __future__ import annotations

from pathlib import Path

from ._common import print_json_last


def add_parser(sub) -> None:
    p = sub.add_parser("toy", help="train, measure and render the embedded toy world")
    tsub = p.add_subparsers(dest="toy_command", metavar="ACTION")

    t = tsub.add_parser("train", help="train the toy model (resumable) and export it")
    t.add_argument("--out", required=True, help="work folder (checkpoints, log, autoencoder)")
    t.add_argument("--export", help="write the trained pipeline here (diffusers folder)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--steps", type=int, default=None, help="transformer steps (default 3000)")
    t.add_argument("--batch-size", type=int, default=48)
    t.add_argument("--vae-steps", type=int, default=450)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--stop-after", type=int, default=None, help="stop after N steps this call")
    t.set_defaults(func=run_train)

    m = tsub.add_parser("measure", help="measure localisation, leakage and the oracle")
    m.add_argument(
        "--what",
        choices=("generation", "oracle", "blocks", "all"),
        default="all",
        help="blocks (not in all): each block type's own masks per step, in generation",
    )
    m.add_argument("--path", help="a toy pipeline folder (default: the shipped weights)")
    m.add_argument("--checkpoint", help="measure the last checkpoint of a training folder instead")
    m.add_argument("--n-lookalike", type=int, default=96)
    m.add_argument("--n-mixed", type=int, default=48)
    m.add_argument(
        "--n-single", type=int, default=48, help="single-entity images (wrong-pattern floor)"
    )
    m.add_argument("--steps", type=int, default=20)
    m.add_argument("--no-masks", action="store_true", help="skip DeLeaker's mask measurement")
    m.add_argument("--oracle-n", type=int, default=240, help="renders per injected strength")
    m.add_argument("--out", help="also write the figures to this JSON file")
    m.add_argument("--force", action="store_true", help="replace an existing --out file")
    m.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    m.set_defaults(func=run_measure)

    lk = tsub.add_parser("leakage", help="the oracle's leakage rate in finished runs or sweeps")
    lk.add_argument("runs", nargs="+", help="run directories or sweep folders")
    lk.add_argument("--role", choices=("method", "vanilla"), default="method")
    lk.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    lk.set_defaults(func=run_leakage)

    r = tsub.add_parser("render", help="draw a ground-truth toy scene")
    r.add_argument("entities", nargs="+", help="toy nouns (slim-eval toy render tiger leopard)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", required=True, help="PNG path")
    r.add_argument("--scale", type=int, default=1, help="enlarge by this integer factor")
    r.add_argument("--force", action="store_true", help="replace an existing --out file")
    r.set_defaults(func=run_render)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def run_train(args) -> int:
    from ..errors import require

    require("torch", "flux", feature="Training the toy model")
    require("diffusers", "flux", feature="Training the toy model")
    from ..toy.lab.train import TrainConfig, export, train

    steps = {} if args.steps is None else {"steps": args.steps}
    config = TrainConfig(
        seed=args.seed,
        batch_size=args.batch_size,
        vae_steps=args.vae_steps,
        threads=args.threads,
        **steps,
    )
    print(f"training the toy model in {args.out} (seed {config.seed}, {config.steps} steps)")
    pipe = train(config, args.out, log=lambda m: print(m, flush=True), stop_after=args.stop_after)
    if args.export:
        export(pipe, args.export)
        print(f"exported to {args.export}")
    return 0


def run_measure(args) -> int:
    import json

    from ..errors import UsageError

    if args.path and args.checkpoint:
        raise UsageError("Give --path or --checkpoint, not both.")
    if args.out:  # before minutes of measuring: an existing file is kept
        from ..rundir.outputs import guard_output

        guard_output(args.out, force=args.force)
    figures: dict = {}
    if args.what in ("oracle", "all"):
        from ..toy.lab.measure import measure_oracle

        figures["oracle"] = measure_oracle(n=args.oracle_n)
        figures["oracle_blurred"] = measure_oracle(n=args.oracle_n, blur=0.7)
        figures["oracle_blended"] = measure_oracle(n=args.oracle_n, blend=True)
    if args.what in ("generation", "blocks", "all"):
        import torch

        from ..toy.lab.measure import measure_generation

        torch.set_num_threads(2)
        if args.checkpoint:
            from ..toy.lab.train import pipeline_from_checkpoint

            pipe, step = pipeline_from_checkpoint(args.checkpoint)
            figures["model"] = {"checkpoint": str(args.checkpoint), "step": step}
        else:
            from ..backbones import load_backbone

            bb = load_backbone("toy", path=args.path, device="cpu")
            pipe = bb.pipe
            figures["model"] = {"path": bb.model_id, "weights_sha256": bb.weights_sha256}
        pipe.set_progress_bar_config(disable=True)
        if args.what == "blocks":
            from ..toy.lab.measure import measure_block_masks

            figures["blocks"] = measure_block_masks(
                pipe, n_lookalike=args.n_lookalike, n_mixed=args.n_mixed, steps=args.steps
            )
    if args.what in ("generation", "all"):
        figures["generation"] = measure_generation(
            pipe,
            n_lookalike=args.n_lookalike,
            n_mixed=args.n_mixed,
            n_single=args.n_single,
            steps=args.steps,
            masks=not args.no_masks,
        )
    if args.out:
        from ..rundir.outputs import json_text, write_output

        write_output(args.out, json_text(figures), force=args.force)
    if args.json:
        print_json_last(figures)
    else:
        print(json.dumps(figures, indent=1))
    return 0


def run_leakage(args) -> int:
    import json

    from ..toy.lab.measure import run_leakage as leakage

    figures = {}
    for given in args.runs:
        root = Path(given)
        runs = sorted(p.parent for p in root.glob("runs/*/manifest.json")) or [root]
        for run in runs:
            figures[str(run)] = leakage(run, args.role)
            for kind, f in figures[str(run)].items():
                lo, hi = f["leak"]["ci95"]
                print(
                    f"{run}: {kind} leak {f['leak']['k']}/{f['leak']['n']} = "
                    f"{f['leak']['rate']} [{lo}, {hi}], found {f['found']['k']}/{f['entities']}"
                )
    if args.json:
        print(json.dumps(figures, sort_keys=True))
    return 0


def run_render(args) -> int:
    import numpy as np
    from PIL import Image

    from ..errors import UsageError
    from ..rundir.outputs import guard_output, write_output
    from ..toy.world import place, render

    if args.scale < 1:
        raise UsageError(f"--scale {args.scale} must be 1 or more.", hint="Pass --scale 4.")
    guard_output(args.out, force=args.force)
    rng = np.random.default_rng(args.seed)
    scene = render(place(tuple(args.entities), rng))
    image = Image.fromarray(scene.image)
    if args.scale > 1:
        image = image.resize((image.width * args.scale, image.height * args.scale), Image.NEAREST)
    buf = __import__("io").BytesIO()
    image.save(buf, format="PNG")
    write_output(args.out, buf.getvalue(), force=args.force)
    print(f"{scene.caption} -> {args.out}")
    return 0
