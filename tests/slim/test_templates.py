import pytest

from slim_leakage.errors import DatasetError
from slim_leakage.slim.taxonomy import get_entity
from slim_leakage.slim.templates import (
    SLIM_TEMPLATES,
    Style,
    Template,
    TemplateSet,
    apply_style,
    render,
)


def test_render_fills_articles_and_capitalises():
    t = Template("t", "simple", "{a0} and {a1} near the {0}'s den")
    prompt = render(t.text, [get_entity("eagle"), get_entity("owl")])
    assert prompt == "An eagle and an owl near the eagle's den"
    assert t.arity == 2


def test_styles_go_before_or_after():
    style = Style("3d", "In a 3D render", "in a 3D render")
    assert apply_style("A bee and a wasp are flying", style, before=True) == (
        "In a 3D render, a bee and a wasp are flying"
    )
    assert apply_style("A bee and a wasp", style, before=False) == "A bee and a wasp in a 3D render"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{a0} and {a2}", "slots"),
        ("{a0} and {a1} in {place}", "unknown placeholder"),
        ("{0} and {a1}", "starts with a bare entity"),
        ("no entities here", "slots"),
    ],
)
def test_bad_templates_are_rejected(text, message):
    with pytest.raises(DatasetError, match=message):
        Template("bad", "simple", text)


def test_template_set_checks_ids_and_styled_subsets():
    t = Template("x", "simple", "{a0} and {a1}")
    with pytest.raises(DatasetError, match="repeats template id"):
        TemplateSet("s", (t, t))
    with pytest.raises(DatasetError, match="no styles"):
        TemplateSet("s", (t,), styled={"simple-style": "simple"})
    with pytest.raises(DatasetError, match="has no templates"):
        TemplateSet("s", (t,), styles=(Style("a", "A", "a"),), styled={"i-style": "interaction"})


def test_every_setting_has_templates_for_every_subset():
    settings = {"land", "water", "air", "table", "street", "stage", "room"}
    for subset in ("simple", "interaction"):
        for setting in settings:
            assert SLIM_TEMPLATES.candidates(subset, 2, [setting]), (subset, setting)
    for setting in settings:
        assert any(
            SLIM_TEMPLATES.candidates(s, 3, [setting])
            for s in ("animal-triplets", "produce-triplets", "object-triplets")
        ), setting
    assert SLIM_TEMPLATES.candidates("control", 2, ["any"])
