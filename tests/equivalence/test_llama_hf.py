"""Our Llama = Hugging Face's LlamaForCausalLM and Qwen3ForCausalLM: logits, greedy tokens, RoPE.

Every parameter of the reference models is perturbed (the RMSNorm gains too: transformers starts
them at 1, which would hide a missing multiply). Weights travel through files in both directions
(HF save_pretrained -> our from_pretrained and ours -> HF), sharded folders and Hub names too.
"""

import pytest
import torch

transformers = pytest.importorskip("transformers")
from test_folders import fill_hub_cache  # noqa: E402
from test_folders import offline as offline  # noqa: E402, F401, F811  (the fixture)
from transformers import AutoConfig, AutoModelForCausalLM  # noqa: E402
from transformers.models.llama.modeling_llama import (  # noqa: E402
    LlamaRotaryEmbedding,
    apply_rotary_pos_emb,
)

from fromscratch.errors import UserError  # noqa: E402
from fromscratch.language.llama import (  # noqa: E402
    Llama,
    LlamaConfig,
    apply_rope,
    rope_cos_sin,
    rope_frequencies,
)

LLAMA3 = dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
              original_max_position_embeddings=16)
SMALL = dict(vocab_size=97, intermediate_size=40, num_hidden_layers=2, rope_theta=1000.0)
CONFIGS = {  # GQA ratio H / K of 1, 3 and 4; tied and untied; Qwen3's QK-norm and head width
    "llama-mha-tied": dict(SMALL, hidden_size=32, num_attention_heads=4, num_key_value_heads=4),
    "llama-gqa3-untied-llama3-rope": dict(SMALL, hidden_size=48, num_attention_heads=6,
                                          num_key_value_heads=2, tie_word_embeddings=False,
                                          attention_bias=True, rope_scaling=LLAMA3),
    "qwen3-gqa4-untied-head12": dict(SMALL, hidden_size=32, num_attention_heads=8,
                                     num_key_value_heads=2, head_dim=12, qk_norm=True,
                                     tie_word_embeddings=False),
    "qwen3-gqa3-tied-head16": dict(SMALL, hidden_size=24, num_attention_heads=3,
                                   num_key_value_heads=1, head_dim=16, qk_norm=True),
}


def random_hf_model(settings: dict, seed=0):
    """transformers' model of our config, every parameter moved off its initial value."""
    hf_config = AutoConfig.for_model(**LlamaConfig(**settings).to_hf())
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(hf_config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def random_ids(batch, length, vocab=97, seed=1):
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def max_diff(a, b) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("name", CONFIGS)
def test_logits_equal_hf_both_ways(tmp_path, name):
    hf = random_hf_model(CONFIGS[name])
    expected_class = "Qwen3ForCausalLM" if CONFIGS[name].get("qk_norm") else "LlamaForCausalLM"
    assert type(hf).__name__ == expected_class
    hf.save_pretrained(tmp_path / "hf")
    ours = Llama.from_pretrained(tmp_path / "hf")
    idx = random_ids(2, 40)  # past original_max_position_embeddings: the scaled band matters
    with torch.no_grad():
        expected = hf(idx).logits
        assert max_diff(ours(idx), expected) <= 1e-4
        ours.save_pretrained(tmp_path / "ours")
        back = AutoModelForCausalLM.from_pretrained(tmp_path / "ours").eval()
        assert type(back).__name__ == expected_class
        assert max_diff(back(idx).logits, expected) <= 1e-4


@pytest.mark.parametrize("name", CONFIGS)
def test_greedy_generation_equals_hf_with_and_without_the_cache(tmp_path, name):
    hf = random_hf_model(CONFIGS[name], seed=1)
    hf.save_pretrained(tmp_path)
    ours = Llama.from_pretrained(tmp_path)
    prompt = random_ids(2, 5)
    theirs = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12,
                         min_new_tokens=12, do_sample=False, pad_token_id=0)
    assert torch.equal(ours.generate(prompt, 12), theirs)
    assert torch.equal(ours.generate(prompt, 12, use_cache=False), theirs)


@pytest.mark.parametrize("name", ["llama-mha-tied", "llama-gqa3-untied-llama3-rope",
                                  "qwen3-gqa4-untied-head12"])
def test_rope_equals_hf_at_offset_positions(name):
    config = LlamaConfig(**CONFIGS[name])
    hf_rope = LlamaRotaryEmbedding(AutoConfig.for_model(**config.to_hf()))
    positions = torch.arange(37, 42)[None].expand(2, 5)  # where a cached step's tokens sit
    q = torch.randn(2, config.num_attention_heads, 5, config.head_dim)
    k = torch.randn(2, config.num_key_value_heads, 5, config.head_dim)
    hf_cos, hf_sin = hf_rope(q, positions)
    hf_q, hf_k = apply_rotary_pos_emb(q, k, hf_cos, hf_sin)
    cos, sin = rope_cos_sin(positions, rope_frequencies(config))
    assert max_diff(cos, hf_cos) <= 1e-6 and max_diff(sin, hf_sin) <= 1e-6
    assert max_diff(apply_rope(q, cos, sin), hf_q) <= 1e-5
    assert max_diff(apply_rope(k, cos, sin), hf_k) <= 1e-5


def test_sharded_folders_and_hub_names_load_offline(tmp_path, offline):
    hf = random_hf_model(CONFIGS["llama-gqa3-untied-llama3-rope"])
    hf.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    files = sorted(p.name for p in (tmp_path / "sharded").iterdir())
    assert "model.safetensors.index.json" in files and "model.safetensors" not in files
    idx = random_ids(1, 9)
    with torch.no_grad():
        expected = hf(idx).logits
        assert max_diff(Llama.from_pretrained(tmp_path / "sharded")(idx), expected) <= 1e-4
        cache = tmp_path / "cache"
        fill_hub_cache(cache, "org/tiny-llama", {name: (tmp_path / "sharded" / name).read_bytes()
                                                 for name in files})
        by_name = Llama.from_pretrained("org/tiny-llama", cache_dir=cache)
        assert max_diff(by_name(idx), expected) <= 1e-4
    with pytest.raises(UserError, match="'org/not-cached' is not a folder"):
        Llama.from_pretrained("org/not-cached", cache_dir=cache)


def test_a_gpt2_folder_and_a_missing_tensor_are_one_line_errors(tmp_path):
    gpt2 = transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=10)
    transformers.GPT2LMHeadModel(gpt2).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(UserError, match=r"model_type 'gpt2', not a Llama or Qwen3") as err:
        Llama.from_pretrained(tmp_path / "gpt2")
    assert "\n" not in str(err.value)
    hf = random_hf_model(CONFIGS["qwen3-gqa4-untied-head12"])
    state = {key: tensor for key, tensor in hf.state_dict().items()
             if key != "model.layers.1.self_attn.k_norm.weight"}
    hf.save_pretrained(tmp_path / "qwen3", state_dict=state)
    with pytest.raises(UserError, match=r"missing model\.layers\.1\.self_attn\.k_norm\.weight"):
        Llama.from_pretrained(tmp_path / "qwen3")
