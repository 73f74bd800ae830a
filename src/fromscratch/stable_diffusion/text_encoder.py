"""Text encoders for text-to-image: token ids → contextual embeddings c (B, T, D).

The UNet never sees words, only the vectors a text encoder makes of them; its cross-attention
layers let every pixel pick the words it needs (notebooks/19_cross_attention.py). Two encoders:

CLIPTextModel: the text half of CLIP (Radford et al. 2021), Stable Diffusion v1's encoder. A
GPT-style transformer (pre-norm blocks, causal mask: token i sees tokens ≤ i) with learned
positions, "quick GELU" x·σ(1.702x) in the MLP, and a final LayerNorm. Its output at every
position is the context of the UNet; the vector at the end-of-text token, which has seen the
whole prompt, is the pooled sentence embedding CLIP trains to match images. Weights load from a
Hugging Face `CLIPTextModel` folder.

BertTextEncoder: our BERT/MiniLM (bert.py) as the contextual encoder: bidirectional, every token
sees the whole prompt, padding masked out. Small and pretrained, it suits a text-to-image model
trained from scratch on a small data set.
"""

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fromscratch.attention import MultiHeadAttention
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

ACTIVATIONS = {
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),  # CLIP's fast approximation of GELU
    "gelu": F.gelu,
}
LEGACY_EOS_ID = 2  # configs written before transformers fixed eos_token_id say 2 (see pooled)


@dataclass
class CLIPTextConfig:
    """Sizes of the text transformer; the defaults are CLIP ViT-L/14's (Stable Diffusion v1)."""

    vocab_size: int = 49408
    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    max_position_embeddings: int = 77
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    eos_token_id: int = 49407
    bos_token_id: int = 49406
    pad_token_id: int = 1

    def __post_init__(self):
        if self.hidden_act not in ACTIVATIONS:
            raise UserError(f"text encoder hidden_act {self.hidden_act!r} is not supported: use "
                            f"{' or '.join(ACTIVATIONS)}")


class CLIPEmbeddings(nn.Module):
    def __init__(self, config: CLIPTextConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embedding = nn.Embedding(config.max_position_embeddings, config.hidden_size)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (T,)
        return self.token_embedding(input_ids) + self.position_embedding(positions)  # (B, T, C)


class CLIPMLP(nn.Module):
    def __init__(self, config: CLIPTextConfig):
        super().__init__()
        self.activation = ACTIVATIONS[config.hidden_act]
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation(self.fc1(x)))


class CLIPEncoderLayer(nn.Module):
    """x = x + Attn(LN(x)) with a causal mask;  x = x + MLP(LN(x))."""

    def __init__(self, config: CLIPTextConfig):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.self_attn = MultiHeadAttention(config.hidden_size, config.num_attention_heads,
                                            fast=True)
        self.layer_norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = CLIPMLP(config)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x), causal=True, key_padding_mask=key_padding_mask)
        return x + self.mlp(self.layer_norm2(x))


class CLIPEncoder(nn.Module):
    def __init__(self, config: CLIPTextConfig):
        super().__init__()
        self.layers = nn.ModuleList([CLIPEncoderLayer(config)
                                     for _ in range(config.num_hidden_layers)])


class CLIPTextModel(nn.Module):
    """Token ids (B, T) → (last hidden states (B, T, C), pooled (B, C))."""

    def __init__(self, config: CLIPTextConfig):
        super().__init__()
        self.config = config
        self.embeddings = CLIPEmbeddings(config)
        self.encoder = CLIPEncoder(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """attention_mask: optional (B, T), 1 = real token, 0 = padding. Stable Diffusion passes
        none: padding (end-of-text tokens) sits after the prompt, so the causal mask already keeps
        every prompt token from seeing it."""
        key_padding_mask = None if attention_mask is None else attention_mask == 0
        x = self.embeddings(input_ids)  # (B, T, C)
        for layer in self.encoder.layers:
            x = layer(x, key_padding_mask)
        hidden = self.final_layer_norm(x)  # (B, T, C)
        return hidden, self.pooled(hidden, input_ids)

    def pooled(self, hidden: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """The hidden state at the end-of-text token, the first token to have seen the whole text.

        It is found as the first position holding `eos_token_id`; configs that say
        eos_token_id = 2 (written before this was fixed) find it as the largest id instead, which
        is right for CLIP's vocabulary, where <|endoftext|> is the last id.
        """
        if self.config.eos_token_id == LEGACY_EOS_ID:
            positions = input_ids.argmax(dim=-1)  # (B,)
        else:
            positions = (input_ids == self.config.eos_token_id).int().argmax(dim=-1)  # first
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), positions]  # (B, C)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "CLIPTextModel":
        """Read a Hugging Face `CLIPTextModel` folder (config.json + model.safetensors)."""
        folder = Path(path)
        advice = "give a transformers CLIPTextModel folder (as save_pretrained writes)"
        cfg = read_config(folder, advice=advice)
        names = CLIPTextConfig.__dataclass_fields__
        model = cls(CLIPTextConfig(**{k: v for k, v in cfg.items() if k in names}))
        state = {k.removeprefix("text_model."): v for k, v in
                 read_tensors(folder / WEIGHTS, advice=advice).items()}
        state.pop("embeddings.position_ids", None)  # a buffer of 0..T-1 in older files
        load_state(model, state, folder)
        return model.eval()

    def save_pretrained(self, path: str | Path) -> None:
        """Write a folder `transformers.CLIPTextModel.from_pretrained` reads."""
        folder = Path(path)
        tensors = {f"text_model.{k}": v for k, v in self.state_dict().items()}
        write_tensors(folder / WEIGHTS, tensors, metadata={"format": "pt"})
        write_json(folder / CONFIG, {"architectures": ["CLIPTextModel"],
                                     "model_type": "clip_text_model", **self.config.__dict__})


class BertTextEncoder(nn.Module):
    """Our BERT (or MiniLM) as a text-to-image model's contextual encoder.

    `encode(prompts)` → (hidden states (B, T, D), attention_mask (B, T)): BERT's last layer, one
    vector per WordPiece token, every token having seen the whole prompt; the mask (1 = real
    token) goes to the UNet so its cross-attention ignores padding. Prompts are padded to
    `max_length` tokens, so a batch of prompts and the empty prompt stack into one tensor.
    """

    def __init__(self, bert, tokenizer, max_length: int = 32):
        super().__init__()
        self.bert = bert
        self.tokenizer = tokenizer
        self.max_length = max_length

    @property
    def hidden_size(self) -> int:
        return self.bert.config.hidden_size

    @classmethod
    def from_pretrained(cls, path: str | Path, max_length: int = 32) -> "BertTextEncoder":
        """A BERT or sentence-transformers folder with its vocab.txt (e.g. MiniLM)."""
        from fromscratch.language.bert import BertModel
        from fromscratch.tokenizers import WordPieceTokenizer

        return cls(BertModel.from_pretrained(path), WordPieceTokenizer.from_vocab(Path(path)),
                   max_length)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.bert(input_ids, attention_mask=attention_mask)  # (B, T, D)

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.tokenizer(list(prompts), max_length=self.max_length, pad_to=self.max_length)
        device = next(self.bert.parameters()).device
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        return self(ids, mask), mask


class CLIPPromptEncoder(nn.Module):
    """CLIP tokenizer + CLIPTextModel: `encode(prompts)` → (hidden states (B, 77, C), None).

    As in Stable Diffusion, every prompt is padded to 77 tokens and the UNet attends to all 77
    (no mask: the padding's states, which have seen the whole prompt, carry its meaning too).
    """

    def __init__(self, model: CLIPTextModel, tokenizer):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, None]:
        ids = self.tokenizer(list(prompts))["input_ids"]
        ids = ids.to(next(self.model.parameters()).device)
        return self.model(ids)[0], None
