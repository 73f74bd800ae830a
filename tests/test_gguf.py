"""GGUF reading: our block decoding = the `gguf` package's, bit for bit; names, shapes, config and
the query/key row order come back as Hugging Face has them; bad files are refused in one line."""

from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q

from fromscratch.errors import UserError
from fromscratch.language.gguf import BLOCK_FORMATS, dequantize, read_gguf, unpermute_rope_rows

TINY = dict(vocab=40, hidden=64, heads=4, kv_heads=2, ffn=96, layers=2)
# A Llama's head_dim is hidden / heads; a Qwen3's need not be. (128: transformers reads a Qwen3 GGUF
# with its default head_dim, not the file's key_length.)
HEAD_DIM = {"llama": 16, "qwen3": 128}


def reference(raw: np.ndarray, quant_type: Q) -> torch.Tensor:
    return torch.from_numpy(gguf.quants.dequantize(raw, quant_type).reshape(-1).copy())


def ours(raw: np.ndarray, quant_type: Q) -> torch.Tensor:
    return dequantize(torch.from_numpy(np.array(raw).view(np.uint8)), quant_type)


# ---- the real file: every tensor type it holds ----


@pytest.fixture(scope="module")
def smollm2_reader(smollm2_gguf):
    return gguf.GGUFReader(smollm2_gguf)


def test_the_real_file_holds_q4_1_q8_0_and_f32(smollm2_reader):
    types = {t.tensor_type for t in smollm2_reader.tensors}
    assert types == {Q.Q4_1, Q.Q8_0, Q.F32}


@pytest.mark.parametrize("quant_type", [Q.Q4_1, Q.Q8_0, Q.F32], ids=lambda q: q.name)
def test_real_tensors_decode_as_gguf_does(smollm2_reader, quant_type):
    tensors = [t for t in smollm2_reader.tensors if t.tensor_type == quant_type][:3]
    for tensor in tensors:
        expected = reference(tensor.data, quant_type)
        assert expected.numel() == tensor.n_elements
        assert torch.equal(ours(tensor.data, quant_type), expected), tensor.name


def test_real_q4_1_weights_take_16_levels_per_block(smollm2_reader):
    """w = d · q + m: inside one block of 32, the weights sit on a grid of at most 16 values."""
    tensor = next(t for t in smollm2_reader.tensors if t.tensor_type == Q.Q4_1)
    blocks = ours(tensor.data, Q.Q4_1).reshape(-1, 32)[:100]
    levels = [len(torch.unique(block)) for block in blocks]
    assert max(levels) <= 16 and min(levels) >= 2


# ---- formats the file lacks: random blocks ----


def random_bytes(n_blocks: int, block_bytes: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n_blocks, block_bytes), dtype=np.uint8)


def put_f16(blocks: np.ndarray, at: int, seed: int) -> None:
    """Overwrite bytes at..at+1 of every block with a finite half (random bytes may be NaN)."""
    halves = np.random.default_rng(seed).normal(0, 0.05, (len(blocks), 1)).astype(np.float16)
    blocks[:, at : at + 2] = halves.view(np.uint8)


@pytest.mark.parametrize("quant_type", [Q.Q4_0, Q.Q4_1, Q.Q8_0], ids=lambda q: q.name)
def test_quantized_random_weights_decode_as_gguf_does(quant_type):
    weights = np.random.default_rng(0).normal(0, 1, (8, 128)).astype(np.float32)
    raw = gguf.quants.quantize(weights, quant_type)  # (8, bytes per row)
    decoded = ours(raw, quant_type)
    assert torch.equal(decoded, reference(raw, quant_type))
    step = {Q.Q4_0: 2 * 3.5 / 7, Q.Q4_1: 7 / 15, Q.Q8_0: 3.5 / 127}[quant_type]  # ~ range / levels
    assert (decoded - torch.from_numpy(weights).reshape(-1)).abs().max() < step


def test_random_q4_k_blocks_decode_as_gguf_does():
    blocks = random_bytes(50, 144, seed=1)
    put_f16(blocks, 0, seed=2)  # d
    put_f16(blocks, 2, seed=3)  # dmin
    assert torch.equal(ours(blocks, Q.Q4_K), reference(blocks, Q.Q4_K))


def test_random_q6_k_blocks_decode_as_gguf_does():
    blocks = random_bytes(50, 210, seed=4)
    put_f16(blocks, 208, seed=5)  # d
    assert torch.equal(ours(blocks, Q.Q6_K), reference(blocks, Q.Q6_K))


@pytest.mark.parametrize(
    "dtype,quant_type", [(np.float16, Q.F16), (np.float32, Q.F32)], ids=["F16", "F32"]
)
def test_float_tensors_decode_as_gguf_does(dtype, quant_type):
    values = np.random.default_rng(6).normal(0, 1, (4, 32)).astype(dtype)
    assert torch.equal(ours(values, quant_type), reference(values, quant_type))


def test_bf16_keeps_the_top_half_of_a_float32():
    values = torch.randn(64)
    raw = values.to(torch.bfloat16).view(torch.uint8)
    assert torch.equal(dequantize(raw, Q.BF16), values.to(torch.bfloat16).float())


def test_a_hand_made_q4_1_block():
    """d = 0.5, m = -1, q = 0..15 then 15..0: w = 0.5 q - 1."""
    q = np.array(list(range(16)) + list(range(15, -1, -1)), dtype=np.uint8)
    block = np.concatenate([np.float16([0.5, -1]).view(np.uint8), q[:16] | (q[16:] << 4)])
    assert torch.equal(ours(block, Q.Q4_1), torch.from_numpy(0.5 * q.astype(np.float32) - 1))


# ---- llama.cpp's row order ----


def llama_cpp_row_order(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """What llama.cpp's converter does to q_proj / k_proj: row i of a head pairs with i + d/2 in
    HF; written as neighbours (0, d/2, 1, d/2 + 1, ...) in the file."""
    head_dim = weight.shape[0] // n_heads
    order = torch.stack(
        [torch.arange(head_dim // 2), torch.arange(head_dim // 2) + head_dim // 2], 1
    )
    rows = (torch.arange(n_heads)[:, None] * head_dim + order.reshape(1, -1)).reshape(-1)
    return weight[rows]


def test_unpermute_undoes_llama_cpp_row_order():
    weight = torch.randn(3 * 8, 5)
    permuted = llama_cpp_row_order(weight, n_heads=3)
    assert not torch.equal(permuted, weight)
    assert torch.equal(unpermute_rope_rows(permuted, n_heads=3), weight)
    # head 0 of the file: HF rows 0, 4, 1, 5, 2, 6, 3, 7
    assert torch.equal(permuted[:8], weight[[0, 4, 1, 5, 2, 6, 3, 7]])


# ---- a tiny GGUF written here ----


def hf_weights(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights of a tiny model, Hugging Face names and (out, in) shapes."""
    g = torch.Generator().manual_seed(seed)
    h, hd, ffn = TINY["hidden"], HEAD_DIM[arch], TINY["ffn"]
    shapes = {"model.embed_tokens.weight": (TINY["vocab"], h), "model.norm.weight": (h,)}
    for n in range(TINY["layers"]):
        layer = f"model.layers.{n}."
        shapes |= {
            layer + "input_layernorm.weight": (h,),
            layer + "self_attn.q_proj.weight": (TINY["heads"] * hd, h),
            layer + "self_attn.k_proj.weight": (TINY["kv_heads"] * hd, h),
            layer + "self_attn.v_proj.weight": (TINY["kv_heads"] * hd, h),
            layer + "self_attn.o_proj.weight": (h, TINY["heads"] * hd),
            layer + "post_attention_layernorm.weight": (h,),
            layer + "mlp.gate_proj.weight": (ffn, h),
            layer + "mlp.up_proj.weight": (ffn, h),
            layer + "mlp.down_proj.weight": (h, ffn),
        }
        if arch == "qwen3":
            shapes |= {
                layer + "self_attn.q_norm.weight": (hd,),
                layer + "self_attn.k_norm.weight": (hd,),
            }
    return {name: torch.randn(shape, generator=g) for name, shape in shapes.items()}


GGUF_NAMES = {  # the test's own table: HF name fragment -> GGUF name fragment
    "model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output",
    "model.layers.": "blk.", "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
    "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
    "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}  # fmt: skip


def gguf_name(hf_name: str) -> str:
    for hf, ours_ in GGUF_NAMES.items():
        hf_name = hf_name.replace(hf, ours_)
    return hf_name


def quant_type_of(name: str) -> Q:
    """A mix, as real files have: embeddings Q8_0, 1-D norms F32, the rest Q4_1."""
    return Q.Q8_0 if "embed" in name else Q.F32 if name.endswith("norm.weight") else Q.Q4_1


def write_tiny_gguf(
    path: Path, arch="llama", weights=None, quant_type_of=quant_type_of, **extra
) -> Path:
    """A tiny model as llama.cpp's converter writes it; `extra` metadata (`key=value`) on top."""
    weights = hf_weights(arch) if weights is None else weights
    writer = gguf.GGUFWriter(path, arch)
    writer.add_block_count(TINY["layers"])
    writer.add_context_length(128)
    writer.add_embedding_length(TINY["hidden"])
    writer.add_feed_forward_length(TINY["ffn"])
    writer.add_head_count(TINY["heads"])
    writer.add_head_count_kv(TINY["kv_heads"])
    if arch == "qwen3":
        writer.add_key_length(HEAD_DIM["qwen3"])
        writer.add_value_length(HEAD_DIM["qwen3"])
    writer.add_rope_freq_base(1e5)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_token_list([f"t{i}" for i in range(TINY["vocab"])])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_chat_template("{{ messages[0]['content'] }}")
    for key, value in extra.items():
        writer.add_string(key, value)
    for name, weight in weights.items():
        if arch == "llama" and name.endswith(("q_proj.weight", "k_proj.weight")):
            heads = TINY["heads"] if "q_proj" in name else TINY["kv_heads"]
            weight = llama_cpp_row_order(weight, heads)
        quant_type = quant_type_of(name)
        writer.add_tensor(
            gguf_name(name), gguf.quants.quantize(weight.numpy(), quant_type), raw_dtype=quant_type
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def stored(weight: torch.Tensor, quant_type: Q) -> torch.Tensor:
    """What a file can hold of `weight`: quantized and decoded by the `gguf` package."""
    raw = gguf.quants.quantize(weight.numpy(), quant_type)
    return torch.from_numpy(gguf.quants.dequantize(raw, quant_type).copy()).reshape(weight.shape)


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_a_tiny_file_reads_back_to_hf_names_shapes_and_values(tmp_path, arch):
    weights = hf_weights(arch)
    model = read_gguf(write_tiny_gguf(tmp_path / "tiny.gguf", arch, weights))
    assert set(model.tensors) == set(weights)
    for name, weight in weights.items():
        assert model.tensors[name].dtype == torch.float32
        assert model.tensors[name].shape == weight.shape, name
        assert torch.equal(model.tensors[name], stored(weight, quant_type_of(name))), name


def test_a_tiny_file_s_config_and_metadata(tmp_path):
    model = read_gguf(write_tiny_gguf(tmp_path / "tiny.gguf"))
    assert model.config == {
        "model_type": "llama",
        "vocab_size": 40,
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "rms_norm_eps": 1e-6,  # stored as float32 9.99999997e-07; read back as written
        "rope_theta": 1e5,
        "rope_scaling": None,
        "max_position_embeddings": 128,
        "tie_word_embeddings": True,
        "attention_bias": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    assert model.metadata["tokenizer.ggml.tokens"][:3] == ["t0", "t1", "t2"]
    assert model.metadata["tokenizer.chat_template"] == "{{ messages[0]['content'] }}"
    assert model.metadata["general.architecture"] == "llama"


def test_an_output_tensor_unties_the_embeddings(tmp_path):
    weights = hf_weights("llama") | {"lm_head.weight": torch.randn(TINY["vocab"], TINY["hidden"])}
    model = read_gguf(write_tiny_gguf(tmp_path / "tiny.gguf", weights=weights))
    assert model.config["tie_word_embeddings"] is False
    assert torch.equal(model.tensors["lm_head.weight"], stored(weights["lm_head.weight"], Q.Q4_1))


def test_qwen3_keeps_its_rows_and_key_length(tmp_path):
    model = read_gguf(write_tiny_gguf(tmp_path / "tiny.gguf", "qwen3"))
    assert model.config["model_type"] == "qwen3"
    assert model.config["head_dim"] == 128  # its key_length, not 64 / 4


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_a_tiny_file_reads_as_transformers_reads_it(tmp_path, arch):
    transformers = pytest.importorskip("transformers")
    path = write_tiny_gguf(tmp_path / "tiny.gguf", arch)
    load = transformers.AutoModelForCausalLM.from_pretrained
    reference = load(tmp_path, gguf_file=path.name, dtype=torch.float32).state_dict()
    model = read_gguf(path)
    assert set(reference) == set(model.tensors) | {
        "lm_head.weight"
    }  # tied: lm_head is the embedding
    for name, tensor in model.tensors.items():
        assert torch.equal(tensor, reference[name]), name


# ---- bad files ----


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(UserError, match="is not a file"):
        read_gguf(tmp_path / "absent.gguf")


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_text('{"not": "gguf"}')
    with pytest.raises(UserError, match="is not a GGUF file"):
        read_gguf(path)


@pytest.mark.parametrize("kept", [0.002, 0.02, 0.5, 0.99])  # in the metadata ... in the tensor data
def test_a_truncated_file_is_refused(tmp_path, kept):
    path = write_tiny_gguf(tmp_path / "tiny.gguf")
    data = path.read_bytes()
    path.write_bytes(data[: max(4, int(kept * len(data)))])
    with pytest.raises(UserError, match="damaged or cut short"):
        read_gguf(path)


def test_another_architecture_is_refused(tmp_path):
    path = write_tiny_gguf(
        tmp_path / "tiny.gguf", arch="gpt2", weights={"model.norm.weight": torch.ones(64)}
    )
    with pytest.raises(UserError, match="holds a 'gpt2' model; this reader knows llama, qwen3"):
        read_gguf(path)


def test_an_unsupported_quant_type_is_refused(tmp_path):
    path = write_tiny_gguf(tmp_path / "tiny.gguf", quant_type_of=lambda name: Q.Q5_0)
    assert Q.Q5_0 not in BLOCK_FORMATS
    with pytest.raises(UserError, match="is Q5_0, not one of F32, F16, BF16, Q8_0"):
        read_gguf(path)


def test_an_unknown_tensor_is_refused(tmp_path):
    weights = hf_weights("llama") | {"rope_freqs.weight": torch.ones(8)}
    path = write_tiny_gguf(
        tmp_path / "tiny.gguf", weights=weights, quant_type_of=lambda name: Q.F32
    )
    with pytest.raises(UserError, match="a tensor 'rope_freqs.weight' that no Llama or Qwen3 has"):
        read_gguf(path)


def test_rope_scaling_is_refused(tmp_path):
    path = write_tiny_gguf(tmp_path / "tiny.gguf", **{"llama.rope.scaling.type": "yarn"})
    with pytest.raises(UserError, match=r"scales RoPE \(yarn\)"):
        read_gguf(path)
