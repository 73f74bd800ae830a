"""Recipes: every track's table holds the one Recipe type, whose fields build the track's models;
a recipe is checked when it is made, frozen afterwards, and looked up by name."""

import dataclasses
from types import MappingProxyType

import pytest

from fromscratch.beyond import arithmetic, audio, imagegpt, music, vit
from fromscratch.beyond.audio import AudioConfig
from fromscratch.beyond.imagegpt import ImageGPTConfig
from fromscratch.beyond.music import MusicConfig
from fromscratch.beyond.vit import CNNConfig, ViTConfig
from fromscratch.errors import UserError
from fromscratch.language import recipes as gpt_recipes
from fromscratch.language.gpt import GPTConfig
from fromscratch.neuro import generative, ndt
from fromscratch.neuro.generative import GenerativeConfig
from fromscratch.neuro.ndt import NDTConfig
from fromscratch.stable_diffusion import mnist
from fromscratch.stable_diffusion.unet import UNetConfig
from fromscratch.stable_diffusion.vae import VAEConfig
from fromscratch.training.loop import TrainConfig
from fromscratch.training.recipes import Recipe, get_recipe

VALID = dict(description="a test recipe", model=dict(n_layer=1), batch_size=4,
             train=dict(max_steps=10, lr=1e-3))

# each track's table, and how one of its recipes makes the track's model config
TRACKS = {
    "gpt": (gpt_recipes.RECIPES, lambda name, r: GPTConfig(vocab_size=65, **r.model)),
    "vit": (vit.RECIPES, lambda name, r: (CNNConfig if name == "cnn" else ViTConfig)(**r.model)),
    "imagegpt": (imagegpt.RECIPES, lambda name, r: ImageGPTConfig(**r.model)),
    "arithmetic": (arithmetic.RECIPES,
                   lambda name, r: GPTConfig(vocab_size=len(arithmetic.VOCAB), **r.model)),
    "audio": (audio.RECIPES, lambda name, r: AudioConfig(**r.model)),
    "music": (music.RECIPES, lambda name, r: MusicConfig(block_size=65, **r.model)),
    "ndt": (ndt.RECIPES, lambda name, r: NDTConfig(n_neurons=20, n_heldout=4, n_bins=30,
                                                    **r.model)),
    "generative": (generative.RECIPES,
                   lambda name, r: GenerativeConfig(n_neurons=20, n_bins=30, n_conditions=2,
                                                    **r.model)),
    "sd": (mnist.RECIPES, lambda name, r: (UNetConfig(**r.model),
                                           VAEConfig(**r.extra["vae"]))),
}


@pytest.mark.parametrize("track", TRACKS)
def test_every_track_keeps_recipes_whose_settings_build_its_model_and_training(track):
    recipes, make_config = TRACKS[track]
    assert recipes and all(isinstance(name, str) for name in recipes)
    for name, recipe in recipes.items():
        assert type(recipe) is Recipe, name
        make_config(name, recipe)  # every model setting is a field of the track's config
        config = TrainConfig(**recipe.train)
        assert config.max_steps == recipe.train["max_steps"] >= 1


def test_recipe_values_are_kept_as_written():
    vit_recipe, cnn = vit.RECIPES["vit"], vit.RECIPES["cnn"]
    assert (vit_recipe.batch_size, vit_recipe.train["max_steps"], dict(vit_recipe.extra)) == (
        64, 2000, {"max_shift": 2.0, "max_degrees": 10.0})
    assert (cnn.train["max_steps"], dict(cnn.extra)) == (600, {"max_shift": 1.0,
                                                               "max_degrees": 8.0})
    assert gpt_recipes.RECIPES["shakespeare-char"].extra["tokenizer"] == "char"
    assert gpt_recipes.RECIPES["gpt2"].train["grad_accum"] == 8
    assert arithmetic.RECIPES["multiplication"].train["weight_decay"] == 1.0
    assert music.RECIPES["default"].extra["max_transpose"] == 5
    tiny, full = mnist.RECIPES["tiny"], mnist.RECIPES["mnist"]
    assert (tiny.batch_size, tiny.extra["vae_batch_size"], tiny.train["max_steps"]) == (16, 16, 4)
    for shared in ("kl_weight", "cfg_dropout", "max_length", "prediction"):  # tiny inherits
        assert tiny.extra[shared] == full.extra[shared]


@pytest.mark.parametrize("change, message", [
    (dict(description=""), "needs a description"),
    (dict(description=None), "needs a description"),
    (dict(batch_size=0), "batch_size must be a whole number ≥ 1, got 0"),
    (dict(batch_size=2.5), "batch_size must be a whole number ≥ 1, got 2.5"),
    (dict(batch_size=True), "batch_size must be a whole number ≥ 1, got True"),
    (dict(train=dict(max_steps=10, learning_rate=1e-3)), "learning_rate.] are not TrainConfig"),
    (dict(train=dict(lr=1e-3)), "need max_steps, a whole number ≥ 1, got None"),
    (dict(train=dict(max_steps=0)), "need max_steps, a whole number ≥ 1, got 0"),
    (dict(model=[("n_layer", 1)]), "model must be a dict of named settings"),
    (dict(extra={1: "x"}), "extra must be a dict of named settings"),
])
def test_a_bad_recipe_is_refused_when_it_is_made(change, message):
    with pytest.raises(UserError, match=message):
        Recipe(**{**VALID, **change})


def test_a_recipe_is_frozen_all_the_way_down_and_a_variant_is_a_new_recipe():
    settings = dict(max_steps=10, lr=1e-3)
    recipe = Recipe(**{**VALID, "train": settings})
    settings["max_steps"] = 99  # the recipe holds its own copy
    assert recipe.train["max_steps"] == 10 and isinstance(recipe.train, MappingProxyType)
    with pytest.raises(TypeError):
        recipe.train["max_steps"] = 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.batch_size = 8
    longer = dataclasses.replace(recipe, train=dict(recipe.train, max_steps=20))
    assert (longer.train["max_steps"], recipe.train["max_steps"]) == (20, 10)
    with pytest.raises(UserError, match="batch_size"):
        dataclasses.replace(recipe, batch_size=-1)  # a variant is checked like any recipe


def test_get_recipe_names_the_choices():
    recipes = {"small": Recipe(**VALID), "large": Recipe(**VALID)}
    assert get_recipe(recipes, "large") is recipes["large"]
    with pytest.raises(UserError, match=r"^unknown recipe 'huge'; choose one of: small, large$"):
        get_recipe(recipes, "huge")
