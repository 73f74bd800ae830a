"""`fromscratch bert finetune` / `bert predict` end to end on a tiny BERT; bad input → one line
on stderr and exit code 2."""

import json

import pytest
import test_classify

from fromscratch.cli import main

base = test_classify.base  # the fixture: a tiny random BERT folder with a word vocabulary


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    data = test_classify.toy_texts(200, seed=5)
    path = tmp_path_factory.mktemp("data") / "messages.tsv"
    rows = enumerate(zip(data.texts, data.labels, strict=True))
    lines = ["id\tkind\tmessage"] + [f"{i}\t{['ham', 'spam'][y]}\t{t}" for i, (t, y) in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("lora", [False, True])
def test_finetune_then_predict(capsys, base, table, tmp_path, lora):
    out = tmp_path / "clf"
    extra = ["--lora-rank", "4", "--lr", "1e-2"] if lora else ["--lr", "1e-3"]
    code, printed, err = run_cli(capsys, "bert", "finetune", "--data", table, "--text-col",
                                 "message", "--label-col", "kind", "--model", base, "--epochs",
                                 "3", "--batch-size", "16", "--max-length", "16", "--out", out,
                                 *extra)
    assert code == 0, err
    assert "180 training and 20 validation texts (ham 100, spam 100)" in printed
    assert "validation accuracy 1.0000, F1 of 'spam' 1.0000" in printed
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "ham", "1": "spam"}
    assert (out / ("adapter_model.safetensors" if lora else "model.safetensors")).is_file()
    assert (out / "vocab.txt").is_file() and (out / "log.jsonl").is_file()

    code, printed, err = run_cli(capsys, "bert", "predict", "--ckpt", out, "free cash prize now",
                                 "see you at home mum")
    assert code == 0, err
    rows = [line.split("\t") for line in printed.splitlines()]
    assert [(r[0], r[2]) for r in rows] == [("spam", "free cash prize now"),
                                           ("ham", "see you at home mum")]
    assert all(0.5 < float(r[1]) <= 1.0 for r in rows)


@pytest.mark.parametrize("content, args, message", [
    (None, (), "no file"),
    ("a,b\n1,2\n", ("--text-col", "text"), "no column 'text'; its columns are: a, b"),
    ("text,label\nhi,x\nho,x\n", (), "single class"),
    ("text,label\nhi,x\n ,y\n", (), "data row 2 has an empty 'text'"),
    ("text,label\nhi,x,extra\n", (), "line 2 has 3 fields"),
])
def test_bad_data_is_one_line_and_exit_2(capsys, base, tmp_path, content, args, message):
    path = tmp_path / "data.csv"
    if content is not None:
        path.write_text(content)
    columns = {"--text-col": "text", "--label-col": "label"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        columns[flag] = value
    flags = [item for pair in columns.items() for item in pair]
    code, _, err = run_cli(capsys, "bert", "finetune", "--data", path, *flags, "--model", base,
                           "--out", tmp_path / "out")
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_predict_errors(capsys, base, tmp_path):
    code, _, err = run_cli(capsys, "bert", "predict", "--ckpt", tmp_path, "hello")
    assert code == 2 and "has no config.json" in err
    code, _, err = run_cli(capsys, "bert", "predict", "--ckpt", base, "hello")
    assert code == 2 and "holds no classifier" in err
    code, _, err = run_cli(capsys, "bert", "predict", "--ckpt", base, "  ")
    assert code == 2 and "non-empty texts" in err
