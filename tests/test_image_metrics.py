"""LPIPS and KID with injected weights (offline), and honest 'not computed' without them."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchmetrics")

from PIL import Image  # noqa: E402

from slim_leakage.image_metrics import (  # noqa: E402
    LPIPS_ALEXNET_FILE,
    compute_image_metrics,
    kid_score,
    lpips_distance,
)


def _images(tmp_path, n=4, size=32, noise=0.0, seed=0, darken=1.0):
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n):
        base = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        other = base.astype(float) * darken + rng.normal(0, noise, base.shape)
        other = np.clip(other, 0, 255).astype(np.uint8)
        a, b = tmp_path / f"a{i}.png", tmp_path / f"b{i}.png"
        Image.fromarray(base).save(a)
        Image.fromarray(other).save(b)
        pairs.append((a, b))
    return pairs


@pytest.fixture
def injected_alexnet(tmp_path, monkeypatch):
    """Random AlexNet weights placed where torchvision's loader looks (no download)."""
    import torchvision

    torch.manual_seed(0)
    state = torchvision.models.alexnet().state_dict()
    ckpt = tmp_path / "torch" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.save(state, ckpt / LPIPS_ALEXNET_FILE)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return ckpt


def test_lpips_is_zero_for_identical_and_grows_with_change(tmp_path, injected_alexnet):
    for name in ("s", "m", "l"):
        (tmp_path / name).mkdir()
    same = _images(tmp_path / "s", noise=0.0)
    small = _images(tmp_path / "m", noise=10.0)
    large = _images(tmp_path / "l", noise=80.0)
    d0, d1, d2 = lpips_distance(same), lpips_distance(small), lpips_distance(large)
    assert d0 == pytest.approx(0.0, abs=1e-6)
    assert 0 < d1 < d2


def test_lpips_without_weights_is_reported_not_invented(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    import torch.hub

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    (tmp_path / "p").mkdir()
    out = compute_image_metrics(_images(tmp_path / "p"), metrics=("lpips",))
    assert out["lpips"] is None
    assert LPIPS_ALEXNET_FILE in out["notes"]["lpips"]


class TinyFeatures(torch.nn.Module):
    """A fixed random conv feature extractor standing in for Inception (uint8 in, (N, D) out)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 16, 3, stride=2)

    def forward(self, x):
        return self.conv(x.float() / 255.0).mean(dim=(2, 3)).double()


def test_kid_near_zero_for_same_sets_and_larger_for_different(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "d").mkdir()
    same = _images(tmp_path / "s", n=8, noise=0.0)
    diff = _images(tmp_path / "d", n=8, darken=0.3)
    k_same, _ = kid_score(same, feature=TinyFeatures(), subset_size=4)
    k_diff, _ = kid_score(diff, feature=TinyFeatures(), subset_size=4)
    # identical sets: only the random subset draws differ, so KID is tiny compared with a real shift
    assert k_diff > 10 * abs(k_same)


def test_kid_needs_two_pairs(tmp_path):
    (tmp_path / "o").mkdir()
    out = compute_image_metrics(
        _images(tmp_path / "o", n=1), metrics=("kid",), kid_feature=TinyFeatures()
    )
    assert out["kid"] is None and "at least 2" in out["notes"]["kid"]


def test_nothing_is_downloaded_unless_allowed(tmp_path, monkeypatch):
    import torch.hub

    def no_network(*a, **k):
        raise AssertionError("a metric tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    (tmp_path / "p").mkdir()
    out = compute_image_metrics(_images(tmp_path / "p"), metrics=("lpips", "kid", "vqascore"))
    assert out["lpips"] is None and out["kid"] is None and out["vqascore"] is None
    assert "--allow-downloads" in out["notes"]["lpips"]
    assert "weights-inception" in out["notes"]["kid"]
    assert "--allow-downloads" in out["notes"]["vqascore"]


def test_the_registry_names_every_metric_and_its_fields(tmp_path):
    from slim_leakage.errors import ConfigError, MetricUnavailableError
    from slim_leakage.image_metrics import IMAGE_METRICS
    from slim_leakage.run import RunConfig

    assert list(IMAGE_METRICS) == ["lpips", "kid", "vqascore"]
    (tmp_path / "p").mkdir()
    out = compute_image_metrics(_images(tmp_path / "p", n=1), metrics=())
    assert list(out) == [f for m in IMAGE_METRICS.values() for f in m.fields] + ["notes"]
    with pytest.raises(ConfigError, match=r"Unknown image metric\(s\) \['fid'\]") as info:
        compute_image_metrics([], metrics=("lpips", "fid"))
    assert info.value.hint == "Use any of lpips, kid, vqascore (comma-separated), or none."
    with pytest.raises(ConfigError, match="'fid'"):
        RunConfig(image_metrics=("fid",))
    with pytest.raises(MetricUnavailableError, match="at least 2 image pairs, got 1") as info:
        kid_score(_images(tmp_path / "p", n=1), feature=TinyFeatures())
    assert "--image-metrics" in info.value.hint


def test_lpips_matches_the_reference_package(tmp_path, injected_alexnet):
    """torchmetrics' LPIPS against the original ``lpips`` package, same weights, same pairs."""
    lpips = pytest.importorskip("lpips")
    pairs = _images(tmp_path, noise=40.0, size=64)
    reference = lpips.LPIPS(net="alex", verbose=False).eval()
    with torch.no_grad():
        expected = []
        for a_path, b_path in pairs:
            a, b = (
                torch.from_numpy(np.asarray(Image.open(p).convert("RGB"), dtype=np.float32))
                .div(255)
                .permute(2, 0, 1)[None]
                * 2
                - 1
                for p in (a_path, b_path)
            )
            expected.append(float(reference(a, b).mean()))
    assert lpips_distance(pairs) == pytest.approx(sum(expected) / len(expected), rel=1e-4)
