import pytest

from slim_leakage.errors import DatasetError, UnknownNameError
from slim_leakage.slim import taxonomy
from slim_leakage.slim.taxonomy import SLIM_TAXONOMY, Taxonomy, make_family


def test_families_cover_the_published_groups_and_go_beyond():
    names = {f.name for f in SLIM_TAXONOMY.families}
    for family in (
        "big-cats",
        "canids",
        "bovids-equids",
        "bears",
        "marine-mammals",
        "birds-of-prey",
        "songbirds",
        "parrots",
        "insects",
        "citrus",
        "berries",
        "stone-fruit",
        "gourds",
        "nightshades",
        "vehicles",
        "string-instruments",
        "seating",
    ):
        assert family in names
    assert {f.category for f in SLIM_TAXONOMY.families} == {"animal", "produce", "object"}


def test_every_entity_has_a_one_sentence_description_and_its_family():
    for family in SLIM_TAXONOMY.families:
        for entity in family.entities:
            assert entity.family == family.name and entity.category == family.category
            text = entity.description
            assert text[0].isupper() and text.endswith(".") and text.count(". ") == 0, text
            assert 5 <= len(text.split()) <= 30, text


def test_get_entity_and_description():
    cow = taxonomy.get_entity("cow")
    assert (cow.name, cow.family, cow.category) == ("cow", "bovids-equids", "animal")
    assert (
        taxonomy.entity_description("Polar  Bear") == taxonomy.get_entity("polar bear").description
    )
    assert taxonomy.get_entity("eagle").article == "an"


def test_unknown_entity_suggests_the_closest():
    with pytest.raises(UnknownNameError, match="Did you mean 'cheetah'"):
        taxonomy.get_entity("cheeta")


def test_no_entity_contains_another_it_can_share_a_prompt_with():
    # Otherwise "a bear and a polar bear" would match the wrong occurrence. Entities share a
    # prompt within a family, across a link, or (controls) across categories.
    import re

    def contains(a, b):
        return re.search(rf"(?<![a-z]){re.escape(a)}(?![a-z])", b) is not None

    entities = SLIM_TAXONOMY.entities
    links = {frozenset(link) for link in SLIM_TAXONOMY.links}
    for a in entities:
        for b in entities:
            together = (
                a.family == b.family
                or a.category != b.category
                or frozenset((a.name, b.name)) in links
            )
            if a is not b and together:
                assert not contains(a.name, b.name), (a.name, b.name)


def _fam(name, members, category="animal"):
    return make_family(
        name, category, "land", [(m, f"A {m} with a look of its own.") for m in members]
    )


def test_taxonomy_rejects_repeated_entities_and_bad_links():
    with pytest.raises(DatasetError, match="'cat' is already in family 'a'"):
        Taxonomy("t", [_fam("a", ["cat", "dog"]), _fam("b", ["cat"])])
    with pytest.raises(DatasetError, match="joins two members"):
        Taxonomy("t", [_fam("a", ["cat", "dog"])], links=[("cat", "dog")])
    with pytest.raises(DatasetError, match="unknown entity 'owl'"):
        Taxonomy("t", [_fam("a", ["cat", "dog"])], links=[("cat", "owl")])
    with pytest.raises(DatasetError, match="not lowercase words"):
        Taxonomy("t", [_fam("a", ["Cat"])])
    with pytest.raises(DatasetError, match="two families named 'a'"):
        Taxonomy("t", [_fam("a", ["cat"]), _fam("a", ["dog"])])
