"""GPT: attention paths, causality, init, KV-cache generation, sampling filters, save/load."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from fromscratch.errors import UserError
from fromscratch.language.gpt import (
    GPT,
    PRESETS,
    GPTConfig,
    KVCache,
    min_p_filter,
    sample_next,
    top_k_filter,
    top_p_filter,
)

TINY = dict(vocab_size=97, block_size=16, n_layer=2, n_head=4, n_embd=32)


def tiny_model(seed=0, **overrides) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{**TINY, **overrides})).eval()


def random_ids(batch, length, vocab=TINY["vocab_size"], seed=1):
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------
# the forward pass
# ---------------------------------------------------------------------------------------------
def test_fast_attention_equals_written_out():
    model = tiny_model()
    idx = random_ids(3, 16)
    with torch.no_grad():
        diff = (model(idx, fast=True) - model(idx, fast=False)).abs().max().item()
    assert diff < 1e-5


@pytest.mark.parametrize("fast", [True, False])
def test_causal_future_tokens_do_not_change_earlier_logits(fast):
    model = tiny_model()
    idx = random_ids(2, 12)
    changed = idx.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % TINY["vocab_size"]
    with torch.no_grad():
        before, after = model(idx, fast=fast), model(changed, fast=fast)
    assert (before[:, :7] - after[:, :7]).abs().max().item() < 1e-6
    assert (before[:, 7:] - after[:, 7:]).abs().max().item() > 1e-3  # the future did change


@pytest.mark.parametrize("fast", [True, False])
def test_kv_cache_forward_equals_full_forward(fast):
    model = tiny_model()
    idx = random_ids(2, 12)
    cache = KVCache(TINY["n_layer"], max_len=12)
    with torch.no_grad():
        full = model(idx, fast=fast)  # (B, T, V)
        chunks = [(0, 5), (5, 8), *((t, t + 1) for t in range(8, 12))]  # 5, 3, then 1 at a time
        cached = torch.cat([model(idx[:, a:b], kv_cache=cache, fast=fast) for a, b in chunks], 1)
    assert cache.length == 12
    assert (cached - full).abs().max().item() < 1e-5


def test_loss_at_init_is_log_vocab():
    torch.manual_seed(0)
    vocab = 1000
    model = GPT(GPTConfig(vocab_size=vocab, block_size=32, n_layer=2, n_head=4, n_embd=64))
    idx, targets = random_ids(8, 32, vocab, seed=1), random_ids(8, 32, vocab, seed=2)
    loss = model.loss((idx, targets)).item()
    assert abs(loss - math.log(vocab)) < 0.1  # ln 1000 = 6.908: every token about equally likely


def test_loss_is_mean_negative_log_likelihood_and_ignores_minus_100():
    model = tiny_model()
    idx, targets = random_ids(2, 8, seed=1), random_ids(2, 8, seed=2)
    targets[1, 3:] = -100  # padding
    with torch.no_grad():
        log_probs = F.log_softmax(model(idx), dim=-1)  # (B, T, V)
        keep = targets != -100
        expected = -log_probs[keep].gather(-1, targets[keep][:, None]).mean()
        assert abs(model.loss((idx, targets)).item() - expected.item()) < 1e-6


def test_forward_rejects_too_long_and_badly_shaped_input():
    model = tiny_model()
    with pytest.raises(UserError, match="block_size 16"):
        model(random_ids(1, 17))
    with pytest.raises(UserError, match="batch, time"):
        model(torch.zeros(16, dtype=torch.long))
    cache = KVCache(TINY["n_layer"], max_len=16)
    model(random_ids(1, 10), kv_cache=cache)
    with pytest.raises(UserError, match="longer than block_size"):
        model(random_ids(1, 7), kv_cache=cache)  # 10 cached + 7 new > 16


# ---------------------------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------------------------
def test_lm_head_is_tied_to_token_embedding():
    model = tiny_model()
    assert model.lm_head.weight is model.transformer.wte.weight
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()


def test_gpt2_preset_has_124m_parameters():
    with torch.device("meta"):  # shapes only: no memory, no init
        model = GPT(GPTConfig.from_preset("gpt2"))
    assert model.num_params(non_embedding=False) == 124_439_808
    assert model.num_params() == 124_439_808 - 1024 * 768  # without the position embeddings
    assert set(PRESETS) >= {"gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"}


def test_flops_per_token_formula():
    model = tiny_model()
    n = model.num_params()  # non-embedding
    assert model.flops_per_token() == 6 * n + 12 * 2 * 32 * 16
    assert model.flops_per_token(seq_len=8) == 6 * n + 12 * 2 * 32 * 8


def test_gpt2_init_scales_residual_projections():
    torch.manual_seed(0)
    n_layer = 8
    model = GPT(GPTConfig(vocab_size=500, block_size=8, n_layer=n_layer, n_head=4, n_embd=128))
    block = model.transformer.h[3]
    assert abs(block.attn.c_attn.weight.std().item() - 0.02) < 0.001
    assert abs(model.transformer.wte.weight.std().item() - 0.02) < 0.001
    residual_std = 0.02 / math.sqrt(2 * n_layer)  # 0.005
    assert abs(block.mlp.c_proj.weight.std().item() - residual_std) < 0.0003
    assert abs(block.attn.c_proj.weight.std().item() - residual_std) < 0.0003
    assert block.mlp.c_fc.bias.abs().max().item() == 0.0
    assert torch.equal(block.ln_1.weight, torch.ones(128))


def test_config_errors():
    with pytest.raises(UserError, match="divisible"):
        GPTConfig(n_embd=30, n_head=4)
    with pytest.raises(UserError, match="unknown GPT preset"):
        GPTConfig.from_preset("gpt5")
    assert GPTConfig.from_preset("gpt2-medium", dropout=0.1).n_layer == 24


# ---------------------------------------------------------------------------------------------
# sampling filters
# ---------------------------------------------------------------------------------------------
def test_top_k_keeps_ties_at_the_kth_logit():
    logits = torch.tensor([[1.0, 3.0, 2.0, 2.0, 0.5], [4.0, 4.0, 4.0, 1.0, 0.0]])
    out = top_k_filter(logits, 2)
    inf = float("-inf")
    assert torch.equal(out, torch.tensor([[inf, 3.0, 2.0, 2.0, inf], [4.0, 4.0, 4.0, inf, inf]]))
    assert torch.equal(top_k_filter(logits, 10), logits)  # k > V keeps everything


def test_top_p_hand_computed():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.05, 0.15, 0.3, 0.5]])
    kept = torch.softmax(top_p_filter(probs.log(), 0.8), dim=-1)
    expected = torch.tensor([[0.625, 0.375, 0.0, 0.0], [0.0, 0.0, 0.375, 0.625]])
    assert (kept - expected).abs().max().item() < 1e-6
    # p = 0.81 needs the third token too: 0.8 < 0.81
    kept = torch.softmax(top_p_filter(probs[:1].log(), 0.81), dim=-1)
    assert (kept - torch.tensor([[0.5, 0.3, 0.15, 0.0]]) / 0.95).abs().max().item() < 1e-6
    # a tiny p still keeps the most likely token; p = 1 keeps everything
    assert torch.isfinite(top_p_filter(probs.log(), 1e-6)).sum(dim=-1).tolist() == [1, 1]
    assert torch.isfinite(top_p_filter(probs.log(), 1.0)).all()


def test_min_p_keeps_tokens_above_a_fraction_of_the_top_probability():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.25, 0.25, 0.25, 0.25]])
    kept = torch.isfinite(min_p_filter(probs.log(), 0.5))
    # row 0: the bar is 0.5 · 0.5 = 0.25, so 0.3 stays and 0.15 goes; row 1: all equal, all stay
    assert kept.tolist() == [[True, True, False, False], [True, True, True, True]]
    assert torch.isfinite(min_p_filter(probs.log(), 0.0)).all()
    assert torch.isfinite(min_p_filter(probs.log(), 1.0)).sum(dim=-1).tolist() == [1, 4]


def test_sample_next_greedy_and_empirical_frequencies():
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    assert sample_next(logits, temperature=0).tolist() == [[0]]
    generator = torch.Generator().manual_seed(0)
    many = logits.expand(20000, 4)
    ids = sample_next(many, top_p=0.8, generator=generator)[:, 0]
    freq = torch.bincount(ids, minlength=4).float() / len(ids)
    assert (freq - torch.tensor([0.625, 0.375, 0.0, 0.0])).abs().max().item() < 0.015
    # temperature 2 flattens: p_i ∝ p_i^(1/2)
    ids = sample_next(many, temperature=2.0, generator=generator)[:, 0]
    freq = torch.bincount(ids, minlength=4).float() / len(ids)
    flat = torch.tensor([0.5, 0.3, 0.15, 0.05]).sqrt()
    assert (freq - flat / flat.sum()).abs().max().item() < 0.015


def test_sampling_argument_errors():
    model = tiny_model()
    idx = random_ids(1, 4)
    for bad in (dict(temperature=-1.0), dict(top_k=0), dict(top_p=0.0), dict(top_p=1.5),
                dict(min_p=-0.1), dict(min_p=1.5)):
        with pytest.raises(UserError):
            model.generate(idx, 3, **bad)
    with pytest.raises(UserError, match="at least one token"):
        model.generate(idx[:, :0], 3)


# ---------------------------------------------------------------------------------------------
# generation with and without the KV cache
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "prompt_len, new, sampling",
    [
        (5, 8, dict(temperature=0.0)),  # greedy, inside block_size
        (5, 8, dict(temperature=0.9, top_k=20, top_p=0.9)),
        (5, 8, dict(temperature=1.0, min_p=0.1)),
        (5, 30, dict(temperature=0.0)),  # past block_size (16): the window slides
        (3, 30, dict(temperature=1.2, top_k=10)),
        (20, 6, dict(temperature=1.0)),  # prompt already longer than block_size
    ],
)
def test_kv_cache_generation_equals_recomputation(prompt_len, new, sampling):
    model = tiny_model()
    idx = random_ids(3, prompt_len)
    runs = []
    for use_cache in (True, False):
        generator = torch.Generator().manual_seed(123)
        runs.append(model.generate(idx, new, use_cache=use_cache, generator=generator, **sampling))
    cached, recomputed = runs
    assert cached.shape == (3, prompt_len + new)
    assert torch.equal(cached[:, :prompt_len], idx)
    assert torch.equal(cached, recomputed)


def test_generate_restores_training_mode_and_handles_zero_tokens():
    model = tiny_model().train()
    idx = random_ids(2, 4)
    assert torch.equal(model.generate(idx, 0), idx)
    model.generate(idx, 2)
    assert model.training


# ---------------------------------------------------------------------------------------------
# save_pretrained / from_pretrained (the Hugging Face layout; transformers in tests/equivalence)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
def test_save_and_load_round_trip(tmp_path, bias):
    model = tiny_model(bias=bias)
    model.save_pretrained(tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]  # no temporary files left behind
    loaded = GPT.from_pretrained(tmp_path / "run")
    assert loaded.config == model.config
    assert loaded.lm_head.weight is loaded.transformer.wte.weight
    idx = random_ids(2, 16)
    with torch.no_grad():
        assert torch.equal(loaded(idx), model(idx))


def test_saved_file_uses_gpt2_conv1d_layout(tmp_path):
    model = tiny_model(bias=False)
    model.save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    assert "lm_head.weight" not in tensors
    assert tensors["transformer.h.0.attn.c_attn.weight"].shape == (32, 96)  # (in, out)
    assert tensors["transformer.h.1.mlp.c_proj.weight"].shape == (128, 32)
    assert torch.equal(
        tensors["transformer.h.1.mlp.c_fc.weight"], model.transformer.h[1].mlp.c_fc.weight.t()
    )
    assert tensors["transformer.h.0.attn.c_attn.bias"].abs().sum().item() == 0.0  # bias=False
    assert tensors["transformer.ln_f.bias"].shape == (32,)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["n_positions"] == 16
    assert config["activation_function"] == "gelu_new" and config["eos_token_id"] is None


def test_loads_openai_layout_without_prefix_and_with_mask_buffers(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    renamed = {k.removeprefix("transformer."): v for k, v in tensors.items()}
    for i in range(TINY["n_layer"]):
        renamed[f"h.{i}.attn.bias"] = torch.ones(1, 1, 16, 16).tril()  # old causal-mask buffer
    renamed["lm_head.weight"] = tensors["transformer.wte.weight"].clone()
    save_file(renamed, tmp_path / "model.safetensors")
    loaded = GPT.from_pretrained(tmp_path)
    idx = random_ids(1, 16)
    with torch.no_grad():
        assert torch.equal(loaded(idx), model(idx))


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(UserError, match="no folder"):
        GPT.from_pretrained(tmp_path / "missing")
    with pytest.raises(UserError, match="no config.json"):
        GPT.from_pretrained(tmp_path)

    tiny_model().save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").rename(tmp_path / "other.safetensors")
    with pytest.raises(UserError, match="no model.safetensors"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "other.safetensors").rename(tmp_path / "model.safetensors")

    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(UserError, match="model_type 'bert'"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "n_positions": 32}))
    with pytest.raises(UserError, match=r"transformer\.wpe\.weight has shape \(16, 32\)"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "n_layer": 3}))
    with pytest.raises(UserError, match=r"missing transformer\.h\.2\.ln_1\.weight, "):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").write_bytes(b"truncated")
    with pytest.raises(UserError, match="cannot read .*model.safetensors"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot read"):
        GPT.from_pretrained(tmp_path)
