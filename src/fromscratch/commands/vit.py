"""`fromscratch vit train|eval`: vision transformers (and the CNN baseline) on MNIST digits.

    fromscratch vit train --out DIR [--data mnist5k|mnist] [--recipe vit|cnn] [--max-time S] ...
    fromscratch vit eval  --ckpt DIR [--data mnist5k|mnist] [--image PNG ...] [--maps PNG]
"""

from pathlib import Path

from fromscratch.commands.common import add_training_args, train_config
from fromscratch.errors import UserError


def cmd_vit_train(args) -> None:
    import torch

    from fromscratch.beyond.vit import RECIPES, CNNConfig, SmallCNN, ViT, ViTConfig, accuracy
    from fromscratch.data.images import ImageBatches, load_images
    from fromscratch.training.loop import train
    from fromscratch.training.recipes import get_recipe

    recipe = get_recipe(RECIPES, args.recipe)
    torch.manual_seed(args.seed)
    train_set, test_set = load_images(args.data)
    model = (SmallCNN(CNNConfig(**recipe.model)) if args.recipe == "cnn"
             else ViT(ViTConfig(**recipe.model)))
    batches = ImageBatches(train_set, args.batch_size or recipe.batch_size, seed=args.seed,
                           **recipe.extra)  # the recipe's shifts and rotations
    n_params = sum(p.numel() for p in model.parameters())
    print(f"training a {n_params / 1e6:.2f}M-parameter {type(model).__name__} on {args.data}: "
          f"{len(train_set):,} train / {len(test_set):,} test images")
    result = train(
        model, batches, train_config(recipe, args), out_dir=Path(args.out),
        evaluate=lambda m: {"test_accuracy": accuracy(m, test_set.x, test_set.y)},
        save_model=lambda m, folder: m.save_pretrained(folder),
        resume=args.resume, overwrite=args.overwrite,
    )
    print(f"stopped by {result.stopped_by} at step {result.step} after {result.seconds:.0f} s; "
          f"test accuracy {result.last('test_accuracy'):.4f}")
    print(f"model, log.jsonl and loss.png in {args.out}")


def load_classifier(folder):
    """A ViT or a SmallCNN, whichever the folder's config.json says."""
    import json

    from fromscratch.beyond.vit import SmallCNN, ViT

    config = Path(folder) / "config.json"
    kind = json.loads(config.read_text()).get("model_type") if config.is_file() else None
    if kind not in ("vit", "cnn"):
        raise UserError(f"{folder} holds no ViT or CNN (config.json with model_type vit or cnn)")
    return (ViT if kind == "vit" else SmallCNN).from_pretrained(folder)


def cmd_vit_eval(args) -> None:
    import torch

    from fromscratch.beyond.vit import ViT, accuracy, attention_rollout
    from fromscratch.data.images import load_image_file, load_images, save_image_grid

    model = load_classifier(args.ckpt)
    if args.image:
        for path in args.image:
            x = load_image_file(path)
            probs = torch.softmax(model(x), -1)[0]
            print(f"{path}: {int(probs.argmax())} (probability {probs.max():.3f})")
        return
    _, test_set = load_images(args.data)
    print(f"test accuracy {accuracy(model, test_set.x, test_set.y):.4f} "
          f"on {len(test_set):,} {args.data} test images")
    if args.maps:
        if not isinstance(model, ViT):
            raise UserError("--maps needs a ViT: a CNN has no attention")
        x = test_set.x[test_set.one_per_class(8)]  # a digit of each class, 0 to 7
        with torch.no_grad():
            _, attentions = model(x, return_attentions=True)
        rollout = attention_rollout(attentions)[:, None]  # (8, 1, G, G)
        rollout = torch.nn.functional.interpolate(rollout, size=x.shape[-1], mode="nearest")
        save_image_grid(torch.cat([x, rollout / rollout.amax((2, 3), keepdim=True)]), args.maps,
                        rows=2, title="test digits and their attention rollout", cmap="gray")
        print(f"attention maps in {args.maps}")


def register(commands) -> None:
    vit = commands.add_parser("vit", help="vision transformers on MNIST digits")
    verbs = vit.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("train", help="train a ViT (or the CNN baseline, --recipe cnn) on MNIST")
    p.add_argument("--data", default="mnist5k", choices=["mnist5k", "mnist"],
                   help="mnist5k: 4,000/1,000 offline split; mnist: full, downloaded once")
    add_training_args(p, recipe="vit")  # beyond/vit.py: vit, cnn
    p.set_defaults(func=cmd_vit_train)

    p = verbs.add_parser("eval", help="test accuracy, or classify image files")
    p.add_argument("--ckpt", required=True, help="a folder written by `fromscratch vit train`")
    p.add_argument("--data", default="mnist5k", choices=["mnist5k", "mnist"])
    p.add_argument("--image", nargs="+", help="grayscale 28×28 image files to classify")
    p.add_argument("--maps", help="also save attention rollout maps of 8 test digits (PNG)")
    p.set_defaults(func=cmd_vit_eval)
