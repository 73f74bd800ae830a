"""`fromscratch neuro simulate|train|eval` end to end on a tiny population; one-line errors."""

import json
from types import SimpleNamespace

import numpy as np
import torch

from fromscratch.cli import main
from fromscratch.commands.neuro import _bin_size
from fromscratch.neuro.ndt import NDT


def run(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_simulate_train_eval(tmp_path, capsys):
    data = tmp_path / "data.npz"
    code, text, _ = run(capsys, "neuro", "simulate", "--out", str(data), "--trials", "12",
                        "--neurons", "6", "--bins", "10")
    assert code == 0 and "12 trials × 10 bins × 6 neurons" in text
    with np.load(data, allow_pickle=False) as archive:
        assert archive["spikes"].shape == archive["rates"].shape == (12, 10, 6)
        assert archive["latents"].shape == (12, 10, 3)
    out = tmp_path / "ndt"
    code, text, _ = run(capsys, "neuro", "train", "--data", str(data), "--out", str(out),
                        "--heldout", "2", "--valid-trials", "4", "--max-steps", "2")
    assert code == 0 and "stopped by max_steps at step 2" in text, text
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "ndt" and config["n_heldout"] == 2
    code, text, _ = run(capsys, "neuro", "eval", "--ckpt", str(out), "--data", str(data),
                        "--valid-trials", "4")
    assert code == 0 and "bits/spike" in text and "R² of inferred vs true rates" in text
    # the printed score is the model's on the last 4 trials' last 2 neurons
    from fromscratch.neuro.metrics import bits_per_spike

    spikes = torch.from_numpy(np.load(data)["spikes"]).float()[-4:]
    rates = NDT.from_pretrained(out).infer_rates(spikes)
    assert f"{bits_per_spike(rates[:, :, -2:], spikes[:, :, -2:]):.4f} bits/spike" in text


def test_bad_input_is_one_line(tmp_path, capsys):
    np.save(tmp_path / "rates.npy", np.full((3, 4, 5), 0.5))
    code, _, err = run(capsys, "neuro", "train", "--data", str(tmp_path / "rates.npy"),
                       "--out", str(tmp_path / "o"))
    assert code == 2 and "non-integer" in err and err.count("\n") == 1
    np.save(tmp_path / "counts.npy", np.ones((3, 4, 5), dtype=int))
    code, _, err = run(capsys, "neuro", "train", "--data", str(tmp_path / "counts.npy"),
                       "--out", str(tmp_path / "o"), "--valid-trials", "3")
    assert code == 2 and "--valid-trials" in err
    code, _, err = run(capsys, "neuro", "train", "--data", str(tmp_path / "counts.npy"),
                       "--out", str(tmp_path / "o"), "--valid-trials", "1", "--heldout", "5")
    assert code == 2 and "--heldout" in err
    code, _, err = run(capsys, "neuro", "eval", "--ckpt", str(tmp_path / "none"),
                       "--data", str(tmp_path / "counts.npy"))
    assert code == 2 and "config.json" in err


def test_train_refuses_an_earlier_run_unless_resume_or_overwrite(tmp_path, capsys):
    data = tmp_path / "data.npz"
    run(capsys, "neuro", "simulate", "--out", str(data), "--trials", "10", "--neurons", "5",
        "--bins", "8")
    out = tmp_path / "ndt"
    common = ("neuro", "train", "--data", str(data), "--out", str(out), "--heldout", "1",
              "--valid-trials", "2", "--max-steps", "2")
    assert run(capsys, *common)[0] == 0
    code, _, err = run(capsys, *common)
    assert code == 2 and err.count("\n") == 1 and "--overwrite" in err and "--resume" in err
    code, text, _ = run(capsys, *common, "--overwrite")
    assert code == 0 and "at step 2" in text
    code, text, _ = run(capsys, *common[:-1], "3", "--resume")  # one more step
    assert code == 0 and "at step 3" in text
    # spikes without rates: the diffusion model learns the rates this NDT infers
    spikes_only = tmp_path / "spikes.npz"
    np.savez(spikes_only, spikes=np.load(data)["spikes"])
    gen = tmp_path / "gen"
    code, text, _ = run(capsys, "neuro", "train-generative", "--data", str(spikes_only),
                        "--out", str(gen), "--rates-from", str(out), "--valid-trials", "2",
                        "--max-steps", "1")
    assert code == 0 and "every trial is condition 0" in text and "at step 1" in text
    from fromscratch.neuro.generative import ConditionalDenoiser

    inferred = NDT.from_pretrained(out).infer_rates(torch.from_numpy(
        np.load(data)["spikes"]).float()[:8])  # the 8 training trials
    log_rates = inferred.clamp_min(1e-4).log()
    assert torch.allclose(ConditionalDenoiser.from_pretrained(gen).log_rate_mean,
                          log_rates.mean((0, 1)), atol=1e-5)


def test_train_generative_and_generate(tmp_path, capsys):
    data = tmp_path / "data.npz"
    code, text, _ = run(capsys, "neuro", "simulate", "--out", str(data), "--trials", "24",
                        "--neurons", "5", "--bins", "8", "--conditions", "2")
    assert code == 0 and "in 2 conditions" in text
    assert np.load(data)["conditions"].tolist() == [r % 2 for r in range(24)]
    out = tmp_path / "gen"
    train = ("neuro", "train-generative", "--data", str(data), "--out", str(out),
             "--valid-trials", "8", "--max-steps", "2")
    code, text, _ = run(capsys, *train)
    assert code == 0 and "16 trials, 2 condition(s)" in text and "at step 2" in text
    code, _, err = run(capsys, *train)
    assert code == 2 and "--overwrite" in err and err.count("\n") == 1
    trials, plot = tmp_path / "trials.npz", tmp_path / "psth.png"
    code, text, _ = run(capsys, "neuro", "generate", "--ckpt", str(out), "--condition", "1",
                        "--trials", "4", "--steps", "3", "-o", str(trials), "--plot", str(plot),
                        "--data", str(data), "--valid-trials", "8")
    assert code == 0 and plot.stat().st_size > 10_000, text
    args = SimpleNamespace(bin_size=None, data=str(data))
    assert _bin_size(args) == 0.01 == float(np.load(data)["bin_size"])  # read from the file
    np.savez(tmp_path / "coarse.npz", spikes=np.load(data)["spikes"], bin_size=np.array(0.05))
    assert _bin_size(SimpleNamespace(bin_size=None, data=str(tmp_path / "coarse.npz"))) == 0.05
    assert _bin_size(SimpleNamespace(bin_size=0.02, data=str(tmp_path / "coarse.npz"))) == 0.02
    with np.load(trials) as archive:
        assert archive["spikes"].shape == archive["rates"].shape == (4, 8, 5)
        assert archive["conditions"].tolist() == [1, 1, 1, 1]
    from fromscratch.neuro.generative import ConditionalDenoiser

    model = ConditionalDenoiser.from_pretrained(out)  # the file holds the seeded draw
    rates, spikes = model.generate(torch.ones(4, dtype=torch.long), steps=3,
                                   generator=torch.Generator().manual_seed(0))
    assert np.array_equal(np.load(trials)["spikes"], spikes.numpy())


def test_generative_bad_input_is_one_line(tmp_path, capsys):
    np.save(tmp_path / "counts.npy", np.ones((6, 4, 3), dtype=int))
    code, _, err = run(capsys, "neuro", "train-generative", "--data",
                       str(tmp_path / "counts.npy"), "--out", str(tmp_path / "o"))
    assert code == 2 and "--rates-from" in err and err.count("\n") == 1
    code, _, err = run(capsys, "neuro", "generate", "--ckpt", str(tmp_path / "none"),
                       "-o", str(tmp_path / "t.npz"))
    assert code == 2 and "config.json" in err
    from fromscratch.neuro.generative import ConditionalDenoiser, GenerativeConfig

    ConditionalDenoiser(GenerativeConfig(n_neurons=3, n_bins=4, n_conditions=2, n_embd=8,
                                         n_layer=1)).save_pretrained(tmp_path / "m")
    code, _, err = run(capsys, "neuro", "generate", "--ckpt", str(tmp_path / "m"),
                       "--condition", "2", "-o", str(tmp_path / "t.npz"))
    assert code == 2 and "between 0 and 1" in err
    code, _, err = run(capsys, "neuro", "generate", "--ckpt", str(tmp_path / "m"),
                       "-o", str(tmp_path / "t.npz"), "--plot", str(tmp_path / "p.png"))
    assert code == 2 and "--data" in err
