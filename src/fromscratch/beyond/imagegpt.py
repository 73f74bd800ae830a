"""Autoregressive image generation: our GPT writes MNIST digits one patch token at a time.

An image becomes a short sequence of discrete tokens (`ImageTokenizer`):

    28×28 grey  --2×2 mean-pool-->  14×14  --threshold ½-->  binary 14×14
                --cut into 2×2 patches-->  49 patches, raster order
                --4 bits per patch-->  token = Σ_k bit_k 2^k  in 0..15

and a class-conditional GPT models p(tokens | class) = Π_n p(token_n | class, token_<n):

    sequence = [class token (16 + digit), token_1, ..., token_49]

trained by the cross-entropy of the 49 image tokens (the class token is given). A test image's
negative log-likelihood in bits per dimension is its total NLL in bits divided by the number of
binary pixels it stands for (14 · 14 = 196), an upper bound on how many bits a compressor built
on the model would need per pixel. Sampling: give a class token, draw the 49 tokens one by one.

The model is `gpt.GPT` unchanged; only the tokens differ.
"""

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fromscratch.data.images import NUM_CLASSES, SIDE, check_images
from fromscratch.errors import UserError
from fromscratch.folders import read_config, write_json
from fromscratch.language.gpt import GPT, GPTConfig, KVCache, check_sampling_args, sample_next
from fromscratch.modes import evaluating
from fromscratch.training.recipes import Recipe

# The settings `fromscratch imagegpt train` and the benchmark use; extra: ImageBatches' shifts.
RECIPES: dict[str, Recipe] = {
    "default": Recipe(
        description="a 3 × 96 class-conditional image GPT: 0.193 bits per pixel on MNIST-5k",
        model=dict(n_layer=3, n_head=4, n_embd=96),
        batch_size=64,
        train=dict(max_steps=1500, lr=3e-3, warmup_steps=100, weight_decay=0.1,
                   betas=(0.9, 0.99)),
        extra=dict(max_shift=0.0),
    ),
}


@dataclass
class ImageTokenizer:
    side: int = 14  # images are mean-pooled from 28 × 28 down to side × side
    patch: int = 2  # patch × patch binary pixels per token
    threshold: float = 0.5  # a pooled pixel ≥ threshold is ink (1)

    def __post_init__(self):
        if SIDE % self.side != 0 or self.side % self.patch != 0:
            raise UserError(f"side {self.side} must divide {SIDE} and be divisible by patch "
                            f"{self.patch}")

    @property
    def num_tokens(self) -> int:
        """Tokens per image: (side / patch)²."""
        return (self.side // self.patch) ** 2

    @property
    def vocab_size(self) -> int:
        """Distinct patches: 2^(patch²) binary patterns."""
        return 2 ** (self.patch * self.patch)

    @property
    def pixels_per_token(self) -> int:
        return self.patch * self.patch

    def binarize(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, 1, 28, 28) in [0, 1] -> binary (N, 1, side, side) floats."""
        pooled = F.avg_pool2d(x, SIDE // self.side)  # (N, 1, side, side)
        return (pooled >= self.threshold).float()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, 1, 28, 28) -> token ids (N, num_tokens), int64."""
        binary = self.binarize(check_images(x))  # (N, 1, S, S)
        N, P, G = binary.shape[0], self.patch, self.side // self.patch
        patches = binary.view(N, G, P, G, P).permute(0, 1, 3, 2, 4).reshape(N, G * G, P * P)
        weights = 2 ** torch.arange(P * P)  # bit k of the token = pixel k of the patch
        return (patches.long() * weights).sum(-1)  # (N, G²)

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids (N, num_tokens) -> binary images (N, 1, side, side)."""
        N, P, G = ids.shape[0], self.patch, self.side // self.patch
        bits = (ids[..., None] >> torch.arange(P * P, device=ids.device)) & 1  # (N, G², P²)
        image = bits.view(N, G, G, P, P).permute(0, 1, 3, 2, 4)  # (N, G, P, G, P)
        return image.reshape(N, 1, self.side, self.side).float()

    def to_full_size(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids -> (N, 1, 28, 28) images, each binary pixel repeated as a block."""
        scale = SIDE // self.side
        return self.decode(ids).repeat_interleave(scale, -2).repeat_interleave(scale, -1)


@dataclass
class ImageGPTConfig:
    side: int = 14
    patch: int = 2
    threshold: float = 0.5
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0

    def tokenizer(self) -> ImageTokenizer:
        return ImageTokenizer(self.side, self.patch, self.threshold)

    def gpt_config(self) -> GPTConfig:
        t = self.tokenizer()
        return GPTConfig(vocab_size=t.vocab_size + NUM_CLASSES, block_size=t.num_tokens + 1,
                         n_layer=self.n_layer, n_head=self.n_head, n_embd=self.n_embd,
                         dropout=self.dropout)


class ImageGPT(nn.Module):
    """A class-conditional GPT over image tokens: `loss((images, labels))` for the trainer."""

    def __init__(self, config: ImageGPTConfig, gpt: GPT | None = None):
        super().__init__()
        self.config = config
        self.tokenizer = config.tokenizer()
        self.gpt = gpt if gpt is not None else GPT(config.gpt_config())

    def class_token(self, labels: torch.Tensor) -> torch.Tensor:
        """Digit labels (B,) -> their class token ids (B, 1), after the image tokens."""
        return (self.tokenizer.vocab_size + labels)[:, None]

    def token_nll(self, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """-log p(token_n | class, token_<n) in nats for every token: (B, num_tokens)."""
        sequence = torch.cat([self.class_token(labels), ids], dim=1)  # (B, 1 + N)
        logits = self.gpt(sequence[:, :-1])  # (B, N, V): position n predicts token n
        return F.cross_entropy(logits.transpose(1, 2), ids, reduction="none")  # (B, N)

    def loss(self, batch) -> torch.Tensor:
        """Mean NLL per token of batch = (images (B, 1, 28, 28), labels (B,))."""
        x, labels = batch
        return self.token_nll(self.tokenizer.encode(x), labels).mean()

    def bits_per_dim(self, x: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
        """Mean NLL of images x under the model, in bits per binary pixel:

            bits/dim = Σ_n NLL_n (nats) / ln 2 / (side²)     averaged over the images.
        """
        total = 0.0
        with evaluating(self):
            for i in range(0, len(x), batch_size):
                ids = self.tokenizer.encode(x[i : i + batch_size])
                total += self.token_nll(ids, labels[i : i + batch_size]).sum().item()
        return total / math.log(2) / (len(x) * self.tokenizer.side**2)

    def sample(
        self, labels: torch.Tensor, *, temperature: float = 1.0, top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Token ids (B, num_tokens) of new images of digits `labels` (B,).

        Like `GPT.generate` with a KV cache, except that class tokens are never drawn (their
        logits are set to -∞): every position after the class token is an image token.
        """
        check_sampling_args(temperature, top_k, None)
        if labels.dim() != 1 or (labels < 0).any() or (labels >= NUM_CLASSES).any():
            raise UserError(f"labels must be a 1-D tensor of digits 0..{NUM_CLASSES - 1}")
        n = self.tokenizer.num_tokens
        cache = KVCache(self.gpt.config.n_layer, n + 1)
        tokens = self.class_token(labels.to(next(self.parameters()).device))  # (B, 1)
        with evaluating(self):
            for _ in range(n):
                logits = self.gpt(tokens[:, cache.length :], kv_cache=cache, last_only=True)[:, -1]
                logits[:, self.tokenizer.vocab_size :] = float("-inf")  # no class tokens
                new = sample_next(logits, temperature, top_k, None, generator)  # (B, 1)
                tokens = torch.cat([tokens, new], dim=1)
        return tokens[:, 1:]  # (B, N)

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """The GPT in its usual folder layout, plus imagegpt.json (tokenizer and sizes)."""
        self.gpt.save_pretrained(folder)
        write_json(Path(folder) / "imagegpt.json", asdict(self.config))

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> "ImageGPT":
        settings = read_config(folder, "imagegpt.json",
                               advice="give a folder written by `fromscratch imagegpt train`")
        try:
            config = ImageGPTConfig(**settings)
        except TypeError as err:
            raise UserError(f"{folder}/imagegpt.json is not an ImageGPT config ({err}): train "
                            "the model again") from err
        gpt = GPT.from_pretrained(folder)
        expected = config.gpt_config()
        if (gpt.config.vocab_size, gpt.config.block_size) != (expected.vocab_size,
                                                              expected.block_size):
            raise UserError(f"the GPT in {folder} does not fit its imagegpt.json tokenizer")
        return cls(config, gpt).eval()
