"""`fromscratch music train|eval|sample`: a transformer over JSB chorale piano rolls.

    fromscratch music train  --out DIR [--data FOLDER] [--resolution quarter|16th] [--within-step]
                             [--nade N] [--recipe NAME] [--max-steps N] ...
    fromscratch music eval   --ckpt DIR [--data FOLDER] [--split test]
    fromscratch music sample --ckpt DIR -o out.mid [--steps 64] [--temperature 1.0] [--seed 0]
    fromscratch music show   FILE.mid -o roll.png [--steps-per-quarter 1]
"""

from pathlib import Path

from fromscratch.commands.common import (
    add_training_args,
    non_negative_int,
    positive_float,
    positive_int,
    train_config,
    whole_number,
)
from fromscratch.errors import UserError

RESOLUTIONS = {"quarter": 1, "16th": 4}  # time steps per quarter note


def _rolls(data, resolution: str):
    from fromscratch.data.music import load_jsb, to_piano_roll

    chorales = load_jsb(resolution, data)
    return {split: [to_piano_roll(c) for c in cs] for split, cs in chorales.items()}


def cmd_music_train(args) -> None:
    from fromscratch.beyond.music import RECIPES, MusicConfig, evaluate_nll, train_music
    from fromscratch.training.recipes import get_recipe

    recipe = get_recipe(RECIPES, args.recipe)
    rolls = _rolls(args.data, args.resolution)
    longest = max(len(r) for split in rolls.values() for r in split)
    config = MusicConfig(block_size=longest + 1, within_step=args.within_step or args.nade > 0,
                         nade_hidden=args.nade, steps_per_quarter=RESOLUTIONS[args.resolution],
                         **recipe.model)
    out = Path(args.out)
    print(f"training on {len(rolls['train'])} chorales ({args.resolution} notes), "
          f"validating on {len(rolls['valid'])}")
    model, result = train_music(rolls, config, train_config(recipe, args), out_dir=out,
                                seed=args.seed, batch_size=args.batch_size or recipe.batch_size,
                                max_transpose=recipe.extra["max_transpose"],
                                resume=args.resume, overwrite=args.overwrite)
    test_nll = evaluate_nll(model, rolls["test"])
    print(f"stopped by {result.stopped_by} at step {result.step}; NLL per time step: "
          f"valid {result.last('val_loss'):.3f}, test {test_nll:.3f}")
    print(f"model, log.jsonl and loss.png in {out}")


def cmd_music_eval(args) -> None:
    from fromscratch.beyond.music import MusicTransformer, evaluate_nll

    model = MusicTransformer.from_pretrained(args.ckpt)
    resolution = {v: k for k, v in RESOLUTIONS.items()}[model.config.steps_per_quarter]
    rolls = _rolls(args.data, resolution)[args.split]
    too_long = max(len(r) for r in rolls) + 1 - model.config.block_size
    if too_long > 0:
        raise UserError(f"the longest {args.split} chorale is {too_long} steps longer than this "
                        "model reads")
    steps = sum(len(r) for r in rolls)
    print(f"{args.split} NLL per time step {evaluate_nll(model, rolls):.4f} over "
          f"{len(rolls)} chorales, {steps} steps ({resolution} notes)")


def cmd_music_sample(args) -> None:
    import torch

    from fromscratch.beyond.midi import roll_to_midi, write_midi
    from fromscratch.beyond.music import MusicTransformer, plot_piano_roll

    out = Path(args.output)
    if out.suffix.lower() not in (".mid", ".midi"):
        raise UserError(f"the output file should end in .mid, got {out.name}")
    model = MusicTransformer.from_pretrained(args.ckpt)
    generator = torch.Generator().manual_seed(args.seed)
    rolls = model.sample(args.steps, num_samples=args.num_samples,
                         temperature=args.temperature, generator=generator)
    out.parent.mkdir(parents=True, exist_ok=True)
    for i, roll in enumerate(rolls):
        path = out if args.num_samples == 1 else out.with_name(f"{out.stem}-{i + 1}{out.suffix}")
        write_midi(path, roll_to_midi(roll, model.config.steps_per_quarter, bpm=args.bpm))
        plot_piano_roll(roll, path.with_suffix(".png"), title=path.stem)
        print(f"wrote {path} and {path.with_suffix('.png')} ({args.steps} steps)")


def cmd_music_show(args) -> None:
    from fromscratch.beyond.midi import midi_to_roll, read_midi
    from fromscratch.beyond.music import plot_piano_roll

    midi = read_midi(args.file)
    roll = midi_to_roll(midi, args.steps_per_quarter)
    if not len(roll):
        raise UserError(f"{args.file} has no notes to draw")
    plot_piano_roll(roll, args.output, title=Path(args.file).name)
    print(f"{args.file}: {len(midi.notes)} notes, {len(roll)} steps; piano roll in {args.output}")


# ---------------------------------------------------------------------------------------------
def register(commands) -> None:
    music = commands.add_parser("music", help="JSB chorales: a transformer over piano rolls")
    verbs = music.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("train", help="train on the JSB chorales")
    p.add_argument("--data", help="folder holding jsb-chorales-*.json (default: download)")
    p.add_argument("--resolution", choices=list(RESOLUTIONS), default="quarter")
    p.add_argument("--within-step", action="store_true",
                   help="let each key see the lower keys of its own step (a chain rule)")
    p.add_argument("--nade", type=non_negative_int, default=0, metavar="N",
                   help="chain the keys of a step through a NADE layer of N units as well "
                        "(implies --within-step; 64 in the benchmark)")
    add_training_args(p, seed=0)  # beyond/music.py: default
    p.set_defaults(func=cmd_music_train)

    p = verbs.add_parser("eval", help="NLL per time step on a split")
    p.add_argument("--ckpt", required=True)
    p.add_argument("--data", help="folder holding jsb-chorales-*.json (default: the cache)")
    p.add_argument("--split", choices=["train", "valid", "test"], default="test")
    p.set_defaults(func=cmd_music_eval)

    p = verbs.add_parser("sample", help="generate chorales as MIDI files and piano-roll images")
    p.add_argument("--ckpt", required=True)
    p.add_argument("-o", "--output", required=True, help="MIDI file to write (a .png beside it)")
    p.add_argument("--steps", type=positive_int, default=64, help="time steps to generate")
    p.add_argument("--num-samples", type=positive_int, default=1)
    p.add_argument("--temperature", type=positive_float, default=1.0)
    p.add_argument("--bpm", type=positive_float, default=80.0, help="quarter notes per minute")
    p.add_argument("--seed", type=whole_number, default=0)
    p.set_defaults(func=cmd_music_sample)

    p = verbs.add_parser("show", help="draw a MIDI file as a piano roll")
    p.add_argument("file", help="a Standard MIDI File (.mid)")
    p.add_argument("-o", "--output", required=True, help="image to write (.png)")
    p.add_argument("--steps-per-quarter", type=positive_int, default=4)
    p.set_defaults(func=cmd_music_show)
