"""The ``segmenter`` mask source on a tiny random CLIPSeg built in code, saved and loaded like a
real checkpoint, on the tiny FLUX and SANA backbones."""

from __future__ import annotations

import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("diffusers")

from slim_leakage.errors import (  # noqa: E402
    ConfigError,
    MissingDependencyError,
    ModelNotFoundError,
)
from slim_leakage.methods import get_method  # noqa: E402
from slim_leakage.methods.deleaker.given import MASK_SOURCES, resolve_source, to_grid  # noqa: E402
from slim_leakage.methods.deleaker.segmenter import (  # noqa: E402
    SEGMENTER,
    SegmenterOptions,
    SegmenterSource,
    masks_from_probabilities,
)
from slim_leakage.records import Sample  # noqa: E402

WORDS = ("a", "and", "cow", "horse", "cat", "dog", "fox", "in", "field")


def build_tiny_clipseg(folder):
    """A CLIPSeg at toy sizes (32-pixel input, 8-pixel patches) with a CLIP BPE tokenizer built
    from an in-memory vocabulary, saved with its processor to ``folder``."""
    from transformers import (
        CLIPSegConfig,
        CLIPSegForImageSegmentation,
        CLIPSegProcessor,
        CLIPTokenizer,
        ViTImageProcessor,
    )

    vocab: dict[str, int] = {}
    for c in sorted(set("".join(WORDS))):
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    merges = []
    for word in WORDS:
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            merges.append((parts[0], parts[1]))
            vocab.setdefault(parts[0] + parts[1], len(vocab))
            parts = [parts[0] + parts[1], *parts[2:]]
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=list(dict.fromkeys(merges)), model_max_length=77)
    processor = CLIPSegProcessor(
        image_processor=ViTImageProcessor(
            size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3
        ),
        tokenizer=tokenizer,
    )
    end = vocab["<|endoftext|>"]
    config = CLIPSegConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": end,
            "pad_token_id": end,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 3,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
        extract_layers=(0, 1, 2),
        reduce_dim=8,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=16,
    )
    torch.manual_seed(0)
    CLIPSegForImageSegmentation(config).eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_clipseg(tmp_path_factory):
    return build_tiny_clipseg(tmp_path_factory.mktemp("tiny-clipseg"))


def _images(n, size=(48, 32), seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    h, w = size
    return [Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)) for _ in range(n)]


# -- from probabilities to masks -------------------------------------------------------------------
def test_threshold_normalisation_and_assignment():
    cow = np.array([[0.9, 0.6, 0.2], [0.55, 0.1, 0.0]])
    horse = np.array([[0.8, 0.7, 0.3], [0.5, 0.05, 0.0]])
    probs = {"cow": cow, "horse": horse}

    def masks(**options):
        return masks_from_probabilities(probs, **options)

    independent = masks(threshold=0.5, normalise="none", assign="independent")
    assert independent["cow"].tolist() == [[True, True, False], [True, False, False]]
    assert independent["horse"].tolist() == [[True, True, False], [True, False, False]]
    argmax = masks(threshold=0.5, normalise="none", assign="argmax")
    assert argmax["cow"].tolist() == [[True, False, False], [True, False, False]]
    assert argmax["horse"].tolist() == [[False, True, False], [False, False, False]]
    assert not (argmax["cow"] & argmax["horse"]).any()  # never overlapping
    # minmax: each map rescaled to [0, 1] before the threshold
    low = {"cow": cow * 0.3, "horse": horse * 0.3}  # an under-confident model: nothing passes 0.5
    none = masks_from_probabilities(low, threshold=0.5, normalise="none", assign="independent")
    assert not any(m.any() for m in none.values())
    scaled = masks_from_probabilities(low, threshold=0.5, normalise="minmax", assign="independent")
    assert scaled["cow"].tolist() == [[True, True, False], [True, False, False]]
    flat = masks_from_probabilities(
        {"cow": np.full((2, 2), 0.7)}, threshold=0.5, normalise="minmax", assign="argmax"
    )
    assert not flat["cow"].any()  # a flat map says nothing: empty, not all on
    assert masks_from_probabilities({}, threshold=0.5, normalise="none", assign="argmax") == {}


def test_options_parse_and_are_checked(tiny_clipseg):
    assert MASK_SOURCES.get("segmenter") is SEGMENTER and resolve_source("segmenter") is SEGMENTER
    assert SEGMENTER.options == SegmenterOptions()
    source = resolve_source(f"segmenter:model={tiny_clipseg},threshold=0.3,assign=independent")
    assert isinstance(source, SegmenterSource)
    assert source.options.model == str(tiny_clipseg)
    assert (source.options.threshold, source.options.assign) == (0.3, "independent")
    assert resolve_source("segmenter:revision=abc123,batch-size=2").options.batch_size == 2
    with pytest.raises(ConfigError, match="no option 'treshold'.*Did you mean 'threshold'"):
        resolve_source("segmenter:treshold=0.3")
    with pytest.raises(ConfigError, match="threshold"):
        resolve_source("segmenter:threshold=1.0")
    with pytest.raises(ConfigError, match="normalise='l2' is not one of none, minmax"):
        resolve_source("segmenter:normalise=l2")
    with pytest.raises(ConfigError, match="'oracle' takes no options"):
        resolve_source("oracle:cells=4")
    with pytest.raises(ConfigError, match="batch_size"):
        get_method("deleaker", masks="segmenter:batch_size=0")


# -- the model -------------------------------------------------------------------------------------
def test_batched_probabilities_equal_the_direct_call_one_row_at_a_time(tiny_clipseg):
    import torch.nn.functional as F
    from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor

    images = _images(3)
    entities = [["cow", "horse"], ["a cat", "dog", "fox"], ["horse"]]
    fast = SegmenterSource(SegmenterOptions(model=str(tiny_clipseg), batch_size=16))
    maps = fast.probabilities(images, entities)
    # The reference: the transformers documentation's call, one (image, text) row at a time.
    processor = CLIPSegProcessor.from_pretrained(tiny_clipseg)
    model = CLIPSegForImageSegmentation.from_pretrained(tiny_clipseg).eval()
    for image, names, got in zip(images, entities, maps):
        assert list(got) == names
        for name in names:
            inputs = processor(text=[name], images=[image], return_tensors="pt")
            with torch.inference_mode():
                logits = model(**inputs).logits.reshape(1, 1, 32, 32)
            expected = torch.sigmoid(
                F.interpolate(logits, size=(48, 32), mode="bilinear", align_corners=False)
            )[0, 0].numpy()
            assert got[name].shape == (48, 32)
            np.testing.assert_allclose(got[name], expected, atol=1e-5)
    one = SegmenterSource(SegmenterOptions(model=str(tiny_clipseg), batch_size=1))
    for a, b in zip(one.probabilities(images, entities), maps):
        for name in a:
            np.testing.assert_allclose(a[name], b[name], atol=1e-5)
    # the model loads once per source and device
    assert fast.load("cpu") is fast.load("cpu")


@pytest.mark.parametrize("family", ["flux", "sana"])
def test_method_segments_the_vanilla_image_of_the_same_seed(tiny_clipseg, family, request):
    backbone = request.getfixturevalue("tiny_backbone" if family == "flux" else "tiny_sana")
    samples = [
        Sample(id="p1", prompt="a cow and a horse in a field", entities=("cow", "horse"), seed=3),
        Sample(id="p2", prompt="a cat and a dog", entities=("cat", "dog"), seed=5),
    ]
    spec = f"segmenter:model={tiny_clipseg},threshold=0.3,assign=independent"
    method = get_method("deleaker", masks=spec)
    method.prepare(backbone, samples)
    outputs = method.generate(backbone, samples)
    vanilla = backbone.generate([s.prompt for s in samples], [s.seed for s in samples])
    expected = method.mask_source.masks(vanilla, [list(s.entities) for s in samples])
    grid = tuple(outputs[0].extra["mask_grid"])
    used = 0
    for out, masks, image in zip(outputs, expected, vanilla):
        assert out.extra["mask_source"] == spec
        for entity, mask in masks.items():
            assert mask.shape == (image.height, image.width)
            tokens = int(to_grid(mask, grid, what=entity).sum())
            assert out.extra["mask_tokens"][entity] == tokens
            used += tokens
    assert used > 0  # some masks are non-empty, so the edits had tokens to act on


# -- failures --------------------------------------------------------------------------------------
def test_a_model_that_is_not_here_fails_before_any_image_with_the_way_to_get_it(
    tiny_backbone, tmp_path
):
    samples = [Sample(id="p1", prompt="a cow and a horse", entities=("cow", "horse"), seed=1)]
    method = get_method("deleaker", masks="segmenter")  # the hub default; the tests are offline
    with pytest.raises(ModelNotFoundError) as info:
        method.prepare(tiny_backbone, samples)
    assert "'CIDAS/clipseg-rd64-refined'" in info.value.message
    assert "\n" not in info.value.message
    assert "hf download CIDAS/clipseg-rd64-refined" in info.value.hint
    assert "masks=segmenter:model=<local folder" in info.value.hint
    pinned = get_method("deleaker", masks="segmenter:revision=0123abc")
    with pytest.raises(ModelNotFoundError) as info:
        pinned.prepare(tiny_backbone, samples)
    assert "--revision 0123abc" in info.value.hint
    missing = get_method("deleaker", masks=f"segmenter:model={tmp_path / 'absent'}")
    with pytest.raises(ModelNotFoundError, match="absent") as info:
        missing.prepare(tiny_backbone, samples)
    assert "hf download" not in info.value.hint and "save_pretrained" in info.value.hint


def test_without_transformers_the_extra_is_named(monkeypatch, tiny_clipseg):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers fails
    source = SegmenterSource(SegmenterOptions(model=str(tiny_clipseg)))
    with pytest.raises(MissingDependencyError, match="masks=segmenter needs the package") as info:
        source.load("cpu")
    assert info.value.hint == "pip install 'slim-leakage[flux]'"
