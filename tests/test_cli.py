"""The command line end to end: train → folder → sample / eval; one-line errors for bad input."""

import json
import math
import pkgutil
import subprocess
import sys
from pydoc_data.topics import topics

import pytest
import torch

from fromscratch import commands
from fromscratch.cli import COMMANDS, main
from fromscratch.data.text import evaluate_lm, split_train_val
from fromscratch.language.gpt import GPT
from fromscratch.tokenizers import load_tokenizer

TEXT = "".join(topics[k] for k in sorted(topics))[:30_000]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "model"
    code = main(["gpt", "train", "--data", str(corpus), "--recipe", "demo", "--max-steps", "20",
                 "--out", str(out)])
    assert code == 0
    return out


def run_cli(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_writes_a_loadable_model_folder_with_its_tokenizer_and_log(trained):
    model = GPT.from_pretrained(trained)
    tokenizer = load_tokenizer(trained)
    assert model.config.vocab_size == tokenizer.vocab_size == len(set(TEXT))
    records = [json.loads(line) for line in (trained / "log.jsonl").read_text().splitlines()]
    evals = [r["val_loss"] for r in records if "val_loss" in r]
    assert abs(evals[0] - math.log(tokenizer.vocab_size)) < 0.5  # untrained: about ln(vocab)
    assert evals[-1] < evals[0] - 0.5  # 20 steps already learn the letter frequencies
    assert (trained / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (trained / "checkpoints" / "latest").read_text().strip() == "step-00000020"


def test_eval_prints_the_loss_over_the_whole_validation_split(trained, corpus, capsys):
    code, out, _ = run_cli(capsys, "gpt", "eval", "--ckpt", str(trained), "--data", str(corpus))
    assert code == 0
    model, tokenizer = GPT.from_pretrained(trained).eval(), load_tokenizer(trained)
    _, val_ids = split_train_val(torch.tensor(tokenizer.encode(TEXT)))
    expected = evaluate_lm(model, val_ids, model.config.block_size, batch_size=64)
    assert f"validation loss {expected:.4f} over {len(val_ids):,} tokens" in out


def test_sample_continues_the_prompt_and_is_deterministic_with_a_seed(trained, capsys):
    args = ["gpt", "sample", "--ckpt", str(trained), "--prompt", "The ", "--max-new-tokens", "40"]
    code, first, _ = run_cli(capsys, *args)
    _, second, _ = run_cli(capsys, *args)
    _, other_seed, _ = run_cli(capsys, *args, "--seed", "7")
    assert code == 0 and first == second != other_seed
    assert first.startswith("The ") and len(first.rstrip("\n")) == 4 + 40


def test_resume_continues_and_a_second_run_without_resume_is_refused(trained, corpus, capsys):
    args = ["gpt", "train", "--data", str(corpus), "--recipe", "demo", "--out", str(trained)]
    code, _, err = run_cli(capsys, *args, "--max-steps", "24")
    assert code == 2 and "already holds a training run" in err
    code, _, _ = run_cli(capsys, *args, "--max-steps", "24", "--resume")
    assert code == 0
    assert (trained / "checkpoints" / "latest").read_text().strip() == "step-00000024"


def write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make_data, message",
    [
        (lambda p: p / "missing.txt", "no such file"),
        (lambda p: write(p / "empty.txt", b""), "empty"),
        (lambda p: write(p / "bin.dat", b"\x00\x01\x02" * 100), "binary"),
        (lambda p: write(p / "latin.txt", "café ".encode("latin-1") * 50), "UTF-8"),
        (lambda p: p, "is a folder"),
    ],
)
def test_bad_data_files_give_one_line_and_exit_code_2(tmp_path, capsys, make_data, message):
    data = make_data(tmp_path)
    code, _, err = run_cli(capsys, "gpt", "train", "--data", str(data), "--out",
                           str(tmp_path / "out"))
    assert code == 2
    assert err.count("\n") == 1 and message.lower() in err.lower() and "Traceback" not in err


def test_bad_arguments_and_checkpoints_give_one_line_and_exit_code_2(trained, tmp_path, capsys):
    code, _, err = run_cli(capsys, "gpt", "train", "--data", "pydoc", "--recipe", "huge",
                           "--out", str(tmp_path / "x"))
    assert code == 2 and "unknown recipe 'huge'" in err

    code, _, err = run_cli(capsys, "gpt", "sample", "--ckpt", str(trained), "--prompt", "→ λ")
    assert code == 2 and "'→'" in err  # a character the model never saw

    code, _, err = run_cli(capsys, "gpt", "sample", "--ckpt", str(tmp_path / "nowhere"))
    assert code == 2 and err.count("\n") == 1

    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ["config.json", "tokenizer.json"]:
        (broken / name).write_bytes((trained / name).read_bytes())
    (broken / "model.safetensors").write_bytes((trained / "model.safetensors").read_bytes()[:100])
    code, _, err = run_cli(capsys, "gpt", "sample", "--ckpt", str(broken))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err


def test_the_console_script_prints_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "fromscratch", "gpt", "eval", "--ckpt", str(tmp_path),
         "--data", "pydoc"], capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_the_command_list_names_every_command_module_once():
    modules = {m.name for m in pkgutil.iter_modules(commands.__path__)} - {"common"}
    assert sorted(COMMANDS) == sorted(modules)


# Each command group, given a value argparse refuses and a file or name its verb refuses.
BAD_INPUT = {
    "gpt": (["gpt", "train", "--data", "pydoc", "--out", "{tmp}/o", "--max-steps", "x"],
            ["gpt", "eval", "--ckpt", "{tmp}/none", "--data", "pydoc"]),
    "llm": (["llm", "generate", "--prompt", "hi", "--max-new-tokens", "0"],
            ["llm", "generate", "--model", "{tmp}/none.gguf", "--prompt", "hi"]),
    "chat": (["chat", "--temperature", "-1"], ["chat", "--model", "{tmp}/none"]),
    "bert": (["bert", "search", "--corpus", "c.txt", "--top-k", "0", "q"],
             ["bert", "search", "--corpus", "{tmp}/none.txt", "q"]),
    "vit": (["vit", "train", "--out", "{tmp}/o", "--max-steps", "x"],
            ["vit", "eval", "--ckpt", "{tmp}/none"]),
    "imagegpt": (["imagegpt", "sample", "--ckpt", "{tmp}/none", "--out", "g.png", "--per-digit",
                  "-1"], ["imagegpt", "sample", "--ckpt", "{tmp}/none", "--out", "{tmp}/g.png"]),
    "arithmetic": (["arithmetic", "train", "--out", "{tmp}/o", "--op", "-"],
                   ["arithmetic", "eval", "--ckpt", "{tmp}/none"]),
    "audio": (["audio", "train", "--out", "{tmp}/o", "--lr", "fast"],
              ["audio", "eval", "--ckpt", "{tmp}/none"]),
    "music": (["music", "sample", "--ckpt", "{tmp}/none", "-o", "s.mid", "--steps", "0"],
              ["music", "show", "{tmp}/none.mid", "-o", "{tmp}/roll.png"]),
    "diffusion": (["diffusion", "toy", "--data", "spiral", "--out", "{tmp}/o"],
                  ["diffusion", "toy", "--data", "moons", "--exact-score", "--out", "{tmp}/o"]),
    "sd": (["sd", "sample", "--ckpt", "{tmp}/none", "a three", "-o", "g.png", "--guidance", "-2"],
           ["sd", "sample", "--ckpt", "{tmp}/none", "a three", "-o", "{tmp}/grid.jpg"]),
    "neuro": (["neuro", "simulate", "--out", "{tmp}/d.npz", "--trials", "many"],
              ["neuro", "eval", "--ckpt", "{tmp}/none", "--data", "{tmp}/none.npz"]),
    "lessons": (["lessons", "check", "02", "--timeout", "soon"],
                ["lessons", "check", "no-such-lesson"]),
}


@pytest.mark.parametrize("kind", ["usage", "verb"])
@pytest.mark.parametrize("group", COMMANDS)
def test_every_group_answers_bad_input_with_one_line_and_exit_code_2(group, kind, tmp_path,
                                                                    capsys):
    argv = [arg.format(tmp=tmp_path) for arg in BAD_INPUT[group][kind == "verb"]]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse refused a value before the verb ran
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    usage_error = f"(see fromscratch {group} " in err
    assert usage_error == (kind == "usage"), err
    assert list(tmp_path.iterdir()) == []  # nothing written


# Every `train` verb that has recipes, and the table its --recipe chooses from.
TRAIN_COMMANDS = {
    "gpt train": (["gpt", "train", "--data", "pydoc"], "fromscratch.language.recipes"),
    "vit train": (["vit", "train"], "fromscratch.beyond.vit"),
    "imagegpt train": (["imagegpt", "train"], "fromscratch.beyond.imagegpt"),
    "arithmetic train": (["arithmetic", "train", "--op", "*"], "fromscratch.beyond.arithmetic"),
    "audio train": (["audio", "train"], "fromscratch.beyond.audio"),
    "music train": (["music", "train"], "fromscratch.beyond.music"),
    "sd train": (["sd", "train"], "fromscratch.stable_diffusion.mnist"),
    "neuro train": (["neuro", "train", "--data", "d.npz"], "fromscratch.neuro.ndt"),
    "neuro train-generative": (["neuro", "train-generative", "--data", "d.npz"],
                               "fromscratch.neuro.generative"),
}


@pytest.mark.parametrize("command", TRAIN_COMMANDS)
def test_an_unknown_recipe_is_one_line_that_lists_the_track_s_recipes(command, tmp_path, capsys):
    import importlib

    argv, table = TRAIN_COMMANDS[command]
    names = ", ".join(importlib.import_module(table).RECIPES)
    code = main([*argv, "--recipe", "nope", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"error: unknown recipe 'nope'; choose one of: {names}\n"
    assert list(tmp_path.iterdir()) == []  # refused before anything is read or written
