"""A judge checks before any work that it can answer: its server is reachable, its options exist.

Only TCP connections to 127.0.0.1 are made; no request is sent by the check.
"""

from __future__ import annotations

import socket

import pytest

from slim_leakage.errors import ConfigError, JudgeError
from slim_leakage.judge import get_judge
from slim_leakage.judge.testing import ScriptedServer

pytest.importorskip("openai")
pytest.importorskip("google.genai")


@pytest.fixture
def closed_port():
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server():
    with ScriptedServer() as srv:
        yield srv


def test_a_server_that_is_down_is_named_before_any_request(tmp_path, closed_port):
    judge = get_judge(
        "openai-compatible",
        base_url=f"http://127.0.0.1:{closed_port}/v1",
        cache_dir=str(tmp_path),
    )
    with pytest.raises(JudgeError) as info:
        judge.check()
    assert f"server at 127.0.0.1:{closed_port} cannot be reached" in info.value.message
    assert "base_url" in info.value.hint


def test_a_reachable_server_passes_without_a_request(tmp_path, server):
    get_judge("openai-compatible", base_url=server.openai_base_url, cache_dir=str(tmp_path)).check()
    assert server.count() == 0


@pytest.mark.parametrize(
    "url", ["localhost:8000", "ftp://127.0.0.1/v1", "http://127.0.0.1:99999/v1"]
)
def test_a_malformed_base_url_is_a_usage_error(tmp_path, url):
    judge = get_judge("openai-compatible", base_url=url, cache_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="is not an http\\(s\\) address"):
        judge.check()


def test_the_sdk_base_url_variables_are_followed(tmp_path, server, closed_port, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("GEMINI_API_KEY", "g-test")
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", f"http://127.0.0.1:{closed_port}")
    get_judge("openai", cache_dir=str(tmp_path)).check()
    with pytest.raises(JudgeError, match=f"127.0.0.1:{closed_port}"):
        get_judge("gemini", cache_dir=str(tmp_path)).check()


def test_a_proxy_from_the_environment_is_what_must_answer(
    tmp_path, server, closed_port, monkeypatch
):
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    judge = get_judge("openai-compatible", base_url=server.openai_base_url, cache_dir=str(tmp_path))
    with pytest.raises(JudgeError, match="through the proxy"):
        judge.check()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    judge.check()


def test_a_judge_without_model_choice_refuses_a_model(tmp_path):
    with pytest.raises(ConfigError) as info:
        get_judge("oracle", model="gpt-4o", cache_dir=str(tmp_path))
    assert info.value.message == (
        "The judge 'oracle' has no model choice: it is 'toy-oracle-v1' only, not 'gpt-4o'."
    )
    assert "cache_dir" in info.value.hint and "model," not in info.value.hint
    from slim_leakage.toy.oracle import OracleBackend

    with pytest.raises(ConfigError, match="no model choice"):
        OracleBackend(model="gpt-4o")
    # the one model it is may be named (a leaderboard entry names it when judged again)
    assert OracleBackend(model="toy-oracle-v1").model == OracleBackend().model == "toy-oracle-v1"
