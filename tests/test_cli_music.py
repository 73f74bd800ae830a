"""`fromscratch music` end to end on a tiny chorale set: train -> folder -> eval / sample / show;
bad MIDI files and bad arguments give one-line errors."""

import json

import pytest
import torch
from test_cli import run_cli

from fromscratch.beyond.midi import midi_to_roll, read_midi
from fromscratch.beyond.music import MusicTransformer, evaluate_nll
from fromscratch.cli import main
from fromscratch.data.music import load_jsb, to_piano_roll

C, F, G = [60, 64, 67, 72], [60, 65, 69, 72], [59, 62, 67, 74]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jsb")
    cadence = [C, F, G, C]
    chorales = {"train": [cadence * 3, cadence * 2, [C, C, G, G, C]],
                "valid": [cadence * 2], "test": [cadence, [F, G, C]]}
    (folder / "jsb-chorales-quarter.json").write_text(json.dumps(chorales))
    return folder


def train_once(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "model"
    assert main(["music", "train", "--data", str(data), "--max-steps", "30", "--lr", "3e-3",
                 "--batch-size", "4", "--nade", "8", "--out", str(out)]) == 0
    return out


def test_train_eval_sample_show_end_to_end(data, tmp_path_factory, tmp_path, capsys):
    """One training run serves every check, so that parallel test workers never train twice."""
    trained = train_once(data, tmp_path_factory)
    capsys.readouterr()  # the training report
    train_learns_the_cadence(trained)
    eval_prints_the_test_nll(trained, data, capsys)
    sample_writes_the_models_sample_as_midi_and_png(trained, tmp_path, capsys)
    show_draws_a_midi_file(trained, tmp_path, capsys)
    bad_arguments(trained, tmp_path, capsys)


def train_learns_the_cadence(trained):
    model = MusicTransformer.from_pretrained(trained)
    assert model.config.block_size == 13  # the longest chorale (12 steps) + the start step
    assert (model.config.within_step, model.config.nade_hidden) == (True, 8)  # --nade 8
    records = [json.loads(line) for line in (trained / "log.jsonl").read_text().splitlines()]
    val = [r["val_loss"] for r in records if "val_loss" in r]
    assert val[0] > 55  # untrained: about 88 ln 2 = 61 nats per step
    assert val[-1] < val[0] / 2


def eval_prints_the_test_nll(trained, data, capsys):
    code, out, _ = run_cli(capsys, "music", "eval", "--ckpt", str(trained), "--data", str(data))
    assert code == 0
    rolls = [to_piano_roll(c) for c in load_jsb("quarter", data)["test"]]
    nll = evaluate_nll(MusicTransformer.from_pretrained(trained), rolls)
    expected = f"test NLL per time step {nll:.4f} over 2 chorales, 7 steps (quarter notes)"
    assert out.strip() == expected


def sample_writes_the_models_sample_as_midi_and_png(trained, tmp_path, capsys):
    out = tmp_path / "song.mid"
    code, text, _ = run_cli(capsys, "music", "sample", "--ckpt", str(trained), "-o", str(out),
                            "--steps", "12", "--seed", "5")
    assert code == 0 and "wrote" in text
    expected = MusicTransformer.from_pretrained(trained).sample(
        12, generator=torch.Generator().manual_seed(5))[0]
    roll = midi_to_roll(read_midi(out), steps_per_quarter=1)
    assert torch.equal(roll, expected[: len(roll)]) and expected[len(roll):].sum() == 0
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    mido = pytest.importorskip("mido")
    assert mido.MidiFile(out).ticks_per_beat == 480


def show_draws_a_midi_file(trained, tmp_path, capsys):
    run_cli(capsys, "music", "sample", "--ckpt", str(trained), "-o", str(tmp_path / "a.mid"),
            "--steps", "12")
    code, out, _ = run_cli(capsys, "music", "show", str(tmp_path / "a.mid"), "-o",
                           str(tmp_path / "shown.png"), "--steps-per-quarter", "1")
    assert code == 0 and (tmp_path / "shown.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("content,message", [
    (b"MThd\x00\x00", "not a Standard MIDI File"),
    (b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0MTrk\x00\x00\x00\x20\x00\x90", "cut short"),
    (None, "cannot read"),
])
def test_bad_midi_is_one_line_and_exit_code_2(tmp_path, capsys, content, message):
    path = tmp_path / "bad.mid"
    if content is not None:
        path.write_bytes(content)
    code, _, err = run_cli(capsys, "music", "show", str(path), "-o", str(tmp_path / "x.png"))
    assert code == 2 and message in err and err.count("\n") == 1


def bad_arguments(trained, tmp_path, capsys):
    code, _, err = run_cli(capsys, "music", "sample", "--ckpt", str(trained), "-o",
                           str(tmp_path / "x.wav"))
    assert code == 2 and "should end in .mid" in err
    code, _, err = run_cli(capsys, "music", "sample", "--ckpt", str(trained), "-o",
                           str(tmp_path / "x.mid"), "--steps", "50")
    assert code == 2 and "n_steps must be 1..12" in err
    code, _, err = run_cli(capsys, "music", "eval", "--ckpt", str(tmp_path))
    assert code == 2 and "config.json" in err
    with pytest.raises(SystemExit) as exit_:  # argparse's own errors exit directly
        main(["music", "train", "--out", str(tmp_path / "y"), "--nade", "-4"])
    assert exit_.value.code == 2 and "--nade: must be ≥ 0, got -4" in capsys.readouterr().err
