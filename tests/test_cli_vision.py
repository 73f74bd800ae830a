"""`fromscratch vit|imagegpt|arithmetic` end to end, on a few images and steps; one-line errors."""

import json

import numpy as np
import pytest
import torch

from fromscratch.cli import main
from fromscratch.data import images
from fromscratch.data.images import ImageSet


@pytest.fixture(autouse=True)
def few_images(monkeypatch):
    """Every command sees 64 training and 32 test digits: the pipeline, not the accuracy."""
    generator = torch.Generator().manual_seed(0)
    small = (ImageSet(torch.rand(64, 1, 28, 28, generator=generator), torch.arange(64) % 10),
             ImageSet(torch.rand(32, 1, 28, 28, generator=generator), torch.arange(32) % 10))
    monkeypatch.setattr(images, "load_images", lambda source, **kwargs: small)


def run(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cnn_train_then_eval_and_classify_files(tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "cnn"
    code, text, _ = run(capsys, "vit", "train", "--recipe", "cnn", "--max-steps", "2",
                        "--out", str(out))
    assert code == 0 and "SmallCNN" in text and "test accuracy" in text
    assert json.loads((out / "config.json").read_text())["model_type"] == "cnn"
    code, text, _ = run(capsys, "vit", "eval", "--ckpt", str(out))
    assert code == 0 and text.startswith("test accuracy ") and "on 32 mnist5k test" in text

    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(tmp_path / "digit.png")
    code, text, _ = run(capsys, "vit", "eval", "--ckpt", str(out), "--image",
                        str(tmp_path / "digit.png"))
    assert code == 0 and text.startswith(f"{tmp_path / 'digit.png'}: ") and "probability" in text

    Image.fromarray(np.zeros((28, 28, 3), dtype=np.uint8)).save(tmp_path / "colour.png")
    code, text, err = run(capsys, "vit", "eval", "--ckpt", str(out), "--image",
                          str(tmp_path / "colour.png"))
    assert code == 2 and err.count("\n") == 1 and "RGB image; give a grayscale" in err
    code, _, err = run(capsys, "vit", "eval", "--ckpt", str(out), "--maps", "m.png")
    assert code == 2 and "--maps needs a ViT" in err


def test_vit_train_and_attention_maps(tmp_path, capsys):
    out = tmp_path / "vit"
    code, _, _ = run(capsys, "vit", "train", "--max-steps", "1", "--out", str(out))
    assert code == 0
    code, text, _ = run(capsys, "vit", "eval", "--ckpt", str(out), "--maps",
                        str(tmp_path / "maps.png"))
    assert code == 0 and (tmp_path / "maps.png").stat().st_size > 1000
    code, _, err = run(capsys, "vit", "eval", "--ckpt", str(tmp_path))
    assert code == 2 and "holds no ViT or CNN" in err


def test_imagegpt_train_then_sample_a_grid_and_classify_it(tmp_path, capsys):
    out = tmp_path / "igpt"
    code, text, _ = run(capsys, "imagegpt", "train", "--max-steps", "2", "--out", str(out))
    assert code == 0 and "bits per dimension" in text
    run(capsys, "vit", "train", "--recipe", "cnn", "--max-steps", "1", "--out", str(tmp_path / "c"))
    code, text, _ = run(capsys, "imagegpt", "sample", "--ckpt", str(out), "--out",
                        str(tmp_path / "grid.png"), "--digits", "37", "--per-digit", "2",
                        "--classifier", str(tmp_path / "c"))
    assert code == 0 and text.startswith("4 samples in") and "recognises" in text
    assert (tmp_path / "grid.png").stat().st_size > 1000
    code, _, err = run(capsys, "imagegpt", "sample", "--ckpt", str(out), "--out", "g.png",
                       "--digits", "3a")
    assert code == 2 and "--digits must be digits" in err


def test_arithmetic_train_eval_and_one_problem(tmp_path, capsys):
    out = tmp_path / "add"
    code, text, _ = run(capsys, "arithmetic", "train", "--digits", "1", "--max-steps", "2",
                        "--out", str(out))
    assert code == 0 and "held-out problems" in text
    code, text, _ = run(capsys, "arithmetic", "eval", "--ckpt", str(out), "--n", "5")
    rows = [line for line in text.splitlines() if line.startswith("| ") and "%" in line]
    assert [row.split(" |")[0] for row in rows] == ["| 1 (trained)", "| 2", "| 3"]
    code, text, _ = run(capsys, "arithmetic", "eval", "--ckpt", str(out), "--problem", "3+4")
    assert code == 0 and text.startswith("3+4=")
    code, _, err = run(capsys, "arithmetic", "eval", "--ckpt", str(out), "--problem", "3-4")
    assert code == 2 and "must look like 123+45" in err


def test_arithmetic_multiplication_trains_its_own_recipe_unless_told_otherwise(tmp_path):
    from fromscratch.beyond import arithmetic as ar
    from fromscratch.language.gpt import GPT

    addition, multiplication = ar.RECIPES["addition"].model, ar.RECIPES["multiplication"].model
    assert addition["n_embd"] != multiplication["n_embd"]
    for out, recipe, expected in [("mul", [], multiplication),
                                  ("mul-small", ["--recipe", "addition"], addition)]:
        assert main(["arithmetic", "train", "--op", "*", "--digits", "1", "--max-steps", "2",
                     *recipe, "--out", str(tmp_path / out)]) == 0
        config = GPT.from_pretrained(tmp_path / out).config
        assert (config.n_layer, config.n_embd) == (expected["n_layer"], expected["n_embd"])


def test_a_shortened_run_keeps_warmup_to_a_fifth_of_its_steps():
    from argparse import Namespace

    from fromscratch.beyond.vit import RECIPES
    from fromscratch.commands.common import train_config
    from fromscratch.language.recipes import RECIPES as GPT_RECIPES

    def settings(recipe, **overrides):
        args = dict(max_steps=None, max_time=None, lr=None, seed=0, device="cpu") | overrides
        return train_config(recipe, Namespace(**args))

    recipe = RECIPES["vit"]
    full = settings(recipe)
    assert (full.max_steps, full.warmup_steps) == (recipe.train["max_steps"],
                                                   recipe.train["warmup_steps"])
    assert full.betas == recipe.train["betas"] and full.eval_interval == full.max_steps // 4
    short = settings(recipe, max_steps=50, lr=1e-3)
    assert (short.max_steps, short.warmup_steps, short.lr) == (50, 10, 1e-3)
    assert short.eval_interval == 12  # four evaluations
    once = settings(GPT_RECIPES["shakespeare-char"])  # a recipe's own evaluation interval stays
    assert once.eval_interval == once.max_steps == 660
