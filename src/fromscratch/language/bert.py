"""BERT: a bidirectional transformer encoder, laid out like Google's BERT, and sentence embeddings.

Notation: batch B, sequence length T, model width C = hidden_size, heads H, head width D = C / H,
layers L. `input_ids` (B, T) holds WordPiece token ids, `attention_mask` (B, T) is 1 at real
tokens and 0 at padding, `token_type_ids` (B, T) is 0 for the first sentence of a pair, 1 for the
second.

    x = LN(word[input_ids] + position[0..T-1] + token_type[token_type_ids])
    for each of the L layers (post-LayerNorm: the norm comes after the residual sum):
        x = LN_1(x + Attention(x))             every token sees every real token, both directions
        x = LN_2(x + FFN(x))                   FFN(x) = GELU(x W_1) W_2, hidden width 4C

Two differences from GPT (gpt.py), each one line below: attention is not causal (a padding mask
instead), and LayerNorm sits after each residual sum ("post-LN") instead of before each branch.
GELU is the exact one, GELU(x) = x Φ(x) with Φ the standard normal CDF (erf), not GPT-2's tanh fit.

A sentence embedding pools the last layer's token vectors into one (mean over real tokens, or
the [CLS] token's vector) and scales it to length 1, so a dot product is a cosine similarity.

Parameter names are Hugging Face's `BertModel` names (`encoder.layer.0.attention.self.query`),
so loading a BERT checkpoint folder (`from_pretrained`) is a direct copy.
"""

import os
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from fromscratch.attention import padding_mask, scaled_dot_product_attention
from fromscratch.errors import UserError
from fromscratch.folders import (
    CONFIG,
    WEIGHTS,
    load_state,
    read_config,
    read_tensors,
    write_json,
    write_tensors,
)


# ---------------------------------------------------------------------------------------------
# Configuration: the fields of a Hugging Face BERT config.json
# ---------------------------------------------------------------------------------------------
@dataclass
class BertConfig:
    vocab_size: int = 30522  # BERT's uncased WordPiece vocabulary
    hidden_size: int = 768  # C
    num_hidden_layers: int = 12  # L
    num_attention_heads: int = 12  # H
    intermediate_size: int = 3072  # the FFN's hidden width, 4C
    max_position_embeddings: int = 512  # the longest sequence the model reads
    type_vocab_size: int = 2  # segment ids: sentence A = 0, sentence B = 1
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1  # embeddings and residual branches, in training mode only
    attention_probs_dropout_prob: float = 0.1  # attention weights, in training mode only
    pad_token_id: int = 0

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            if getattr(self, name) < 1:
                raise UserError(f"BertConfig.{name} must be a positive integer")
        if self.hidden_size % self.num_attention_heads != 0:
            raise UserError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})"
            )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise UserError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    def to_hf(self) -> dict:
        """This config as a Hugging Face BERT `config.json` dictionary."""
        ours = {f.name: getattr(self, f.name) for f in fields(self)}
        return {
            "model_type": "bert",
            "architectures": ["BertModel"],
            "hidden_act": "gelu",
            "position_embedding_type": "absolute",
            "initializer_range": 0.02,
            **ours,
        }

    @classmethod
    def from_hf(cls, hf: dict) -> "BertConfig":
        """Read a Hugging Face BERT `config.json` dictionary; refuse anything we can't run."""
        if hf.get("model_type", "bert") != "bert":
            raise UserError(f"config.json has model_type {hf.get('model_type')!r}; expected 'bert'")
        needed = {"hidden_act": "gelu", "position_embedding_type": "absolute"}
        for key, value in needed.items():
            if hf.get(key, value) != value:
                raise UserError(f"config.json sets {key}={hf[key]!r}; only {value!r} is supported")
        if hf.get("is_decoder") or hf.get("add_cross_attention"):
            raise UserError("config.json describes a BERT decoder; only the encoder is supported")
        return cls(**{f.name: hf[f.name] for f in fields(cls) if hf.get(f.name) is not None})


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------
class BertEmbeddings(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        C = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, C, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, C)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, C)
        self.LayerNorm = nn.LayerNorm(C, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids):
        T = input_ids.shape[1]
        pos = torch.arange(T, device=input_ids.device)  # (T,)
        x = (
            self.word_embeddings(input_ids)  # (B, T, C)
            + self.position_embeddings(pos)  # (T, C), the same for every row
            + self.token_type_embeddings(token_type_ids)  # (B, T, C)
        )
        return self.dropout(self.LayerNorm(x))  # (B, T, C)


class BertSelfAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        C = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.query = nn.Linear(C, C)
        self.key = nn.Linear(C, C)
        self.value = nn.Linear(C, C)
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(self, x, mask, fast):
        B, T, C = x.shape
        H, D = self.num_heads, C // self.num_heads

        def heads(t):  # (B, T, C) -> (B, H, T, D)
            return t.view(B, T, H, D).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        dropout_p = self.dropout_p if self.training else 0.0
        # y = softmax(q kᵀ / √D + M) v, with M = -∞ at padded keys only: no causal mask
        y = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=dropout_p, fast=fast)
        return y.transpose(1, 2).reshape(B, T, C)  # heads side by side again: (B, T, C)


class BertOutput(nn.Module):
    """A branch's output projection back to C wide, then the residual sum and LayerNorm (post-LN).

    Used twice per layer: after attention (input C wide) and after the FFN (input 4C wide).
    """

    def __init__(self, config: BertConfig, in_features: int):
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, branch, x):
        return self.LayerNorm(x + self.dropout(self.dense(branch)))  # LN(x + branch(x))


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertOutput(config, config.hidden_size)

    def forward(self, x, mask, fast):
        return self.output(self.self(x, mask, fast), x)  # LN_1(x + Attention(x)): (B, T, C)


class BertIntermediate(nn.Module):
    """The FFN's first half: x W_1 + b_1 (4C wide), then the exact GELU."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, x):
        return F.gelu(self.dense(x))  # GELU(x) = x Φ(x) = x (1 + erf(x / √2)) / 2


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config, config.intermediate_size)

    def forward(self, x, mask, fast):
        x = self.attention(x, mask, fast)  # (B, T, C)
        return self.output(self.intermediate(x), x)  # LN_2(x + FFN(x)): (B, T, C)


class BertEncoder(nn.Module):
    """The stack of L layers (a container, so the parameter names match the checkpoint's)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))


class BertPooler(nn.Module):
    """BERT's next-sentence head input: tanh(W h_[CLS] + b). Only some checkpoints have it."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden):
        return torch.tanh(self.dense(hidden[:, 0]))  # (B, C)


class BertModel(nn.Module):
    """The BERT encoder: token ids (B, T) -> contextual token vectors (B, T, C).

    add_pooling_layer: also build `pooler` (tanh(W h_[CLS] + b)), as Google's BERT checkpoints
    have; sentence-embedding checkpoints such as MiniLM do not. `from_pretrained` decides it from
    the file.
    """

    def __init__(self, config: BertConfig, *, add_pooling_layer: bool = False):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        """BERT's initialization: N(0, 0.02²) weights, zero biases, LayerNorm = identity."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            nn.init.zeros_(module.weight[module.padding_idx])

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        *,
        fast: bool = True,
        all_layers: bool = False,
    ):
        """Contextual vectors (B, T, C) for `input_ids` (B, T).

        attention_mask: (B, T), 1 = real token, 0 = padding (default: all real). Padded keys get
            no attention; padded positions still get vectors, which pooling must ignore.
        token_type_ids: (B, T), 0 = first sentence, 1 = second (default: all 0).
        fast: fused attention kernel (True) or the written-out einsum path (False): same numbers.
        all_layers: return the list of L + 1 tensors (B, T, C): the embeddings, then each layer.
        """
        if input_ids.dim() != 2:
            raise UserError(f"input_ids must be (batch, time), got shape {tuple(input_ids.shape)}")
        T = input_ids.shape[1]
        if T > self.config.max_position_embeddings:
            raise UserError(
                f"sequence of {T} tokens is longer than the model's "
                f"{self.config.max_position_embeddings} positions; truncate it"
            )
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        # No padding anywhere (say, a batch of equal lengths): no mask, the fastest kernel.
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            mask = padding_mask(attention_mask)  # (B, 1, 1, T), True at real tokens

        x = self.embeddings(input_ids, token_type_ids)  # (B, T, C)
        layers = [x]
        for layer in self.encoder.layer:
            x = layer(x, mask, fast)  # (B, T, C)
            layers.append(x)
        return layers if all_layers else x

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -----------------------------------------------------------------------------------------
    # Hugging Face BERT checkpoints
    # -----------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "BertModel":
        """Load a Hugging Face BERT folder (config.json + model.safetensors or pytorch_model.bin),
        in eval mode with float32 weights.

        Works for `BertModel` folders and for the encoder inside `BertFor...` task models (their
        `bert.` prefix is stripped and the task head is left out).
        """
        folder = Path(path).expanduser()
        config = BertConfig.from_hf(read_config(folder, advice="give a BERT model folder"))
        state = checkpoint_to_ours(_read_weights(folder))
        with torch.device("meta"):  # shapes only: no memory, no random init
            model = cls(config, add_pooling_layer="pooler.dense.weight" in state)
        load_state(model, state, folder, assign=True)
        return model.eval()

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Write config.json + model.safetensors in Hugging Face BertModel's layout, atomically.

        `transformers.BertModel.from_pretrained(path)` loads the folder.
        """
        folder = Path(path)
        write_tensors(folder / WEIGHTS, self.state_dict(), {"format": "pt"})
        write_json(folder / CONFIG, self.config.to_hf())


# ---------------------------------------------------------------------------------------------
# Checkpoint layout: Hugging Face BERT -> ours (the names are the same)
# ---------------------------------------------------------------------------------------------
# Three kinds of keys need care:
#  1. `BertFor...` task models prefix the encoder with "bert." and add their head ("cls.",
#     "classifier.", "qa_outputs."): strip the prefix, leave the head out.
#  2. Legacy buffers, not weights: "embeddings.position_ids" (just 0..511) — skip.
#  3. Files converted from TensorFlow name LayerNorm's weight/bias "gamma"/"beta".
LEGACY_BUFFERS = ("embeddings.position_ids",)
TF_NAMES = {".gamma": ".weight", ".beta": ".bias"}


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """model.safetensors, or else the pytorch_model.bin that older BERT folders have."""
    bin_path = folder / "pytorch_model.bin"
    if (folder / WEIGHTS).is_file() or not bin_path.is_file():
        return read_tensors(folder / WEIGHTS, advice="give a BERT folder with model.safetensors "
                            "or pytorch_model.bin")
    try:  # weights_only: tensors and plain containers only, never arbitrary pickled code
        return torch.load(bin_path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as err:
        raise UserError(f"cannot read {bin_path} ({err}): the file is damaged or incomplete; "
                        "download it again") from err


def checkpoint_to_ours(hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our names for a Hugging Face BERT state dict (`BertModel` or `BertFor...`)."""
    has_prefix = any(key.startswith("bert.") for key in hf_state)
    state = {}
    for key, tensor in hf_state.items():
        if has_prefix:
            if not key.startswith("bert."):
                continue  # a task head: not part of the encoder
            key = key.removeprefix("bert.")
        if key in LEGACY_BUFFERS:
            continue
        for old, new in TF_NAMES.items():
            if key.endswith(old):
                key = key.removesuffix(old) + new
        state[key] = tensor
    return state


# ---------------------------------------------------------------------------------------------
# Pooling: token vectors (B, T, C) -> one vector per sequence (B, C)
# ---------------------------------------------------------------------------------------------
def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the real tokens' vectors: Σ_t m_t h_t / Σ_t m_t, padding left out."""
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)  # (B, C)


def cls_pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The vector of the first token, [CLS] (B, C)."""
    return hidden[:, 0]


POOLINGS = {"mean": mean_pool, "cls": cls_pool}


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Scale each row to unit length: x / max(‖x‖, 1e-12). Then x·y = cos(x, y)."""
    return x / x.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def cosine_scores(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """(Nq, Nk) cosine similarities between rows of `queries` (Nq, C) and `keys` (Nk, C)."""
    return normalize(queries) @ normalize(keys).T


# ---------------------------------------------------------------------------------------------
# Sentence embeddings: texts -> unit vectors (N, C)
# ---------------------------------------------------------------------------------------------
class SentenceEncoder:
    """Tokenizer + BertModel + pooling + normalization: one unit vector per text.

    The embedding of a text does not depend on the batch it was encoded in: padding is masked
    out of attention and of the mean. So `encode` is free to regroup the texts into batches of
    similar length (less padding, less wasted work) and put the rows back in order afterwards.
    """

    def __init__(self, model: BertModel, tokenizer, *, pooling: str = "mean",
                 max_length: int | None = None, normalize: bool = True):
        if pooling not in POOLINGS:
            raise UserError(f"unknown pooling {pooling!r}; choose one of: {', '.join(POOLINGS)}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.max_length = max_length or model.config.max_position_embeddings
        self.normalize = normalize

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "SentenceEncoder":
        """Load a BERT folder with its vocab.txt; a sentence-transformers folder (such as
        all-MiniLM-L6-v2) also says its pooling (1_Pooling/config.json) and the longest input
        (sentence_bert_config.json)."""
        from fromscratch.tokenizers.wordpiece import WordPieceTokenizer

        folder = Path(path).expanduser()
        model = BertModel.from_pretrained(folder)
        tokenizer = WordPieceTokenizer.from_vocab(folder)
        pooling_config = _read_optional_json(folder, "1_Pooling/config.json")
        pooling = "cls" if pooling_config.get("pooling_mode_cls_token") else "mean"
        max_length = _read_optional_json(folder, "sentence_bert_config.json").get("max_seq_length")
        return cls(model, tokenizer, pooling=pooling, max_length=max_length)

    @property
    def dim(self) -> int:
        return self.model.config.hidden_size

    @torch.inference_mode()
    def encode(self, texts: list[str], batch_size: int = 32, *, sort_by_length: bool = True,
               progress: bool = False) -> torch.Tensor:
        """Embeddings (N, C) of N texts, unit length when `normalize`, in the order given.

        sort_by_length: encode the texts shortest first, so that each batch pads only to a
        length close to its own (the result is the same, only faster).
        """
        if isinstance(texts, str):
            raise UserError("encode takes a list of texts; wrap a single text in a list")
        if batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {batch_size}")
        encoded = [self.tokenizer.encode(t, max_length=self.max_length)[0] for t in texts]
        order = list(range(len(texts)))
        if sort_by_length:
            order.sort(key=lambda i: len(encoded[i]))
        device = next(self.model.parameters()).device
        out = torch.empty(len(texts), self.dim, device=device)
        starts = range(0, len(texts), batch_size)
        for start in tqdm(starts, desc="encoding", unit="batch", disable=not progress):
            rows = order[start : start + batch_size]
            ids, mask = _pad([encoded[i] for i in rows], self.tokenizer.pad_id, device)
            hidden = self.model(ids, mask)  # (b, T, C)
            pooled = POOLINGS[self.pooling](hidden, mask)  # (b, C)
            out[rows] = normalize(pooled) if self.normalize else pooled
        return out


def _pad(sequences: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention_mask), each (b, T) with T the longest sequence; padding on the right."""
    T = max(map(len, sequences))
    ids = torch.tensor([s + [pad_id] * (T - len(s)) for s in sequences], device=device)
    mask = torch.tensor([[1] * len(s) + [0] * (T - len(s)) for s in sequences], device=device)
    return ids, mask


def _read_optional_json(folder: Path, name: str) -> dict:
    """`folder`/`name` as a dict; {} when the folder has no such file (a plain BERT folder)."""
    return read_config(folder, name) if (folder / name).is_file() else {}

