"""GPT: a decoder-only transformer language model in one file, laid out like OpenAI's GPT-2.

Notation: batch B, sequence length T, model width C = n_embd, heads H = n_head, head width
D = C / H, vocabulary size V, layers L = n_layer. `idx` (B, T) holds token ids.

    x = wte[idx] + wpe[0..T-1]                   token embedding + learned position embedding
    for each of the L blocks (pre-LayerNorm):
        x = x + Attention(LN_1(x))               causal: token t sees tokens 0..t only
        x = x + MLP(LN_2(x))                     MLP(x) = GELU(x W_fc) W_proj, hidden width 4C
    logits = LN_f(x) wteᵀ                        (B, T, V); the output layer reuses wte ("tied")

Parameter names are GPT-2's in Hugging Face `transformers` (`transformer.h.0.attn.c_attn.weight`,
...), so `GPT.from_pretrained("gpt2")` loads OpenAI's weights with the short mapping near the end
of this file, and `save_pretrained` writes a folder `transformers` can load back.
"""

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from fromscratch.attention import scaled_dot_product_attention
from fromscratch.errors import UserError
from fromscratch.folders import (
    CONFIG,
    WEIGHTS,
    load_state,
    read_config,
    read_tensors,
    resolve,
    write_json,
    write_tensors,
)
from fromscratch.modes import evaluating


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------
@dataclass
class GPTConfig:
    vocab_size: int = 50257  # GPT-2's BPE vocabulary
    block_size: int = 1024  # the longest sequence the model reads (number of learned positions)
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0  # one rate for embeddings, attention weights and residual branches
    bias: bool = True  # biases in the Linear and LayerNorm layers (GPT-2 has them)
    layer_norm_eps: float = 1e-5

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise UserError(f"GPTConfig.{name} must be a positive integer")
        if self.n_embd % self.n_head != 0:
            raise UserError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "GPTConfig":
        """A size from `PRESETS`, fields overridden as asked: `from_preset("gpt2", dropout=0.1)`."""
        if name not in PRESETS:
            raise UserError(f"unknown GPT preset {name!r}; choose one of: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def to_hf(self) -> dict:
        """This config as a Hugging Face GPT-2 `config.json` dictionary."""
        gpt2_vocab = self.vocab_size == 50257  # token 50256 is GPT-2's <|endoftext|>
        return {
            "model_type": "gpt2",
            "architectures": ["GPT2LMHeadModel"],
            "vocab_size": self.vocab_size,
            "n_positions": self.block_size,
            "n_ctx": self.block_size,
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "n_embd": self.n_embd,
            "n_inner": None,  # None means 4 * n_embd
            "activation_function": "gelu_new",
            "resid_pdrop": self.dropout,
            "embd_pdrop": self.dropout,
            "attn_pdrop": self.dropout,
            "layer_norm_epsilon": self.layer_norm_eps,
            "initializer_range": 0.02,
            "scale_attn_weights": True,
            "tie_word_embeddings": True,
            "bos_token_id": 50256 if gpt2_vocab else None,
            "eos_token_id": 50256 if gpt2_vocab else None,
            "bias": self.bias,  # ours; transformers keeps unknown keys and ignores this one
        }

    @classmethod
    def from_hf(cls, hf: dict) -> "GPTConfig":
        """Read a Hugging Face GPT-2 `config.json` dictionary; refuse anything we can't run."""
        if hf.get("model_type") != "gpt2":
            raise UserError(f"config.json has model_type {hf.get('model_type')!r}, not a GPT "
                            "('gpt2'): give the folder of a GPT model")
        # "gelu_pytorch_tanh" is the same function as "gelu_new" (the tanh approximation).
        activation = hf.get("activation_function", "gelu_new")
        if activation not in ("gelu_new", "gelu_pytorch_tanh"):
            raise UserError(f"activation_function {activation!r} is not supported; use gelu_new")
        n_embd = hf.get("n_embd", 768)
        if hf.get("n_inner") not in (None, 4 * n_embd):
            raise UserError(f"n_inner must be 4 * n_embd = {4 * n_embd}, got {hf['n_inner']}")
        unsupported = {  # GPT-2 variants this file does not implement, with the value we need
            "scale_attn_weights": True,
            "scale_attn_by_inverse_layer_idx": False,
            "add_cross_attention": False,
            "tie_word_embeddings": True,
        }
        for key, needed in unsupported.items():
            if hf.get(key, needed) != needed:
                raise UserError(f"config.json sets {key}={hf[key]}; only {needed} is supported")
        return cls(
            vocab_size=hf.get("vocab_size", 50257),
            block_size=hf.get("n_positions", 1024),
            n_layer=hf.get("n_layer", 12),
            n_head=hf.get("n_head", 12),
            n_embd=n_embd,
            dropout=hf.get("resid_pdrop", 0.0),
            bias=hf.get("bias", True),
            layer_norm_eps=hf.get("layer_norm_epsilon", 1e-5),
        )


# Named sizes: GPTConfig fields. Add an entry to add a preset.
PRESETS: dict[str, dict] = {
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768),  # 124M parameters
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024),  # 355M
    "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280),  # 774M
    "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600),  # 1558M
}


# ---------------------------------------------------------------------------------------------
# KV cache
# ---------------------------------------------------------------------------------------------
class KVCache:
    """The keys and values of every layer for the tokens processed so far.

    Attention is causal, so an earlier token's key and value never change when later tokens
    arrive. Generation keeps them here and feeds only the new token each step: one row of work
    per layer instead of re-running the whole sequence. The buffers are allocated once, for
    `max_len` positions, and each step writes its rows in place.
    """

    def __init__(self, n_layer: int, max_len: int):
        self.n_layer = n_layer
        self.max_len = max_len
        self.length = 0  # positions filled so far; the model advances it after each forward
        self.k: torch.Tensor | None = None  # (L, B, H, max_len, D), allocated at the first call
        self.v: torch.Tensor | None = None

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Append `layer`'s new k, v (B, H, T, D); return all its k, v so far (B, H, len+T, D)."""
        if self.k is None:  # first call: now we know batch size, dtype and device
            batch, heads, _, head_dim = k.shape
            self.k = k.new_empty(self.n_layer, batch, heads, self.max_len, head_dim)
            self.v = v.new_empty(self.n_layer, batch, heads, self.max_len, head_dim)
        end = self.length + k.shape[2]
        self.k[layer, :, :, self.length : end] = k
        self.v[layer, :, :, self.length : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------
class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx  # which slot of a KVCache is ours
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, *, kv_cache=None, fast=True):
        B, T, C = x.shape
        H, D = self.n_head, C // self.n_head
        qkv = self.c_attn(x).view(B, T, 3, H, D)  # q, k, v side by side, each cut into H heads
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, T, D)
        if kv_cache is not None:
            k, v = kv_cache.update(self.layer_idx, k, v)  # (B, H, T_past + T, D)
        dropout_p = self.dropout if self.training else 0.0
        # y = softmax(q kᵀ / √D + M) v, with M = -∞ where the key comes after the query
        y = scaled_dot_product_attention(q, k, v, causal=True, dropout_p=dropout_p, fast=fast)
        y = y.transpose(1, 2).reshape(B, T, C)  # heads side by side again: (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        # GELU(x) ≈ 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))): GPT-2's "gelu_new"
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))  # (B, T, C)


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, *, kv_cache=None, fast=True):
        x = x + self.attn(self.ln_1(x), kv_cache=kv_cache, fast=fast)  # (B, T, C)
        return x + self.mlp(self.ln_2(x))  # (B, T, C)


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embeddings
                wpe=nn.Embedding(config.block_size, config.n_embd),  # position embeddings
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList(Block(config, i) for i in range(config.n_layer)),
                ln_f=nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied: one (V, C) matrix, two uses
        self.apply(self._init_weights)
        # GPT-2's init: each block adds two residual branches to x, so the variance of x grows
        # with depth; scaling the branches' output projections by 1/√(2L) keeps it about constant.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        # Activation checkpointing: in training, keep only each block's input and recompute its
        # insides during backward: one (B, T, C) tensor kept per block instead of all of its
        # intermediate ones, for one extra forward pass. Same gradients (dropout is replayed).
        self.grad_checkpointing = False

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx, *, kv_cache=None, fast=True, last_only=False):
        """Logits (B, T, V) for the next token after each position of `idx` (B, T).

        kv_cache: a `KVCache`; `idx` then holds only the tokens after the `kv_cache.length`
            already cached, and the cache grows by T.
        fast: fused attention kernel (True) or the written-out einsum path (False): same numbers.
        last_only: return logits (B, 1, V) for the last position only (all generation needs).
        """
        if idx.dim() != 2:
            raise UserError(f"idx must be (batch, time) token ids, got shape {tuple(idx.shape)}")
        B, T = idx.shape
        start = 0 if kv_cache is None else kv_cache.length  # position of idx[:, 0]
        if start + T > self.config.block_size:
            raise UserError(
                f"sequence of {start + T} tokens is longer than block_size "
                f"{self.config.block_size}; crop it to the last {self.config.block_size} tokens"
            )
        pos = torch.arange(start, start + T, device=idx.device)  # (T,)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)  # (B, T, C)
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, fast=fast, use_reentrant=False)  # (B, T, C)
            else:
                x = block(x, kv_cache=kv_cache, fast=fast)  # (B, T, C)
        if kv_cache is not None:
            kv_cache.length += T
        if last_only:
            x = x[:, -1:, :]  # (B, 1, C)
        return self.lm_head(self.transformer.ln_f(x))  # (B, T, V)

    def loss(self, batch):
        """Mean cross-entropy of `targets` under the model: the training loop's protocol.

        batch = (idx, targets), both (B, T); targets[b, t] is the token that follows idx[b, t]
        (usually idx shifted left by one). Targets equal to -100 (padding) are ignored.
        """
        idx, targets = batch
        logits = self(idx)  # (B, T, V)
        # -mean over positions of log softmax(logits)[target]
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)

    def num_params(self, non_embedding: bool = True) -> int:
        """Number of parameters (the tied wte/lm_head matrix counted once).

        non_embedding: leave out the position embeddings wpe, a table lookup that costs no
        FLOPs. The token embeddings stay in: they are also the output layer's weight, a (C, V)
        matmul at every position.
        """
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer.wpe.weight.numel() if non_embedding else n

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token (forward + backward) at sequence length `seq_len` (default
        block_size), for model FLOPs utilisation (MFU):

            6 N + 12 L C T

        6 N: each of the N = num_params() weights takes part in one multiply-add (2 FLOPs) per
        token in the forward pass, and the backward pass costs twice the forward.
        12 L C T: attention's own matmuls, Q Kᵀ and (weights) V, each 2 C T FLOPs per token per
        layer forward, times 3 for forward + backward. The full T x T square is counted, even
        though a causal mask makes half of it zeros (the convention of PaLM's MFU).
        """
        T = self.config.block_size if seq_len is None else seq_len
        L, C = self.config.n_layer, self.config.n_embd
        return 6 * self.num_params() + 12 * L * C * T

    def generate(
        self,
        idx,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
        min_p: float | None = None,
    ):
        """Continue each row of `idx` (B, T) by `max_new_tokens` tokens: returns (B, T + new).

        temperature 0 picks the most likely token (greedy); otherwise see `sample_next`. Runs in
        eval mode (no dropout) and restores the previous mode afterwards.

        use_cache: keep keys and values in a `KVCache` and feed one new token per step. The
        model has block_size learned positions; once the sequence is longer, each step re-runs
        the model on the last block_size tokens, which then sit at new positions 0..block_size-1,
        so no cached key is valid any more (exactly what happens without the cache).
        """
        if idx.dim() != 2 or idx.shape[1] == 0:
            raise UserError("generate needs a (batch, time) prompt of at least one token")
        if max_new_tokens < 0:
            raise UserError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        check_sampling_args(temperature, top_k, top_p, min_p)
        block_size = self.config.block_size
        max_len = min(block_size, idx.shape[1] + max_new_tokens)
        cache = KVCache(self.config.n_layer, max_len) if use_cache else None
        with evaluating(self):
            for _ in range(max_new_tokens):
                if cache is not None and idx.shape[1] <= block_size:
                    new_tokens = idx[:, cache.length :]  # the whole prompt, then one at a time
                    logits = self(new_tokens, kv_cache=cache, last_only=True)  # (B, 1, V)
                else:
                    logits = self(idx[:, -block_size:], last_only=True)  # (B, 1, V)
                next_id = sample_next(logits[:, -1, :], temperature, top_k, top_p, generator,
                                      min_p=min_p)
                idx = torch.cat([idx, next_id], dim=1)  # (B, T + 1)
        return idx

    # -----------------------------------------------------------------------------------------
    # Hugging Face GPT-2 checkpoints
    # -----------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path_or_name: str | os.PathLike, *, cache_dir=None) -> "GPT":
        """Load a Hugging Face GPT-2 checkpoint, in eval mode with float32 weights.

        path_or_name: a folder with config.json + model.safetensors (what `save_pretrained` and
        `transformers` write), or a Hub name such as "gpt2", "gpt2-medium" or
        "openai-community/gpt2", downloaded into Hugging Face's cache (or `cache_dir`). A cached
        model loads offline with HF_HUB_OFFLINE=1.
        """
        folder = resolve(path_or_name, [CONFIG, WEIGHTS], cache_dir=cache_dir)
        advice = "a GPT folder needs config.json and model.safetensors (as save_pretrained writes)"
        config = GPTConfig.from_hf(read_config(folder, advice=advice))
        state = _checkpoint_to_ours(read_tensors(folder / WEIGHTS, advice=advice), config)
        # Build on the meta device (shapes only: no memory, no random init), then adopt the
        # checkpoint's tensors as the parameters.
        with torch.device("meta"):
            model = cls(config)
        load_state(model, state, folder, assign=True)
        model.lm_head.weight = model.transformer.wte.weight  # assign replaced wte: tie again
        return model.eval()

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Write config.json + model.safetensors in Hugging Face GPT-2's layout, atomically.

        `transformers.GPT2LMHeadModel.from_pretrained(path)` loads the folder. lm_head is not
        saved (it is wte). With bias=False, zero biases are written, since GPT-2 always has them.
        """
        folder = Path(path)
        tensors = _ours_to_checkpoint(self.state_dict(), self.config)
        write_tensors(folder / WEIGHTS, tensors, metadata={"format": "pt"})  # transformers' tag
        write_json(folder / CONFIG, self.config.to_hf())


# ---------------------------------------------------------------------------------------------
# Sampling: from the last position's logits to the next token
# ---------------------------------------------------------------------------------------------
def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Set every logit below the k-th largest of its row to -∞. Ties with the k-th all survive.

    >>> top_k_filter(torch.tensor([[1.0, 3.0, 2.0, 2.0]]), 2)
    tensor([[-inf, 3., 2., 2.]])
    """
    kth_largest = torch.topk(logits, min(k, logits.shape[-1]), dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability is ≥ p.

    A token survives when the tokens more likely than it hold less than p in total, so the
    most likely token always survives. Probabilities [0.5, 0.3, 0.15, 0.05] with p = 0.8 keep
    the first two (0.5 < 0.8; 0.5 + 0.3 = 0.8 is enough).
    """
    # stable: equal logits keep vocabulary order, so ties are cut the same way on every device
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True, stable=True)  # (B, V)
    probs = torch.softmax(sorted_logits, dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs  # probability of all more likely tokens
    remove_sorted = mass_before >= p
    remove = remove_sorted.scatter(-1, order, remove_sorted)  # back to vocabulary order
    return logits.masked_fill(remove, float("-inf"))


def min_p_filter(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """Keep the tokens at least `min_p` times as likely as the most likely one: p_i ≥ min_p · p_max.

    The bar moves with the model's confidence: a sure model keeps few tokens, an unsure one many.
    Probabilities [0.5, 0.3, 0.15, 0.05] with min_p = 0.5 keep the first two (0.3 ≥ 0.25).
    """
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    bar = min_p * probs.max(dim=-1, keepdim=True).values  # (B, 1)
    return logits.masked_fill(probs < bar, float("-inf"))


def check_sampling_args(temperature: float, top_k: int | None, top_p: float | None,
                        min_p: float | None = None) -> None:
    if temperature < 0:
        raise UserError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise UserError(f"top_k must be >= 1, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise UserError(f"top_p must be in (0, 1], got {top_p}")
    if min_p is not None and not 0.0 <= min_p <= 1.0:
        raise UserError(f"min_p must be in [0, 1], got {min_p}")


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    *,
    min_p: float | None = None,
) -> torch.Tensor:
    """Pick one token per row from logits (B, V): returns ids (B, 1).

    temperature 0: the argmax (greedy). Otherwise sample from softmax(logits / temperature),
    after top_k (keep the k most likely), then top_p (keep the nucleus), then min_p (keep the
    tokens at least min_p times as likely as the top one) filtering.
    """
    check_sampling_args(temperature, top_k, top_p, min_p)
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)  # (B, 1)
    logits = logits / temperature  # < 1 sharpens the distribution, > 1 flattens it
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    if min_p is not None:
        logits = min_p_filter(logits, min_p)
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)


# ---------------------------------------------------------------------------------------------
# Checkpoint layout: Hugging Face GPT-2 <-> ours
# ---------------------------------------------------------------------------------------------
# The names are the same. Three differences:
#  1. HF's GPT2LMHeadModel prefixes "transformer."; OpenAI's original files (and GPT2Model) don't.
#  2. GPT-2 uses a "Conv1D" layer whose weight is (in, out); nn.Linear's is (out, in): transpose.
#  3. Old files also store each layer's causal mask as "attn.bias"/"attn.masked_bias": skip them.
CONV1D_WEIGHTS = (
    ".attn.c_attn.weight",
    ".attn.c_proj.weight",
    ".mlp.c_fc.weight",
    ".mlp.c_proj.weight",
)
MASK_BUFFERS = (".attn.bias", ".attn.masked_bias")


def _checkpoint_to_ours(hf_state: dict, config: GPTConfig) -> dict:
    """A HF GPT-2 state dict in our names and layout (lm_head.weight is wte's tensor)."""
    state = {}
    for key, tensor in hf_state.items():
        if key.endswith(MASK_BUFFERS):
            continue
        if not key.startswith(("transformer.", "lm_head.")):
            key = "transformer." + key
        if key.endswith(CONV1D_WEIGHTS):
            tensor = tensor.t()
        state[key] = tensor.contiguous()

    wte = state.get("transformer.wte.weight")
    lm_head = state.pop("lm_head.weight", None)
    if lm_head is not None and wte is not None and not torch.equal(lm_head, wte):
        raise UserError("this checkpoint's lm_head differs from wte; GPT here ties the two")
    if not config.bias:  # we wrote zero biases for transformers' sake: drop them again
        for key in [k for k in state if k.endswith(".bias")]:
            if state.pop(key).count_nonzero() > 0:
                raise UserError(f"config.json says bias=false but {key} is not zero")
    if wte is not None:
        state["lm_head.weight"] = wte
    return state


def _ours_to_checkpoint(state: dict, config: GPTConfig) -> dict:
    """Our state dict in HF GPT2LMHeadModel's layout (prefixed names, Conv1D weights)."""
    hf_state = {}
    for key, tensor in state.items():
        if key == "lm_head.weight":
            continue  # the same tensor as wte; transformers ties it again on load
        if key.endswith(CONV1D_WEIGHTS):
            tensor = tensor.t()
        hf_state[key] = tensor
        is_embedding = key in ("transformer.wte.weight", "transformer.wpe.weight")
        if not config.bias and not is_embedding:  # a Linear or LayerNorm weight: add its bias
            bias_key = key.removesuffix("weight") + "bias"
            hf_state[bias_key] = tensor.new_zeros(state[key].shape[0])
    return hf_state
