"""`fromscratch audio train|eval|predict`: spoken-digit classification (FSDD).

    fromscratch audio train   --out DIR [--data FOLDER] [--split random|SPEAKER] [--recipe NAME] ...
    fromscratch audio eval    --ckpt DIR [--data FOLDER]
    fromscratch audio predict FILE.wav --ckpt DIR
"""

import json
from pathlib import Path

from fromscratch.commands.common import add_training_args, positive_float, train_config
from fromscratch.errors import UserError

SPLIT_FILE = "split.json"  # how the run split the recordings, so that eval can redo it


def _split(recordings, split: str, test_fraction: float, seed: int):
    from fromscratch.data.audio import random_split, speaker_split

    if split == "random":
        return random_split(recordings, test_fraction, seed)
    return speaker_split(recordings, split)


def cmd_audio_train(args) -> None:
    from fromscratch.beyond.audio import RECIPES, AudioConfig, train_classifier
    from fromscratch.data.audio import load_fsdd
    from fromscratch.folders import write_json
    from fromscratch.training.recipes import get_recipe

    recipe = get_recipe(RECIPES, args.recipe)
    recordings = load_fsdd(args.data)
    train_recs, test_recs = _split(recordings, args.split, args.test_fraction, args.seed)
    out = Path(args.out)
    print(f"training on {len(train_recs)} recordings, testing on {len(test_recs)} "
          f"(split: {args.split})")
    model, result = train_classifier(
        train_recs, test_recs, AudioConfig(**recipe.model), train_config(recipe, args),
        out_dir=out, seed=args.seed, batch_size=args.batch_size or recipe.batch_size,
        resume=args.resume, overwrite=args.overwrite,
    )
    write_json(out / SPLIT_FILE, {"split": args.split, "test_fraction": args.test_fraction,
                                  "seed": args.seed})
    print(f"stopped by {result.stopped_by} at step {result.step}; test accuracy "
          f"{result.last('test_accuracy'):.4f} on {len(test_recs)} recordings")
    print(f"model, log.jsonl and loss.png in {out}")


def cmd_audio_eval(args) -> None:
    from fromscratch.beyond.audio import AudioClassifier, evaluate, featurize_all
    from fromscratch.data.audio import load_fsdd

    model = AudioClassifier.from_pretrained(args.ckpt)
    split_path = Path(args.ckpt) / SPLIT_FILE
    try:
        split = json.loads(split_path.read_text())
    except (OSError, json.JSONDecodeError):
        raise UserError(f"{split_path} is missing or damaged: was {args.ckpt} written by "
                        "`fromscratch audio train`?") from None
    _, test_recs = _split(load_fsdd(args.data), split["split"], split["test_fraction"],
                          split["seed"])
    result = evaluate(model, featurize_all(test_recs, model.config), [r.digit for r in test_recs])
    print(f"test accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f} on "
          f"{len(test_recs)} recordings (split: {split['split']})")


def cmd_audio_predict(args) -> None:
    from fromscratch.beyond.audio import AudioClassifier
    from fromscratch.data.audio import read_wav

    model = AudioClassifier.from_pretrained(args.ckpt)
    samples, rate = read_wav(args.file)
    if rate != model.config.sample_rate:
        raise UserError(f"{args.file} is sampled at {rate} Hz; the model reads "
                        f"{model.config.sample_rate} Hz (resample it first)")
    probs = model.predict(samples)
    digit = int(probs.argmax())
    print(f"{args.file}: digit {digit} (probability {float(probs[digit]):.3f})")


def register(commands) -> None:
    audio = commands.add_parser("audio", help="spoken digits: log-mel transformer classifier")
    verbs = audio.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("train", help="train on the Free Spoken Digit Dataset")
    p.add_argument("--data", help="folder of the FSDD recordings (default: download and cache)")
    p.add_argument("--split", default="random",
                   help="random (a seeded 20%% test set) or a speaker to hold out, e.g. theo")
    p.add_argument("--test-fraction", type=positive_float, default=0.2)
    add_training_args(p, seed=0)  # beyond/audio.py: default
    p.set_defaults(func=cmd_audio_train)

    p = verbs.add_parser("eval", help="accuracy on the run's test split")
    p.add_argument("--ckpt", required=True)
    p.add_argument("--data", help="folder of the FSDD recordings (default: the cached download)")
    p.set_defaults(func=cmd_audio_eval)

    p = verbs.add_parser("predict", help="which digit is said in a WAV file")
    p.add_argument("file", help="a mono 16-bit WAV file at the model's sample rate (8 kHz)")
    p.add_argument("--ckpt", required=True)
    p.set_defaults(func=cmd_audio_predict)
