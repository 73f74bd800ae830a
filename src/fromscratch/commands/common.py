"""What the command modules share: the parser, the argument types and the training options.

A usage error is one line on stderr and exit code 2, like a `UserError` that a verb raises later:

    error: fromscratch vit train: argument --max-steps: must be a whole number, got x (see ...)
"""

import argparse


class CommandParser(argparse.ArgumentParser):
    """argparse prints the whole usage before an error; this parser prints the error and where
    to look. `add_subparsers` gives every sub-parser the class of its parent, so each verb too."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


# ---------------------------------------------------------------------------------------------
# Argument types: the text of an option -> its value, or the reason it is refused
# ---------------------------------------------------------------------------------------------
def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None


def positive_float(text: str) -> float:
    value = number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0, got {text}")
    return value


def probability(text: str) -> float:
    value = number(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def ema_decay(text: str) -> float:
    value = number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), e.g. 0.999; got {text}")
    return value


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text}") from None


def positive_int(text: str) -> int:
    value = whole_number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0, got {text}")
    return value


# ---------------------------------------------------------------------------------------------
# A `train` verb: its recipe, the options that override it, and the TrainConfig they make
# ---------------------------------------------------------------------------------------------
def add_recipe_argument(p: argparse.ArgumentParser, default: str | None) -> None:
    """--recipe NAME: one of the track's RECIPES (an unknown name lists them)."""
    p.add_argument("--recipe", default=default, metavar="NAME",
                   help="the track's named settings to train with"
                   + (f" (default: {default})" if default else ""))


def add_training_args(p: argparse.ArgumentParser, *, recipe: str | None = "default",
                      seed: int = 1337) -> None:
    """The options every recipe-driven `train` verb takes."""
    add_recipe_argument(p, recipe)
    p.add_argument("--out", required=True, help="output folder (a loadable model folder)")
    p.add_argument("--max-steps", type=positive_int, help="override the recipe's steps")
    p.add_argument("--max-time", type=positive_float, help="stop after this many seconds")
    p.add_argument("--batch-size", type=positive_int, help="override the recipe's batch size")
    p.add_argument("--lr", type=positive_float, help="override the recipe's peak learning rate")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    p.add_argument("--seed", type=whole_number, default=seed)
    p.add_argument("--device", default="cpu")


def train_config(recipe, args, **settings):
    """The recipe's TrainConfig with the command line's overrides and any other `settings`."""
    from fromscratch.training.loop import TrainConfig

    chosen = dict(recipe.train, seed=args.seed, device=args.device, **settings)
    for name in ("max_steps", "max_time", "lr"):
        if getattr(args, name) is not None:
            chosen[name] = getattr(args, name)
    # a shortened run keeps a fifth of its steps for warmup, so that its learning rate still decays
    warmup = chosen.get("warmup_steps", TrainConfig.warmup_steps)
    chosen["warmup_steps"] = min(warmup, chosen["max_steps"] // 5)
    chosen.setdefault("eval_interval", max(1, chosen["max_steps"] // 4))  # 4 evaluations a run
    return TrainConfig(**chosen)
