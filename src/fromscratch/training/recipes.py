"""Recipes: the named settings a track trains with.

A recipe is data, not code. A track's `train` command, its benchmark and its lesson read the same
table, so a number in the docs can always be reproduced with one command:

    fromscratch vit train --recipe cnn --out runs/cnn

Every track keeps its table `RECIPES: dict[str, Recipe]` beside its model (`beyond/vit.py`,
`language/recipes.py`, ...). A recipe holds

    model       the fields of the model's config (empty: the config's defaults)
    batch_size  examples per micro-batch
    train       the fields of `TrainConfig`; max_steps at least
    extra       the few knobs that one track has of its own: the augmentation of the image
                tracks (max_shift, max_degrees), the GPT track's tokenizer, the VAE stage of
                Stable Diffusion

and is frozen all the way down: a variant is a new recipe, `dataclasses.replace(recipe, ...)`.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType

from fromscratch.errors import UserError


@dataclass(frozen=True)
class Recipe:
    description: str  # one line: what the recipe is for, and what it reaches
    model: Mapping
    batch_size: int
    train: Mapping
    extra: Mapping = field(default_factory=dict)

    def __post_init__(self):
        from fromscratch.training.loop import TrainConfig  # imported here: it brings in torch

        if not isinstance(self.description, str) or not self.description.strip():
            raise UserError("a recipe needs a description: one line saying what it is for")
        for name in ("model", "train", "extra"):
            settings = getattr(self, name)
            if not isinstance(settings, Mapping) or not all(isinstance(k, str) for k in settings):
                raise UserError(f"a recipe's {name} must be a dict of named settings, got "
                                f"{settings!r}")
            object.__setattr__(self, name, MappingProxyType(dict(settings)))  # read-only copy
        if type(self.batch_size) is not int or self.batch_size < 1:
            raise UserError(f"a recipe's batch_size must be a whole number ≥ 1, got "
                            f"{self.batch_size!r}")
        unknown = sorted(set(self.train) - {f.name for f in fields(TrainConfig)})
        if unknown:
            raise UserError(f"a recipe's train settings {unknown} are not TrainConfig fields; "
                            "put a track's own settings in extra")
        steps = self.train.get("max_steps")
        if type(steps) is not int or steps < 1:
            raise UserError(f"a recipe's train settings need max_steps, a whole number ≥ 1, got "
                            f"{steps!r}")


def get_recipe(recipes: Mapping[str, Recipe], name: str) -> Recipe:
    """recipes[name], or a UserError that lists the names there are."""
    if name not in recipes:
        raise UserError(f"unknown recipe {name!r}; choose one of: {', '.join(recipes)}")
    return recipes[name]
