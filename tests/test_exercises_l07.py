"""Lesson 07's exercise (patchify): the library's patchify passes, and each planted mistake
(written as a learner would, with loops and other ops) gets its hint."""

import pytest
import torch

from fromscratch.beyond.vit import patchify
from fromscratch.exercises import check

SEEDS = [0, 1, 2]


def test_the_library_passes_the_exercise():
    assert check("patchify", patchify, seed=0).ok


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


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("options", "key", "words"), [
    ({"channel_major": False}, "channels_last", "channel-major"),
    ({"rows_first": False}, "column_major", "raster order"),
    ({"pixel_rows_first": False}, "transposed_patch", "row by row"),
])
def test_patchify_mistakes(options, key, words, seed):
    assert check("patchify", lambda x, P: patchify_by_loops(x, P), seed=seed).ok
    result = check("patchify", lambda x, P: patchify_by_loops(x, P, **options), seed=seed)
    assert not result.ok and result.diagnosis == key and words in result.message


def test_patchify_by_view_alone_is_named():
    def by_view(x, P):
        return x.flatten(1).view(x.shape[0], (x.shape[-1] // P) ** 2, -1)

    result = check("patchify", by_view, seed=0)
    assert not result.ok and result.diagnosis == "plain_reshape"
