"""`fromscratch audio` end to end on synthetic "digits" (a tone per digit): train -> folder ->
eval / predict agree with the library; bad WAV files give one-line errors."""

import json
import math

import pytest
import torch
from test_cli import run_cli

from fromscratch.beyond.audio import AudioClassifier, evaluate, featurize_all
from fromscratch.cli import main
from fromscratch.data.audio import load_fsdd, random_split, read_wav, write_wav


def tone(digit: int, speaker: int, index: int) -> torch.Tensor:
    t = torch.arange(2400 + 160 * ((index + speaker) % 4)) / 8000  # 0.3-0.38 s
    frequency = 300 + 150 * digit + 20 * speaker
    return 0.5 * torch.sin(2 * math.pi * frequency * t)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fsdd") / "recordings"
    folder.mkdir()
    for digit in range(10):
        for s, speaker in enumerate(("ann", "bob")):
            for index in range(5):
                write_wav(folder / f"{digit}_{speaker}_{index}.wav", tone(digit, s, index), 8000)
    return folder


def train_once(recordings, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "model"
    code = main(["audio", "train", "--data", str(recordings), "--max-steps", "20",
                 "--batch-size", "16",
                 "--out", str(out)])
    assert code == 0
    return out


def test_train_eval_predict_end_to_end(recordings, tmp_path_factory, tmp_path, capsys):
    """One training run (a few seconds) serves every check, so that parallel test workers
    never train twice."""
    trained = train_once(recordings, tmp_path_factory)
    capsys.readouterr()  # the training report
    train_writes_a_model_folder_and_learns(trained)
    eval_recomputes_the_runs_test_split(trained, recordings, capsys)
    predict_prints_the_most_likely_digit(trained, recordings, capsys)
    for content, message in [(b"not audio", "is not a readable WAV file"), (None, "no file")]:
        bad_input_is_one_line_and_exit_code_2(trained, tmp_path, capsys, content, message)
    wrong_sample_rate_and_missing_model(trained, tmp_path, capsys)


def train_writes_a_model_folder_and_learns(trained):
    assert {"config.json", "model.safetensors", "split.json", "log.jsonl", "loss.png"} <= {
        p.name for p in trained.iterdir()}
    records = [json.loads(line) for line in (trained / "log.jsonl").read_text().splitlines()]
    accuracy = [r["test_accuracy"] for r in records if "test_accuracy" in r]
    losses = [r["test_loss"] for r in records if "test_loss" in r]
    assert abs(losses[0] - math.log(10)) < 0.2  # untrained: about ln 10
    assert losses[-1] < losses[0] - 0.5 and accuracy[-1] > accuracy[0]


def eval_recomputes_the_runs_test_split(trained, recordings, capsys):
    code, out, _ = run_cli(capsys, "audio", "eval", "--ckpt", str(trained), "--data",
                           str(recordings))
    assert code == 0
    model = AudioClassifier.from_pretrained(trained)
    _, test = random_split(load_fsdd(recordings), 0.2, seed=0)
    result = evaluate(model, featurize_all(test, model.config), [r.digit for r in test])
    assert f"test accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f} on 20 " in out


def predict_prints_the_most_likely_digit(trained, recordings, capsys):
    path = recordings / "7_bob_3.wav"
    code, out, _ = run_cli(capsys, "audio", "predict", str(path), "--ckpt", str(trained))
    assert code == 0
    probs = AudioClassifier.from_pretrained(trained).predict(read_wav(path)[0])
    digit = int(probs.argmax())
    assert out.strip() == f"{path}: digit {digit} (probability {float(probs[digit]):.3f})"


def bad_input_is_one_line_and_exit_code_2(trained, tmp_path, capsys, content, message):
    path = tmp_path / "x.wav"
    path.unlink(missing_ok=True)
    if content is not None:
        path.write_bytes(content)
    code, out, err = run_cli(capsys, "audio", "predict", str(path), "--ckpt", str(trained))
    assert code == 2 and message in err and err.count("\n") == 1


def wrong_sample_rate_and_missing_model(trained, tmp_path, capsys):
    write_wav(tmp_path / "fast.wav", tone(1, 0, 0), 16000)
    code, _, err = run_cli(capsys, "audio", "predict", str(tmp_path / "fast.wav"), "--ckpt",
                           str(trained))
    assert code == 2 and "16000 Hz" in err
    code, _, err = run_cli(capsys, "audio", "eval", "--ckpt", str(tmp_path))
    assert code == 2 and "config.json" in err
