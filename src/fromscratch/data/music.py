"""Music data: the JSB chorales as piano rolls.

The 382 four-part chorales of J. S. Bach, in the split of Boulanger-Lewandowski et al. (2012):
229 train / 76 valid / 77 test. Each chorale is a list of time steps (a quarter note, or a
sixteenth in the `16th` version), each step the list of MIDI pitches sounding then (usually 4,
one per voice; fewer when voices rest). For users the JSON files are downloaded once, pinned to
one commit of czhuang/JSB-Chorales-dataset and checked against their SHA-256.

A piano roll is the (T, 88) binary matrix of a chorale: roll[t, k] = 1 when the piano key k
(MIDI pitch 21 + k) sounds at step t.
"""

import json
import os
from pathlib import Path

import torch

from fromscratch.beyond.midi import LOWEST_PITCH
from fromscratch.data import default_cache_dir, download
from fromscratch.errors import UserError
from fromscratch.seeds import BATCH, micro_batch_seed

N_KEYS = 88
JSB_COMMIT = "9a7f733ddb4ed91f48da64ac7f0f621c34aadd4d"
JSB_SHA256 = {
    "quarter": "2db9329f1881a1d3f49703ec556bf1d6f84b4f6c1d702c156536e93cf31e1c91",
    "16th": "8730aca7b64e7d29493733d1cf19fad4a5b351d8f1845e57dac27728104fd39f",
}
SPLITS = ("train", "valid", "test")


def jsb_url(resolution: str) -> str:
    return (f"https://raw.githubusercontent.com/czhuang/JSB-Chorales-dataset/{JSB_COMMIT}/"
            f"jsb-chorales-{resolution}.json")


def load_jsb(
    resolution: str = "quarter",
    root: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    url: str | None = None,
    progress: bool = True,
) -> dict[str, list[list[list[int]]]]:
    """{"train", "valid", "test"} -> chorales, each a list of steps, each a list of pitches.

    root: a folder holding jsb-chorales-{resolution}.json (no download), or the file itself.
    Otherwise the file is downloaded into the cache on first use.
    """
    if resolution not in JSB_SHA256:
        raise UserError(f"unknown resolution {resolution!r}; use one of {', '.join(JSB_SHA256)}")
    name = f"jsb-chorales-{resolution}.json"
    if root is not None:
        path = Path(root).expanduser()
        path = path / name if path.is_dir() else path
        if not path.is_file():
            raise UserError(f"no file {path}; give the folder holding {name}")
    else:
        path = Path(cache_dir or default_cache_dir()) / "jsb-chorales" / name
        download(url or jsb_url(resolution), path, JSB_SHA256[resolution], progress=progress)
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path} is not a JSB chorales JSON file ({err})") from None
    if not isinstance(data, dict) or set(data) != set(SPLITS):
        raise UserError(f"{path} should map train, valid and test to lists of chorales")
    return {split: data[split] for split in SPLITS}


def to_piano_roll(chorale: list[list[int]]) -> torch.Tensor:
    """(T, 88) float tensor: 1 where pitch 21 + k sounds at step t."""
    roll = torch.zeros(len(chorale), N_KEYS)
    for t, pitches in enumerate(chorale):
        for pitch in pitches:
            key = int(pitch) - LOWEST_PITCH
            if not 0 <= key < N_KEYS:
                raise UserError(f"pitch {pitch} at step {t} is outside the piano's 21..108")
            roll[t, key] = 1.0
    return roll


def pad_rolls(rolls: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T_max, 88) zero-padded rolls and the (B, T_max) mask, True at real steps."""
    lengths = torch.tensor([len(r) for r in rolls])
    padded = torch.nn.utils.rnn.pad_sequence(rolls, batch_first=True)  # (B, T_max, 88)
    return padded, torch.arange(padded.shape[1])[None, :] < lengths[:, None]


def transpose_roll(roll: torch.Tensor, semitones: int) -> torch.Tensor:
    """The roll moved up (or down) by `semitones` keys; a shift that pushes a sounding note off
    the keyboard is refused."""
    if semitones == 0:
        return roll
    sounding = roll.any(0).nonzero().flatten()
    if len(sounding) and not 0 <= int(sounding.min()) + semitones <= int(sounding.max()) \
            + semitones < N_KEYS:
        raise UserError(f"transposing by {semitones} pushes notes off the keyboard")
    return torch.roll(roll, semitones, dims=1)


class ChoraleBatches:
    """Random batches of whole chorales, a pure function of (step, micro).

    Returns (rolls (B, T, 88), mask (B, T)): the model reads each roll shifted right by a step
    and predicts every real step. max_transpose: each chosen chorale is moved by a random number
    of semitones in [-max_transpose, max_transpose] (a key change keeps a chorale a chorale,
    and the model sees every key).
    """

    def __init__(self, rolls: list[torch.Tensor], batch_size: int, seed: int = 0,
                 max_transpose: int = 0):
        if not rolls:
            raise UserError("no chorales to train on")
        self.rolls, self.batch_size, self.seed = rolls, batch_size, seed
        self.max_transpose = max_transpose

    def __call__(self, step: int, micro: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(micro_batch_seed(self.seed, step, micro, BATCH))
        chosen = torch.randint(len(self.rolls), (self.batch_size,), generator=gen).tolist()
        shifts = torch.randint(-self.max_transpose, self.max_transpose + 1,
                               (self.batch_size,), generator=gen).tolist()
        rolls = []
        for i, shift in zip(chosen, shifts, strict=True):
            try:
                rolls.append(transpose_roll(self.rolls[i], shift))
            except UserError:  # this chorale does not fit that far up or down: keep its key
                rolls.append(self.rolls[i])
        return pad_rolls(rolls)
