"""GGUF files, llama.cpp's one-file model format, read into Hugging Face names and float32 tensors.

A GGUF file holds a header, metadata (key -> value: the architecture's sizes, the tokenizer's
vocabulary and merges, the chat template) and tensors, most of them *quantized*: a few bits per
number plus one scale per block of numbers. The `gguf` package, the format's own library, parses
the header and metadata and hands us each tensor's raw bytes; turning those bytes back into
numbers is written out here, in torch.

The block formats, byte by byte (f16: a 2-byte IEEE half, little-endian; q: the stored integers;
"nibbles": byte j holds q[j] in its low 4 bits and q[j + 16] in its high 4 bits):

    Q8_0   32 numbers in 34 bytes    bytes 0-1 d:f16 | 2-33 q[0..31]:int8
                                     w = d · q,              q in -128..127
    Q4_0   32 numbers in 18 bytes    bytes 0-1 d:f16 | 2-17 nibbles
                                     w = d · (q - 8),        q in 0..15
    Q4_1   32 numbers in 20 bytes    bytes 0-1 d:f16 | 2-3 m:f16 | 4-19 nibbles
                                     w = d · q + m,          q in 0..15
    Q4_K   256 numbers in 144 bytes  bytes 0-1 d:f16 | 2-3 dmin:f16 | 4-15 eight 6-bit pairs
                                     (s_i, n_i) | 16-143 q, four chunks of 32 bytes, chunk c holding
                                     sub-block 2c in its low nibbles and 2c + 1 in its high ones
                                     w = d · s_i · q - dmin · n_i  in sub-block i (32 numbers)
    Q6_K   256 numbers in 210 bytes  bytes 0-127 low 4 bits of q | 128-191 high 2 bits of q |
                                     192-207 s_i:int8 | 208-209 d:f16
                                     w = d · s_i · (q - 32)  in sub-block i (16 numbers), q in 0..63

So a Q4_1 weight costs 20 bytes / 32 = 5 bits, a Q8_0 weight 8.5 bits, against 32 for float32.

Two more differences from a Hugging Face checkpoint are undone here: GGUF lists a tensor's
dimensions fastest-first (a (out, in) matrix is stored as [in, out]), and llama.cpp's converter
reorders the rows of a Llama's query and key projections for its own RoPE (see
`unpermute_rope_rows`).

    model = read_gguf("SmolLM2-135M-Instruct.Q4_1.gguf")
    model.config["num_hidden_layers"]                        # 30
    model.tensors["model.layers.0.self_attn.q_proj.weight"]  # (576, 576) float32
    model.metadata["tokenizer.chat_template"]                # the model's Jinja template
"""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from gguf import GGMLQuantizationType, GGUFReader

from fromscratch.errors import UserError

# ---- the block formats: (n_blocks, bytes per block) uint8 -> (n_blocks, numbers per block) ----


def f16(byte_pairs: torch.Tensor) -> torch.Tensor:
    """(n, 2k) uint8 -> (n, k) float32: every two bytes one IEEE half, little-endian."""
    return byte_pairs.contiguous().view(torch.float16).float()


def nibbles(packed: torch.Tensor) -> torch.Tensor:
    """(..., k) uint8 -> (..., 2, k): the low 4 bits of every byte, then the high 4 bits."""
    return torch.stack([packed & 0x0F, packed >> 4], dim=-2)


def dequantize_f32(blocks: torch.Tensor) -> torch.Tensor:
    return blocks.contiguous().view(torch.float32)  # (n, 4) -> (n, 1)


def dequantize_f16(blocks: torch.Tensor) -> torch.Tensor:
    return f16(blocks)  # (n, 2) -> (n, 1)


def dequantize_bf16(blocks: torch.Tensor) -> torch.Tensor:
    return blocks.contiguous().view(torch.bfloat16).float()  # (n, 2) -> (n, 1)


def dequantize_q8_0(blocks: torch.Tensor) -> torch.Tensor:
    d = f16(blocks[:, :2])  # (n, 1)
    q = blocks[:, 2:].view(torch.int8).float()  # (n, 32)
    return d * q


def dequantize_q4_0(blocks: torch.Tensor) -> torch.Tensor:
    d = f16(blocks[:, :2])  # (n, 1)
    q = nibbles(blocks[:, 2:]).reshape(-1, 32).float()  # (n, 32)
    return d * (q - 8)


def dequantize_q4_1(blocks: torch.Tensor) -> torch.Tensor:
    d, m = f16(blocks[:, :2]), f16(blocks[:, 2:4])  # (n, 1) each
    q = nibbles(blocks[:, 4:]).reshape(-1, 32).float()  # (n, 32)
    return d * q + m


def q4_k_scales_and_mins(packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 12) uint8 -> (scales s, mins n): (n, 8) each, the sub-blocks' 6-bit numbers.

    Bytes 0-3 hold s_0..s_3 in their low 6 bits, bytes 4-7 hold n_0..n_3; bytes 8-11 hold the low
    4 bits of s_4..s_7 (low nibble) and n_4..n_7 (high nibble), whose top 2 bits are the spare
    top bits of bytes 0-3 (for s) and 4-7 (for n).
    """
    a, b, c = packed[:, 0:4], packed[:, 4:8], packed[:, 8:12]  # (n, 4) each
    scales = torch.cat([a & 0x3F, (c & 0x0F) | ((a >> 6) << 4)], dim=1)
    mins = torch.cat([b & 0x3F, (c >> 4) | ((b >> 6) << 4)], dim=1)
    return scales.float(), mins.float()


def dequantize_q4_k(blocks: torch.Tensor) -> torch.Tensor:
    d, dmin = f16(blocks[:, :2]), f16(blocks[:, 2:4])  # (n, 1) each
    scales, mins = q4_k_scales_and_mins(blocks[:, 4:16])  # (n, 8) each
    q = nibbles(blocks[:, 16:].reshape(-1, 4, 32)).reshape(-1, 8, 32).float()  # (n, 8, 32)
    w = (d * scales)[:, :, None] * q - (dmin * mins)[:, :, None]  # (n, 8, 32)
    return w.reshape(-1, 256)


def dequantize_q6_k(blocks: torch.Tensor) -> torch.Tensor:
    # Each half of 128 numbers reads 64 bytes of low bits and 32 bytes of high bits; its 4 groups
    # of 32 take the low nibbles of bytes 0-31, 32-63, then the high nibbles of bytes 0-31, 32-63
    # (low bits), and bits 0-1, 2-3, 4-5, 6-7 of the same 32 bytes (high bits).
    low = nibbles(blocks[:, :128].reshape(-1, 2, 64))  # (n, half, nibble, 64)
    low = low.reshape(-1, 2, 4, 32)  # (n, half, group, 32)
    shifts = torch.tensor([0, 2, 4, 6], dtype=torch.uint8).view(1, 1, 4, 1)
    high = (blocks[:, 128:192].reshape(-1, 2, 1, 32) >> shifts) & 0x03  # (n, half, group, 32)
    q = (low | (high << 4)).reshape(-1, 16, 16).float() - 32  # (n, 16, 16)
    scales = blocks[:, 192:208].view(torch.int8).float()  # (n, 16)
    d = f16(blocks[:, 208:])  # (n, 1)
    return ((d * scales)[:, :, None] * q).reshape(-1, 256)


BLOCK_FORMATS = {  # type: (bytes per block, bytes -> numbers)
    GGMLQuantizationType.F32: (4, dequantize_f32),
    GGMLQuantizationType.F16: (2, dequantize_f16),
    GGMLQuantizationType.BF16: (2, dequantize_bf16),
    GGMLQuantizationType.Q8_0: (34, dequantize_q8_0),
    GGMLQuantizationType.Q4_0: (18, dequantize_q4_0),
    GGMLQuantizationType.Q4_1: (20, dequantize_q4_1),
    GGMLQuantizationType.Q4_K: (144, dequantize_q4_k),
    GGMLQuantizationType.Q6_K: (210, dequantize_q6_k),
}


def dequantize(raw: torch.Tensor, quant_type: GGMLQuantizationType) -> torch.Tensor:
    """A tensor's bytes (any shape, uint8) -> its numbers, a 1-D float32 tensor.

    Every block is decoded at once: the bytes are cut into a (n_blocks, bytes per block) table and
    the format's arithmetic runs on whole columns of it.
    """
    block_bytes, decode = BLOCK_FORMATS[quant_type]
    return decode(raw.reshape(-1, block_bytes)).reshape(-1)


# ---- llama.cpp's query/key row order ----


def unpermute_rope_rows(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(n_heads · head_dim, C) in llama.cpp's row order -> Hugging Face's order.

    RoPE turns pairs of a head's coordinates by the same angle. Hugging Face pairs coordinate i
    with i + head_dim/2 (its `rotate_half`); llama.cpp pairs neighbours (2i, 2i + 1), so its
    converter reorders each head's rows from (0, 1, ..., head_dim - 1) to
    (0, head_dim/2, 1, head_dim/2 + 1, ...). Here the rows go back: within each head, the even
    rows first, then the odd ones.
    """
    rows, columns = weight.shape
    head_dim = rows // n_heads
    pairs = weight.reshape(n_heads, head_dim // 2, 2, columns)  # (head, pair, member, C)
    return pairs.transpose(1, 2).reshape(rows, columns)  # (head, member, pair, C) -> (rows, C)


# ---- names and sizes: GGUF's -> Hugging Face's ----


HF_NAMES = {  # GGUF tensor name -> Hugging Face parameter name ("{n}": the layer number)
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
    "blk.{n}.attn_norm.weight": "model.layers.{n}.input_layernorm.weight",
    "blk.{n}.attn_q.weight": "model.layers.{n}.self_attn.q_proj.weight",
    "blk.{n}.attn_k.weight": "model.layers.{n}.self_attn.k_proj.weight",
    "blk.{n}.attn_v.weight": "model.layers.{n}.self_attn.v_proj.weight",
    "blk.{n}.attn_output.weight": "model.layers.{n}.self_attn.o_proj.weight",
    "blk.{n}.attn_q_norm.weight": "model.layers.{n}.self_attn.q_norm.weight",
    "blk.{n}.attn_k_norm.weight": "model.layers.{n}.self_attn.k_norm.weight",
    "blk.{n}.ffn_norm.weight": "model.layers.{n}.post_attention_layernorm.weight",
    "blk.{n}.ffn_gate.weight": "model.layers.{n}.mlp.gate_proj.weight",
    "blk.{n}.ffn_up.weight": "model.layers.{n}.mlp.up_proj.weight",
    "blk.{n}.ffn_down.weight": "model.layers.{n}.mlp.down_proj.weight",
}

# The decoders read here; Qwen3 adds a norm on each head's queries and keys, and its converter
# keeps Hugging Face's row order, so only a Llama's rows come back from llama.cpp's.
ARCHITECTURES = {  # general.architecture: (model_type, Q/K rows in llama.cpp's order)
    "llama": ("llama", True),
    "qwen3": ("qwen3", False),
}


@dataclass
class GGUFModel:
    """A GGUF file read: config (HF config keys), tensors (HF names, float32), metadata (raw)."""

    config: dict
    tensors: dict[str, torch.Tensor]
    metadata: dict


def hf_name(gguf_name: str, path: Path) -> str:
    layer = re.fullmatch(r"blk\.(\d+)\.(.+)", gguf_name)
    key = f"blk.{{n}}.{layer[2]}" if layer else gguf_name
    if key not in HF_NAMES:
        raise UserError(
            f"{path} holds a tensor {gguf_name!r} that no Llama or Qwen3 has: give one of those"
        )
    return HF_NAMES[key].format(n=layer[1] if layer else "")


def float32_value(value: float) -> float:
    """The shortest decimal that reads back as the same float32.

    GGUF stores an epsilon of 1e-5 as the float32 nearest it, 9.999999747378752e-06: back to 1e-05.
    """
    return float(str(np.float32(value)))


def hf_config(metadata: dict, tensors: dict[str, torch.Tensor], path: Path) -> dict:
    """GGUF's `{arch}.*` metadata -> the keys of a Hugging Face config.json."""
    arch = metadata["general.architecture"]

    def need(key: str):
        if f"{arch}.{key}" not in metadata:
            raise UserError(f"{path} lacks the metadata key {arch}.{key}: convert the model again")
        return metadata[f"{arch}.{key}"]

    scaling = metadata.get(f"{arch}.rope.scaling.type", "none")
    if scaling != "none":
        raise UserError(f"{path} scales RoPE ({scaling}), which is not written here: give another")
    if "model.embed_tokens.weight" not in tensors:
        raise UserError(f"{path} has no token_embd.weight tensor: give a whole model's file")
    hidden, heads = need("embedding_length"), need("attention.head_count")
    return {
        "model_type": ARCHITECTURES[arch][0],
        "vocab_size": tensors["model.embed_tokens.weight"].shape[0],
        "hidden_size": hidden,
        "intermediate_size": need("feed_forward_length"),
        "num_hidden_layers": need("block_count"),
        "num_attention_heads": heads,
        "num_key_value_heads": metadata.get(f"{arch}.attention.head_count_kv", heads),
        "head_dim": metadata.get(f"{arch}.attention.key_length", hidden // heads),
        "rms_norm_eps": float32_value(need("attention.layer_norm_rms_epsilon")),
        "rope_theta": float32_value(metadata.get(f"{arch}.rope.freq_base", 10000.0)),
        "rope_scaling": None,
        "max_position_embeddings": need("context_length"),
        "tie_word_embeddings": "lm_head.weight" not in tensors,
        "attention_bias": False,
        "bos_token_id": metadata.get("tokenizer.ggml.bos_token_id"),
        "eos_token_id": metadata.get("tokenizer.ggml.eos_token_id"),
    }


def open_reader(path: Path) -> GGUFReader:
    if not path.is_file():
        raise UserError(f"{path} is not a file: give the path of a .gguf model file")
    with path.open("rb") as file:
        if file.read(4) != b"GGUF":
            raise UserError(
                f"{path} is not a GGUF file (no 'GGUF' at its start): give a .gguf file"
            )
    try:
        return GGUFReader(path)
    except (ValueError, IndexError, OSError) as error:  # numpy's reads past the end of the bytes
        raise UserError(f"{path} is damaged or cut short ({error}): download it again") from None


def read_gguf(path: str | Path) -> GGUFModel:
    """A GGUF Llama or Qwen3 -> its HF config keys, HF-named float32 tensors and raw metadata."""
    path = Path(path)
    reader = open_reader(path)
    fields = reader.fields.items()  # the header's counts too, as "GGUF.*": not metadata
    metadata = {key: field.contents() for key, field in fields if not key.startswith("GGUF.")}
    arch = metadata.get("general.architecture")
    if arch not in ARCHITECTURES:
        known = ", ".join(ARCHITECTURES)
        raise UserError(
            f"{path} holds a {arch!r} model; this reader knows {known}: give one of those"
        )
    tensors = {}
    for tensor in reader.tensors:
        if tensor.tensor_type not in BLOCK_FORMATS:
            known = ", ".join(t.name for t in BLOCK_FORMATS)
            kind = tensor.tensor_type.name
            raise UserError(
                f"{path}: {tensor.name} is {kind}, not one of {known}: pick a file in one of those"
            )
        shape = tuple(reversed(tensor.shape.tolist()))  # GGUF lists dimensions fastest-first
        raw = np.array(tensor.data).view(np.uint8)  # a copy: the file is mapped read-only
        numbers = dequantize(torch.from_numpy(raw), tensor.tensor_type)
        tensors[hf_name(tensor.name, path)] = numbers.reshape(shape)
    config = hf_config(metadata, tensors, path)
    if ARCHITECTURES[arch][1]:
        for name in tensors:
            if name.endswith("self_attn.q_proj.weight"):
                tensors[name] = unpermute_rope_rows(tensors[name], config["num_attention_heads"])
            elif name.endswith("self_attn.k_proj.weight"):
                tensors[name] = unpermute_rope_rows(tensors[name], config["num_key_value_heads"])
    return GGUFModel(config, tensors, metadata)
