"""`fromscratch sd train|sample` end to end with the tiny recipe and a tiny text encoder; a trained
folder is never replaced silently; bad prompts, folders and arguments get one-line errors."""

import json
import re

import pytest
import torch

from fromscratch.cli import main
from fromscratch.data import images
from fromscratch.data.images import ImageSet
from fromscratch.data.prompts import HELD_OUT_TEMPLATES, TRAIN_TEMPLATES
from fromscratch.language.bert import BertConfig, BertModel


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    """A random 1-layer BERT folder whose vocabulary holds every prompt word."""
    words = set()
    for template in TRAIN_TEMPLATES + HELD_OUT_TEMPLATES:
        words |= set(re.findall(r"[a-z]+", template))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", "-", *map(str, range(10)),
             "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
             *sorted(words)]
    folder = tmp_path_factory.mktemp("bert")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(dict.fromkeys(vocab)), hidden_size=16,
                         num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                         max_position_embeddings=32)).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)))
    return folder


@pytest.fixture(scope="module")
def trained(encoder_dir, tmp_path_factory):
    """A tiny model trained on 64 random "digits" through the command line."""
    generator = torch.Generator().manual_seed(0)
    small = (ImageSet(torch.rand(64, 1, 28, 28, generator=generator), torch.arange(64) % 10),
             ImageSet(torch.rand(32, 1, 28, 28, generator=generator), torch.arange(32) % 10))
    out = tmp_path_factory.mktemp("sd") / "model"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(images, "load_images", lambda source, **kwargs: small)
        code = main(["sd", "train", "--recipe", "tiny", "--out", str(out), "--max-steps", "3",
                     "--text-encoder", str(encoder_dir)])
    assert code == 0
    return out, small


def test_train_writes_a_pipeline_folder(trained):
    out, _ = trained
    for name in ("model_index.json", "unet/config.json", "vae/config.json",
                 "text_encoder/model.safetensors", "tokenizer/vocab.txt",
                 "scheduler/scheduler_config.json"):
        assert (out / name).is_file(), name
    report = json.loads((out / "training.json").read_text())
    assert report["unet_steps"] == 3 and report["steps"] == 4  # tiny recipe: 4 VAE steps
    assert report["recon_mse"] > 0 and report["kl"] > 0
    unet = json.loads((out / "unet" / "config.json").read_text())
    assert unet["cross_attention_dim"] == 16 and unet["sample_size"] == 7  # 28 / 4
    assert json.loads((out / "scheduler" / "scheduler_config.json").read_text())[
        "beta_schedule"] == "scaled_linear"


def test_a_trained_folder_is_not_replaced_silently(trained, encoder_dir, capsys, monkeypatch):
    out, small = trained
    monkeypatch.setattr(images, "load_images", lambda source, **kwargs: small)
    before = (out / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    code, _, err = run(capsys, "sd", "train", "--recipe", "tiny", "--out", out,
                       "--text-encoder", encoder_dir)
    assert code == 2 and err.count("\n") == 1 and "already holds a trained model" in err
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == before
    code, _, err = run(capsys, "sd", "train", "--out", out, "--resume", "--overwrite")
    assert code == 2 and "contradict" in err


def test_sample_writes_a_grid(trained, tmp_path, capsys):
    from PIL import Image

    out, _ = trained
    grid = tmp_path / "grid.png"
    code, text, _ = run(capsys, "sd", "sample", "--ckpt", out, "a handwritten three",
                        "--steps", 3, "-n", 2, "--sampler", "ddim", "-o", grid)
    assert code == 0 and "2 images" in text
    width, height = Image.open(grid).size
    assert width > 100 and height > 100


@pytest.mark.parametrize("args, message", [
    (["", "-o", "{tmp}/g.png"], "the prompt is empty"),
    (["seven " * 20, "-o", "{tmp}/g.png"], "tokens long; this model reads at most 16"),
    (["a 3", "-o", "{tmp}/g.jpg"], "give a .png"),
    (["a 3", "-o", "{tmp}/nowhere/g.png"], "does not exist"),
    (["a 3", "--steps", "5000", "-o", "{tmp}/g.png"], "more than the 1000 training timesteps"),
    (["a 3", "--guidance", "-1", "-o", "{tmp}/g.png"], "must be ≥ 0"),
    (["a 3", "--sampler", "heun", "-o", "{tmp}/g.png"], "invalid choice"),
])
def test_sample_errors_are_one_line(trained, tmp_path, capsys, args, message):
    out, _ = trained
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    try:
        code, _, err = run(capsys, "sd", "sample", "--ckpt", out, *args)
    except SystemExit as exit:  # argparse's own errors
        code, err = exit.code, capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_a_folder_that_is_no_checkpoint(tmp_path, capsys):
    (tmp_path / "unet").mkdir()
    code, _, err = run(capsys, "sd", "sample", "--ckpt", tmp_path, "a 3", "-o",
                       tmp_path / "g.png")
    assert code == 2 and err.count("\n") == 1 and "not a diffusers pipeline folder" in err
