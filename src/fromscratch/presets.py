"""Named training recipes for the GPT track: a model size, a tokenizer and a training schedule.

A recipe is data, not code: `fromscratch gpt train --preset NAME` and the benchmarks read the same
table, so a number in the docs can always be reproduced with one command.
"""

from dataclasses import dataclass, field

from .errors import UserError


@dataclass(frozen=True)
class GPTRecipe:
    description: str
    model: dict  # GPTConfig fields except vocab_size (which the tokenizer decides)
    tokenizer: str  # "char", "gpt2" (GPT-2's real vocabulary) or "bpe:N" (train a BPE of N tokens)
    batch_size: int
    train: dict = field(default_factory=dict)  # TrainConfig fields


RECIPES: dict[str, GPTRecipe] = {
    "demo": GPTRecipe(
        description="a small character-level GPT that learns to spell in a minute on a laptop",
        model=dict(block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False),
        tokenizer="char",
        batch_size=32,
        train=dict(max_steps=2000, lr=3e-3, warmup_steps=50, eval_interval=250),
    ),
    "nanogpt-cpu": GPTRecipe(
        description="nanoGPT's README CPU configuration for character-level Shakespeare (the peer)",
        model=dict(block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False),
        tokenizer="char",
        batch_size=12,
        train=dict(max_steps=2000, lr=1e-3, warmup_steps=100, min_lr=1e-4, eval_interval=250),
    ),
    "shakespeare-char": GPTRecipe(
        description="tuned for 2 CPU cores: character-level Shakespeare, val loss < 1.7 in 5 min",
        model=dict(block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False),
        tokenizer="char",
        batch_size=32,
        train=dict(max_steps=5000, lr=3e-3, warmup_steps=100, eval_interval=500),
    ),
    "gpt2": GPTRecipe(
        description="GPT-2 small (124M parameters) on GPT-2's vocabulary: a GPU recipe",
        model=dict(block_size=1024, n_layer=12, n_head=12, n_embd=768, dropout=0.0, bias=True),
        tokenizer="gpt2",
        batch_size=8,
        train=dict(max_steps=5000, lr=6e-4, warmup_steps=200, grad_accum=8, eval_interval=500),
    ),
}


def get_recipe(name: str) -> GPTRecipe:
    if name not in RECIPES:
        raise UserError(f"unknown preset {name!r}; choose one of: {', '.join(RECIPES)}")
    return RECIPES[name]
