"""Lesson 08's exercise (patch tokens): the reference equals the library's ImageTokenizer, and
each planted mistake gets its hint."""

import torch

from fromscratch.beyond.imagegpt import ImageTokenizer
from fromscratch.exercises import check
from fromscratch.exercises import l08_image_generation_solutions as solutions
from fromscratch.exercises.l07_vision_transformer_solutions import patchify


def test_the_reference_equals_the_library_tokenizer():
    tokenizer = ImageTokenizer()  # on 14 × 14 binary images with 2 × 2 patches
    binary = (torch.rand(3, 1, 14, 14) < 0.5).float()
    expected = tokenizer.encode(binary.repeat_interleave(2, -2).repeat_interleave(2, -1))
    assert torch.equal(solutions.patch_tokens(binary, 2), expected)


def tokens_by_string(binary, P):
    """Bits written as a binary string, first pixel first: the most significant bit."""
    patches = patchify(binary, P).long()
    return torch.tensor([[int("".join(map(str, p.tolist())), 2) for p in image]
                         for image in patches])


def test_patch_tokens_mistakes():
    result = check("patch_tokens", tokens_by_string, seed=0)
    assert not result.ok and result.diagnosis == "msb_first"
    assert "least significant" in result.message
    result = check("patch_tokens", lambda b, P: patchify(b, P).sum(-1).long(), seed=0)
    assert not result.ok and result.diagnosis == "count"
