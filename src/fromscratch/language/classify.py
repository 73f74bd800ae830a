"""Text classification with a pretrained BERT: a head, fine-tuning (full or LoRA), a linear probe.

Four ways to turn a pretrained encoder into a classifier, from cheapest to dearest:

    zero-shot      no training: the class whose description embeds closest (bert.py)
    linear probe   the encoder frozen; logistic regression on its pooled vectors
    LoRA           the encoder frozen; low-rank adapters (lora.py) + the head trained
    full           every weight trained

The classifier (`BertClassifier`) is the encoder, one pooled vector per text (mean of the real
tokens, or the [CLS] token), dropout and one linear layer:

    h = pool(BERT(ids))                 (B, C)
    logits = W dropout(h) + b           (B, K) for K classes
    loss = −mean_i log softmax(logits_i)[y_i]

`finetune` trains it with the shared loop (`train.train`) and `save_classifier` writes a folder
that `load_classifier` reads back without the training data:

    config.json              BERT's config + "id2label", "label2id", "pooling", "max_length",
                             "base_model" (the encoder's folder, for LoRA runs; else null)
    model.safetensors        full fine-tuning: the encoder ("bert.*") and the head
                             ("classifier.*"), Hugging Face BertForSequenceClassification names
    adapter_config.json      LoRA: the adapters alone (peft's layout, see lora.py) ...
    adapter_model.safetensors
    head.safetensors         ... and the head
    vocab.txt, tokenizer_config.json
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fromscratch.data.tables import LabeledTexts
from fromscratch.errors import UserError
from fromscratch.folders import (
    CONFIG,
    WEIGHTS,
    load_state,
    read_config,
    read_tensors,
    write_json,
    write_tensors,
)
from fromscratch.language.bert import POOLINGS, BertModel
from fromscratch.language.lora import (
    add_lora,
    load_adapters,
    mark_only_lora_trainable,
    merge_lora,
    save_adapters,
)
from fromscratch.modes import evaluating
from fromscratch.seeds import BATCH, micro_batch_seed
from fromscratch.training.loop import TrainConfig, TrainResult, train

HEAD_FILE = "head.safetensors"


class BertClassifier(nn.Module):
    """BERT → pooled vector → dropout → linear: logits (B, K) for K classes."""

    def __init__(self, bert: BertModel, num_labels: int, *, pooling: str = "mean",
                 dropout: float = 0.1):
        super().__init__()
        if pooling not in POOLINGS:
            raise UserError(f"unknown pooling {pooling!r}; use one of {', '.join(POOLINGS)}")
        if num_labels < 2:
            raise UserError(f"a classifier needs at least two classes, got {num_labels}")
        self.bert = bert
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(bert.config.hidden_size, num_labels)
        nn.init.normal_(self.classifier.weight, std=0.02)  # BERT's init for a new layer
        nn.init.zeros_(self.classifier.bias)

    def embed(self, input_ids, attention_mask=None, token_type_ids=None) -> torch.Tensor:
        """The pooled vector h (B, C) of each text."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.bert(input_ids, attention_mask, token_type_ids)  # (B, T, C)
        return POOLINGS[self.pooling](hidden, attention_mask)  # (B, C)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> torch.Tensor:
        h = self.embed(input_ids, attention_mask, token_type_ids)  # (B, C)
        return self.classifier(self.dropout(h))  # (B, K)

    def loss(self, batch: dict) -> torch.Tensor:
        """Mean cross-entropy of batch["labels"] (B,): the training loop's protocol."""
        logits = self(batch["input_ids"], batch["attention_mask"])
        return F.cross_entropy(logits, batch["labels"])


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------
def pad_batch(ids: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Token id lists → {"input_ids", "attention_mask"} (B, T), padded on the right to the
    longest of the batch (short texts need no 64 or 128 columns of padding)."""
    T = max(len(row) for row in ids)
    input_ids = torch.full((len(ids), T), pad_id, dtype=torch.long)
    attention_mask = torch.zeros(len(ids), T, dtype=torch.long)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[i, : len(row)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


class ClassificationBatches:
    """`batches(step, micro)` for `train.train`: epochs of shuffled, full batches of texts of
    similar length.

    The texts are tokenized once. Each epoch draws a permutation from a generator seeded with
    micro_batch_seed(seed, epoch, 0, BATCH) (seeds.py; the epoch stands in for the step), cuts
    it into pools of `pool` batches, sorts each pool by length, cuts the pools into batches and
    shuffles the batches. A batch then pads to about its own texts'
    length (SMS: 25 tokens on average, instead of the ~60 of the longest text in a random
    batch), which saves more than half the compute, while the batches stay random.
    Batch number n = step · grad_accum + micro is batch n mod per_epoch of epoch n // per_epoch,
    so a step's data depends on its number alone and a resumed run sees the same batches.
    The texts left over after the last full batch change from epoch to epoch.
    """

    def __init__(self, tokenizer, data: LabeledTexts, batch_size: int, max_length: int,
                 *, grad_accum: int = 1, seed: int = 0, pool: int = 50):
        if len(data) < batch_size:
            raise UserError(f"{len(data)} training examples are fewer than one batch of "
                            f"{batch_size}; lower the batch size or add data")
        self.ids = [tokenizer.encode(text, max_length=max_length)[0] for text in data.texts]
        self.labels = torch.tensor(data.labels, dtype=torch.long)
        self.pad_id = tokenizer.pad_id
        self.batch_size, self.grad_accum, self.seed, self.pool = batch_size, grad_accum, seed, pool
        self.per_epoch = len(data) // batch_size  # batches per epoch
        self._epoch: tuple[int, list[list[int]]] | None = None  # (epoch, its batches), cached

    def steps(self, epochs: float) -> int:
        """Optimizer steps that make `epochs` passes over the data."""
        return max(1, round(epochs * self.per_epoch / self.grad_accum))

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The example indices of each batch of `epoch`, in training order."""
        generator = torch.Generator().manual_seed(micro_batch_seed(self.seed, epoch, 0, BATCH))
        order = torch.randperm(len(self.ids), generator=generator).tolist()
        order = order[: self.per_epoch * self.batch_size]  # full batches only
        size = self.batch_size * self.pool
        batches = []
        for start in range(0, len(order), size):
            pool = sorted(order[start : start + size], key=lambda i: len(self.ids[i]))
            batches += [pool[k : k + self.batch_size] for k in range(0, len(pool),
                                                                    self.batch_size)]
        shuffled = torch.randperm(len(batches), generator=generator).tolist()
        return [batches[i] for i in shuffled]

    def __call__(self, step: int, micro: int = 0) -> dict[str, torch.Tensor]:
        epoch, k = divmod(step * self.grad_accum + micro, self.per_epoch)
        if self._epoch is None or self._epoch[0] != epoch:
            self._epoch = (epoch, self.epoch_batches(epoch))
        rows = self._epoch[1][k]
        batch = pad_batch([self.ids[i] for i in rows], self.pad_id)
        batch["labels"] = self.labels[rows]
        return batch


# ---------------------------------------------------------------------------------------------
# Predictions and metrics
# ---------------------------------------------------------------------------------------------
def predict_logits(model: BertClassifier, tokenizer, texts: list[str], *, max_length: int = 128,
                   batch_size: int = 64, embed: bool = False) -> torch.Tensor:
    """Logits (N, K) of `texts` in eval mode (or the pooled vectors (N, C) if embed=True).

    Texts are batched by length (sorted), so each batch pads only to similar lengths; the rows
    come back in the order of `texts`.
    """
    device = next(model.parameters()).device
    ids = [tokenizer.encode(text, max_length=max_length)[0] for text in texts]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    outputs = []
    with evaluating(model):
        for start in range(0, len(order), batch_size):
            batch = pad_batch([ids[i] for i in order[start : start + batch_size]],
                              tokenizer.pad_id)
            args = (batch["input_ids"].to(device), batch["attention_mask"].to(device))
            outputs.append(model.embed(*args) if embed else model(*args))
    if not outputs:
        return torch.empty(0, model.classifier.out_features)
    result = torch.cat(outputs)
    return result[torch.argsort(torch.tensor(order))]  # back to the input order


def classification_metrics(predicted, labels, positive: int = 1) -> dict[str, float]:
    """Accuracy, and precision / recall / F1 of class `positive` (e.g. spam):

        precision = TP / (TP + FP)    recall = TP / (TP + FN)    F1 = 2 P R / (P + R)

    (0 where a denominator is 0).
    """
    predicted, labels = torch.as_tensor(predicted), torch.as_tensor(labels)
    tp = ((predicted == positive) & (labels == positive)).sum().item()
    fp = ((predicted == positive) & (labels != positive)).sum().item()
    fn = ((predicted != positive) & (labels == positive)).sum().item()
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = (predicted == labels).float().mean().item() if len(labels) else 0.0
    return {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1}


def evaluate_classifier(model: BertClassifier, tokenizer, data: LabeledTexts, *,
                        max_length: int = 128, positive: int = 1) -> dict[str, float]:
    """Loss, accuracy and the F1 of class `positive` over all of `data`."""
    logits = predict_logits(model, tokenizer, data.texts, max_length=max_length)
    labels = torch.tensor(data.labels)
    metrics = classification_metrics(logits.argmax(-1), labels, positive)
    metrics["loss"] = F.cross_entropy(logits, labels).item()
    return metrics


# ---------------------------------------------------------------------------------------------
# Linear probe: logistic regression on frozen vectors
# ---------------------------------------------------------------------------------------------
def fit_linear_probe(features: torch.Tensor, labels, num_labels: int, *,
                     l2: float = 1e-3, max_iter: int = 500) -> nn.Linear:
    """Multinomial logistic regression: the W, b (a Linear C → K) minimizing

        mean_i CE(W x_i + b, y_i) + (l2 / 2) ‖W‖²

    by L-BFGS on the whole data set. The objective is convex, so the answer is the unique
    minimum whatever the start (scikit-learn's LogisticRegression(C) is the same problem with
    l2 = 1 / (C · N)).
    """
    features = features.detach().double()
    labels = torch.as_tensor(labels, dtype=torch.long)
    probe = nn.Linear(features.shape[1], num_labels).double()
    nn.init.zeros_(probe.weight)
    nn.init.zeros_(probe.bias)
    optimizer = torch.optim.LBFGS(probe.parameters(), lr=1.0, max_iter=max_iter,
                                  tolerance_grad=1e-10, tolerance_change=1e-12,
                                  history_size=20, line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        loss = F.cross_entropy(probe(features), labels) + 0.5 * l2 * probe.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    return probe.float()


# ---------------------------------------------------------------------------------------------
# Fine-tuning
# ---------------------------------------------------------------------------------------------
@dataclass
class FinetuneConfig:
    epochs: float = 3.0
    batch_size: int = 32
    lr: float | None = None  # None: 5e-5 for full fine-tuning, 1e-3 with LoRA
    max_length: int = 64  # tokens per text, [CLS] and [SEP] included; longer texts are cut
    pooling: str = "mean"
    dropout: float = 0.1  # before the head
    warmup: float = 0.1  # fraction of the steps with a linearly rising learning rate
    weight_decay: float = 0.01
    lora_rank: int | None = None  # None: full fine-tuning
    lora_alpha: float | None = None  # None: 2 · rank
    # every matrix of every layer: attention's query, key, value and output projection, the
    # FFN's two (not "pooler.dense", which mean pooling never uses)
    lora_targets: list[str] = field(
        default_factory=lambda: ["query", "key", "value", "output.dense", "intermediate.dense"])
    lora_dropout: float = 0.0
    eval_interval: int | None = None  # None: once per epoch
    seed: int = 0
    max_time: float | None = None  # seconds

    def __post_init__(self):
        if self.epochs <= 0:
            raise UserError(f"epochs must be positive, got {self.epochs}")
        if self.batch_size < 1 or self.max_length < 3:
            raise UserError("batch_size must be ≥ 1 and max_length ≥ 3 ([CLS] x [SEP])")
        if self.lr is None:
            self.lr = 1e-3 if self.lora_rank else 5e-5
        if self.lora_rank is not None and self.lora_alpha is None:
            self.lora_alpha = 2.0 * self.lora_rank


@dataclass
class Finetuned:
    model: BertClassifier
    tokenizer: object
    label_names: list[str]
    result: TrainResult
    trainable: int  # parameters trained
    total: int  # parameters in the model
    seconds: float


def load_base(base: str | Path):
    """A pretrained BERT folder → (BertModel, WordPieceTokenizer)."""
    from fromscratch.tokenizers.wordpiece import WordPieceTokenizer

    return BertModel.from_pretrained(base), WordPieceTokenizer.from_vocab(base)


def finetune(base: str | Path, train_data: LabeledTexts, cfg: FinetuneConfig, *,
             val_data: LabeledTexts | None = None, out_dir: str | Path | None = None,
             overwrite: bool = False, progress: bool = True) -> Finetuned:
    """Fine-tune the BERT in folder `base` on `train_data` (all weights, or LoRA adapters).

    val_data: evaluated every eval_interval steps and at the end (val_loss, val_accuracy,
        val_f1 in the log). out_dir: a classifier folder (see the module docstring), plus the
        trainer's log.jsonl, loss.png and checkpoints/.
    """
    began = time.perf_counter()
    torch.manual_seed(cfg.seed)  # the head's initial weights
    bert, tokenizer = load_base(base)
    model = BertClassifier(bert, len(train_data.label_names), pooling=cfg.pooling,
                           dropout=cfg.dropout)
    if cfg.lora_rank is not None:
        generator = torch.Generator().manual_seed(cfg.seed)
        add_lora(bert, cfg.lora_targets, rank=cfg.lora_rank, alpha=cfg.lora_alpha,
                 dropout=cfg.lora_dropout, generator=generator)
        trainable, total = mark_only_lora_trainable(model, also=["classifier."])
    else:
        total = trainable = sum(p.numel() for p in model.parameters())

    batches = ClassificationBatches(tokenizer, train_data, cfg.batch_size, cfg.max_length,
                                    seed=cfg.seed)
    steps = batches.steps(cfg.epochs)
    train_cfg = TrainConfig(
        max_steps=steps, max_time=cfg.max_time, lr=cfg.lr, min_lr=0.0,
        warmup_steps=round(cfg.warmup * steps), weight_decay=cfg.weight_decay,
        betas=(0.9, 0.999), eval_interval=cfg.eval_interval or batches.per_epoch,
        log_interval=max(1, min(20, steps // 10)), checkpoint_interval=steps,
        seed=cfg.seed, progress=progress,
    )
    evaluate = None
    if val_data is not None:
        def evaluate(m):
            metrics = evaluate_classifier(m, tokenizer, val_data, max_length=cfg.max_length)
            return {"val_loss": metrics["loss"], "val_accuracy": metrics["accuracy"],
                    "val_f1": metrics["f1"]}

    base_path = Path(base).resolve() if cfg.lora_rank is not None else None

    def save_model(m, folder):
        save_classifier(m, tokenizer, folder, train_data.label_names,
                        max_length=cfg.max_length, base_model=base_path)

    result = train(model, batches, train_cfg, out_dir=out_dir, evaluate=evaluate,
                   save_model=save_model if out_dir is not None else None, overwrite=overwrite)
    model.eval()
    return Finetuned(model, tokenizer, list(train_data.label_names), result, trainable, total,
                     time.perf_counter() - began)


# ---------------------------------------------------------------------------------------------
# The classifier folder
# ---------------------------------------------------------------------------------------------
def save_classifier(model: BertClassifier, tokenizer, folder: str | Path, label_names: list[str],
                    *, max_length: int, base_model: str | Path | None = None) -> Path:
    """Write `model` (with LoRA: base_model's path + adapters + head) and its tokenizer."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        **model.bert.config.to_hf(),
        "num_labels": len(label_names),
        "id2label": {str(i): name for i, name in enumerate(label_names)},
        "label2id": {name: i for i, name in enumerate(label_names)},
        "pooling": model.pooling,
        "classifier_dropout": model.dropout.p,
        "max_length": max_length,
        "base_model": str(base_model) if base_model is not None else None,
    }
    head = {f"classifier.{k}": v for k, v in model.classifier.state_dict().items()}
    if base_model is not None:
        save_adapters(model.bert, folder)
        write_tensors(folder / HEAD_FILE, head, {"format": "pt"})
    else:
        encoder = {f"bert.{k}": v for k, v in model.bert.state_dict().items()}
        write_tensors(folder / WEIGHTS, {**encoder, **head}, {"format": "pt"})
    write_json(folder / CONFIG, config)
    tokenizer.save(folder)
    return folder


def load_classifier(folder: str | Path) -> tuple[BertClassifier, object, dict]:
    """(model in eval mode, tokenizer, config) from a folder written by `save_classifier`.

    LoRA adapters are merged into the encoder's weights: predictions cost what the base
    model costs.
    """
    from fromscratch.tokenizers.wordpiece import WordPieceTokenizer

    folder = Path(folder)
    config = read_config(folder, advice="give a folder written by bert finetune")
    if "id2label" not in config or "pooling" not in config:
        raise UserError(f"{folder} holds no classifier (config.json has no id2label/pooling): "
                        "give a folder written by bert finetune")
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    base = config.get("base_model")
    if base is not None:
        if not (Path(base) / CONFIG).is_file():
            raise UserError(f"the adapters in {folder} were trained on the model in {base}, "
                            "which is not there any more: put it back or fine-tune again")
        bert = BertModel.from_pretrained(base)
        load_adapters(bert, folder)
        merge_lora(bert)
        weights = folder / HEAD_FILE
    else:
        bert = BertModel.from_pretrained(folder)  # takes the "bert." tensors, leaves the head
        weights = folder / WEIGHTS
    tensors = read_tensors(weights)
    model = BertClassifier(bert, len(labels), pooling=config["pooling"],
                           dropout=config.get("classifier_dropout", 0.0))
    head = {k.removeprefix("classifier."): v for k, v in tensors.items()
            if k.startswith("classifier.")}
    load_state(model.classifier, head, weights, advice="the head and config.json's labels must "
               "come from the same fine-tuning")
    tokenizer = WordPieceTokenizer.from_vocab(folder)
    return model.eval(), tokenizer, {**config, "labels": labels}


def predict(folder: str | Path, texts: list[str]) -> list[tuple[str, float]]:
    """(label, probability) of the most likely class of each text, from a classifier folder."""
    model, tokenizer, config = load_classifier(folder)
    logits = predict_logits(model, tokenizer, texts, max_length=config["max_length"])
    best = logits.softmax(-1).max(-1)
    return [(config["labels"][i], p)
            for i, p in zip(best.indices.tolist(), best.values.tolist(), strict=True)]
