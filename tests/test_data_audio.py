"""WAV reading, the FSDD download (from a local HTTP server), splits and spectrogram batches."""

import hashlib
import io
import wave
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from test_data_text import needs_copy
from test_data_text import server as server  # noqa: F401, F811  (the local HTTP server fixture)

from fromscratch.data import DataUnavailable, audio, local_copy
from fromscratch.data.audio import (
    SpectrogramBatches,
    fsdd_folder,
    load_fsdd,
    parse_name,
    random_split,
    read_wav,
    recordings_sha256,
    speaker_split,
    write_wav,
)
from fromscratch.errors import UserError

FSDD = "free-spoken-digit-dataset"  # the name of its copy: FSDD/recordings/*.wav


def wav_bytes(channels=1, width=2, rate=8000, frames=b"\x01\x00\xff\x7f\x00\x80") -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(frames)
    return buffer.getvalue()


def test_read_wav_scales_16_bit_samples_to_minus_one_one(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(wav_bytes())  # samples 1, 32767, -32768
    samples, rate = read_wav(path)
    assert rate == 8000 and samples.dtype == torch.float32
    assert samples.tolist() == [1 / 32768, 32767 / 32768, -1.0]


def test_write_then_read_round_trips(tmp_path):
    x = torch.linspace(-1, 1, 101)
    write_wav(tmp_path / "x.wav", x, 16000)
    back, rate = read_wav(tmp_path / "x.wav")
    assert rate == 16000 and torch.allclose(back, x, atol=1 / 32768)


@pytest.mark.parametrize(
    "content,message",
    [
        (b"RIFF....not a wave file at all", "not a readable WAV"),
        (b"", "not a readable WAV"),
        (wav_bytes(channels=2, frames=b"\x00" * 8), "2 channels; give a mono"),
        (wav_bytes(width=1, frames=b"\x80\x80"), "8-bit samples; give a 16-bit"),
        (wav_bytes(width=3, frames=b"\x00" * 6), "24-bit samples"),
        (wav_bytes(frames=b""), "holds no audio"),
    ],
)
def test_bad_wav_files_give_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message) as err:
        read_wav(path)
    assert "\n" not in str(err.value)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no file"):
        read_wav(tmp_path / "nothing.wav")


def test_parse_name():
    r = parse_name(Path("x/7_jackson_32.wav"))
    assert (r.digit, r.speaker, r.index) == (7, "jackson", 32)
    with pytest.raises(UserError, match="digit_speaker_index"):
        parse_name(Path("hello.wav"))


# ---------------------------------------------------------------------------------------------
# Download from a local server
# ---------------------------------------------------------------------------------------------
def tiny_archive(folder: Path) -> dict[str, bytes]:
    """A zip laid out like GitHub's archive of the data set, with four recordings."""
    files = {f"{d}_{s}_0.wav": wav_bytes(frames=bytes([d, s == "bo"]) * 50)
             for d in (3, 4) for s in ("al", "bo")}
    with zipfile.ZipFile(folder / "fsdd.zip", "w") as zf:
        zf.writestr("free-spoken-digit-dataset-1.0.10/README.md", "readme")
        for name, content in files.items():
            zf.writestr(f"free-spoken-digit-dataset-1.0.10/recordings/{name}", content)
    return files


def expected_hash(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


def test_download_unpacks_checks_and_caches(server, tmp_path):
    files = tiny_archive(server.folder)
    cache = tmp_path / "cache"
    args = dict(cache_dir=cache, url=server.url + "/fsdd.zip", sha256=expected_hash(files),
                progress=False)
    recordings = load_fsdd(**args)
    assert [r.path.name for r in recordings] == sorted(files)
    assert {r.path.name: r.path.read_bytes() for r in recordings} == files
    assert list(cache.iterdir()) == [cache / "free-spoken-digit-dataset"]  # no temp folders left
    assert load_fsdd(**args) == recordings
    assert server.requests == ["/fsdd.zip"]  # the second call used the cache


def test_download_with_wrong_hash_keeps_nothing(server, tmp_path):
    tiny_archive(server.folder)
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match="SHA-256"):
        fsdd_folder(cache_dir=cache, url=server.url + "/fsdd.zip", sha256="0" * 64,
                    progress=False)
    assert list(cache.iterdir()) == []


def test_download_of_a_missing_or_non_zip_file_is_a_user_error(server, tmp_path):
    (server.folder / "page.zip").write_text("<html>not found</html>")
    with pytest.raises(DataUnavailable, match="could not download"):
        fsdd_folder(cache_dir=tmp_path / "c", url=server.url + "/nothing.zip", progress=False)
    with pytest.raises(UserError, match="not a zip") as wrong_file:
        fsdd_folder(cache_dir=tmp_path / "c", url=server.url + "/page.zip", progress=False)
    assert not isinstance(wrong_file.value, DataUnavailable)  # it came, and it is wrong
    assert list((tmp_path / "c").iterdir()) == []


def test_a_folder_without_wavs_is_refused(tmp_path):
    with pytest.raises(UserError, match="no .wav files"):
        fsdd_folder(tmp_path)


# ---------------------------------------------------------------------------------------------
# Splits and batches
# ---------------------------------------------------------------------------------------------
def fake_recordings():
    return [parse_name(Path(f"{d}_{s}_{i}.wav")) for d in range(10) for s in ("a", "b", "c")
            for i in range(4)]


def test_random_split_is_seeded_disjoint_and_complete():
    recs = fake_recordings()
    train, test = random_split(recs, 0.25, seed=3)
    assert len(test) == 30 and len(train) == 90
    assert set(train) | set(test) == set(recs) and not set(train) & set(test)
    assert random_split(recs, 0.25, seed=3) == (train, test)
    assert random_split(recs, 0.25, seed=4)[1] != test


def test_speaker_split_holds_out_exactly_one_speaker():
    train, test = speaker_split(fake_recordings(), "b")
    assert {r.speaker for r in test} == {"b"} and {r.speaker for r in train} == {"a", "c"}
    with pytest.raises(UserError, match="no speaker 'z'"):
        speaker_split(fake_recordings(), "z")


def test_spectrogram_batches_are_a_function_of_the_step():
    gen = torch.Generator().manual_seed(0)
    specs = [torch.randn(int(t), 8, generator=gen) for t in torch.randint(3, 20, (30,))]
    labels = list(range(30))  # label i = spectrogram i, so a batch says what it chose
    batches = SpectrogramBatches(specs, labels, batch_size=5, seed=1)
    x, padding, y = batches(7)
    assert all(torch.equal(a, b) for a, b in zip((x, padding, y), batches(7), strict=True))
    assert not torch.equal(batches(8)[2], y)
    plain_x, plain_padding, plain_y = SpectrogramBatches(specs, labels, 5, seed=1,
                                                         augment=False)(7)
    assert torch.equal(plain_y, y) and torch.equal(plain_padding, padding)
    for i, label in enumerate(y.tolist()):
        length = len(specs[label])
        assert (~padding[i]).sum() == length
        assert torch.equal(plain_x[i, :length], specs[label])
        assert (plain_x[i, length:] == 0).all()  # padding frames are zeros
    changed = (x != plain_x) & ~padding[..., None]
    assert changed.any()  # the masks replaced some bands and frames ...
    fill = torch.cat(specs).mean(0)
    assert torch.allclose(x[changed], fill.expand_as(x)[changed])  # ... by the mean spectrum


@needs_copy(FSDD)
def test_the_real_data_set():
    recordings = load_fsdd(local_copy(FSDD))
    assert len(recordings) == 3000
    assert sorted({r.speaker for r in recordings}) == list(audio.SPEAKERS)
    assert all(sum(r.speaker == s for r in recordings) == 500 for s in audio.SPEAKERS)
    train, test = speaker_split(recordings, "theo")
    assert len(train) == 2500 and len(test) == 500
    soundfile = pytest.importorskip("soundfile")  # libsndfile, what librosa reads WAV with
    samples, rate = read_wav(recordings[0].path)
    reference, reference_rate = soundfile.read(recordings[0].path, dtype="float32")
    assert rate == reference_rate == 8000
    assert np.array_equal(samples.numpy(), reference)


@needs_copy(FSDD)
def test_our_recordings_hash_is_the_pinned_one():
    assert recordings_sha256(local_copy(FSDD) / "recordings") == audio.FSDD_RECORDINGS_SHA256
