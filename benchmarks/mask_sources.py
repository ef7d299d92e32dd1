"""The extra cost per image of DeLeaker's given-mask sources, measured side by side in one process.

* ``--what toy``: on the toy backbone (CPU), the seconds per image of the vanilla image, DeLeaker
  with its own attention masks, and DeLeaker with the toy world's given-mask sources (``oracle``
  and the segmenter-style ``oracle-coarse`` and ``oracle-boxes``), each of which generates the
  vanilla image of the same seed and segments it before the edited pass. Also the source alone
  (vanilla image plus segmentation).
* ``--what clipseg``: the ``segmenter`` source's own work at the released model's size: a
  CLIPSeg built in code with random weights at the sizes of ``CIDAS/clipseg-rd64-refined``
  (CLIP ViT-B/16 vision tower, 512-wide text tower, decoder width 64 on layers 3, 6 and 9, the
  refined transposed convolution; 352x352 input), segmenting 1024x1024 images with two entities
  each (preprocessing, the forward pass, resizing the maps back and thresholding). Weights do
  not change the time; no download is needed.

Variants are timed in rounds (each once per round) and ratios are medians of per-round ratios,
so load that drifts during the run hits every variant alike.

Usage: python benchmarks/mask_sources.py [--what toy,clipseg] [--samples 8] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

TOY_SOURCES = ("oracle-coarse", "oracle-boxes", "oracle")
OWN = "deleaker, own attention masks"


def _rounds(variants: dict, repeats: int, cpu: dict | None = None) -> dict[str, list[float]]:
    """Time every variant once per round, round after round (so load drifts hit all alike).

    Wall seconds are returned; this process's CPU seconds go to ``cpu`` when given (on a
    machine shared with other work they say what the work costs, the wall clock what it took).
    """
    for fn in variants.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            times[name].append(time.perf_counter() - start)
            if cpu is not None:
                cpu.setdefault(name, []).append(time.process_time() - start_cpu)
    return times


def _ratio(times: dict, num: str, den: str) -> float:
    return statistics.median(a / b for a, b in zip(times[num], times[den]))


def toy(samples: int, repeats: int) -> dict:
    """Seconds per image and ratios to vanilla of each mask source on the toy backbone."""
    from slim_leakage.backbones import load_backbone
    from slim_leakage.methods import get_method
    from slim_leakage.methods.deleaker.given import resolve_source
    from slim_leakage.slim import load_samples

    backbone = load_backbone("toy", device="cpu")
    batch = load_samples("toy-pairs", limit=samples)
    prompts, seeds = [s.prompt for s in batch], [s.seed for s in batch]
    variants = {
        "vanilla": lambda: backbone.generate(prompts, seeds),
        OWN: lambda: get_method("deleaker").generate(backbone, batch),
    }
    for name in TOY_SOURCES:
        method = get_method("deleaker", masks=name)
        source = resolve_source(name)
        variants[f"deleaker, masks={name}"] = lambda m=method: m.generate(backbone, batch)
        variants[f"source {name} alone"] = lambda s=source: s(backbone, batch)
    cpu: dict[str, list[float]] = {}
    times = _rounds(variants, repeats, cpu)
    own = statistics.median(times[OWN])
    rows = {}
    for name, values in times.items():
        rows[name] = {
            "seconds_per_image": round(statistics.median(values) / len(batch), 4),
            "cpu_seconds_per_image": round(statistics.median(cpu[name]) / len(batch), 4),
            "ratio_to_vanilla": round(_ratio(times, name, "vanilla"), 3),
            "extra_over_own_masks_s": round((statistics.median(values) - own) / len(batch), 4),
        }
    return {"samples": len(batch), "repeats": repeats, "variants": rows}


def _clipseg_source():
    """A ``segmenter`` source holding a CLIPSeg at the released rd64-refined sizes (random)."""
    import torch
    from transformers import (
        CLIPSegConfig,
        CLIPSegForImageSegmentation,
        CLIPSegProcessor,
        CLIPTokenizer,
        ViTImageProcessor,
    )

    from slim_leakage.methods.deleaker.segmenter import SegmenterOptions, SegmenterSource

    words = ("cow", "horse", "cat", "dog")
    vocab: dict[str, int] = {}
    for c in sorted(set("".join(words))):
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    merges = []
    for word in words:
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            merges.append((parts[0], parts[1]))
            vocab.setdefault(parts[0] + parts[1], len(vocab))
            parts = [parts[0] + parts[1], *parts[2:]]
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    tokenizer = CLIPTokenizer(vocab=vocab, merges=list(dict.fromkeys(merges)), model_max_length=77)
    processor = CLIPSegProcessor(
        image_processor=ViTImageProcessor(
            size={"height": 352, "width": 352},
            image_mean=[0.485, 0.456, 0.406],
            image_std=[0.229, 0.224, 0.225],
        ),
        tokenizer=tokenizer,
    )
    config = CLIPSegConfig(
        text_config={"vocab_size": 49408, "eos_token_id": vocab["<|endoftext|>"]},
        vision_config={"patch_size": 16, "image_size": 224},
        projection_dim=512,
        extract_layers=(3, 6, 9),
        reduce_dim=64,
        use_complex_transposed_convolution=True,
    )
    torch.manual_seed(0)
    model = CLIPSegForImageSegmentation(config).eval()
    source = SegmenterSource(SegmenterOptions(model="clipseg-rd64-refined-sized"))
    source._loaded[(source.options.model, None, "cpu")] = (processor, model)
    params = sum(p.numel() for p in model.parameters())
    return source, params


def clipseg(samples: int, repeats: int) -> dict:
    """Seconds per 1024x1024 image with two entities of the segmenter at the released size."""
    import numpy as np
    from PIL import Image

    source, params = _clipseg_source()
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray((rng.random((1024, 1024, 3)) * 255).astype(np.uint8))
        for _ in range(samples)
    ]
    entities = [["cow", "horse"]] * samples
    cpu: dict[str, list[float]] = {}
    times = _rounds({"segment": lambda: source.masks(images, entities)}, repeats, cpu)
    return {
        "images": samples,
        "entities_per_image": 2,
        "parameters": params,
        "seconds_per_image": round(statistics.median(times["segment"]) / samples, 4),
        "cpu_seconds_per_image": round(statistics.median(cpu["segment"]) / samples, 4),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--what", default="toy,clipseg", help="toy, clipseg or both")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    import torch

    out: dict = {"torch_threads": torch.get_num_threads()}
    for what in args.what.split(","):
        out[what] = {"toy": toy, "clipseg": clipseg}[what](args.samples, args.repeats)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"torch threads: {out['torch_threads']}")
    if "toy" in out:
        print(f"toy backbone, {out['toy']['samples']} toy-pairs samples, {args.repeats} rounds")
        print(
            f"{'variant':36} {'s/image':>8} {'cpu s/img':>9} {'x vanilla':>10} {'extra s/img':>12}"
        )
        for name, row in out["toy"]["variants"].items():
            print(
                f"{name:36} {row['seconds_per_image']:8.3f} {row['cpu_seconds_per_image']:9.3f} "
                f"{row['ratio_to_vanilla']:10.2f} {row['extra_over_own_masks_s']:12.3f}"
            )
    if "clipseg" in out:
        c = out["clipseg"]
        print(
            f"CLIPSeg at rd64-refined size ({c['parameters'] / 1e6:.0f}M parameters): "
            f"{c['seconds_per_image']:.3f} s ({c['cpu_seconds_per_image']:.3f} s of CPU) per "
            "1024x1024 image with 2 entities"
        )


if __name__ == "__main__":
    main()
