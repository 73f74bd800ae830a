"""Text classification on our BERT: metrics and the linear probe equal scikit-learn's, batches,
the head, fine-tuning (full and LoRA) to a perfect score on a small task, and the classifier
folder read back with identical predictions."""

import json

import pytest
import torch

from fromscratch.data.tables import LabeledTexts
from fromscratch.errors import UserError
from fromscratch.language.bert import BertConfig, BertModel, mean_pool
from fromscratch.language.classify import (
    BertClassifier,
    ClassificationBatches,
    FinetuneConfig,
    classification_metrics,
    evaluate_classifier,
    finetune,
    fit_linear_probe,
    load_classifier,
    pad_batch,
    predict,
    predict_logits,
)
from fromscratch.language.lora import lora_layers
from fromscratch.tokenizers.wordpiece import SPECIAL_TOKENS, WordPieceTokenizer

WORDS = ("free prize call now win cash txt claim urgent offer see you at home later ok "
         "dinner mum love tomorrow meeting thanks lunch").split()
SPAM_WORDS, HAM_WORDS = WORDS[:10], WORDS[10:]


def toy_texts(n, seed):
    """Spam draws its words from SPAM_WORDS, ham from HAM_WORDS: 3 to 9 words each."""
    gen = torch.Generator().manual_seed(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        pool = SPAM_WORDS if label else HAM_WORDS
        length = int(torch.randint(3, 10, (1,), generator=gen))
        picks = torch.randint(0, len(pool), (length,), generator=gen).tolist()
        texts.append(" ".join(pool[j] for j in picks))
        labels.append(label)
    return LabeledTexts(texts, labels, ["ham", "spam"])


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny random BERT folder with a word-level vocabulary: what finetune starts from."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = [*SPECIAL_TOKENS, *WORDS, *"abcdefghijklmnopqrstuvwxyz"]
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=32,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    BertModel(config).save_pretrained(folder)
    WordPieceTokenizer(vocab).save(folder)
    return folder


# ---------------------------------------------------------------------------------------------
# metrics and the linear probe, against scikit-learn
# ---------------------------------------------------------------------------------------------
def test_metrics_equal_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (500,), generator=gen)
    predicted = torch.where(torch.rand(500, generator=gen) < 0.8, labels, 1 - labels)
    ours = classification_metrics(predicted, labels)
    assert ours["accuracy"] == pytest.approx(metrics.accuracy_score(labels, predicted))
    assert ours["precision"] == pytest.approx(metrics.precision_score(labels, predicted))
    assert ours["recall"] == pytest.approx(metrics.recall_score(labels, predicted))
    assert ours["f1"] == pytest.approx(metrics.f1_score(labels, predicted))
    assert classification_metrics([0, 0], [0, 0])["f1"] == 0.0  # no positives: 0, not 0/0


def test_linear_probe_equals_scikit_learn_logistic_regression():
    linear_model = pytest.importorskip("sklearn.linear_model")
    gen = torch.Generator().manual_seed(1)
    N, C, K = 300, 8, 3
    x = torch.randn(N, C, generator=gen)
    y = (x @ torch.randn(C, K, generator=gen) + torch.randn(N, K, generator=gen)).argmax(-1)
    reg = 0.5  # scikit-learn's C: it minimizes C Σ CE + ½‖W‖², ours mean CE + (l2/2)‖W‖²
    probe = fit_linear_probe(x, y, K, l2=1 / (reg * N))
    reference = linear_model.LogisticRegression(C=reg, tol=1e-10, max_iter=10_000).fit(x, y)
    with torch.no_grad():
        ours = probe(x).softmax(-1)
    theirs = torch.tensor(reference.predict_proba(x.numpy()), dtype=torch.float32)
    assert (ours - theirs).abs().max() < 1e-4


# ---------------------------------------------------------------------------------------------
# batches
# ---------------------------------------------------------------------------------------------
def test_pad_batch_pads_right_and_masks():
    batch = pad_batch([[5, 6, 7], [8]], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_classification_batches_cover_each_epoch_once_by_step_number(base):
    tokenizer = WordPieceTokenizer.from_vocab(base)
    data = toy_texts(100, seed=0)
    batches = ClassificationBatches(tokenizer, data, batch_size=8, max_length=16, seed=3, pool=4)
    assert batches.per_epoch == 12 and batches.steps(2.0) == 24
    seen = [tuple(r) for k in range(12) for r in batches.epoch_batches(0)[k:k + 1]]
    rows = [i for batch in seen for i in batch]
    assert len(rows) == len(set(rows)) == 96  # 12 full batches, no example twice
    # a fresh object gives the same batch for the same step, in any order of calls
    again = ClassificationBatches(tokenizer, data, batch_size=8, max_length=16, seed=3, pool=4)
    for step in (17, 3, 12):
        assert torch.equal(batches(step)["input_ids"], again(step)["input_ids"])
    assert not torch.equal(batches(0)["input_ids"], batches(12)["input_ids"])  # next epoch
    first = batches(0)
    ids = [i for i in rows if i in set(batches.epoch_batches(0)[0])]
    assert first["labels"].tolist() == [data.labels[i] for i in batches.epoch_batches(0)[0]]
    assert len(ids) == 8
    # pools sorted by length: a batch pads less than random batches would
    lengths = torch.tensor([len(x) for x in batches.ids], dtype=torch.float)
    padded = sum(batches(k)["input_ids"].numel() for k in range(12))
    assert padded < 12 * 8 * lengths.max()
    with pytest.raises(UserError, match="fewer than one batch"):
        ClassificationBatches(tokenizer, toy_texts(4, 0), batch_size=8, max_length=16)


# ---------------------------------------------------------------------------------------------
# the head
# ---------------------------------------------------------------------------------------------
def test_head_is_linear_on_mean_pooled_vectors_and_ignores_padding(base):
    bert = BertModel.from_pretrained(base)
    model = BertClassifier(bert, 3, pooling="mean").eval()
    ids = torch.tensor([[2, 7, 8, 9, 3], [2, 10, 3, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        logits = model(ids, mask)
        expected = model.classifier(mean_pool(bert(ids, mask), mask))
        alone = model(ids[1:, :3])  # the second text without its padding
    assert torch.allclose(logits, expected, atol=1e-6)
    assert torch.allclose(logits[1:], alone, atol=1e-5)
    with pytest.raises(UserError, match="unknown pooling"):
        BertClassifier(bert, 2, pooling="max")


def test_predict_logits_returns_rows_in_input_order(base):
    model = BertClassifier(BertModel.from_pretrained(base), 2)
    tokenizer = WordPieceTokenizer.from_vocab(base)
    texts = ["free prize call now win cash", "ok", "see you at home later", "mum"]
    together = predict_logits(model, tokenizer, texts, batch_size=3)
    one_by_one = torch.cat([predict_logits(model, tokenizer, [t]) for t in texts])
    assert torch.allclose(together, one_by_one, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# fine-tuning, saving, loading
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lora_rank", [None, 4])
def test_finetune_learns_saves_and_loads_back(base, tmp_path, lora_rank):
    train_data, val_data = toy_texts(160, seed=1), toy_texts(40, seed=2)
    before = BertModel.from_pretrained(base).state_dict()
    cfg = FinetuneConfig(epochs=3, batch_size=16, lr=1e-2 if lora_rank else 1e-3, max_length=16,
                         lora_rank=lora_rank, dropout=0.0, seed=0)
    out = tmp_path / "run"
    tuned = finetune(base, train_data, cfg, val_data=val_data, out_dir=out, progress=False)
    metrics = evaluate_classifier(tuned.model, tuned.tokenizer, val_data, max_length=16)
    assert metrics["accuracy"] == 1.0 and metrics["f1"] == 1.0
    assert tuned.result.last("val_accuracy") == 1.0

    after = tuned.model.bert.state_dict()
    if lora_rank:
        layers = lora_layers(tuned.model.bert)
        per_layer = {n: lora_rank * (m.in_features + m.out_features) for n, m in layers.items()}
        assert tuned.trainable == sum(per_layer.values()) + 32 * 2 + 2  # adapters + head
        for key, value in before.items():  # the encoder's own weights did not move
            assert torch.equal(after[key], value), key
        assert (out / "adapter_model.safetensors").is_file()
        assert not (out / "model.safetensors").exists()
    else:
        assert tuned.trainable == tuned.total
        assert not torch.equal(after["encoder.layer.0.attention.self.query.weight"],
                               before["encoder.layer.0.attention.self.query.weight"])

    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "ham", "1": "spam"}
    model, tokenizer, info = load_classifier(out)
    texts = ["win cash now", "see you for dinner mum", "urgent claim offer", "thanks ok"]
    expected = predict_logits(tuned.model, tuned.tokenizer, texts, max_length=16)
    got = predict_logits(model, tokenizer, texts, max_length=info["max_length"])
    assert (got - expected).abs().max() < 1e-5
    assert [label for label, _ in predict(out, texts)] == ["spam", "ham", "spam", "ham"]


def test_loading_errors(base, tmp_path):
    with pytest.raises(UserError, match="has no config.json"):
        load_classifier(tmp_path)
    with pytest.raises(UserError, match="holds no classifier"):
        load_classifier(base)  # a plain BERT folder
    model = BertClassifier(BertModel.from_pretrained(base), 2)
    from fromscratch.language.classify import save_classifier
    from fromscratch.language.lora import add_lora

    add_lora(model.bert, ["query"], rank=2)
    save_classifier(model, WordPieceTokenizer.from_vocab(base), tmp_path / "c", ["a", "b"],
                    max_length=16, base_model=tmp_path / "moved")
    with pytest.raises(UserError, match="trained on the model in .*moved"):
        load_classifier(tmp_path / "c")
