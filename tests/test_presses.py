"""bbpm.integration.presses: kvpress presses applied to one recorded prefill give the cache
kvpress's own hooks give; question-aware compression per question; needle contexts.
A tiny randomly initialised Llama (no download)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from bbpm.integration.tasks import FILLER_LINE, needle_contexts, needle_question

transformers = pytest.importorskip("transformers")
needs_kvpress = pytest.mark.skipif(
    importlib.util.find_spec("kvpress") is None, reason="kvpress is not installed (extra bbpm[kv])"
)
from bbpm.integration import kv_substitution as kvs  # noqa: E402
from bbpm.integration import presses as kvp  # noqa: E402
from tests.conftest import tiny_llama as make_tiny_llama  # noqa: E402


@pytest.fixture(scope="module")
def llama() -> torch.nn.Module:
    return make_tiny_llama(64, "sdpa")


def sorted_rows(keys: torch.Tensor) -> torch.Tensor:
    """Kept tokens as a set: rows sorted by their first coordinate, per head."""
    order = keys[..., 0].argsort(dim=-1)
    return keys.gather(2, order[..., None].expand_as(keys))


@needs_kvpress
@pytest.mark.parametrize(
    "name, options",
    [("streaming_llm", {}), ("knorm", {}), ("snapkv", {"window_size": 8}), ("tova", {})],
)
def test_recorded_prefill_keeps_what_kvpress_hooks_keep(llama, name, options):
    ids = torch.randint(0, 128, (1, 60), generator=torch.Generator().manual_seed(1))
    n_kept = 15  # ratio 0.75 of 60 tokens: no rounding in kvpress's count
    press = kvp.make_press(name, compression_ratio=0.75, **options)
    reference = kvs.new_cache(llama)
    with torch.no_grad(), press(llama):
        llama(input_ids=ids, past_key_values=reference, use_cache=True)
    prefill = kvp.capture_prefill(llama, ids[0].tolist())
    ours = kvp.compress(kvp.make_press(name, **options), llama, prefill, n_kept)
    assert kvs.cache_length(ours) == kvs.cache_length(reference) == n_kept
    assert kvs.cache_length(prefill.cache) == 60  # the recorded prefill is left whole
    for (k1, v1), (k2, v2) in zip(kvs.cache_layers(ours), kvs.cache_layers(reference), strict=True):
        torch.testing.assert_close(sorted_rows(k1), sorted_rows(k2), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(sorted_rows(v1), sorted_rows(v2), rtol=1e-4, atol=1e-5)


def test_keep_top_keeps_the_best_in_stream_order():
    keys = torch.arange(10.0).reshape(1, 1, 10, 1).expand(1, 2, 10, 3).contiguous()
    scores = torch.tensor(
        [[[0, 9, 1, 8, 2, 7, 3, 6, 4, 5], [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]]
    ).float()
    kept, _ = kvp.keep_top(keys, keys, scores, 4)
    assert kept[0, 0, :, 0].tolist() == [1, 3, 5, 7] and kept[0, 1, :, 0].tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="n_kept"):
        kvp.keep_top(keys, keys, scores, 11)


@needs_kvpress
def test_question_aware_rows_equal_one_question_at_a_time(llama):
    ids = torch.randint(0, 128, (50,), generator=torch.Generator().manual_seed(2)).tolist()
    questions = [[5, 6, 7, 8], [9, 10, 11, 12], [100, 3, 4, 1]]
    prefill = kvp.capture_prefill(llama, ids)
    press = kvp.make_press("snapkv", window_size=4)
    batch = kvp.compress_question_aware(press, llama, prefill, questions, 12)
    assert kvs.cache_length(prefill.cache) == 50
    rows, singles = [], []
    for row, q in enumerate(questions):
        single = kvp.compress_question_aware(press, llama, prefill, [q], 12)
        singles.append(single)
        for (kb, _), (ks, _) in zip(kvs.cache_layers(batch), kvs.cache_layers(single), strict=True):
            torch.testing.assert_close(kb[row : row + 1], ks, rtol=1e-4, atol=1e-5)
        rows.append(kvs.cache_layers(single)[0][0])
    assert not torch.equal(rows[0], rows[2])  # the question changes what is kept
    # answers from the per-row cache equal answers from each row's own cache
    answers = kvs.greedy_generate_batch(
        llama, questions, batch, position_start=50, max_new_tokens=3
    )
    for row, (q, single) in enumerate(zip(questions, singles, strict=True)):
        alone = kvs.greedy_generate_batch(llama, [q], single, position_start=50, max_new_tokens=3)
        assert answers[row].token_ids == alone[0].token_ids
    with pytest.raises(ValueError, match="one token length"):
        kvp.compress_question_aware(press, llama, prefill, [[1, 2], [1, 2, 3]], 12)


@needs_kvpress
def test_question_aware_budgets_and_groups_equal_separate_calls(llama):
    ids = torch.randint(0, 128, (40,), generator=torch.Generator().manual_seed(3)).tolist()
    questions = [[5, 6, 7], [9, 10, 11], [100, 3, 4], [7, 7, 1], [2, 50, 9]]
    prefill = kvp.capture_prefill(llama, ids)
    press = kvp.make_press("snapkv", window_size=3)
    caches = kvp.compress_question_aware(press, llama, prefill, questions, [10, 4], 2)
    assert len(caches) == 2 and kvs.cache_length(prefill.cache) == 40
    for cache, n_kept in zip(caches, [10, 4], strict=True):
        alone = kvp.compress_question_aware(press, llama, prefill, questions, n_kept)
        assert kvs.cache_length(cache) == n_kept
        for (k1, v1), (k2, v2) in zip(
            kvs.cache_layers(cache), kvs.cache_layers(alone), strict=True
        ):
            assert k1.shape[0] == len(questions)
            torch.testing.assert_close(k1, k2, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(v1, v2, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="rows_per_forward"):
        kvp.compress_question_aware(press, llama, prefill, questions, 4, 0)


def test_per_row_cache_must_match_the_batch(llama):
    cache = kvs.prefill(llama, list(range(10)))
    kvs.set_cache_layers(
        cache,
        [(k.expand(3, -1, -1, -1), v.expand(3, -1, -1, -1)) for k, v in kvs.cache_layers(cache)],
    )
    with pytest.raises(ValueError, match="one per suffix"):
        kvs.greedy_generate_batch(llama, [[1], [2]], cache, max_new_tokens=1)


def test_needle_contexts_place_distinct_needles_and_are_seeded():
    contexts = needle_contexts(3, 10, 2, ["apple", "pear"], seed=5)
    again = needle_contexts(3, 10, 2, ["apple", "pear"], seed=5)
    assert [c.lines for c in contexts] == [c.lines for c in again]
    keys = [f.key for c in contexts for f in c.needles]
    assert len(set(keys)) == 6
    for c in contexts:
        assert len(c.lines) == 12 and sum(line == FILLER_LINE for line in c.lines) == 10
        for f, p in zip(c.needles, c.positions, strict=True):
            assert c.lines[p] == f.text and needle_question(f.key) in f.text
        assert c.window(3) == c.lines[-3:]
    with pytest.raises(ValueError, match="n_needles"):
        needle_contexts(1, 10, 0, ["a"], seed=0)


@needs_kvpress
def test_kvpress_missing_is_none_when_installed_and_make_press_names_the_choices():
    assert kvp.kvpress_missing() is None
    with pytest.raises(ValueError, match="press must be one of"):
        kvp.make_press("h2o")
