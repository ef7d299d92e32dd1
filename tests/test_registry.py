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


def _write_plugin_package(root, text):
    sub = root / "plug"
    sub.mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (sub / "__init__.py").write_text("")
    (sub / "plugins.py").write_text(textwrap.dedent(text))


def test_plugin_packages_are_found_by_their_plugins_module(monkeypatch, tmp_path):
    from slim_leakage._registry import find_plugins

    _write_plugin_package(
        tmp_path / "fake_dist_ok",
        """
        REGISTRATIONS = {"g.test": {"shiny": "json:dumps"}, "g.other": {"dull": "json:loads"}}
        """,
    )
    (tmp_path / "fake_dist_ok" / "empty").mkdir()  # a package without plugins.py is skipped
    monkeypatch.syspath_prepend(str(tmp_path))
    found = find_plugins(tmp_path / "fake_dist_ok", "fake_dist_ok")
    assert found == {"g.test": {"shiny": "json:dumps"}, "g.other": {"dull": "json:loads"}}


def test_a_plugin_module_in_another_shape_is_a_clear_error(monkeypatch, tmp_path):
    from slim_leakage._registry import find_plugins

    _write_plugin_package(tmp_path / "fake_dist_bad", 'REGISTRATIONS = {"g.test": ["json"]}\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="fake_dist_bad.plug.plugins.REGISTRATIONS is not"):
        find_plugins(tmp_path / "fake_dist_bad", "fake_dist_bad")


def test_plugin_entries_are_builtins_and_survive_a_refresh(monkeypatch):
    monkeypatch.setattr("slim_leakage._registry._plugins", {"g.test": {"shiny": "json:dumps"}})
    reg = Registry("method", group="g.test", builtins={"vanilla": "json:loads"})
    assert reg.names() == ["shiny", "vanilla"]
    assert reg.origin("shiny") == "builtin" and reg.target("shiny") == "json:dumps"
    import json

    assert reg.get("shiny") is json.dumps
    reg.refresh_entry_points()  # found again with the same target: no clash
    assert reg.get("shiny") is json.dumps
    # an entry point declaring the same target is the same entry, not a clash
    _fake_entry_point(monkeypatch, "g.test", "shiny", "json:dumps")
    reg.refresh_entry_points()
    assert reg.names() == ["shiny", "vanilla"]


def test_a_plugin_entry_may_not_take_a_builtin_name(monkeypatch):
    monkeypatch.setattr("slim_leakage._registry._plugins", {"g.test": {"vanilla": "json:dumps"}})
    reg = Registry("method", group="g.test", builtins={"vanilla": "json:loads"})
    with pytest.raises(ConfigError, match="The plug-in 'vanilla' in group 'g.test' clashes"):
        reg.names()


def test_the_toy_world_registers_itself_from_its_own_package():
    code = (
        "import sys\n"
        "from slim_leakage.backbones import BACKBONES\n"
        "from slim_leakage.judge import JUDGES\n"
        "print(BACKBONES.target('toy'), JUDGES.target('oracle'))\n"
        "print(BACKBONES.origin('toy'), JUDGES.origin('oracle'))\n"
        "print(sorted(m for m in sys.modules if m.startswith('slim_leakage.toy')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    targets, origins, imported = out.stdout.strip().splitlines()
    assert targets == "slim_leakage.toy.backbone:TOY slim_leakage.toy.oracle:OracleBackend"
    assert origins == "builtin builtin"
    # listing read the declarations only; the preset and the backend load on first use
    assert imported == "['slim_leakage.toy', 'slim_leakage.toy.plugins']", out.stderr


def test_describe_lists_a_broken_entry_with_its_error_and_keeps_the_others():
    reg = Registry("backbone", builtins={"broken": "no_such_module_x:y", "fine": "json:dumps"})
    rows = reg.describe(lambda obj: {"what": obj.__name__})
    assert rows[0]["name"] == "broken" and rows[0]["error"].startswith("ModuleNotFoundError")
    assert rows[1] == {"name": "fine", "origin": "builtin", "what": "dumps"}
