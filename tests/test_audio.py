"""Log-mel features proven against torch.stft, librosa and analytic truths; the classifier's
padding mask proven to change nothing; checkpoints round-trip."""

import math

import numpy as np
import pytest
import torch

from fromscratch.beyond.audio import (
    AudioClassifier,
    AudioConfig,
    dft_matrices,
    evaluate,
    frame_signal,
    hann_window,
    hz_to_mel,
    log_mel_spectrogram,
    mel_filterbank,
    mel_to_hz,
    stft,
)
from fromscratch.data.audio import pad_batch
from fromscratch.errors import UserError

librosa = pytest.importorskip("librosa")


def test_hann_window_is_torchs_periodic_window():
    for n in (4, 255, 256):
        assert torch.allclose(hann_window(n), torch.hann_window(n, periodic=True), atol=1e-7)


def test_hann_windows_at_quarter_hop_add_up_to_a_constant():
    n, hop = 256, 64
    w = hann_window(n)
    total = torch.zeros(n * 4)
    for start in range(0, 3 * n + 1, hop):
        total[start : start + n] += w
    middle = total[n : 3 * n]  # away from the ends, every sample is covered by 4 windows
    assert torch.allclose(middle, torch.full_like(middle, 2.0), atol=1e-6)


def test_frame_signal_cuts_hop_spaced_windows_and_drops_the_tail():
    x = torch.arange(10.0)
    frames = frame_signal(x, frame_length=4, hop_length=3)
    assert frames.tolist() == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    assert frame_signal(torch.arange(12.0), 4, 3).shape == (3, 4)  # 12: samples 10, 11 dropped
    with pytest.raises(UserError, match="shorter than a frame"):
        frame_signal(torch.zeros(3), 4, 1)


def test_dft_matrices_equal_torch_fft():
    x = torch.randn(5, 64, dtype=torch.float64)
    cos, sin = dft_matrices(64)
    reference = torch.fft.rfft(x)
    assert torch.allclose(x.float() @ cos.T, reference.real.float(), atol=1e-4)
    assert torch.allclose(-(x.float() @ sin.T), reference.imag.float(), atol=1e-4)


@pytest.mark.parametrize("n_fft,hop", [(256, 128), (200, 80), (64, 64)])
def test_stft_equals_torch_stft(n_fft, hop):
    x = torch.randn(2, 3000, generator=torch.Generator().manual_seed(n_fft))
    ours = stft(x, n_fft, hop)  # (2, T, F)
    theirs = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), center=True,
                        pad_mode="reflect", return_complex=True)  # (2, F, T)
    assert ours.shape == theirs.transpose(-1, -2).shape
    assert torch.allclose(ours, theirs.transpose(-1, -2), atol=1e-4)


def test_stft_of_a_pure_tone_peaks_at_its_bin():
    sr, n_fft, k = 8000, 256, 20  # bin 20 is 20 * 8000 / 256 = 625 Hz
    t = torch.arange(4000) / sr
    power = stft(torch.sin(2 * math.pi * (k * sr / n_fft) * t), n_fft, 128).abs() ** 2
    assert (power[2:-2].argmax(-1) == k).all()
    # a Hann-windowed sinusoid of amplitude 1: |X[k]| = Σ w[n] / 2 = n_fft / 4
    assert torch.allclose(power[2:-2, k].sqrt(), torch.tensor(n_fft / 4), rtol=1e-3)


def test_mel_scale_round_trips_and_matches_htk_definition():
    f = torch.tensor([0.0, 700.0, 1000.0, 4000.0], dtype=torch.float64)
    assert torch.allclose(hz_to_mel(f)[1], torch.tensor(2595 * math.log10(2), dtype=torch.float64))
    assert torch.allclose(mel_to_hz(hz_to_mel(f)), f)
    assert np.allclose(hz_to_mel(f).numpy(), librosa.hz_to_mel(f.numpy(), htk=True))


@pytest.mark.parametrize("n_mels,n_fft,sr", [(40, 256, 8000), (80, 512, 16000), (20, 400, 8000)])
def test_mel_filterbank_equals_librosa_htk_unnormalised(n_mels, n_fft, sr):
    ours = mel_filterbank(n_mels, n_fft, sr)
    theirs = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, htk=True, norm=None)
    assert ours.shape == theirs.shape == (n_mels, n_fft // 2 + 1)
    assert np.allclose(ours.numpy(), theirs, atol=1e-5)


def test_mel_filters_form_a_partition_of_unity_between_first_and_last_centre():
    n_mels, n_fft, sr = 40, 256, 8000
    fb = mel_filterbank(n_mels, n_fft, sr)
    bins = torch.linspace(0, sr / 2, n_fft // 2 + 1)
    centres = mel_to_hz(torch.linspace(0, float(hz_to_mel(torch.tensor(sr / 2))), n_mels + 2))
    inside = (bins >= centres[1]) & (bins <= centres[-2])
    assert torch.allclose(fb[:, inside].sum(0), torch.ones(int(inside.sum())), atol=1e-5)
    assert (fb >= 0).all() and (fb <= 1).all()
    assert ((fb > 0).sum(0) <= 2).all()  # at most two triangles overlap anywhere


def test_log_mel_spectrogram_equals_librosa():
    x = torch.randn(4000, generator=torch.Generator().manual_seed(0)) * 0.1
    ours = log_mel_spectrogram(x, 8000, n_fft=256, hop_length=128, n_mels=40)  # (T, M)
    mel = librosa.feature.melspectrogram(
        y=x.numpy(), sr=8000, n_fft=256, hop_length=128, n_mels=40, htk=True, norm=None,
        center=True, pad_mode="reflect", power=2.0,
    )
    assert np.allclose(ours.numpy(), np.log(mel + 1e-6).T, atol=1e-3)


def tiny_model(**overrides) -> AudioClassifier:
    torch.manual_seed(0)
    config = AudioConfig(n_layer=2, n_head=2, n_embd=16, max_frames=40, **overrides)
    model = AudioClassifier(config)
    with torch.no_grad():  # bigger weights than the init, so that masking mistakes show
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model.eval()


def test_padded_batch_gives_each_recording_its_own_logits():
    model = tiny_model()
    gen = torch.Generator().manual_seed(1)
    specs = [torch.randn(t, 40, generator=gen) for t in (7, 30, 1, 18)]
    padded, padding = pad_batch(specs)
    assert padding.tolist()[2] == [False] + [True] * 29
    batched = model(padded, padding)  # (4, 10)
    for i, spec in enumerate(specs):
        alone = model(spec[None])  # (1, 10), no padding at all
        assert torch.allclose(batched[i], alone[0], atol=1e-5), i
    unmasked = model(padded)  # the same batch without the mask: padding leaks in
    assert not torch.allclose(unmasked[0], batched[0], atol=1e-3)


def test_loss_is_cross_entropy_and_evaluate_counts_correct_answers():
    model = tiny_model()
    gen = torch.Generator().manual_seed(2)
    specs = [torch.randn(t, 40, generator=gen) for t in (5, 9, 12)]
    logits = torch.cat([model(s[None]) for s in specs])
    labels = logits.argmax(-1).tolist()
    labels[1] = (labels[1] + 1) % 10  # one wrong
    padded, padding = pad_batch(specs)
    expected = -torch.log_softmax(logits, -1)[torch.arange(3), labels].mean().detach()
    assert torch.allclose(model.loss((padded, padding, torch.tensor(labels))), expected, atol=1e-5)
    result = evaluate(model, specs, labels, batch_size=2)
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["loss"] == pytest.approx(expected.item(), abs=1e-5)


def test_save_and_load_round_trip(tmp_path):
    model = tiny_model(n_mels=40)
    model.set_feature_stats([torch.randn(20, 40) * 3 + 1])
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = AudioClassifier.from_pretrained(tmp_path)
    spec = torch.randn(1, 12, 40)
    assert torch.equal(loaded(spec), model(spec))
    assert loaded.config == model.config


def test_load_refuses_missing_or_foreign_folders(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        AudioClassifier.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    (tmp_path / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(UserError):
        AudioClassifier.from_pretrained(tmp_path)


def test_predict_reads_a_recording_end_to_end(tmp_path):
    model = tiny_model()
    tone = torch.sin(2 * math.pi * 440 * torch.arange(3000) / 8000)
    probs = model.predict(tone)
    assert probs.shape == (10,) and torch.allclose(probs.sum(), torch.tensor(1.0))
    spec = model.featurize(tone)
    assert torch.allclose(probs, torch.softmax(model(spec[None]), -1)[0])


