"""Image GPT: patch tokens by hand, the likelihood in bits per dimension, sampling with the KV
cache = greedy recomputation, never a class token drawn, a handful of digits memorised."""

import math

import pytest
import torch

from fromscratch.beyond.imagegpt import ImageGPT, ImageGPTConfig, ImageTokenizer
from fromscratch.errors import UserError

TINY = dict(n_layer=1, n_head=2, n_embd=32)


def test_a_patch_is_four_bits_in_raster_order():
    tokenizer = ImageTokenizer()
    x = torch.zeros(4, 1, 28, 28)
    x[1, :, 0:2, 2:4] = 1.0  # pooled pixel (0, 1): bit 1 of patch 0
    x[2, :, 2:4, 0:2] = 1.0  # pooled pixel (1, 0): bit 2 of patch 0
    x[3, :, 4:6, 26:28] = 0.6  # pooled pixel (2, 13): bit 1 of patch (1, 6) = token 13
    ids = tokenizer.encode(x)
    assert ids.shape == (4, 49) and (tokenizer.vocab_size, tokenizer.num_tokens) == (16, 49)
    assert ids[0].sum() == 0
    assert ids[1, 0] == 2 and ids[1, 1:].sum() == 0
    assert ids[2, 0] == 4 and ids[2, 1:].sum() == 0
    assert ids[3, 13] == 2 and ids[3].sum() == 2


def test_decode_inverts_encode_on_the_binarized_image():
    tokenizer = ImageTokenizer()
    x = torch.rand(5, 1, 28, 28)
    assert torch.equal(tokenizer.decode(tokenizer.encode(x)), tokenizer.binarize(x))
    full = tokenizer.to_full_size(tokenizer.encode(x))
    assert full.shape == (5, 1, 28, 28)
    assert torch.equal(full[:, :, ::2, ::2], tokenizer.binarize(x))
    with pytest.raises(UserError, match="must have 1 channel"):
        tokenizer.encode(torch.rand(1, 3, 28, 28))


def test_loss_at_initialisation_is_about_ln_vocabulary():
    torch.manual_seed(0)
    model = ImageGPT(ImageGPTConfig(**TINY))
    x, labels = torch.rand(32, 1, 28, 28), torch.randint(0, 10, (32,))
    assert abs(model.loss((x, labels)).item() - math.log(16 + 10)) < 0.1


def test_bits_per_dim_is_total_nll_in_bits_over_pixels():
    torch.manual_seed(0)
    model = ImageGPT(ImageGPTConfig(**TINY)).eval()
    x, labels = torch.rand(6, 1, 28, 28), torch.randint(0, 10, (6,))
    ids = model.tokenizer.encode(x)
    sequence = torch.cat([16 + labels[:, None], ids], dim=1)
    log_probs = torch.log_softmax(model.gpt(sequence), -1)  # (B, 50, V)
    by_hand = -sum(log_probs[b, n, ids[b, n]] for b in range(6) for n in range(49))
    expected = by_hand.item() / math.log(2) / (6 * 196)
    assert model.bits_per_dim(x, labels, batch_size=4) == pytest.approx(expected, rel=1e-5)


def test_greedy_sampling_with_the_cache_equals_recomputation_and_skips_class_tokens():
    torch.manual_seed(0)
    model = ImageGPT(ImageGPTConfig(**TINY)).eval()
    with torch.no_grad():
        model.gpt.transformer.wte.weight[16:] *= 30  # make class tokens tempting
    labels = torch.tensor([3, 7])
    ids = model.sample(labels, temperature=0)
    assert ids.shape == (2, 49) and int(ids.max()) < 16
    sequence = torch.cat([16 + labels[:, None], ids], dim=1)
    logits = model.gpt(sequence)[:, :-1, :16]  # image tokens only
    assert torch.equal(logits.argmax(-1), ids)


def test_sampling_is_reproducible_with_a_generator_and_checks_labels():
    torch.manual_seed(0)
    model = ImageGPT(ImageGPTConfig(**TINY))
    labels = torch.arange(4)
    first = model.sample(labels, generator=torch.Generator().manual_seed(1))
    again = model.sample(labels, generator=torch.Generator().manual_seed(1))
    assert torch.equal(first, again) and model.training  # the mode is restored
    with pytest.raises(UserError, match="digits 0..9"):
        model.sample(torch.tensor([10]))


def test_a_handful_of_digits_is_memorised_and_saved(tmp_path):
    torch.manual_seed(0)
    model = ImageGPT(ImageGPTConfig(n_layer=1, n_head=2, n_embd=48))
    x, labels = torch.rand(2, 1, 28, 28), torch.tensor([3, 8])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):
        optimizer.zero_grad()
        model.loss((x, labels)).backward()
        optimizer.step()
    assert model.bits_per_dim(x, labels) < 0.05  # random images would cost 1 bit per pixel
    assert torch.equal(model.sample(labels, temperature=0), model.tokenizer.encode(x))

    model.save_pretrained(tmp_path / "run")
    loaded = ImageGPT.from_pretrained(tmp_path / "run")
    assert loaded.config == model.config
    assert loaded.bits_per_dim(x, labels) == pytest.approx(model.bits_per_dim(x, labels))
    with pytest.raises(UserError, match="no imagegpt.json"):
        ImageGPT.from_pretrained(tmp_path)
