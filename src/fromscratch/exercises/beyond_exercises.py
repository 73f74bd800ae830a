"""Exercises of lessons 07-09 (and of the audio and music lessons, appended below): their test
inputs and the mistakes we recognize."""

import torch

from fromscratch.exercises import beyond_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register


# ---------------------------------------------------------------------------------------------
# 07 vision transformer: cut images into patches
# ---------------------------------------------------------------------------------------------
def _patchify_cases(gen: torch.Generator) -> list[Case]:
    shapes = [(2, 1, 8, 8, 4), (3, 3, 6, 6, 2), (1, 2, 12, 12, 3), (2, 1, 4, 4, 4)]
    return [Case((torch.randn(B, K, S, S, generator=gen), P), f"x ({B}, {K}, {S}, {S}), P={P}")
            for B, K, S, _, P in shapes]


def _patchify_plain_reshape(x, P):
    B, K, S, _ = x.shape
    return x.reshape(B, (S // P) ** 2, K * P * P)


def _patchify_channels_last(x, P):
    B, K, S, _ = x.shape
    G = S // P
    return x.reshape(B, K, G, P, G, P).permute(0, 2, 4, 3, 5, 1).reshape(B, G * G, K * P * P)


def _patchify_column_major(x, P):
    B, K, S, _ = x.shape
    G = S // P
    return x.reshape(B, K, G, P, G, P).permute(0, 4, 2, 1, 3, 5).reshape(B, G * G, K * P * P)


def _patchify_transposed_patch(x, P):
    B, K, S, _ = x.shape
    G = S // P
    return x.reshape(B, K, G, P, G, P).permute(0, 2, 4, 1, 5, 3).reshape(B, G * G, K * P * P)


register(
    Exercise(
        name="patchify",
        lesson="07_vision_transformer",
        prompt=(
            "patchify(x: Tensor, P: int) -> Tensor\n"
            "Cut images x (B, K, S, S) into (S/P)² patches of P × P pixels, in raster order\n"
            "(left to right, then top to bottom), each flattened channel-major as (K, P, P):\n"
            "output (B, (S/P)², K·P·P)."
        ),
        reference=solutions.patchify,
        make_cases=_patchify_cases,
        mistakes=(
            Mistake("plain_reshape", "a reshape alone does not cut patches: the first P² numbers "
                    "of the image are part of its first row. Split each side into (grid, offset) "
                    "with reshape, then permute so the two grid axes come first.",
                    _patchify_plain_reshape),
            Mistake("channels_last", "flatten each patch channel-major, as (K, P, P) like a Conv2d "
                    "weight, not (P, P, K): put the channel axis before the two offsets.",
                    _patchify_channels_last),
            Mistake("column_major", "patches are in raster order: patch n = row r · G + column c, "
                    "so the grid-row axis comes before the grid-column axis.",
                    _patchify_column_major),
            Mistake("transposed_patch", "inside a patch, read pixels row by row: the row offset "
                    "comes before the column offset.", _patchify_transposed_patch),
        ),
    )
)


# ---------------------------------------------------------------------------------------------
# 08 image generation: binary patches to tokens
# ---------------------------------------------------------------------------------------------
def _patch_token_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for B, S, P in [(2, 4, 2), (3, 14, 2), (1, 6, 3), (2, 2, 2)]:
        binary = (torch.rand(B, 1, S, S, generator=gen) < 0.4).float()
        cases.append(Case((binary, P), f"binary ({B}, 1, {S}, {S}), P={P}"))
    one_pixel = torch.zeros(1, 1, 4, 4)
    one_pixel[0, 0, 0, 1] = 1.0  # pixel 1 of patch 0: token 2
    cases.append(Case((one_pixel, 2), "one white pixel at row 0, column 1 of a 4×4 image, P=2"))
    return cases


def _tokens_msb_first(binary, P):
    bits = solutions.patchify(binary, P).long()
    return (bits * 2 ** torch.arange(P * P - 1, -1, -1)).sum(-1)


def _tokens_sum_of_pixels(binary, P):
    return solutions.patchify(binary, P).long().sum(-1)


register(
    Exercise(
        name="patch_tokens",
        lesson="08_image_generation",
        prompt=(
            "patch_tokens(binary: Tensor, P: int) -> Tensor\n"
            "Binary images (B, 1, S, S) -> int64 token ids (B, (S/P)²): patch n (raster order)\n"
            "becomes Σ_k pixel_k · 2^k, its pixels k = 0..P²-1 read row by row."
        ),
        reference=solutions.patch_tokens,
        make_cases=_patch_token_cases,
        mistakes=(
            Mistake("msb_first", "pixel k is bit k (weight 2^k): the first pixel of a patch is "
                    "the least significant bit, not the most.", _tokens_msb_first),
            Mistake("count", "you counted the white pixels: different patterns must get "
                    "different tokens, so weight pixel k by 2^k.", _tokens_sum_of_pixels),
        ),
    )
)


# ---------------------------------------------------------------------------------------------
# 09 arithmetic: train on the answer only
# ---------------------------------------------------------------------------------------------
def _answer_target_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for prompt_len, answer_len in [(6, 4), (3, 2), (8, 5), (2, 1)]:
        prompt = torch.randint(0, 14, (prompt_len,), generator=gen).tolist()
        answer = torch.randint(0, 14, (answer_len,), generator=gen).tolist()
        cases.append(Case((prompt, answer), f"prompt {prompt}, answer {answer}"))
    return cases


def _targets_unmasked(prompt_ids, answer_ids):
    sequence = prompt_ids + answer_ids
    return sequence[:-1], sequence[1:]


def _targets_not_shifted(prompt_ids, answer_ids):
    sequence = prompt_ids + answer_ids
    return sequence[:-1], [-100] * len(prompt_ids) + answer_ids[:-1]


def _targets_whole_sequence(prompt_ids, answer_ids):
    sequence = prompt_ids + answer_ids
    return sequence, [-100] * (len(prompt_ids) - 1) + answer_ids + [-100]


register(
    Exercise(
        name="answer_targets",
        lesson="09_arithmetic",
        prompt=(
            "answer_targets(prompt_ids: list[int], answer_ids: list[int]) -> (inputs, targets)\n"
            "inputs: prompt + answer without its last token. targets[t]: the token after\n"
            "position t, or -100 (ignored by the loss) where that token is part of the prompt."
        ),
        reference=solutions.answer_targets,
        make_cases=_answer_target_cases,
        mistakes=(
            Mistake("unmasked", "the prompt is given, not predicted: put -100 at the targets "
                    "that are prompt tokens, so only the answer is trained.",
                    _targets_unmasked),
            Mistake("not_shifted", "off by one: target t is the token AFTER position t, so the "
                    "first answer token is the target of the last prompt position (the '=').",
                    _targets_not_shifted),
            Mistake("whole_sequence", "the inputs stop one token short of the full sequence: "
                    "nothing follows the last token, so it has no target to learn.",
                    _targets_whole_sequence),
        ),
    )
)
