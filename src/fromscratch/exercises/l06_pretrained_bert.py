"""Lesson 06's exercises (pretrained BERT): `wordpiece_greedy`, `mean_pool` and
`lora_forward`.

The WordPiece cases include a word the vocabulary cannot cover and one where the longest match
differs from a shorter one; the pooling cases, rows that are mostly padding. LoRA's forward pass,

    h = x Wᵀ + b + (α / r) x Aᵀ Bᵀ        W (out, in), b (out,), A (r, in), B (out, r)

is checked on rectangular layers (in ≠ out) and square ones (in = out), where a transposed or
swapped A and B still has the right shape and only the values give it away.
"""

import torch

from fromscratch.exercises import l06_pretrained_bert_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register
from fromscratch.exercises.inputs import randint


# ---------------------------------------------------------------------------------------------
# WordPiece: greedy longest-match-first on one word
# ---------------------------------------------------------------------------------------------
def _wordpiece_cases(gen: torch.Generator) -> list[Case]:
    letters = "abcde"
    pieces = {"".join(letters[randint(gen, 0, 5)] for _ in range(randint(gen, 1, 4)))
              for _ in range(12)}
    vocab = set(letters) | {"##" + c for c in letters}  # every character alone: no [UNK]
    # sorted: a set's order changes from run to run, and the seed must fix the vocabulary
    vocab |= pieces | {"##" + p for p in sorted(pieces) if randint(gen, 0, 2)}
    word = "".join(letters[randint(gen, 0, 5)] for _ in range(randint(gen, 4, 12)))
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


# ---------------------------------------------------------------------------------------------
# LoRA: a frozen linear layer plus a low-rank update
# ---------------------------------------------------------------------------------------------
def _lora_cases(gen: torch.Generator) -> list[Case]:
    shapes = [  # (leading dims of x, in, out, r, alpha)
        ((5,), 12, 8, 4, 6.0),
        ((2, 7), 10, 10, 2, 5.0),  # square: a transposed ΔW keeps the shape
        ((3, 4), 16, 16, 4, 4.0),  # square, rank = in / 4, α = r (scaling 1 would hide α / r)
        ((1,), 6, 20, 1, 3.0),  # rank 1, a single row
    ]
    cases = []
    for lead, n_in, n_out, r, alpha in shapes:
        x = torch.randn(*lead, n_in, generator=gen)
        W = torch.randn(n_out, n_in, generator=gen) / n_in**0.5
        b = torch.randn(n_out, generator=gen)
        A = torch.randn(r, n_in, generator=gen) / n_in**0.5
        B = torch.randn(n_out, r, generator=gen)
        label = f"x {tuple(x.shape)}, W {tuple(W.shape)}, A {tuple(A.shape)}, B {tuple(B.shape)}"
        cases.append(Case((x, W, b, A, B, alpha, r), f"{label}, alpha={alpha}, r={r}"))
    return cases


def _no_scaling(x, W, b, A, B, alpha, r):
    return x @ W.T + b + x @ A.T @ B.T


def _scaled_by_alpha(x, W, b, A, B, alpha, r):
    return x @ W.T + b + alpha * (x @ A.T @ B.T)


def _scaled_r_over_alpha(x, W, b, A, B, alpha, r):
    return x @ W.T + b + (r / alpha) * (x @ A.T @ B.T)


def _delta_transposed(x, W, b, A, B, alpha, r):
    return x @ W.T + b + (alpha / r) * (x @ (B @ A))  # ΔW used as (in, out)


def _update_only(x, W, b, A, B, alpha, r):
    return (alpha / r) * (x @ A.T @ B.T)


def _no_bias(x, W, b, A, B, alpha, r):
    return x @ W.T + (alpha / r) * (x @ A.T @ B.T)


register(
    Exercise(
        name="lora_forward",
        lesson="06_pretrained_bert",
        prompt=(
            "lora_forward(x, W, b, A, B, alpha, r) -> h\n"
            "A frozen linear layer (W (out, in), b (out,)) plus a low-rank update: return\n"
            "h = x Wᵀ + b + (alpha / r) · x Aᵀ Bᵀ for x (..., in), with A (r, in), B (out, r).\n"
            "Do not form the (out, in) product B A: go down to r numbers with A, then up with B."
        ),
        reference=solutions.lora_forward,
        make_cases=_lora_cases,
        mistakes=(
            Mistake("no_scaling", "the update is missing its scale: multiply x Aᵀ Bᵀ by "
                    "alpha / r (that keeps the update's size when you change the rank).",
                    _no_scaling),
            Mistake("scaled_by_alpha", "the update is scaled by alpha alone: divide by r too "
                    "(scaling = alpha / r).", _scaled_by_alpha),
            Mistake("scaled_r_over_alpha", "the scale is upside down: use alpha / r, not "
                    "r / alpha.", _scaled_r_over_alpha),
            Mistake("delta_transposed", "A and B are swapped or transposed: ΔW = B A is (out, "
                    "in) like W, so apply it as x Aᵀ Bᵀ (first A: in → r, then B: r → out).",
                    _delta_transposed),
            Mistake("update_only", "the frozen layer's output is missing: LoRA adds the update "
                    "to x Wᵀ + b, it does not replace it.", _update_only),
            Mistake("no_bias", "the bias b of the frozen layer is missing: h = x Wᵀ + b + ...",
                    _no_bias),
        ),
        error_hints=(
            ("mat1 and mat2 shapes cannot be multiplied",
             "check the shapes: A is (r, in) and B is (out, r), so x (..., in) needs A "
             "transposed first (x @ A.T), then B transposed (@ B.T)."),
        ),
    )
)
