"""`fromscratch imagegpt train|sample`: a class-conditional GPT that draws MNIST digits.

    fromscratch imagegpt train  --out DIR [--data mnist5k|mnist] [--max-time S] ...
    fromscratch imagegpt sample --ckpt DIR --out GRID.png [--digits 0123456789] [--per-digit 8]
                                [--temperature T] [--classifier CNN_DIR] [--seed N]
"""

from pathlib import Path

from fromscratch.commands.common import (
    add_training_args,
    positive_float,
    positive_int,
    train_config,
    whole_number,
)
from fromscratch.errors import UserError


def cmd_imagegpt_train(args) -> None:
    import torch

    from fromscratch.beyond.imagegpt import RECIPES, ImageGPT, ImageGPTConfig
    from fromscratch.data.images import ImageBatches, load_images
    from fromscratch.training.loop import train
    from fromscratch.training.recipes import get_recipe

    recipe = get_recipe(RECIPES, args.recipe)
    torch.manual_seed(args.seed)
    train_set, test_set = load_images(args.data)
    model = ImageGPT(ImageGPTConfig(**recipe.model))
    batches = ImageBatches(train_set, args.batch_size or recipe.batch_size, seed=args.seed,
                           **recipe.extra)  # the recipe's shifts
    print(f"training a {model.gpt.num_params() / 1e6:.2f}M-parameter image GPT on {args.data}: "
          f"{len(train_set):,} images of {model.tokenizer.num_tokens} tokens")
    result = train(
        model, batches, train_config(recipe, args), out_dir=Path(args.out),
        evaluate=lambda m: {"test_bits_per_dim": m.bits_per_dim(test_set.x, test_set.y)},
        save_model=lambda m, folder: m.save_pretrained(folder),
        resume=args.resume, overwrite=args.overwrite,
    )
    print(f"stopped by {result.stopped_by} at step {result.step} after {result.seconds:.0f} s; "
          f"test NLL {result.last('test_bits_per_dim'):.4f} bits per dimension")
    print(f"model, log.jsonl and loss.png in {args.out}")


def cmd_imagegpt_sample(args) -> None:
    import torch

    from fromscratch.beyond.imagegpt import ImageGPT
    from fromscratch.beyond.vit import accuracy
    from fromscratch.commands.vit import load_classifier
    from fromscratch.data.images import save_image_grid

    if not args.digits.isdigit():
        raise UserError(f"--digits must be digits such as 0123456789, got {args.digits!r}")
    model = ImageGPT.from_pretrained(args.ckpt)
    labels = torch.tensor([int(d) for d in args.digits]).repeat_interleave(args.per_digit)
    generator = torch.Generator().manual_seed(args.seed)
    ids = model.sample(labels, temperature=args.temperature, generator=generator)
    images = model.tokenizer.to_full_size(ids)  # (N, 1, 28, 28)
    order = torch.arange(len(labels)).view(len(args.digits), args.per_digit).T.flatten()
    save_image_grid(images[order], args.out, rows=args.per_digit,
                    title=f"samples, one column per digit, temperature {args.temperature}")
    print(f"{len(labels)} samples in {args.out}")
    if args.classifier:
        classifier = load_classifier(args.classifier)
        print(f"the classifier in {args.classifier} recognises "
              f"{accuracy(classifier, images, labels):.1%} of the samples as their digit")


def register(commands) -> None:
    igpt = commands.add_parser("imagegpt", help="a GPT that draws MNIST digits, token by token")
    verbs = igpt.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("train", help="train a class-conditional image GPT on MNIST")
    p.add_argument("--data", default="mnist5k", choices=["mnist5k", "mnist"])
    add_training_args(p)
    p.set_defaults(func=cmd_imagegpt_train)

    p = verbs.add_parser("sample", help="draw digits into an image grid")
    p.add_argument("--ckpt", required=True, help="a folder written by `imagegpt train`")
    p.add_argument("--out", required=True, help="PNG file for the grid")
    p.add_argument("--digits", default="0123456789", help="which digits to draw")
    p.add_argument("--per-digit", type=positive_int, default=8)
    p.add_argument("--temperature", type=positive_float, default=1.0)
    p.add_argument("--classifier", help="a ViT or CNN folder: report how many it recognises")
    p.add_argument("--seed", type=whole_number, default=1337)
    p.set_defaults(func=cmd_imagegpt_sample)
