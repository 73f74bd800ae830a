"""Audio data: WAV files read with the standard library, and the Free Spoken Digit Dataset.

The Free Spoken Digit Dataset (FSDD) holds 3,000 recordings, 8 kHz mono 16-bit WAV: 6 speakers say
each digit 0-9 fifty times. A file is named `{digit}_{speaker}_{index}.wav`, e.g.
`7_jackson_32.wav`. For users it is downloaded once, as the GitHub archive of release v1.0.10,
and cached; tests and benchmarks point `root` at a local copy.

The archive's own bytes are not guaranteed stable (GitHub builds archives on request), so what we
check is the recordings themselves: `recordings_sha256` hashes every file's name and bytes in
sorted order, and the download is only kept when that hash is the one below.
"""

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import wave
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fromscratch.data import DataUnavailable, default_cache_dir
from fromscratch.errors import UserError
from fromscratch.seeds import BATCH, micro_batch_seed

FSDD_URL = (
    "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.zip"
)
FSDD_RECORDINGS_SHA256 = "a2e8a660492f28d9eed6270b290d26cbc5c81d6077ce87d3c0ad5adf4d4ee696"
FSDD_FOLDER = "free-spoken-digit-dataset"
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")


# ---------------------------------------------------------------------------------------------
# WAV files
# ---------------------------------------------------------------------------------------------
def read_wav(path: str | os.PathLike) -> tuple[torch.Tensor, int]:
    """(samples, sample_rate) of a mono 16-bit PCM WAV file; samples float32 in [-1, 1).

    A 16-bit sample is a signed integer in [-32768, 32767]; dividing by 32768 maps it to [-1, 1).
    Anything else (not a WAV, compressed, stereo, 8/24/32-bit) is a one-line `UserError`.
    """
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as f:
            channels, width, rate, n = (
                f.getnchannels(), f.getsampwidth(), f.getframerate(), f.getnframes()
            )
            raw = f.readframes(n)
    except FileNotFoundError:
        raise UserError(f"no file {path}") from None
    except (wave.Error, EOFError, OSError) as err:
        raise UserError(f"{path} is not a readable WAV file ({err})") from None
    if channels != 1:
        raise UserError(f"{path} has {channels} channels; give a mono recording (1 channel)")
    if width != 2:
        raise UserError(f"{path} has {8 * width}-bit samples; give a 16-bit PCM WAV file")
    if len(raw) < 2 * n or n == 0:
        raise UserError(f"{path} holds no audio (or is cut short)")
    samples = np.frombuffer(raw, dtype="<i2")  # WAV stores little-endian signed 16-bit
    return torch.from_numpy(samples.astype(np.float32) / 32768.0), rate


def write_wav(path: str | os.PathLike, samples: torch.Tensor, sample_rate: int) -> None:
    """Write float samples in [-1, 1] as a mono 16-bit PCM WAV file (for tests and examples)."""
    ints = (samples.clamp(-1, 32767 / 32768) * 32768).round().to(torch.int16).numpy()
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(ints.astype("<i2").tobytes())


# ---------------------------------------------------------------------------------------------
# The Free Spoken Digit Dataset
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recording:
    path: Path
    digit: int
    speaker: str
    index: int


def parse_name(path: Path) -> Recording:
    """`7_jackson_32.wav` -> Recording(path, digit=7, speaker="jackson", index=32)."""
    parts = path.stem.split("_")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit():
        raise UserError(f"{path.name} is not named digit_speaker_index.wav (e.g. 7_jackson_32.wav)")
    return Recording(path, int(parts[0]), parts[1], int(parts[2]))


def recordings_sha256(folder: Path) -> str:
    """One SHA-256 over the names and bytes of every .wav in `folder`, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.wav")):
        digest.update(path.name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _download_fsdd(target: Path, url: str, sha256: str, progress: bool) -> None:
    """Fetch the archive, unpack its recordings/ folder, check them, then rename into `target`."""
    cache = target.parent.parent
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=cache, prefix=".fsdd-"))
    try:
        archive = work / "archive.zip"
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(archive, "wb") as out:
                size = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=size, unit="B", unit_scale=True, desc="FSDD",
                          disable=not progress) as bar:
                    while chunk := response.read(1 << 16):
                        out.write(chunk)
                        bar.update(len(chunk))
        except (urllib.error.URLError, OSError) as err:
            raise DataUnavailable(
                f"could not download {url} ({err}); try again when online, or give the folder "
                "of a copy of the recordings (--data on the command line, `root` in Python)"
            ) from err
        unpacked = work / "recordings"
        unpacked.mkdir()
        try:
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    name = Path(member)
                    if name.parent.name == "recordings" and name.suffix == ".wav":
                        (unpacked / name.name).write_bytes(zf.read(member))
        except zipfile.BadZipFile as err:
            raise UserError(f"the file downloaded from {url} is not a zip archive") from err
        found = recordings_sha256(unpacked)
        if found != sha256:
            raise UserError(
                f"the recordings downloaded from {url} have SHA-256 {found}, expected {sha256}: "
                "try again later, or download them yourself and pass their folder"
            )
        target.parent.mkdir(exist_ok=True)
        os.replace(unpacked, target)  # one rename: the cache never holds half a data set
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fsdd_folder(
    root: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    url: str = FSDD_URL,
    sha256: str = FSDD_RECORDINGS_SHA256,
    progress: bool = True,
) -> Path:
    """The folder of FSDD's .wav files: `root` itself (or its `recordings/`), else the cached
    download (made on first use)."""
    if root is not None:
        root = Path(root).expanduser()
        folder = root / "recordings" if (root / "recordings").is_dir() else root
        if not folder.is_dir() or not any(folder.glob("*.wav")):
            raise UserError(f"{root} holds no .wav files; give the FSDD recordings folder")
        return folder
    folder = Path(cache_dir or default_cache_dir()) / FSDD_FOLDER / "recordings"
    if not folder.is_dir():
        _download_fsdd(folder, url, sha256, progress)
    return folder


def load_fsdd(root=None, **download_args) -> list[Recording]:
    """Every recording of the data set, sorted by file name (see `fsdd_folder` for `root`)."""
    folder = fsdd_folder(root, **download_args)
    return [parse_name(path) for path in sorted(folder.glob("*.wav"))]


def random_split(
    recordings: list[Recording], test_fraction: float = 0.2, seed: int = 0
) -> tuple[list[Recording], list[Recording]]:
    """(train, test): a seeded random `test_fraction` of the recordings is held out."""
    if not 0.0 < test_fraction < 1.0:
        raise UserError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    order = torch.randperm(len(recordings), generator=torch.Generator().manual_seed(seed))
    n_test = round(test_fraction * len(recordings))
    test_ids = set(order[:n_test].tolist())
    train = [r for i, r in enumerate(recordings) if i not in test_ids]
    test = [r for i, r in enumerate(recordings) if i in test_ids]
    return train, test


def speaker_split(
    recordings: list[Recording], speaker: str
) -> tuple[list[Recording], list[Recording]]:
    """(train, test): test on every recording of `speaker`, train on everyone else's."""
    speakers = sorted({r.speaker for r in recordings})
    if speaker not in speakers:
        raise UserError(f"no speaker {speaker!r}; the speakers are {', '.join(speakers)}")
    return (
        [r for r in recordings if r.speaker != speaker],
        [r for r in recordings if r.speaker == speaker],
    )


# ---------------------------------------------------------------------------------------------
# Batches of spectrograms
# ---------------------------------------------------------------------------------------------
def pad_batch(features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (T_i, M) spectrograms into (B, T_max, M) with zeros after each one's end, and the
    (B, T_max) padding mask, True at the added frames."""
    lengths = torch.tensor([len(f) for f in features])  # (B,)
    padded = torch.nn.utils.rnn.pad_sequence(features, batch_first=True)  # (B, T_max, M)
    padding = torch.arange(padded.shape[1])[None, :] >= lengths[:, None]  # (B, T_max)
    return padded, padding


class SpectrogramBatches:
    """Random labelled batches of spectrograms, a pure function of (step, micro).

    augment: SpecAugment's two masks on each training example: a band of up to `max_band`
    mel channels and a stretch of up to `max_stretch` frames are replaced by `fill` (the mean
    spectrum of the training set), so the model cannot rely on any one band or moment.
    """

    def __init__(self, features: list[torch.Tensor], labels: list[int], batch_size: int,
                 seed: int = 0, augment: bool = True, fill: torch.Tensor | None = None,
                 max_band: int = 6, max_stretch: int = 8):
        if len(features) != len(labels) or not features:
            raise UserError("need one label per spectrogram, and at least one of each")
        self.features, self.labels = features, torch.tensor(labels)
        self.batch_size, self.seed, self.augment = batch_size, seed, augment
        self.fill = torch.cat(features).mean(0) if fill is None else fill  # (M,)
        self.max_band, self.max_stretch = max_band, max_stretch

    def _masked(self, spec: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        T, M = spec.shape
        band = int(torch.randint(self.max_band + 1, (1,), generator=gen))
        low = int(torch.randint(M - band + 1, (1,), generator=gen))
        stretch = min(T - 1, int(torch.randint(self.max_stretch + 1, (1,), generator=gen)))
        start = int(torch.randint(T - stretch + 1, (1,), generator=gen))
        spec = spec.clone()
        spec[:, low : low + band] = self.fill[low : low + band]
        spec[start : start + stretch] = self.fill
        return spec

    def __call__(self, step: int, micro: int = 0):
        gen = torch.Generator().manual_seed(micro_batch_seed(self.seed, step, micro, BATCH))
        chosen = torch.randint(len(self.features), (self.batch_size,), generator=gen).tolist()
        specs = [self.features[i] for i in chosen]
        if self.augment:
            specs = [self._masked(s, gen) for s in specs]
        padded, padding = pad_batch(specs)
        return padded, padding, self.labels[chosen]  # (B, T, M), (B, T), (B,)
