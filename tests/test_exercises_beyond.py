"""Exercises of lessons 07-09: the reference solutions pass, the library passes them too, and
each planted mistake (written as a learner would, with loops and other ops) gets its hint."""

import pytest
import torch

from fromscratch.beyond.imagegpt import ImageTokenizer
from fromscratch.beyond.vit import patchify
from fromscratch.exercises import beyond_solutions as solutions
from fromscratch.exercises import check, list_exercises, prompt, solution_source

SEEDS = [0, 1, 2]
BEYOND_TRACK = ["patchify", "patch_tokens", "answer_targets"]


def test_each_reference_solution_passes_in_lesson_order(capsys):
    assert [n for n in list_exercises() if n in BEYOND_TRACK] == BEYOND_TRACK
    for name in BEYOND_TRACK:
        assert solution_source(name).startswith(f"def {name}(") and name in prompt(name)
        for seed in SEEDS:
            assert check(name, getattr(solutions, name), seed=seed).diagnosis == "correct"
            assert capsys.readouterr().out.startswith(f"✓ {name}: correct on all")


def test_the_library_passes_its_own_exercises():
    from fromscratch.beyond import arithmetic

    assert check("patchify", patchify, seed=0).ok
    assert check("answer_targets", arithmetic.answer_targets, seed=0).ok
    tokenizer = ImageTokenizer()  # on 14 × 14 binary images with 2 × 2 patches
    binary = (torch.rand(3, 1, 14, 14) < 0.5).float()
    expected = tokenizer.encode(binary.repeat_interleave(2, -2).repeat_interleave(2, -1))
    assert torch.equal(solutions.patch_tokens(binary, 2), expected)


# ---------------------------------------------------------------------------------------------
# planted mistakes
# ---------------------------------------------------------------------------------------------
def patchify_by_loops(x, P, channel_major=True, rows_first=True, pixel_rows_first=True):
    B, K, S, _ = x.shape
    G = S // P
    patches = []
    for n in range(G * G):
        r, c = (n // G, n % G) if rows_first else (n % G, n // G)
        patch = x[:, :, r * P : (r + 1) * P, c * P : (c + 1) * P]  # (B, K, P, P)
        if not pixel_rows_first:
            patch = patch.transpose(-2, -1)
        if not channel_major:
            patch = patch.permute(0, 2, 3, 1)  # (B, P, P, K)
        patches.append(patch.reshape(B, -1))
    return torch.stack(patches, dim=1)


def diagnose(name, fn, seed):
    result = check(name, fn, seed=seed)
    return result.ok, result.diagnosis, result.message


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("options", "key", "words"), [
    ({"channel_major": False}, "channels_last", "channel-major"),
    ({"rows_first": False}, "column_major", "raster order"),
    ({"pixel_rows_first": False}, "transposed_patch", "row by row"),
])
def test_patchify_mistakes(options, key, words, seed):
    assert check("patchify", lambda x, P: patchify_by_loops(x, P), seed=seed).ok
    ok, diagnosis, message = diagnose("patchify", lambda x, P: patchify_by_loops(x, P, **options),
                                      seed)
    assert not ok and diagnosis == key and words in message


def test_patchify_by_view_alone_is_named():
    def by_view(x, P):
        return x.flatten(1).view(x.shape[0], (x.shape[-1] // P) ** 2, -1)

    ok, diagnosis, _ = diagnose("patchify", by_view, 0)
    assert not ok and diagnosis == "plain_reshape"


def tokens_by_string(binary, P):
    """Bits written as a binary string, first pixel first: the most significant bit."""
    patches = solutions.patchify(binary, P).long()
    return torch.tensor([[int("".join(map(str, p.tolist())), 2) for p in image]
                         for image in patches])


def test_patch_tokens_mistakes():
    ok, diagnosis, message = diagnose("patch_tokens", tokens_by_string, 0)
    assert not ok and diagnosis == "msb_first" and "least significant" in message
    ok, diagnosis, _ = diagnose("patch_tokens",
                                lambda b, P: solutions.patchify(b, P).sum(-1).long(), 0)
    assert not ok and diagnosis == "count"


def targets_by_loop(prompt_ids, answer_ids, mask_prompt=True, shift=1):
    sequence = prompt_ids + answer_ids
    inputs, targets = [], []
    for t in range(len(sequence) - 1):
        inputs.append(sequence[t])
        nxt = t + shift
        in_prompt = nxt < len(prompt_ids)
        targets.append(-100 if (mask_prompt and in_prompt) or nxt >= len(sequence)
                       else sequence[nxt])
    return inputs, targets


@pytest.mark.parametrize(("options", "key", "words"), [
    ({"mask_prompt": False}, "unmasked", "the prompt is given"),
    ({"shift": 0}, "not_shifted", "off by one"),
])
def test_answer_targets_mistakes(options, key, words):
    assert check("answer_targets", targets_by_loop, seed=0).ok
    ok, diagnosis, message = diagnose("answer_targets",
                                      lambda p, a: targets_by_loop(p, a, **options), 0)
    assert not ok and diagnosis == key and words in message
