# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 01 — Tokenization: from characters to GPT-2's byte-level BPE
#
# **Goal.** A language model reads and writes integers, not text. By the end of this lesson you
# will have turned text into integers three ways — one id per character, one id per byte, and
# byte-pair encoding (BPE), the scheme GPT-2 uses — trained a BPE tokenizer in the open, and
# checked it merge for merge against the library's two trainers (a plain one and a fast one).
# Then we load GPT-2's real 50,257-token vocabulary and compare how many tokens each scheme needs.
#
# **Prerequisites.** Python lists, dicts and `collections.Counter`. No machine learning yet.
#
# **Run modes.** `FROMSCRATCH_FAST=1` trains on a small slice of text (CI runs it that way);
# without it, the lesson uses more text and more merges (about a minute on a laptop).

# %%
import os
import time
from collections import Counter

import matplotlib.pyplot as plt

from fromscratch.data.text import load_text, split_train_val
from fromscratch.exercises import check, exercise
from fromscratch.tokenizers import BPETokenizer, CharTokenizer
from fromscratch.tokenizers.bpe import (
    GPT2_SPLIT_PATTERN,
    pretoken_counts,
    train_merges,
    train_merges_simple,
)

FAST = os.environ.get("FROMSCRATCH_FAST") == "1"
TRAIN_CHARS = 30_000 if FAST else 200_000  # text the tokenizers learn from
SIMPLE_MERGES = 60 if FAST else 400  # merges for the in-the-open and plain trainers
FAST_MERGES = 500 if FAST else 3000  # merges for the fast trainer

# %% [markdown]
# Our text is Python's own documentation (it ships with Python, so this works offline). We keep
# the last 10% apart: a tokenizer should be judged on text it was not trained on.

# %%
text = load_text("pydoc")
train_text, val_text = split_train_val(text, 0.9)
train_text = train_text[:TRAIN_CHARS]
val_text = val_text[:20_000]
print(f"{len(text):,} characters in all; training on {len(train_text):,}")
print(train_text[:300])

# %% [markdown]
# ## 1. One token per character
#
# The simplest tokenizer: list the distinct characters of the training text, sorted, and use a
# character's position in that list as its id. Encoding is a lookup, decoding the reverse.

# %%
char_tok = CharTokenizer.train(train_text)
ids = char_tok.encode("def f(x):")
print(f"vocabulary: {char_tok.vocab_size} characters")
print("def f(x): ->", ids)
assert char_tok.decode(ids) == "def f(x):"

# %% [markdown]
# Two problems. The sequences are long (one token per character, so a model must attend over
# many positions to see a few words), and a character absent from training text cannot be
# encoded at all:

# %%
try:
    char_tok.encode("naïve café ☕")
except Exception as error:  # fromscratch.errors.UserError
    print(type(error).__name__, "->", error)

# %% [markdown]
# ## 2. One token per byte
#
# UTF-8 writes every character as 1 to 4 bytes, each a number 0..255. With the 256 byte values
# as the vocabulary, *any* text can be encoded: nothing is ever unknown. But sequences get even
# longer (é is 2 bytes, ☕ is 3).

# %%
for s in ["a", "é", "☕"]:
    print(repr(s), "->", list(s.encode("utf-8")))

# %% [markdown]
# ## 3. Byte-pair encoding: merge the most frequent pair, repeat
#
# BPE starts from bytes and *learns* longer tokens from data:
#
# 1. write the training text as byte ids (0..255);
# 2. count every pair of neighbouring ids;
# 3. give the most frequent pair $(a, b)$ a new id $256 + r$ (the $r$-th merge) and replace it
#    everywhere;
# 4. repeat until the vocabulary has the size you want.
#
# Each merge shortens the training text by the number of times its pair occurred, so the first
# merges, the most frequent pairs, buy the most compression. Encoding new text replays the
# merges in the order they were learned (their *rank*).
#
# GPT-2 adds one rule: the text is first cut into **pre-tokens** — a word with the space before
# it, a number, a run of punctuation — and merges never cross a pre-token boundary. So " the"
# can become one token, but "the cat" never will. Here is GPT-2's regular expression at work:

# %%
print(GPT2_SPLIT_PATTERN.findall("Hello world, it's 2024!  Bye."))

# %% [markdown]
# Since identical pre-tokens merge identically, training only needs each distinct pre-token
# (as a tuple of byte ids) and how often it occurs:

# %%
words = pretoken_counts(train_text)
print(f"{len(words):,} distinct pre-tokens; the most common:")
for word, count in Counter(words).most_common(5):
    print(f"  {bytes(word)!r:>12} x {count}")

# %% [markdown]
# ### Exercise: one merge
#
# Write `bpe_merge(ids, pair, new_id)`: a new list where every occurrence of `pair`, scanning
# left to right, is replaced by `new_id`. Mind overlaps: in `[7, 7, 7]` with pair `(7, 7)` only
# the leftmost pair merges, giving `[new_id, 7]`.
#
# Replace the `raise NotImplementedError` line with your code and run the cell: `check` tries
# your function on random and edge-case inputs and tells you what is wrong, if anything.
# (`@exercise` does nothing to your function, unless the environment variable
# `FROMSCRATCH_SOLUTIONS=1` is set: then it swaps in the reference solution, which is how CI runs
# this lesson top to bottom. Stuck? `fromscratch lessons solution bpe_merge` prints it.)


# %%
@exercise("bpe_merge")
def bpe_merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    # TODO: walk through ids with an index i; when (ids[i], ids[i + 1]) == pair, emit new_id
    # and skip two positions, otherwise emit ids[i] and move one.
    raise NotImplementedError


check("bpe_merge", bpe_merge)

# %% [markdown]
# ### The trainer, in the open
#
# With `bpe_merge` the whole training loop fits in a dozen lines. Ties (two pairs equally
# frequent) go to the smaller pair, so training is deterministic.


# %%
def train_bpe(words: dict[tuple[int, ...], int], num_merges: int) -> list[tuple[int, int]]:
    """Learn num_merges merges from {pre-token as byte ids: count}; merge r creates id 256 + r."""
    words = list(words.items())
    merges = []
    for rank in range(num_merges):
        pair_counts = Counter()
        for word, count in words:
            for pair in zip(word, word[1:], strict=False):  # neighbouring ids
                pair_counts[pair] += count
        best = min(pair_counts, key=lambda pair: (-pair_counts[pair], pair))  # most frequent
        merges.append(best)
        words = [(tuple(bpe_merge(list(word), best, 256 + rank)), count) for word, count in words]
    return merges


start = time.perf_counter()
our_merges = train_bpe(words, SIMPLE_MERGES)
print(f"{SIMPLE_MERGES} merges in {time.perf_counter() - start:.2f} s")

# %% [markdown]
# What did it learn? Each merge's bytes, spelled out (a space shows as ·, a newline as ↵):

# %%
token_bytes = {i: bytes([i]) for i in range(256)}
for rank, (a, b) in enumerate(our_merges):
    token_bytes[256 + rank] = token_bytes[a] + token_bytes[b]
for rank in range(30):
    spelled = token_bytes[256 + rank].decode("utf-8", "replace")
    print(spelled.replace(" ", "·").replace("\n", "↵"), end="  ")
print()

# %% [markdown]
# ### Proof: the same merges as the library's plain and fast trainers
#
# `train_merges_simple` is the library's version of the loop above. `train_merges` gets the same
# result much faster: a merge only changes the words that contain its pair, so it keeps the pair
# counts up to date instead of recounting everything, and finds the most frequent pair with a
# heap.

# %%
start = time.perf_counter()
simple_merges = train_merges_simple(words, SIMPLE_MERGES)
simple_seconds = time.perf_counter() - start
start = time.perf_counter()
fast_merges = train_merges(words, SIMPLE_MERGES)
fast_seconds = time.perf_counter() - start

assert our_merges == simple_merges == fast_merges
print(f"identical {SIMPLE_MERGES} merges; plain trainer {simple_seconds:.2f} s, "
      f"fast trainer {fast_seconds:.3f} s ({simple_seconds / fast_seconds:.0f}x faster)")

# %% [markdown]
# The fast trainer makes a real vocabulary affordable. `BPETokenizer.train` runs it and wraps
# the merges in a tokenizer that encodes and decodes:

# %%
start = time.perf_counter()
bpe = BPETokenizer.train(train_text, vocab_size=256 + FAST_MERGES)
print(f"{FAST_MERGES} merges in {time.perf_counter() - start:.2f} s")
assert bpe.merges[:SIMPLE_MERGES] == our_merges  # the first merges are the ones we found

sample = "def __init__(self, value):\n    return self.value"
sample_ids = bpe.encode(sample)
assert bpe.decode(sample_ids) == sample
print(f"{len(sample)} characters -> {len(sample_ids)} tokens:")
print(" | ".join(repr(bpe.decode([i]))[1:-1] for i in sample_ids))

# %% [markdown]
# ### How much does each merge buy?
#
# Compression is measured as characters per token on the held-out text. A tokenizer using only
# the first $m$ merges is the same vocabulary cut short, so one training run gives the whole
# curve.


# %%
def first_merges(tokenizer: BPETokenizer, m: int) -> BPETokenizer:
    """The tokenizer that the first m merges of `tokenizer` make."""
    vocab = {i: tokenizer.vocab[i] for i in range(256 + m)}
    return BPETokenizer(vocab, tokenizer.merges[:m])


merge_counts = [0, 10, 30, 100, 300, FAST_MERGES // 2, FAST_MERGES]
chars_per_token = [len(val_text) / len(first_merges(bpe, m).encode(val_text)) for m in merge_counts]
bytes_per_char = len(val_text.encode("utf-8")) / len(val_text)
assert abs(chars_per_token[0] - 1 / bytes_per_char) < 1e-9  # no merges: one token per byte

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(merge_counts, chars_per_token, "o-")
ax.set_xscale("symlog", linthresh=10)
ax.set_xlabel("number of merges (vocabulary = 256 + merges)")
ax.set_ylabel("characters per token (held-out text)")
ax.set_title("The first merges buy the most compression")
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ## 4. GPT-2's real vocabulary
#
# OpenAI trained the same algorithm on 40 GB of web text with 50,000 merges (plus one special
# token, `<|endoftext|>`). `BPETokenizer.gpt2()` loads their files. Its ids are GPT-2's own, so
# "Hello world" must come out as the ids every GPT-2 tutorial shows:

# %%
gpt2 = BPETokenizer.gpt2()
print(f"GPT-2 vocabulary: {gpt2.vocab_size:,} tokens")
assert gpt2.encode("Hello world") == [15496, 995]
assert gpt2.encode(" the") == [262]  # one of the first merges: " the" is very common
assert gpt2.encode("<|endoftext|>") == [50256]  # the special token is never split

print(" | ".join(repr(gpt2.decode([i]))[1:-1] for i in gpt2.encode(sample)))

# %% [markdown]
# ### Token counts compared
#
# The same held-out text, in each scheme. Bigger vocabularies give shorter sequences (cheaper
# attention, more text per context window) but a bigger embedding table to learn. GPT-2's
# vocabulary was trained on English web text, not on Python's documentation, which is why our
# small in-domain vocabulary comes close to it (with a few thousand merges, it does better).

# %%
counts = {
    "bytes": len(val_text.encode("utf-8")),
    "characters": len(val_text),
    f"our BPE ({bpe.vocab_size:,})": len(bpe.encode(val_text)),
    f"GPT-2 ({gpt2.vocab_size:,})": len(gpt2.encode(val_text)),
}
for name, n in counts.items():
    print(f"{name:>20}: {n:>6,} tokens ({len(val_text) / n:.2f} characters per token)")
assert counts["characters"] > counts[f"our BPE ({bpe.vocab_size:,})"]

fig, ax = plt.subplots(figsize=(6, 3))
ax.barh(list(counts), list(counts.values()))
ax.set_xlabel(f"tokens for the same {len(val_text):,} characters")
ax.invert_yaxis()
plt.show()

# %% [markdown]
# ## Summary
#
# - A tokenizer maps text to ids and back. Characters are simple but fail on unseen characters;
#   bytes never fail but make long sequences.
# - BPE learns tokens by repeatedly merging the most frequent neighbouring pair; GPT-2 does it
#   on bytes, inside pre-tokens cut by a regular expression.
# - Our in-the-open trainer found exactly the merges of the library's plain and fast trainers;
#   the library's GPT-2 tokenizer reproduces GPT-2's ids (the tests prove it token for token
#   against Hugging Face `tokenizers`).
#
# Next: **Lesson 02**, attention — how a model mixes information between these tokens.
