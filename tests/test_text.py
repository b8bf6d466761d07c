"""The character-level model: the word-list corpus and its conventions, exact normalisation, causality,
sampling from the model's own distribution, and bits per character."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.data import DatasetNotFoundError
from gen_jax.data.text import NEWLINE, PAD, CharVocabulary, load_text_dataset, read_word_list
from gen_jax.models.autoregressive import CausalTransformer
from gen_jax.train.config import default_config
from gen_jax.families import build_family
from gen_jax.train.evaluators import build_evaluators, run_evaluators


def _noisy(model, x, scale=0.3):
    params = jax.jit(model.init)(jax.random.key(0), x)
    leaves, tree = jax.tree.flatten(params)
    return jax.tree.unflatten(tree, [l + scale * jax.random.normal(jax.random.key(i), l.shape)
                                     for i, l in enumerate(leaves)])


def test_word_list_splits_are_fixed_disjoint_and_cover_it():
    words = read_word_list()
    splits = {s: load_text_dataset("words", s) for s in ("train", "valid", "test")}
    decoded = {s: d.words() for s, d in splits.items()}
    assert sum(len(v) for v in decoded.values()) == len(words)
    assert sorted(itertools.chain(*decoded.values())) == sorted(words)  # every word once, round-tripped
    assert decoded["test"] == load_text_dataset("words", "test").words()  # fixed
    test = splits["test"]
    # Conventions: each word is newline + letters + newline; every letter and the final newline are predicted.
    assert np.all(test.tokens[:, 0] == NEWLINE)
    assert test.num_characters == sum(len(w) + 1 for w in decoded["test"])


def test_vocabulary_round_trip_and_errors():
    vocab = CharVocabulary("'ab")
    ids = vocab.encode("ba'", 6)
    assert list(ids) == [NEWLINE, 4, 3, 2, NEWLINE, PAD] and vocab.decode(ids) == "ba'"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        vocab.encode("abc", 8)
    with pytest.raises(ValueError, match="more than the sequence length"):
        vocab.encode("abab", 4)


def test_missing_word_list_and_unknown_names_are_clear_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="apt-get install wamerican"):
        read_word_list(tmp_path / "no_words")
    with pytest.raises(ValueError, match="unknown text dataset"):
        load_text_dataset("shakespeare", "train")
    with pytest.raises(ValueError, match="has no split"):
        load_text_dataset("words", "dev")


def test_transformer_is_normalised_over_every_sequence():
    """With 3 non-padding tokens and 3 predicted positions, the 27 continuations (plus the mass it puts on
    padding) exhaust the space: sum over all 4^3 target sequences of p = 1."""
    model = CausalTransformer(vocab_size=4, max_len=3, dim=16, num_heads=2, num_layers=2)
    seqs = np.array([[1, *rest] for rest in itertools.product(range(4), repeat=3)])
    params = _noisy(model, jnp.asarray(seqs[:2]))
    # log_prob ignores padding targets, so score the full distribution from the token log-probabilities.
    logits = jax.jit(lambda v: model.apply(params, v, method=model.logits))(jnp.asarray(seqs[:, :-1]))
    lp = jnp.take_along_axis(jax.nn.log_softmax(logits, -1), jnp.asarray(seqs[:, 1:, None]), -1)[..., 0].sum(-1)
    assert float(jnp.exp(lp).sum()) == pytest.approx(1.0, abs=1e-5)


def test_transformer_logits_ignore_later_tokens():
    model = CausalTransformer(vocab_size=7, max_len=8, dim=16, num_heads=4, num_layers=2)
    x = jax.random.randint(jax.random.key(1), (3, 8), 1, 7)
    params = _noisy(model, x)
    logits = jax.jit(lambda v: model.apply(params, v, method=model.logits))
    base = logits(x)
    for t in range(8):
        changed = x.at[:, t:].set((x[:, t:] % 6) + 1)
        out = logits(changed)
        np.testing.assert_array_equal(np.asarray(out[:, :t]), np.asarray(base[:, :t]))
        assert not np.allclose(out[:, t], base[:, t])


def test_transformer_dropout_is_training_only():
    x = jax.random.randint(jax.random.key(2), (4, 8), 1, 7)
    plain = CausalTransformer(vocab_size=7, max_len=8, dim=16, num_heads=2, num_layers=2)
    dropped = CausalTransformer(vocab_size=7, max_len=8, dim=16, num_heads=2, num_layers=2, dropout=0.3)
    params = _noisy(plain, x)
    evaluate = lambda m: m.apply(params, x, method=m.log_prob)
    np.testing.assert_array_equal(np.asarray(evaluate(dropped)), np.asarray(evaluate(plain)))
    train = lambda key: dropped.apply(params, x, False, method=dropped.log_prob, rngs={"dropout": key})
    a, b = train(jax.random.key(0)), train(jax.random.key(1))
    assert not np.allclose(a, b) and not np.allclose(a, evaluate(plain))
    np.testing.assert_array_equal(np.asarray(train(jax.random.key(0))), np.asarray(a))
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.0"):
        CausalTransformer(vocab_size=7, max_len=8, dropout=1.0).init(jax.random.key(0), x)


def test_transformer_samples_follow_its_distribution_and_temperature_sharpens_them():
    model = CausalTransformer(vocab_size=4, max_len=3, dim=16, num_heads=2, num_layers=1)
    seqs = np.array([[1, *rest] for rest in itertools.product(range(1, 4), repeat=3)])
    params = _noisy(model, jnp.asarray(seqs[:2]), scale=1.0)
    logits = model.apply(params, jnp.asarray(seqs[:, :-1]), method=model.logits).at[..., 0].set(-jnp.inf)
    lp = jnp.take_along_axis(jax.nn.log_softmax(logits, -1), jnp.asarray(seqs[:, 1:, None]), -1)[..., 0].sum(-1)
    p = np.asarray(jnp.exp(lp))  # the sampler's distribution: padding excluded, no stop token

    draws = np.asarray(model.apply(params, jax.random.key(2), 20_000, 4, stop=None, method=model.sample))
    assert np.all(draws[:, 0] == 1) and np.all(draws[:, 1:] > 0)
    idx = (draws[:, 1:] - 1) @ np.array([9, 3, 1])
    freq = np.bincount(idx, minlength=27) / len(draws)
    assert np.abs(freq - p).max() < 0.015
    cold = np.asarray(model.apply(params, jax.random.key(3), 200, 4, stop=None, temperature=0.05,
                                  method=model.sample))
    x = np.array([[1, 0, 0, 0]])  # at a low temperature nearly every draw is the step-by-step argmax
    for t in range(1, 4):
        step_logits = model.apply(params, jnp.asarray(x[:, :-1]), method=model.logits)[0, t - 1].at[0].set(-jnp.inf)
        x[0, t] = int(jnp.argmax(step_logits))
    assert np.mean(np.all(cold == x, axis=1)) > 0.95


def test_sampling_stops_at_the_newline_and_pads_after_it():
    model = CausalTransformer(vocab_size=5, max_len=9, dim=16, num_heads=2, num_layers=1)
    params = _noisy(model, jnp.ones((1, 9), jnp.int32))
    x = np.asarray(model.apply(params, jax.random.key(0), 300, 10, method=model.sample))
    for row in x:
        ends = np.flatnonzero(row[1:] == NEWLINE)
        if len(ends):
            assert np.all(row[ends[0] + 2:] == PAD)
        assert np.all(row[1:ends[0] + 1 if len(ends) else None] > 0)


def test_bits_per_character_is_total_nll_over_predicted_characters(tmp_path):
    """The family's evaluation, on a tiny custom word list (data.text_file): bits/dim are bits per character."""
    (tmp_path / "w").write_text("ab\nba\nabba\nb\n" * 10, encoding="utf-8")
    c = default_config("transformer")
    c.data.name, c.data.text_file = "words", str(tmp_path / "w")
    c.model.num_layers, c.model.dim, c.model.num_heads = 1, 8, 2
    data = load_text_dataset("words", "test", tmp_path / "w")
    family = build_family(c, data)
    state = family.trainer.init_state(jax.random.key(0), data.arrays())
    res = run_evaluators(build_evaluators(c, family), family, state.params, data, jax.random.key(0))
    lp = np.asarray(family.model.apply(state.params, jnp.asarray(data.tokens), method=family.model.log_prob))
    num_characters = sum(len(w) + 1 for w in data.words())
    assert data.num_characters == num_characters and res["log_prob_kind"] == "exact"
    assert res["nll"] == pytest.approx(-lp.mean(), rel=1e-5)
    assert res["bits_per_dim"] == pytest.approx(-lp.sum() / num_characters / math.log(2), rel=1e-5)
