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
