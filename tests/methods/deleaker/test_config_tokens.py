"""DeLeakerConfig validation and windows; entity -> token positions."""

from __future__ import annotations

import pytest

from slim_leakage._config import build_config
from slim_leakage.errors import ConfigError, EntityNotFoundError
from slim_leakage.methods.deleaker import DeLeakerConfig, find_entity_tokens
from slim_leakage.methods.deleaker.tokens import find_entity_spans


def test_default_windows_are_the_official_ones_on_flux_dev_at_20_steps():
    # history over block-steps [12, 684) (steps 0-11), edits over [18, 1140)
    assert DeLeakerConfig().windows(20, 57) == (12, 684, 18, 1140)


def test_windows_scale_with_steps_and_blocks():
    cfg = DeLeakerConfig()
    h_lo, h_hi, e_lo, e_hi = cfg.windows(10, 4)
    assert (h_hi, e_hi) == (6 * 4, 40)  # 60% of the steps, then the whole run
    assert 0 <= h_lo <= e_lo < 4  # both start within the first step
    assert cfg.windows(50, 57)[1] == 30 * 57


def test_defaults_follow_the_paper():
    cfg = DeLeakerConfig()
    assert (cfg.beta1, cfg.beta2, cfg.alpha) == (1.0, 1.0, 1.2)
    assert cfg.image_text_suppression and cfg.self_identity and cfg.image_image_suppression
    assert not cfg.text_text_suppression
    assert cfg.smoothing and cfg.use_history
    assert (cfg.open_iterations, cfg.close_iterations) == (1, 2)


def test_unknown_key_is_an_error_with_a_suggestion():
    with pytest.raises(ConfigError, match="alpah.*Did you mean 'alpha'"):
        build_config(DeLeakerConfig, {"alpah": 1.3})


def test_cli_strings_are_converted():
    cfg = build_config(
        DeLeakerConfig,
        {"alpha": "1.5", "smoothing": "off", "history_stop": "0.5,0.25", "close_iterations": "1"},
    )
    assert cfg.alpha == 1.5 and cfg.smoothing is False
    assert cfg.history_stop == (0.5, 0.25) and cfg.close_iterations == 1


@pytest.mark.parametrize(
    "values, needle",
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": -1.0}, "alpha"),
        ({"beta1": float("nan")}, "beta1"),
        ({"open_iterations": -1}, "open_iterations"),
        ({"edit_start": (0.0, 1.5)}, "edit_start"),
        ({"history_stop": (0.5,)}, "history_stop"),
        ({"smoothing": "maybe"}, "smoothing"),
    ],
)
def test_bad_values_name_the_option(values, needle):
    with pytest.raises(ConfigError, match=needle):
        build_config(DeLeakerConfig, values)


def test_any_edit_reflects_the_switches():
    off = DeLeakerConfig(
        image_text_suppression=False, self_identity=False, image_image_suppression=False
    )
    assert not off.any_edit
    assert DeLeakerConfig(
        image_text_suppression=False,
        self_identity=False,
        image_image_suppression=False,
        text_text_suppression=True,
    ).any_edit


# -- tokens ---------------------------------------------------------------------------------


def _pieces(tok, prompt, positions):
    ids = tok(prompt)["input_ids"]
    return [tok.convert_ids_to_tokens(ids[i]) for i in positions]


def test_single_piece_word(t5_tokenizer):
    prompt = "a cow and a horse in a field"
    assert _pieces(t5_tokenizer, prompt, find_entity_tokens(t5_tokenizer, prompt, "horse")) == [
        "\u2581horse"
    ]


def test_multi_piece_word_takes_every_piece(t5_tokenizer):
    prompt = "a zebu and a cow"
    pos = find_entity_tokens(t5_tokenizer, prompt, "zebu")
    assert "".join(_pieces(t5_tokenizer, prompt, pos)).replace("\u2581", "") == "zebu"
    assert len(pos) > 1 and pos == list(range(pos[0], pos[0] + len(pos)))


def test_case_insensitive_and_repeated_words(t5_tokenizer):
    prompt = "A Cow looks at a cow"
    first = find_entity_tokens(t5_tokenizer, prompt, "cow")
    second = find_entity_tokens(t5_tokenizer, prompt, "cow", occurrence=1)
    assert first == [1] and second[0] > first[0]
    with pytest.raises(EntityNotFoundError, match="occurs 2 time"):
        find_entity_tokens(t5_tokenizer, prompt, "cow", occurrence=2)


def test_whole_words_only(t5_tokenizer):
    prompt = "a cowboy and a horse"
    with pytest.raises(EntityNotFoundError, match="'cow'.*'a cowboy and a horse'"):
        find_entity_tokens(t5_tokenizer, prompt, "cow")
    with pytest.raises(EntityNotFoundError, match="cats"):
        find_entity_tokens(t5_tokenizer, "two cats", "cat")


def test_multi_word_entity(t5_tokenizer):
    prompt = "a blue  jay and a crow"
    pos = find_entity_tokens(t5_tokenizer, prompt, "blue jay")
    text = "".join(_pieces(t5_tokenizer, prompt, pos)).replace("\u2581", "")
    assert text == "bluejay"


def test_lone_sentencepiece_piece_is_left_out():
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0), ("\u2581a", -1.0)]
    vocab += [("\u2581and", -1.0), ("x", -3.0), ("y", -3.0), ("z", -3.0), ("\u2581cow", -1.0)]
    tok = T5Tokenizer(vocab=vocab, extra_ids=0)
    prompt = "a xyz and a cow"
    assert tok.convert_ids_to_tokens(tok(prompt)["input_ids"])[1] == "\u2581"
    assert _pieces(tok, prompt, find_entity_tokens(tok, prompt, "xyz")) == ["x", "y", "z"]


def test_lone_piece_inside_a_multi_word_entity_is_kept():
    """The official rule drops only a leading lone boundary piece (method spec §3.3): in
    "blue jay" with "jay" spelt ``▁ j a y`` the lone piece between the words stays in the span."""
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [(p, -1.0) for p in ("\u2581a", "\u2581and", "\u2581blue", "\u2581crow")]
    vocab += [(c, -3.0) for c in "jayxz"]
    tok = T5Tokenizer(vocab=vocab, extra_ids=0)
    prompt = "a blue jay and a crow"
    pieces = tok.convert_ids_to_tokens(tok(prompt)["input_ids"])
    assert pieces[:6] == ["\u2581a", "\u2581blue", "\u2581", "j", "a", "y"]
    pos = find_entity_tokens(tok, prompt, "blue jay")
    assert _pieces(tok, prompt, pos) == ["\u2581blue", "\u2581", "j", "a", "y"]
    assert pos == [1, 2, 3, 4, 5]
    # a leading lone piece is still dropped, for a one-word and a two-word entity
    assert _pieces(tok, prompt, find_entity_tokens(tok, prompt, "jay")) == ["j", "a", "y"]
    other = "a jay x and a crow"
    assert _pieces(tok, other, find_entity_tokens(tok, other, "jay x")) == [
        "j",
        "a",
        "y",
        "\u2581",
        "x",
    ]


def test_truncated_entity_is_an_error(t5_tokenizer):
    prompt = "a cow and a horse " + "in a field " * 10 + "near a fox"
    assert find_entity_tokens(t5_tokenizer, prompt, "fox", max_sequence_length=256)
    with pytest.raises(EntityNotFoundError, match="max_sequence_length=16.*fox"):
        find_entity_tokens(t5_tokenizer, prompt, "fox", max_sequence_length=16)
    assert find_entity_tokens(t5_tokenizer, prompt, "cow", max_sequence_length=16) == [1]


def test_spans_of_all_entities_and_repeats(t5_tokenizer):
    spans = find_entity_spans(t5_tokenizer, "a cat, a dog and a fox", ["cat", "dog", "fox"])
    assert list(spans) == ["cat", "dog", "fox"] and all(len(v) == 1 for v in spans.values())
    with pytest.raises(ConfigError, match="repeat"):
        find_entity_spans(t5_tokenizer, "a cat and a dog", ["cat", "Cat"])
    with pytest.raises(ConfigError, match="empty"):
        find_entity_tokens(t5_tokenizer, "a cat", " ")
