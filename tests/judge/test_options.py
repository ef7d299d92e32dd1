import pytest

from slim_leakage.errors import ConfigError
from slim_leakage.judge import get_judge


def test_misspelt_judge_option_suggests_the_judge_level_option():
    with pytest.raises(ConfigError) as info:
        get_judge("openai-compatible", concurrancy="4")
    assert "Did you mean 'concurrency'?" in str(info.value)
    assert "rpm" in info.value.hint and "base_url" in info.value.hint


def test_misspelt_backend_option_suggests_the_backend_option():
    with pytest.raises(ConfigError, match="Did you mean 'base_url'"):
        get_judge("openai-compatible", baseurl="http://127.0.0.1:1")


OPERATIONAL = {
    "cache_dir": None,  # set per test
    "cache": False,
    "concurrency": 2,
    "rpm": 6000.0,
    "tpm": 1e9,
    "timeout": 60.0,
    "max_retries": 1,
    "backoff_base": 0.5,
    "backoff_cap": 2.0,
    # batch=true needs a backend with a batch interface; tests/judge/test_batch.py shows its
    # answers land under the very cache keys of synchronous calls
    "batch": False,
    "batch_poll": 5.0,
}


def _keys(tmp_path, items, **options) -> list[str]:
    from slim_leakage.judge import Judge

    from .conftest import FakeBackend

    backend = FakeBackend()
    Judge(backend, **{"cache_dir": str(tmp_path / "c"), **options}).judge(items, progress=False)
    return sorted(r.key for r in backend.requests)


def test_operational_options_change_how_answers_are_fetched_never_which(tmp_path, items):
    from slim_leakage.judge import JudgeConfig, operational_options

    assert operational_options() == set(OPERATIONAL)
    assert operational_options() < {f for f in JudgeConfig.__dataclass_fields__}
    reference = _keys(tmp_path / "a", items)
    for name, value in OPERATIONAL.items():
        value = str(tmp_path / "other") if name == "cache_dir" else value
        assert _keys(tmp_path / name, items, **{name: value}) == reference, name
    for name, value in {"temperature": 0.5, "max_output_tokens": 99, "seed": 3}.items():
        assert _keys(tmp_path / name, items, **{name: value}) != reference, name


def test_judge_like_is_the_judge_contract():
    from slim_leakage.judge import JudgeLike

    assert isinstance(get_judge("oracle", cache=False), JudgeLike)
    assert not isinstance(object(), JudgeLike)
