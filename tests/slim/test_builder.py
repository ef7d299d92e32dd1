import dataclasses
from collections import Counter

import pytest

from slim_leakage.errors import ConfigError, DatasetError
from slim_leakage.records import Sample
from slim_leakage.slim import builder, hub_format, load_samples
from slim_leakage.slim.builder import (
    SLIM_CONFIGS,
    ConfigSpec,
    build,
    check_samples,
    make_samples,
    sample_problems,
)
from slim_leakage.slim.taxonomy import SLIM_TAXONOMY, Taxonomy, make_family
from slim_leakage.slim.templates import SLIM_TEMPLATES, Template, TemplateSet

SPECS = {spec.name: spec for spec in SLIM_CONFIGS}


@pytest.fixture(scope="module")
def made():
    return {name: make_samples(SLIM_TAXONOMY, SLIM_TEMPLATES, spec) for name, spec in SPECS.items()}


def test_sizes_meet_the_targets(made):
    pairs, triplets, controls = made["pairs"], made["triplets"], made["controls"]
    assert len(pairs) >= 840 and len(triplets) >= 290 and len(controls) >= 100
    subsets = Counter(s.subset for s in pairs)
    assert set(subsets) == {"simple", "interaction", "interaction-style"}
    # Each pair of look-alikes appears once per two-entity subset.
    assert len(set(subsets.values())) == 1
    assert set(Counter(s.subset for s in triplets)) == {
        "animal-triplets",
        "produce-triplets",
        "object-triplets",
    }


def test_every_sample_has_the_columns_and_passes_the_invariants(made):
    for name, samples in made.items():
        spec = SPECS[name]
        check_samples(samples, config=name, arity=spec.arity, kind=spec.kind)
        for s in samples:
            assert s.id.startswith(f"{spec.kind}-") and s.family and s.template_id
            assert s.config == name and s.source == "slim-builder"
            assert 0 <= s.seed < 2**31


def test_pairs_are_look_alikes_and_controls_are_distant(made):
    for s in made["pairs"]:
        fams = {SLIM_TAXONOMY.get(e).family for e in s.entities}
        links = {frozenset(link) for link in SLIM_TAXONOMY.links}
        assert len(fams) == 1 or frozenset(s.entities) in links
    for s in made["controls"]:
        cats = {SLIM_TAXONOMY.get(e).category for e in s.entities}
        assert len(cats) == 2, s


def test_styled_prompts_carry_a_style_and_both_entity_orders_occur(made):
    styled = [s for s in made["pairs"] if s.subset == "interaction-style"]
    assert all("+" in s.template_id for s in styled)
    assert {s.template_id.rsplit("-", 1)[1] for s in styled} == {"before", "after"}
    firsts = Counter(
        s.entities[0]
        == min(s.entities, key=lambda e: [x.name for x in SLIM_TAXONOMY.entities].index(e))
        for s in made["pairs"]
    )
    assert firsts[True] > 100 and firsts[False] > 100


def test_make_samples_is_deterministic(made):
    again = make_samples(SLIM_TAXONOMY, SLIM_TEMPLATES, SPECS["pairs"])
    assert again == made["pairs"]


def _sample(prompt, entities, **kw):
    return Sample(
        id=kw.pop("id", "x"), prompt=prompt, entities=tuple(entities), seed=kw.pop("seed", 1), **kw
    )


@pytest.mark.parametrize(
    ("prompt", "entities", "problem"),
    [
        ("A catalog and a dog", ["cat", "dog"], "'cat' does not occur"),
        ("A Cat and a dog", ["cat", "dog"], "'cat' does not occur"),
        ("A dog and a cat", ["cat", "dog"], "not in prompt order"),
        ("A cat, a dog and a cat", ["cat", "dog"], "occurs 2 times"),
        ("A polar bear and a bear", ["polar bear", "bear"], "occurs 2 times"),
        ("A cat and a dog", ["cat"], "needs 2"),
    ],
)
def test_sample_problems(prompt, entities, problem):
    problems = sample_problems(_sample(prompt, entities), arity=2)
    assert any(problem in p for p in problems), problems


def test_check_samples_names_the_sample():
    ok = _sample("A cat and a dog", ["cat", "dog"], id="a")
    with pytest.raises(DatasetError, match="sample 'b'.*repeats \\(prompt, seed\\) of sample 'a'"):
        check_samples([ok, dataclasses.replace(ok, id="b")], config="c", arity=2)
    with pytest.raises(DatasetError, match="sample 'a'.*repeats an id"):
        check_samples([ok, dataclasses.replace(ok, seed=2)], config="c", arity=2)
    with pytest.raises(
        DatasetError, match="sample 'a'.*has kind 'pair', its config holds 'triplet'"
    ):
        check_samples([ok], config="c", kind="triplet")


def _toy_vocabulary():
    tax = Taxonomy(
        "toy",
        [
            make_family("circles", "shape", "flat", [("red circle", "A red round disc."), ("blue circle", "A blue round disc."), ("green circle", "A green round disc.")]),
            make_family("squares", "block", "flat", [("red square", "A red square block."), ("blue square", "A blue square block.")]),
        ],
    )  # fmt: skip
    templates = TemplateSet(
        "toy",
        (
            Template("t2", "scene", "{a0} and {a1}", ("flat",)),
            Template("t3", "trio", "{a0}, {a1} and {a2}", ("flat",)),
            Template("c", "control", "{a0} beside {a1}"),
        ),
    )
    specs = [
        ConfigSpec("toy-pairs", "pair", ("scene",), "toy pairs", seeds_per_prompt=2),
        ConfigSpec("toy-triplets", "triplet", ("trio",), "toy triplets"),
        ConfigSpec("toy-controls", "control", ("control",), "toy controls"),
    ]
    return tax, templates, specs


def test_another_vocabulary_builds_into_the_same_folder(tmp_path):
    out = tmp_path / "slim"
    build(SLIM_TAXONOMY, SLIM_TEMPLATES, out, [SPECS["controls"]])
    tax, templates, specs = _toy_vocabulary()
    report = build(tax, templates, out, specs)
    # 3 + 1 same-family pairs, two seeds each; 1 triplet; each entity once in a control.
    assert report.rows == {"toy-pairs": 8, "toy-triplets": 1, "toy-controls": 5}
    card = hub_format.read_card(out)
    assert [c["name"] for c in card["configs"]] == [
        "controls",
        "toy-controls",
        "toy-pairs",
        "toy-triplets",
    ]
    pairs = load_samples("toy-pairs", root=out)
    assert len({s.prompt for s in pairs}) == 4 and len({s.seed for s in pairs}) == 8
    assert load_samples("controls", root=out)  # kept, not overwritten


def test_nothing_is_written_when_a_config_fails(tmp_path):
    tax, templates, specs = _toy_vocabulary()
    too_big = dataclasses.replace(specs[1], min_rows=5)
    with pytest.raises(
        DatasetError, match="'toy-triplets' has 1 samples, fewer than its min_rows 5"
    ):
        build(tax, templates, tmp_path / "out", [specs[0], too_big])
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="cannot make"):
        build(tax, templates, tmp_path / "out", [dataclasses.replace(specs[0], subsets=("nope",))])
    bad = TemplateSet(
        "toy", (Template("t2", "scene", "{a0} and {a1} near a red circle", ("flat",)),)
    )
    with pytest.raises(DatasetError, match="occurs 2 times"):
        build(tax, bad, tmp_path / "out", [specs[0]])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Pairs"}, "not a lowercase file-safe name"),
        ({"kind": "quad"}, "not one of pair, triplet, control"),
        ({"subsets": ()}, "lists no subsets"),
        ({"seeds_per_prompt": 0}, "must be >= 1"),
        ({"max_per_family": 0}, "must be >= 1 or None"),
    ],
)
def test_config_spec_validation(kwargs, message):
    base = {"name": "x", "kind": "pair", "subsets": ("simple",), "description": "d"}
    with pytest.raises(ConfigError, match=message):
        ConfigSpec(**{**base, **kwargs})


def test_build_is_byte_identical(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    builder.build_slim(a)
    builder.build_slim(b)
    assert hub_format.compare_folders(a, b) == []
    assert hub_format.folder_files(a) == [
        "README.md",
        "data/controls.parquet",
        "data/pairs.parquet",
        "data/triplets.parquet",
    ]
