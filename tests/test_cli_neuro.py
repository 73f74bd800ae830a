"""`fromscratch neuro simulate|train|eval` end to end on a tiny population; one-line errors."""

import json

import numpy as np
import torch

from fromscratch.cli import main
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
