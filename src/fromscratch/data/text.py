"""Text for language models: load a corpus, split it, cut it into training windows.

Notation: the corpus is a 1-D tensor of token ids `ids` of length N; a window is T = block_size
consecutive ids; a batch stacks B = batch_size windows. A language model reads x = ids[s : s+T]
and is trained to predict the next token at each position, y = ids[s+1 : s+T+1].

Training batches are drawn from random offsets s, but with no hidden state: the offsets of step k
come from a random generator seeded by (seed, k, micro-batch), so a run resumed at step k sees
exactly the batches an uninterrupted run would have seen.
"""

from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F

from fromscratch.data import default_cache_dir, download
from fromscratch.errors import UserError
from fromscratch.modes import evaluating
from fromscratch.seeds import BATCH, micro_batch_seed

SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


def load_text(
    source: str, *, cache_dir: str | Path | None = None, url: str | None = None,
    progress: bool = True,
) -> str:
    """The text of a corpus.

    source:
      "shakespeare"  tiny Shakespeare (1.1 MB), downloaded once from `url` (default
                     SHAKESPEARE_URL) into `cache_dir` (default `$FROMSCRATCH_CACHE` or
                     ~/.cache/fromscratch) and checked against SHAKESPEARE_SHA256.
      "pydoc"        Python's own documentation topics (~465k characters), always offline.
      anything else  the path of a UTF-8 text file.
    """
    if source == "shakespeare":
        folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = download(
            url or SHAKESPEARE_URL, folder / "tinyshakespeare.txt", SHAKESPEARE_SHA256,
            progress=progress,
        )
        return path.read_text(encoding="utf-8")
    if source == "pydoc":
        from pydoc_data.topics import topics

        return "\n\n".join(topics[key] for key in sorted(topics))
    return _read_text_file(Path(source))


def _read_text_file(path: Path) -> str:
    if not path.exists():
        raise UserError(f"no such file: {path} (give 'shakespeare', 'pydoc' or a text file path)")
    if path.is_dir():
        raise UserError(f"{path} is a folder: give the path of one text file")
    data = path.read_bytes()
    if not data:
        raise UserError(f"{path} is empty: give a text file with something in it")
    if b"\x00" in data:
        raise UserError(f"{path} looks binary (it contains NUL bytes): give a plain text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserError(
            f"{path} is not UTF-8 (byte {error.start} is invalid): re-save it as UTF-8"
        ) from error


def split_train_val(data, train_fraction: float = 0.9):
    """(first train_fraction of data, the rest): nanoGPT's split, train then validation.

    Works on anything sliceable (a string, a list, a 1-D tensor). The split is by position, not at
    random, so no window of validation text also appears in training.
    """
    if not 0.0 < train_fraction < 1.0:
        raise UserError(f"train_fraction must be between 0 and 1, got {train_fraction}")
    n_train = int(train_fraction * len(data))
    return data[:n_train], data[n_train:]


class LMBatches:
    """Random windows of a token sequence, a pure function of (step, micro).

    >>> batches = LMBatches(torch.arange(100), block_size=4, batch_size=2, seed=0)
    >>> x, y = batches(step=7)
    >>> bool((y[:, :-1] == x[:, 1:]).all())  # y is x shifted left by one
    True
    """

    def __init__(self, ids: torch.Tensor, block_size: int, batch_size: int, seed: int = 0):
        if ids.dim() != 1:
            raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}")
        if len(ids) <= block_size:
            raise UserError(
                f"the text has {len(ids)} tokens, fewer than block_size + 1 = {block_size + 1}: "
                "use more text or a smaller block_size"
            )
        self.ids = ids.long()
        self.block_size = block_size
        self.batch_size = batch_size
        self.seed = seed

    def __call__(self, step: int, micro: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(micro_batch_seed(self.seed, step, micro, BATCH))
        n_starts = len(self.ids) - self.block_size  # a window starting at s needs ids[s + T]
        starts = torch.randint(n_starts, (self.batch_size,), generator=generator)  # (B,)
        positions = starts[:, None] + torch.arange(self.block_size)  # (B, T)
        return self.ids[positions], self.ids[positions + 1]  # x (B, T), y (B, T)


def iter_eval_windows(
    ids: torch.Tensor, block_size: int, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(x, y) batches of non-overlapping windows that predict every token of ids[1:] once.

    Full windows of T tokens come in batches of up to B; the remaining tokens (fewer than T) come
    last as a batch of one shorter window.
    """
    ids = ids.long()
    n_targets = len(ids) - 1  # every token but the first is predicted once
    n_full = n_targets // block_size
    for first in range(0, n_full, batch_size):
        starts = torch.arange(first, min(first + batch_size, n_full)) * block_size  # (b,)
        positions = starts[:, None] + torch.arange(block_size)  # (b, T)
        yield ids[positions], ids[positions + 1]
    rest = n_targets - n_full * block_size
    if rest > 0:
        start = n_full * block_size
        yield ids[start : start + rest][None], ids[start + 1 : start + 1 + rest][None]  # (1, rest)


def evaluate_lm(
    model: torch.nn.Module, ids: torch.Tensor, block_size: int, batch_size: int
) -> float:
    """Mean cross-entropy (nats per token) of `model(x) -> logits (B, T, V)` over all of ids.

    Every token but the first is predicted exactly once, so this is the exact loss of the split,
    not an estimate from a few random batches:  L = -(1/(N-1)) Σ_i log p(ids[i+1] | window).
    """
    device = next(model.parameters()).device
    total_nll, total_tokens = 0.0, 0
    with evaluating(model):
        for x, y in iter_eval_windows(ids, block_size, batch_size):
            logits = model(x.to(device)).float()  # (b, t, V)
            nll = F.cross_entropy(logits.flatten(0, 1), y.to(device).flatten(), reduction="sum")
            total_nll += nll.item()
            total_tokens += y.numel()
    return total_nll / total_tokens
