import dataclasses
import os

import pytest

from slim_leakage._config import build_config, config_hash, parse_kv
from slim_leakage._io import (
    append_jsonl,
    atomic_write_json,
    iter_jsonl,
    repair_jsonl,
    sha256_file,
    sha256_folder,
)
from slim_leakage.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Demo:
    alpha: float = 1.2
    steps: int = 20
    smooth: bool = True
    name: str = "x"
    maybe: float | None = None
    words: tuple[str, ...] = ()

    def __post_init__(self):
        if self.alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")


def test_strings_are_converted_to_field_types():
    cfg = build_config(
        Demo, parse_kv(["alpha=1.6", "steps=4", "smooth=false", "maybe=none", "words=a,b"])
    )
    assert cfg == Demo(alpha=1.6, steps=4, smooth=False, maybe=None, words=("a", "b"))


def test_unknown_key_has_did_you_mean():
    with pytest.raises(ConfigError) as info:
        build_config(Demo, {"alpah": "1"})
    assert "'alpah'" in str(info.value) and "Did you mean 'alpha'" in str(info.value)


def test_bad_value_names_key_and_type():
    with pytest.raises(ConfigError, match=r"steps='four' is not a valid int"):
        build_config(Demo, {"steps": "four"})
    with pytest.raises(ConfigError, match="true/false"):
        build_config(Demo, {"smooth": "maybe"})


def test_post_init_errors_become_config_errors():
    with pytest.raises(ConfigError, match="alpha must be > 0"):
        build_config(Demo, {"alpha": "-1"})


@pytest.mark.parametrize("bad", ["alpha", "=3", "alpha=1,alpha=2"])
def test_parse_kv_rejects_malformed(bad):
    with pytest.raises(ConfigError):
        parse_kv(bad.split(",") if bad.count("alpha=") > 1 else [bad])


def test_config_hash_is_stable_and_sensitive():
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_jsonl_skips_torn_tail_and_repair_cuts_it(tmp_path):
    path = tmp_path / "x.jsonl"
    append_jsonl(path, '{"a": 1}')
    append_jsonl(path, '{"a": 2}')
    with open(path, "ab") as fh:
        fh.write(b'{"a": 3')  # what a kill -9 mid-write leaves
    assert [r["a"] for r in iter_jsonl(path)] == [1, 2]
    assert repair_jsonl(path) == len(b'{"a": 3')
    append_jsonl(path, '{"a": 4}')
    assert [r["a"] for r in iter_jsonl(path)] == [1, 2, 4]


def test_append_rejects_newlines(tmp_path):
    with pytest.raises(ValueError):
        append_jsonl(tmp_path / "x.jsonl", "a\nb")


def test_atomic_write_leaves_no_temp_files(tmp_path):
    path = tmp_path / "sub" / "m.json"
    atomic_write_json(path, {"x": 1})
    atomic_write_json(path, {"x": 2})
    assert path.read_text().strip().endswith("}")
    assert os.listdir(path.parent) == ["m.json"]
    with pytest.raises(ValueError):
        atomic_write_json(path, {"x": float("nan")})
    assert '"x": 2' in path.read_text()
    assert len(sha256_file(path)) == 64


def test_atomic_write_uses_normal_permissions(tmp_path):
    path = tmp_path / "p.json"
    atomic_write_json(path, {"x": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_sha256_folder_names_content_not_location(tmp_path):
    import shutil

    a = tmp_path / "a"
    (a / "sub").mkdir(parents=True)
    (a / "x.bin").write_bytes(b"\x00\x01")
    (a / "sub" / "y.json").write_text("{}")
    digest = sha256_folder(a)
    b = tmp_path / "elsewhere" / "b"
    shutil.copytree(a, b)
    (b / "__pycache__").mkdir()
    (b / "__pycache__" / "z.pyc").write_bytes(b"cache")
    (b / ".hidden").write_text("editor state")
    assert sha256_folder(b) == digest  # location, caches and hidden files do not count
    (b / "sub" / "y.json").write_text("{ }")
    assert sha256_folder(b) != digest  # content does
    shutil.rmtree(b)
    shutil.copytree(a, b)
    (b / "sub" / "y.json").rename(b / "sub" / "w.json")
    assert sha256_folder(b) != digest  # and so do names


@dataclasses.dataclass(frozen=True)
class Typed:
    steps: int = 1
    rate: float = 0.5
    on: bool = True
    name: str = "x"
    options: dict = dataclasses.field(default_factory=dict)
    words: tuple[str, ...] = ()
    limit: int | None = None


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("steps", 2.5, "steps=2.5 is a number with a fraction, but steps takes an integer"),
        ("steps", True, "steps=True is a boolean, but steps takes an integer"),
        ("limit", False, "limit=False is a boolean, but limit takes an integer or null"),
        ("rate", "fast", "rate='fast' is not a valid float"),
        ("rate", True, "rate=True is a boolean, but rate takes a number"),
        ("on", 0, "on=0 is an integer, but on takes true or false"),
        ("name", ["a"], "name=['a'] is a list, but name takes a text"),
        ("options", "alpha=1", "options='alpha=1' is a text, but options takes a mapping"),
        ("options", [1], "options=[1] is a list, but options takes a mapping"),
        ("words", [1, 2], "takes a list of texts (item 1 is an integer)"),
    ],
)
def test_values_of_the_wrong_type_are_refused_not_coerced(key, value, named):
    with pytest.raises(ConfigError) as info:
        build_config(Typed, {key: value}, owner="demo")
    assert named in str(info.value)


def test_json_values_of_the_right_type_are_taken():
    cfg = build_config(Typed, {"steps": 3, "rate": 1, "words": ["a"], "options": {"k": 1}})
    assert cfg == Typed(steps=3, rate=1.0, words=("a",), options={"k": 1})
    assert isinstance(cfg.rate, float)


def test_every_bad_option_is_reported_at_once():
    from slim_leakage.errors import Problems

    with pytest.raises(Problems) as info:
        build_config(Typed, {"steps": 1.5, "rat": 1, "on": "maybe"}, owner="demo")
    lines = str(info.value).splitlines()
    assert lines[0] == "3 problems in the options of demo:"
    assert any("steps=1.5" in line for line in lines)
    assert any("'rat'" in line and "Did you mean 'rate'" in line for line in lines)
    assert any("on='maybe'" in line for line in lines)
    assert info.value.exit_code == 2


def test_a_config_without_options_says_so():
    @dataclasses.dataclass(frozen=True)
    class Nothing:
        pass

    with pytest.raises(ConfigError) as info:
        build_config(Nothing, {"x": "1"}, owner="method 'vanilla'")
    assert info.value.hint == "method 'vanilla' takes no options; leave them out."


@pytest.mark.parametrize(
    ("value", "kw", "message"),
    [
        (float("inf"), {"low": 0, "low_open": True}, "t: x=inf is not a finite number."),
        (float("nan"), {"low": 0}, "t: x=nan is not a finite number."),
        (0.0, {"low": 0, "low_open": True}, "t: x=0.0 is out of range: it must be > 0."),
        (0, {"low": 1}, "t: x=0 is out of range: it must be >= 1."),
        (3.0, {"low": 0, "high": 2}, "t: x=3.0 is out of range: it must be from 0 to 2."),
        (1.0, {"low": 0, "high": 0.99}, "t: x=1.0 is out of range: it must be from 0 to 0.99."),
    ],
)
def test_range_messages_read_plainly(value, kw, message):
    from slim_leakage._config import check_range

    with pytest.raises(ConfigError) as info:
        check_range("t", "x", value, **kw)
    assert info.value.message == message
    assert "inf]" not in str(info.value)
