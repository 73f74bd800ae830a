"""Named training recipes for the GPT track: a model size, a tokenizer and a training schedule.

`fromscratch gpt train --recipe NAME` and the benchmarks read this table (`Recipe`s, see
training/recipes.py). A recipe's model settings are GPTConfig's fields except vocab_size, which
the tokenizer decides; extra["tokenizer"] is "char", "gpt2" (GPT-2's real vocabulary) or "bpe:N"
(train a BPE of N tokens).
"""

from fromscratch.training.recipes import Recipe

# Why the tuned recipes look the way they do (docs/benchmarks.md has the sweep): on a CPU a tiny
# model is matmul-bound, so the budget is FLOPs. Two wide layers (C = 192) learn more per FLOP than
# four narrow ones (C = 128); a batch of 64 windows keeps the matmuls efficient; a high peak lr
# (6e-3, stable thanks to pre-LN and clipping) decayed 100x by the end of the cosine does the rest.
RECIPES: dict[str, Recipe] = {
    "demo": Recipe(
        description="a small character-level GPT: letters, spaces and short words in a minute",
        model=dict(block_size=64, n_layer=2, n_head=4, n_embd=192, dropout=0.0, bias=False),
        batch_size=64,
        # about a minute of steps on 2 CPU cores (~5 steps/s), the cosine decayed by its end;
        # the demo stops at 60 s (--max-time 60) on a slower or busier machine
        train=dict(max_steps=300, lr=6e-3, min_lr=6e-5, warmup_steps=30, eval_interval=100),
        extra=dict(tokenizer="char"),
    ),
    "nanogpt-cpu": Recipe(
        description="nanoGPT's README CPU configuration for character-level Shakespeare (the peer)",
        model=dict(block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False),
        batch_size=12,
        train=dict(max_steps=2000, lr=1e-3, min_lr=1e-4, warmup_steps=100, betas=(0.9, 0.99),
                   eval_interval=250),
        extra=dict(tokenizer="char"),
    ),
    "shakespeare-fast": Recipe(
        description="tuned to reach nanoGPT's CPU validation loss (1.886) in the fewest FLOPs",
        model=dict(block_size=64, n_layer=2, n_head=4, n_embd=192, dropout=0.0, bias=False),
        batch_size=64,
        train=dict(max_steps=300, lr=6e-3, min_lr=6e-5, warmup_steps=30, eval_interval=100),
        extra=dict(tokenizer="char"),
    ),
    "shakespeare-char": Recipe(
        description="tuned for 2 CPU cores: character-level Shakespeare, val loss < 1.7 in 5 min",
        model=dict(block_size=64, n_layer=2, n_head=4, n_embd=192, dropout=0.0, bias=False),
        batch_size=64,
        train=dict(max_steps=660, lr=6e-3, min_lr=6e-5, warmup_steps=50, eval_interval=660),
        extra=dict(tokenizer="char"),
    ),
    "gpt2": Recipe(
        description="GPT-2 small (124M parameters) on GPT-2's vocabulary: a GPU recipe",
        model=dict(block_size=1024, n_layer=12, n_head=12, n_embd=768, dropout=0.0, bias=True),
        batch_size=8,
        train=dict(max_steps=5000, lr=6e-4, warmup_steps=200, grad_accum=8, eval_interval=500),
        extra=dict(tokenizer="gpt2"),
    ),
}
