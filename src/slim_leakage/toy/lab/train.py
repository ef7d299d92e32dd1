"""Train the toy model from a fixed seed: first the autoencoder, then the transformer and T5.

The transformer is trained as FLUX is: rectified flow (``x_t = (1 - t) x0 + t eps``, target
``eps - x0``, ``t = sigmoid(N(0, 1))``) on packed 2x2 latent tokens with FLUX's image ids and
zero text ids. Scenes are rendered on the fly from a seeded generator. Training checkpoints
atomically every ``checkpoint_every`` steps and resumes from the last checkpoint, so a kill
loses at most that many steps; ``export`` writes a diffusers ``save_pretrained`` folder from the
EMA weights.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np

from ..._io import append_jsonl, atomic_write_json
from ...errors import ConfigError
from ..model import ToyModelConfig, build_toy_pipeline, build_vae
from ..world import IMAGE_SIZE, SceneMix, sample_scene

#: T5 length of the toy pipeline (the longest toy caption is 9 tokens).
TEXT_LEN = 16


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How the toy model is trained.

    Attributes:
        seed: Seed of weights, scenes and noise.
        steps: Transformer optimisation steps.
        batch_size: Scenes per step.
        lr: Peak AdamW learning rate (linear warm-up, cosine decay to 10%).
        warmup: Warm-up steps.
        weight_decay: AdamW weight decay.
        ema: EMA decay of the exported weights.
        vae_steps: Autoencoder steps (reconstruction plus a small KL term).
        vae_batch_size: Scenes per autoencoder step.
        vae_lr: Autoencoder learning rate.
        checkpoint_every: Steps between checkpoints.
        threads: Torch CPU threads.
        mix: Scene mixture (see :class:`~slim_leakage.toy.world.SceneMix`).
        model: Model sizes.
    """

    seed: int = 0
    steps: int = 3000
    batch_size: int = 48
    lr: float = 6e-4
    warmup: int = 100
    weight_decay: float = 0.01
    ema: float = 0.998
    vae_steps: int = 450
    vae_batch_size: int = 16
    vae_lr: float = 2e-3
    checkpoint_every: int = 100
    threads: int = 2
    mix: SceneMix = SceneMix()
    model: ToyModelConfig = ToyModelConfig()

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "vae_batch_size", "checkpoint_every", "threads"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"TrainConfig.{name} must be at least 1, got {getattr(self, name)!r}.",
                    hint=f"Pass a positive {name}.",
                )
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"TrainConfig.ema must be in [0, 1), got {self.ema!r}.")


def render_batch(rng: np.random.Generator, n: int, mix: SceneMix):
    """Render ``n`` random scenes: ``(images uint8 (n, H, W, 3), captions)``."""
    renders = [sample_scene(rng, mix) for _ in range(n)]
    return np.stack([r.image for r in renders]), [r.caption for r in renders]


def to_tensor(images: np.ndarray):
    """uint8 ``(n, H, W, 3)`` -> float ``(n, 3, H, W)`` in [-1, 1]."""
    import torch

    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def train_vae(config: TrainConfig, log=print):
    """Train the autoencoder on renders; returns it with ``shift_factor``/``scaling_factor`` set."""
    import torch

    rng = np.random.default_rng(config.seed + 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed + 1)
        vae = build_vae(config.model)
    vae.train()
    opt = torch.optim.AdamW(vae.parameters(), lr=config.vae_lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(config.seed + 1)
    for step in range(config.vae_steps):
        images, _ = render_batch(rng, config.vae_batch_size, config.mix)
        x = to_tensor(images)
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen)
        rec = vae.decode(z).sample
        kl = post.kl().mean() / x[0].numel()
        loss = torch.nn.functional.mse_loss(rec, x) + 1e-4 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == config.vae_steps - 1:
            log(f"vae step {step} loss {loss.item():.5f}")
    vae.eval()
    with torch.no_grad():
        images, _ = render_batch(rng, 512, config.mix)
        z = vae.encode(to_tensor(images)).latent_dist.mode()
        rec = vae.decode(z).sample
        err = (rec - to_tensor(images)).abs().mean().item()
    shift = float(z.mean())
    scale = float(1.0 / z.std())
    vae.register_to_config(shift_factor=shift, scaling_factor=scale)
    log(
        f"vae done: mean abs reconstruction error {err:.4f} (of range 2), shift {shift:.4f}, scale {scale:.4f}"
    )
    return vae


def encode_latents(vae, images: np.ndarray):
    """Normalised VAE latents of uint8 images, as the pipeline expects them."""
    import torch

    with torch.no_grad():
        z = vae.encode(to_tensor(images)).latent_dist.mode()
    return (z - vae.config.shift_factor) * vae.config.scaling_factor


def t5_ids(tokenizer, captions):
    """Token ids exactly as ``FluxPipeline`` makes them (padded to :data:`TEXT_LEN`)."""
    return tokenizer(
        list(captions),
        padding="max_length",
        max_length=TEXT_LEN,
        truncation=True,
        return_tensors="pt",
    ).input_ids


def flow_loss(pipe, latents, ids, generator):
    """The rectified-flow loss of one batch (as FLUX is trained)."""
    import torch
    from diffusers import FluxPipeline

    b, c, h, w = latents.shape
    x0 = FluxPipeline._pack_latents(latents, b, c, h, w)
    noise = torch.randn(x0.shape, generator=generator)
    t = torch.sigmoid(torch.randn(b, generator=generator))
    xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * noise
    text = pipe.text_encoder_2(ids)[0]
    img_ids = FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, "cpu", torch.float32)
    txt_ids = torch.zeros(ids.shape[1], 3)
    pooled = torch.zeros(b, pipe.transformer.config.pooled_projection_dim)
    pred = pipe.transformer(
        hidden_states=xt,
        timestep=t,
        guidance=None,
        pooled_projections=pooled,
        encoder_hidden_states=text,
        txt_ids=txt_ids,
        img_ids=img_ids,
        return_dict=False,
    )[0]
    return torch.nn.functional.mse_loss(pred, noise - x0)


def _lr_at(step: int, config: TrainConfig) -> float:
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    frac = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def _trainable(pipe):
    return [
        p
        for m in (pipe.transformer, pipe.text_encoder_2)
        for p in m.parameters()
        if p.requires_grad
    ]


def _atomic_torch_save(obj, path: Path) -> None:
    import torch

    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(
    config: TrainConfig, out_dir: str | os.PathLike, *, log=print, stop_after: int | None = None
):
    """Train (or resume) the toy model in ``out_dir``; returns the pipeline with EMA weights.

    Args:
        config: Training configuration.
        out_dir: Work folder: ``vae/``, ``checkpoint.pt``, ``train_log.jsonl``, ``config.json``.
        log: Progress printer.
        stop_after: Stop after this many steps in this call (for tests and time-boxed runs);
            the checkpoint is written so a later call continues.
    """
    import torch
    from diffusers import AutoencoderKL

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads)
    # tiny weight and EMA updates drift into subnormal floats, which slow CPU maths many-fold
    torch.set_flush_denormal(True)
    cfg_path = out / "config.json"
    cfg_dict = dataclasses.asdict(config)
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        keep = {k: v for k, v in old.items() if k not in ("steps", "checkpoint_every", "threads")}
        new = {
            k: v for k, v in cfg_dict.items() if k not in ("steps", "checkpoint_every", "threads")
        }
        if json.loads(json.dumps(new)) != keep:
            raise ConfigError(
                f"{out} holds a training run with a different configuration.",
                hint="Use a new --out folder, or the same settings to resume.",
            )
    atomic_write_json(cfg_path, cfg_dict)

    vae_dir = out / "vae"
    if (vae_dir / "config.json").exists():
        vae = AutoencoderKL.from_pretrained(vae_dir).eval()
    else:
        vae = train_vae(config, log=log)
        vae.save_pretrained(vae_dir)
    for p in vae.parameters():
        p.requires_grad_(False)

    pipe = build_toy_pipeline(config.model, seed=config.seed, vae=vae)
    pipe.transformer.train()
    pipe.text_encoder_2.train()
    params = _trainable(pipe)
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    ema = [p.detach().clone() for p in params]
    rng = np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    step = 0
    ckpt = out / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        pipe.transformer.load_state_dict(state["transformer"])
        pipe.text_encoder_2.load_state_dict(state["t5"])
        opt.load_state_dict(state["opt"])
        for e, v in zip(ema, state["ema"]):
            e.copy_(v)
        rng.bit_generator.state = state["rng"]
        gen.set_state(state["gen"])
        step = state["step"]
        log(f"resumed at step {step}")

    def save():
        _atomic_torch_save(
            {
                "step": step,
                "transformer": pipe.transformer.state_dict(),
                "t5": pipe.text_encoder_2.state_dict(),
                "opt": opt.state_dict(),
                "ema": ema,
                "rng": rng.bit_generator.state,
                "gen": gen.get_state(),
            },
            ckpt,
        )

    tok = pipe.tokenizer_2
    t0 = time.perf_counter()
    done_here = 0
    while step < config.steps and (stop_after is None or done_here < stop_after):
        images, captions = render_batch(rng, config.batch_size, config.mix)
        latents = encode_latents(vae, images)
        loss = flow_loss(pipe, latents, t5_ids(tok, captions), gen)
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, config)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(config.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.lerp_(p.detach(), 1 - decay)
        step += 1
        done_here += 1
        if step % 25 == 0 or step == config.steps:
            append_jsonl(
                out / "train_log.jsonl",
                json.dumps(
                    {
                        "step": step,
                        "loss": round(loss.item(), 5),
                        "seconds": round(time.perf_counter() - t0, 1),
                    }
                ),
            )
        if step % 100 == 0:
            log(f"step {step} loss {loss.item():.4f} ({time.perf_counter() - t0:.0f} s)")
        if step % config.checkpoint_every == 0 or step == config.steps:
            save()
    if done_here and step % config.checkpoint_every:
        save()
    with torch.no_grad():
        for e, p in zip(ema, params):
            p.copy_(e)
    pipe.transformer.eval()
    pipe.text_encoder_2.eval()
    return pipe


def pipeline_from_checkpoint(out_dir: str | os.PathLike):
    """The pipeline with the EMA weights of the last checkpoint in a training folder.

    Returns:
        ``(pipe, step)``.
    """
    import torch
    from diffusers import AutoencoderKL

    out = Path(out_dir)
    if not (out / "checkpoint.pt").exists():
        raise ConfigError(
            f"{out} has no checkpoint.pt.",
            hint="Point at a folder written by `slim-eval toy train`.",
        )
    raw = json.loads((out / "config.json").read_text())
    model = ToyModelConfig(
        **{**raw["model"], "axes_dims_rope": tuple(raw["model"]["axes_dims_rope"])}
    )
    vae = AutoencoderKL.from_pretrained(out / "vae").eval()
    pipe = build_toy_pipeline(model, seed=raw["seed"], vae=vae)
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    pipe.transformer.load_state_dict(state["transformer"])
    pipe.text_encoder_2.load_state_dict(state["t5"])
    with torch.no_grad():
        for p, e in zip(_trainable(pipe), state["ema"]):
            p.copy_(e)
    pipe.transformer.eval()
    pipe.text_encoder_2.eval()
    return pipe, int(state["step"])


def export(pipe, dest: str | os.PathLike) -> None:
    """Write ``pipe`` as a diffusers ``save_pretrained`` folder (loadable by ``FluxPipeline``)."""
    pipe.save_pretrained(dest, safe_serialization=True)


__all__ = ["TEXT_LEN", "TrainConfig", "export", "flow_loss", "train", "train_vae", "IMAGE_SIZE"]
