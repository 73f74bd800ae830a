"""Lesson 06's exercises (pretrained BERT): their test inputs and the mistakes we recognize.

Every `_*_cases(gen)` returns fresh random inputs drawn from `gen` plus the edge cases where bugs
hide (a word the vocabulary cannot cover, a word where the longest match differs from a shorter
one, rows that are mostly padding). Every `Mistake` makes one common error on purpose: when the
learner's output equals it, `check` prints that mistake's hint.
"""

import torch

from fromscratch.exercises import bert_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register


# ---------------------------------------------------------------------------------------------
# WordPiece: greedy longest-match-first on one word
# ---------------------------------------------------------------------------------------------
def _randint(gen: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high, (1,), generator=gen))


def _wordpiece_cases(gen: torch.Generator) -> list[Case]:
    letters = "abcde"
    pieces = {"".join(letters[_randint(gen, 0, 5)] for _ in range(_randint(gen, 1, 4)))
              for _ in range(12)}
    vocab = set(letters) | {"##" + c for c in letters}  # every character alone: no [UNK]
    vocab |= pieces | {"##" + p for p in pieces if _randint(gen, 0, 2)}
    word = "".join(letters[_randint(gen, 0, 5)] for _ in range(_randint(gen, 4, 12)))
    hand_made = {"un", "##aff", "##able", "aff", "##a", "a", "##ff", "##f", "the", "th", "##e"}
    inputs = [
        (word, vocab),
        ("unaffable", hand_made),  # un ##aff ##able: the longest at each step
        ("affable", hand_made),  # a word-initial piece, then continuations
        ("unaffablex", hand_made),  # the last character is unknown: the whole word is [UNK]
        ("the", hand_made),  # the whole word is one piece
        ("a", hand_made),  # a single character
        ("aff", {"a", "##f", "##ff", "ff", "f"}),  # "ff" exists, but not as a continuation
    ]
    return [Case((w, set(v)), f"wordpiece_greedy({w!r}, vocab of {len(v)})") for w, v in inputs]


def _shortest_first(word, vocab):
    pieces, start = [], 0
    while start < len(word):
        for end in range(start + 1, len(word) + 1):
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
        else:
            return ["[UNK]"]
        pieces.append(piece)
        start = end
    return pieces


def _no_prefix(word, vocab):
    plain = {p.removeprefix("##") for p in vocab}
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            if word[start:end] in plain:
                break
        else:
            return ["[UNK]"]
        pieces.append(word[start:end])
        start = end
    return pieces


def _partial_unknown(word, vocab):
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
        else:
            return pieces + ["[UNK]"]  # keeps what matched so far
        pieces.append(piece)
        start = end
    return pieces


register(
    Exercise(
        name="wordpiece_greedy",
        lesson="06_pretrained_bert",
        prompt=(
            "wordpiece_greedy(word: str, vocab: set[str]) -> list[str]\n"
            "Cut `word` into vocabulary pieces, longest match first: take the longest prefix in\n"
            "`vocab`, then the longest continuation (looked up with '##' in front), and so on.\n"
            "If some part matches nothing, the whole word is ['[UNK]']."
        ),
        reference=solutions.wordpiece_greedy,
        make_cases=_wordpiece_cases,
        mistakes=(
            Mistake(
                "shortest_first",
                "try the LONGEST candidate first: start with the whole rest of the word and "
                "drop characters from its end until the piece is in the vocabulary.",
                _shortest_first,
            ),
            Mistake(
                "no_prefix",
                "a piece that continues the word (not at position 0) is looked up and returned "
                "with '##' in front: '##able', not 'able'.",
                _no_prefix,
            ),
            Mistake(
                "partial_unknown",
                "when a part matches nothing, the WHOLE word becomes ['[UNK]']: drop the pieces "
                "found before it.",
                _partial_unknown,
            ),
        ),
    )
)


# ---------------------------------------------------------------------------------------------
# Mean pooling over the real tokens
# ---------------------------------------------------------------------------------------------
def _pool_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for B, T, C in ((3, 6, 8), (2, 9, 4), (1, 1, 5)):
        hidden = torch.randn(B, T, C, generator=gen)
        lengths = torch.randint(1, T + 1, (B,), generator=gen)
        lengths[0] = 1 if T > 1 else lengths[0]  # one row mostly padding
        mask = (torch.arange(T)[None, :] < lengths[:, None]).long()  # (B, T) 1 = real
        cases.append(Case((hidden, mask), f"hidden {(B, T, C)}, lengths {lengths.tolist()}"))
    return cases


def _mean_with_padding(hidden, attention_mask):
    return hidden.mean(dim=1)


def _sum_not_mean(hidden, attention_mask):
    return (hidden * attention_mask.unsqueeze(-1)).sum(dim=1)


def _divide_by_length(hidden, attention_mask):
    return (hidden * attention_mask.unsqueeze(-1)).sum(dim=1) / hidden.shape[1]


register(
    Exercise(
        name="mean_pool",
        lesson="06_pretrained_bert",
        prompt=(
            "mean_pool(hidden: Tensor (B, T, C), attention_mask: Tensor (B, T)) -> Tensor (B, C)\n"
            "The mean of each row's REAL token vectors (attention_mask 1), padding (0) left out."
        ),
        reference=solutions.mean_pool,
        make_cases=_pool_cases,
        mistakes=(
            Mistake(
                "padding_included",
                "padding was averaged in: multiply by the mask and divide by the number of real "
                "tokens, attention_mask.sum(dim=1), not by T.",
                _mean_with_padding,
            ),
            Mistake(
                "sum",
                "that is the sum of the real vectors: divide by the number of real tokens.",
                _sum_not_mean,
            ),
            Mistake(
                "divide_by_T",
                "padding is left out of the sum but not out of the count: divide by each row's "
                "number of real tokens, attention_mask.sum(dim=1), not by T.",
                _divide_by_length,
            ),
        ),
    )
)
