"""The models of each diffusers preset and their sizes, for the memory fit check
(:mod:`slim_leakage.backbones.memory`).

Parameter counts are the real models', counted on the meta device from their published
configurations (``tests/backbones/test_memory.py`` recounts them); nothing here loads weights.
"""

from __future__ import annotations

import dataclasses
from typing import Any

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


# -- the table ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Component:
    """One model of a pipeline, for the memory estimate.

    Attributes:
        name: The pipeline attribute (``transformer``, ``text_encoder_2`` ...).
        params: All parameters.
        linear_params: Parameters in ``nn.Linear`` weights (what a quantisation scheme stores
            in fewer bytes).
        largest_tensor: Parameters of its largest single tensor (what sequential offload holds
            on the device at once, at most).
        text: Whether it is a text encoder (it runs at the text dtype).
        quantize: Whether ``quantize=`` applies to it.
        fp32_in_fp16: Parameters transformers keeps in float32 when the model is loaded in
            float16 (T5's ``wo`` projections, ``T5EncoderModel._keep_in_fp32_modules``).
        config: Where the configuration counted comes from.
        group_params: Parameters on the device at once under diffusers' block-level group
            offloading (``enable_group_offload(offload_type="block_level")``): the largest
            block of a top-level ``ModuleList`` plus every top-level module outside one (kept
            on the device for the whole forward). ``0``: the whole model (a model with no
            top-level ``ModuleList``, as T5, CLIP and the VAEs, is one group).
        castable_params: Parameters that diffusers' layerwise casting stores in float8
            (``ModelMixin.enable_layerwise_casting``: the weights of Linear, Conv and Embedding
            layers whose names match none of its skip patterns, hooks/layerwise_casting.py
            ``DEFAULT_SKIP_MODULES_PATTERN`` plus the model's
            ``_skip_layerwise_casting_patterns``); ``0``: not cast.
    """

    name: str
    params: int
    linear_params: int
    largest_tensor: int
    text: bool = False
    quantize: bool = False
    fp32_in_fp16: int = 0
    config: str = ""
    group_params: int = 0
    castable_params: int = 0

    def weight_bytes(self, dtype: str, text_dtype: str, scheme: Any, *, cast: str = "none") -> int:
        """Bytes of this component's weights at these dtypes under ``scheme`` (a
        :class:`~slim_leakage.backbones.memory.Scheme`, or ``None``: unquantised), with
        ``cast="float8"`` storing the castable weights in one byte each (layerwise casting)."""
        dt = text_dtype if self.text else dtype
        unit = DTYPE_BYTES[dt]
        if cast == "float8" and self.castable_params and scheme is None:
            return int(self.castable_params + (self.params - self.castable_params) * unit)
        kept = self.fp32_in_fp16 if dt == "float16" else 0
        if scheme is not None and self.quantize:
            # kept-in-fp32 layers are left unquantised by the quantisers (modules_to_not_convert)
            linear = self.linear_params - kept
            rest = self.params - self.linear_params
            return int(linear * scheme.weight_bytes + rest * unit + kept * 4)
        return int((self.params - kept) * unit + kept * 4)


_FLUX_TEXT = (
    Component(
        "text_encoder_2",
        4_762_310_656,
        4_630_511_616,
        131_596_288,  # the shared 32128 x 4096 token embedding
        text=True,
        quantize=True,
        fp32_in_fp16=1_006_632_960,
        config="T5 v1.1 XXL encoder: text_encoder_2/config.json of FLUX.1-dev/schnell",
    ),
    Component(
        "text_encoder",
        123_060_480,
        84_934_656,
        37_945_344,  # the 49408 x 768 token embedding
        text=True,
        config="CLIP ViT-L/14 text model: text_encoder/config.json of FLUX.1-dev/schnell",
    ),
    Component(
        "vae",
        83_819_683,
        2_097_152,
        2_359_296,  # a 512-channel 3x3 convolution
        config="AutoencoderKL, 16 latent channels: vae/config.json of FLUX.1-dev/schnell",
    ),
)
#: Per preset table: the pipeline's models and their sizes. Counted with
#: ``sum(p.numel() for p in model.parameters())`` on models built on the meta device from the
#: configurations named in ``config`` (recounted by the tests).
COMPONENTS: dict[str, tuple[Component, ...]] = {
    "flux-dev": (
        Component(
            "transformer",
            11_901_408_320,
            11_898_322_944,
            56_623_104,  # a double block's 3072 -> 6 x 3072 modulation (norm1_context.linear)
            quantize=True,
            config="FluxTransformer2DModel defaults with guidance_embeds=True "
            "(transformer/config.json of FLUX.1-dev)",
            # one double block (339,831,296) + the embedders, norm_out and proj_out (64,124,992)
            group_params=403_956_288,
            castable_params=8_653_744_128,
        ),
        *_FLUX_TEXT,
    ),
    "flux-schnell": (
        Component(
            "transformer",
            11_891_178_560,
            11_888_099_328,
            56_623_104,
            quantize=True,
            config="FluxTransformer2DModel defaults (transformer/config.json of FLUX.1-schnell)",
            # no guidance embedder: 10,229,760 parameters fewer outside the blocks, all castable
            group_params=393_726_528,
            castable_params=8_643_514_368,
        ),
        *_FLUX_TEXT,
    ),
    "sana": (
        Component(
            "transformer",
            1_604_462_752,
            848_762_880,
            30_105_600,  # the timestep embedding's 2240 -> 6 x 2240 projection
            quantize=True,
            config="SanaTransformer2DModel, 20 layers, 70 x 32 heads, cross 20 x 112 "
            "(transformer/config.json of Sana_1600M_1024px_diffusers)",
        ),
        Component(
            "text_encoder",
            2_614_341_888,
            2_024_275_968,
            589_824_000,  # the 256000 x 2304 token embedding
            text=True,
            quantize=True,
            config="Gemma-2 2B (Gemma2Model: 26 layers, hidden 2304, 256000 tokens)",
        ),
        Component(
            "vae",
            312_250_275,
            70_778_880,
            9_437_184,  # a 1024-channel 3x3 convolution
            config="AutoencoderDC f32c32 (dc-ae-f32c32-sana-1.0 vae/config.json)",
        ),
    ),
    "sd35-large": (
        Component(
            "transformer",
            8_056_627_520,
            8_053_694_464,
            35_487_744,  # a block's 2432 -> 6 x 2432 AdaLN-zero modulation (norm1.linear)
            quantize=True,
            config="SD3Transformer2DModel, 38 layers, 38 x 64 heads, caption 2432, "
            "qk_norm rms_norm (transformer/config.json of stable-diffusion-3.5-large)",
        ),
        dataclasses.replace(
            _FLUX_TEXT[0],
            name="text_encoder_3",
            config="T5 v1.1 XXL encoder: text_encoder_3/config.json of stable-diffusion-3.5-large",
        ),
        Component(
            "text_encoder_2",
            694_659_840,
            630_784_000,
            63_242_240,  # the 49408 x 1280 token embedding
            text=True,
            config="OpenCLIP bigG text model with projection (CLIPTextModelWithProjection: "
            "32 layers, hidden 1280): text_encoder_2/config.json of stable-diffusion-3.5-large",
        ),
        Component(
            "text_encoder",
            123_650_304,
            85_524_480,
            37_945_344,  # the 49408 x 768 token embedding
            text=True,
            config="CLIP ViT-L/14 text model with projection: text_encoder/config.json of "
            "stable-diffusion-3.5-large",
        ),
        dataclasses.replace(
            _FLUX_TEXT[2],
            config="AutoencoderKL, 16 latent channels, no quant convs: vae/config.json of "
            "stable-diffusion-3.5-large",
        ),
    ),
    "flux2-dev": (
        Component(
            "transformer",
            32_223_281_152,
            32_223_264_768,
            339_738_624,  # a single block's fused 6144 -> q, k, v + 2 x 18432 MLP projection
            quantize=True,
            config="Flux2Transformer2DModel defaults, documented there as FLUX.2's: 8 double + "
            "48 single blocks, 48 x 128 heads, text width 15360",
        ),
        Component(
            "text_encoder",
            24_011_361_280,
            23_339_204_608,
            671_088_640,  # the 131072 x 5120 token embedding (and the untied output head)
            text=True,
            quantize=True,
            config="Mistral3ForConditionalGeneration (Mistral Small 3.1: text 40 layers, hidden "
            "5120, 32/8 heads, 131072 tokens, untied head; Pixtral vision 24 x 1024)",
        ),
        Component(
            "vae",
            84_046_115,
            2_097_152,
            2_359_296,  # a 512-channel 3x3 convolution
            config="AutoencoderKLFlux2 defaults (32 latent channels, latent batch norm)",
        ),
    ),
}

# Qwen-Image (Qwen/Qwen-Image): counted as above from its published configurations
# (tests/backbones/test_qwenimage.py recounts them).
COMPONENTS["qwen-image"] = (
    Component(
        "transformer",
        20_430_401_088,
        20_424_818_688,
        56_623_104,  # a block's 3072 -> 6 x 3072 modulation
        quantize=True,
        config="QwenImageTransformer2DModel defaults: 60 layers, 24 x 128 heads, text dim 3584 "
        "(transformer/config.json of Qwen-Image)",
    ),
    Component(
        "text_encoder",
        8_292_166_656,
        7_744_815_104,
        544_997_376,  # the 152064 x 3584 token embedding (and the untied LM head)
        text=True,
        quantize=True,
        config="Qwen2.5-VL-7B-Instruct (28 layers, hidden 3584, 152064 tokens, 32-block "
        "vision tower): text_encoder/config.json of Qwen-Image",
    ),
    Component(
        "vae",
        126_892_531,
        0,
        3_981_312,  # a 384-channel 3x3x3 causal convolution
        config="AutoencoderKLQwenImage defaults (vae/config.json of Qwen-Image)",
    ),
)

# Z-Image-Turbo (Tongyi-MAI/Z-Image-Turbo), counted the same way
# (tests/backbones/test_zimage.py recounts them).
COMPONENTS["z-image-turbo"] = (
    Component(
        "transformer",
        6_154_908_736,
        6_153_863_168,
        39_321_600,  # a block's 3840 -> 10240 feed-forward projection
        quantize=True,
        config="ZImageTransformer2DModel defaults: 30 + 2 x 2 refiner layers, dim 3840, 30 "
        "heads, caption dim 2560 (transformer/config.json of Z-Image-Turbo)",
    ),
    Component(
        "text_encoder",
        4_022_468_096,
        3_633_315_840,
        388_956_160,  # the 151936 x 2560 token embedding
        text=True,
        quantize=True,
        config="Qwen3-4B as Qwen3Model (36 layers, hidden 2560, 151936 tokens): "
        "text_encoder/config.json of Z-Image-Turbo",
    ),
    Component(
        "vae",
        83_819_683,
        2_097_152,
        2_359_296,
        config="AutoencoderKL, 16 latent channels, FLUX's (vae/config.json of Z-Image-Turbo)",
    ),
)


# -- activation allowances -----------------------------------------------------------------------
#: Hidden width of the joint-attention families (text and 16-pixel image tokens in one
#: sequence): FLUX.1 and Qwen-Image 24 x 128, SD3.5 Large 38 x 64, FLUX.2 [dev] 48 x 128, Z-Image.
_JOINT_HIDDEN = {"flux": 3072, "qwenimage": 3072, "sd3": 2432, "flux2": 6144, "zimage": 3840}


def activation_bytes(family: str, height: int, width: int, text_len: int, dtype: str) -> dict:
    """Estimated peak activation bytes of each phase of one image (estimates, not measured).

    The denoiser's allowance is 16 hidden-state-sized tensors of the joint sequence (the
    single-stream FLUX block holds the 4x MLP activation, its concatenation with the attention
    output and the normalised input at once, about 11 of them); the VAE decoder's is 8 tensors of
    128 channels at the full image size (its widest, last up-block). DeLeaker's fast path adds at
    most its working-set bound (``ops.WORKING_SET_BYTES``) and a few entity-sized histories.

    Args:
        family: A backbone family (the joint-attention ones above; otherwise SANA's geometry).
        height: Image height in pixels.
        width: Image width in pixels.
        text_len: Text tokens.
        dtype: The denoiser's dtype.

    Returns:
        ``{"denoise": bytes, "decode": bytes}``.
    """
    unit = DTYPE_BYTES[dtype]
    if family in _JOINT_HIDDEN:
        tokens, hidden = text_len + (height // 16) * (width // 16), _JOINT_HIDDEN[family]
    else:
        tokens, hidden = (height // 32) * (width // 32), 2240
    denoise = 16 * tokens * hidden * unit + 64 * 2**20
    decode = 8 * 128 * height * width * unit
    return {"denoise": denoise, "decode": decode}
