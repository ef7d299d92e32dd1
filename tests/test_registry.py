import importlib.metadata
import subprocess
import sys
import textwrap

import pytest

from slim_leakage._registry import Registry
from slim_leakage.errors import ConfigError, UnknownNameError


def test_lazy_builtin_is_not_imported_until_get():
    reg = Registry("thing", builtins={"json-dumps": "json:dumps"})
    assert reg.names() == ["json-dumps"]
    assert reg.target("json-dumps") == "json:dumps"
    import json

    assert reg.get("json-dumps") is json.dumps
    assert reg.target("json-dumps") is None


def test_did_you_mean_and_available_names():
    reg = Registry("method", builtins={"deleaker": "json:dumps", "vanilla": "json:loads"})
    with pytest.raises(UnknownNameError) as info:
        reg.get("deleeker")
    msg = str(info.value)
    assert "Unknown method 'deleeker'" in msg
    assert "Did you mean 'deleaker'?" in msg
    assert "deleaker, vanilla" in msg


def test_unknown_without_close_match_lists_names_only():
    reg = Registry("method", builtins={"vanilla": "json:loads"})
    with pytest.raises(UnknownNameError) as info:
        reg.get("zzz")
    assert "Did you mean" not in str(info.value)
    assert "vanilla" in str(info.value)


def test_decorator_registration_and_duplicates():
    reg = Registry("method")

    @reg.register("my-method")
    class Mine:
        pass

    assert reg.get("my-method") is Mine
    with pytest.raises(ConfigError, match="already registered"):
        reg.register("my-method", object())
    other = object()
    reg.register("my-method", other, replace=True)
    assert reg.get("my-method") is other


@pytest.mark.parametrize("bad", ["My-Method", "my_method", "", "-x", "a b"])
def test_names_must_be_kebab(bad):
    reg = Registry("method")
    with pytest.raises(ConfigError, match="lowercase-kebab"):
        reg.register(bad, object())


def _fake_entry_point(monkeypatch, group, name, value):
    ep = importlib.metadata.EntryPoint(name=name, value=value, group=group)
    real = importlib.metadata.entry_points

    def fake(**kw):
        if kw.get("group") == group:
            return importlib.metadata.EntryPoints([ep])
        return real(**kw)

    monkeypatch.setattr("slim_leakage._registry.entry_points", fake)


def test_entry_point_plugin_shows_in_ls(monkeypatch, cli, tmp_path):
    plugin = tmp_path / "third_party_method.py"
    plugin.write_text(
        textwrap.dedent("""
        from slim_leakage.methods.base import Method

        class Sharpen(Method):
            name = "sharpen"
            needs = ("entities",)
            families = ("flux",)
            description = "a third-party method"
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    _fake_entry_point(monkeypatch, "slim_leakage.methods", "sharpen", "third_party_method:Sharpen")
    from slim_leakage.methods import METHODS

    METHODS.refresh_entry_points()
    try:
        code, out, _ = cli("ls", "methods")
        assert code == 0
        line = next(ln for ln in out.splitlines() if ln.strip().startswith("sharpen"))
        assert "a third-party method" in line
        assert "entities" in line and "flux" in line
        assert "entry point" in METHODS.origin("sharpen")
    finally:
        METHODS.unregister("sharpen")


def test_entry_point_clash_is_an_error(monkeypatch):
    reg = Registry("method", group="g.test", builtins={"vanilla": "json:loads"})
    _fake_entry_point(monkeypatch, "g.test", "vanilla", "json:dumps")
    with pytest.raises(ConfigError, match="clashes"):
        reg.names()


def test_listing_imports_no_torch():
    code = (
        "import sys\n"
        "from slim_leakage.cli.main import main\n"
        "assert main(['ls']) == 0\n"
        "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'google.genai', 'openai') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
