"""The toy pipeline's construction, its departures from FLUX, and the training loop."""

from __future__ import annotations

import dataclasses
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from slim_leakage.errors import ConfigError  # noqa: E402
from slim_leakage.toy.lab.train import (  # noqa: E402
    TrainConfig,
    export,
    pipeline_from_checkpoint,
    t5_ids,
    train,
)
from slim_leakage.toy.model import ToyModelConfig, build_toy_pipeline  # noqa: E402
from slim_leakage.toy.world import SceneMix  # noqa: E402

TINY = ToyModelConfig(
    num_layers=1,
    num_single_layers=1,
    num_attention_heads=2,
    attention_head_dim=16,
    axes_dims_rope=(4, 6, 6),
    text_dim=16,
    clip_dim=16,
    vae_channels=(4, 4),
)


def _tiny_train(**kw):
    base = dict(
        steps=3,
        batch_size=4,
        vae_steps=2,
        vae_batch_size=4,
        checkpoint_every=2,
        threads=1,
        warmup=1,
        model=TINY,
    )
    return TrainConfig(**{**base, **kw})


def test_pooled_text_is_switched_off_and_text_is_per_token():
    pipe = build_toy_pipeline(TINY, seed=0)
    tf = pipe.transformer
    pooled_a = torch.randn(2, TINY.clip_dim)
    out = tf.time_text_embed.text_embedder(pooled_a)
    assert torch.count_nonzero(out) == 0
    assert not any(p.requires_grad for p in tf.time_text_embed.text_embedder.parameters())
    # a zero-layer T5: a token's embedding does not depend on its neighbours
    tok = pipe.tokenizer_2
    ids = t5_ids(tok, ["A tiger and a leopard", "A tiger and a zebra"])
    emb = pipe.text_encoder_2(ids)[0]
    assert torch.allclose(emb[0, :3], emb[1, :3])
    assert not torch.allclose(emb[0, 4], emb[1, 4])


@pytest.mark.parametrize(
    ("vae_channels", "tokens"),
    [((4, 4), 256), ((4, 4, 4), 64)],
    ids=["two-block-vae-16x16", "three-block-vae-8x8"],
)
def test_pipeline_geometry_64px_token_grid(vae_channels, tokens):
    # the shipped layout (two autoencoder blocks) gives a 16x16 grid; each extra block halves it
    pipe = build_toy_pipeline(dataclasses.replace(TINY, vae_channels=vae_channels), seed=0)
    seen = {}

    def hook(module, args, kwargs):
        seen["tokens"] = kwargs["hidden_states"].shape[1]
        seen["text"] = kwargs["encoder_hidden_states"].shape[1]

    handle = pipe.transformer.register_forward_pre_hook(hook, with_kwargs=True)
    image = pipe(
        "A tiger", height=64, width=64, num_inference_steps=2, max_sequence_length=16
    ).images[0]
    handle.remove()
    assert image.size == (64, 64)
    assert seen == {"tokens": tokens, "text": 16}


def test_train_resume_export_and_load(tmp_path):
    from diffusers import FluxPipeline

    cfg = _tiny_train()
    out = tmp_path / "run"
    train(cfg, out, log=lambda m: None, stop_after=2)
    assert (out / "checkpoint.pt").exists() and (out / "vae" / "config.json").exists()
    _, step = pipeline_from_checkpoint(out)
    assert step == 2
    pipe = train(cfg, out, log=lambda m: None)  # resumes and finishes
    _, step = pipeline_from_checkpoint(out)
    assert step == 3
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [3] and log[0]["loss"] > 0
    export(pipe, tmp_path / "export")
    loaded = FluxPipeline.from_pretrained(tmp_path / "export")
    vae = loaded.vae.config
    assert vae.scaling_factor != 1.0 and vae.shift_factor != 0.0  # latent statistics were set
    for a, b in zip(pipe.transformer.parameters(), loaded.transformer.parameters()):
        assert torch.equal(a, b)


def test_resume_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "run"
    train(_tiny_train(), out, log=lambda m: None, stop_after=1)
    with pytest.raises(ConfigError, match="different configuration"):
        train(_tiny_train(lr=1e-3), out, log=lambda m: None, stop_after=1)


def test_train_is_deterministic(tmp_path):
    a = train(_tiny_train(steps=1, vae_steps=1), tmp_path / "a", log=lambda m: None)
    b = train(_tiny_train(steps=1, vae_steps=1), tmp_path / "b", log=lambda m: None)
    for pa, pb in zip(a.transformer.parameters(), b.transformer.parameters()):
        assert torch.equal(pa, pb)


def test_config_validation():
    with pytest.raises(ConfigError, match="steps"):
        TrainConfig(steps=0)
    with pytest.raises(ConfigError, match="ema"):
        TrainConfig(ema=1.0)
    assert dataclasses.asdict(TrainConfig())["mix"] == dataclasses.asdict(SceneMix())
