"""`fromscratch gpt train|sample|eval`: decoder-only language models (GPT, GPT-2).

    fromscratch gpt train  --data {shakespeare,pydoc,PATH} [--recipe NAME] [--max-time S] --out DIR
                           [--dtype D] [--ema DECAY] [--grad-checkpointing] [--compile] [--zero]
    torchrun --nproc_per_node=N -m fromscratch gpt train ...     the same, data parallel
    fromscratch gpt sample --ckpt DIR_OR_HUB_NAME [--prompt TEXT] [--temperature T] [--top-k K] ...
    fromscratch gpt eval   --ckpt DIR --data {shakespeare,pydoc,PATH}
"""

import os
from pathlib import Path

from fromscratch.commands.common import (
    add_training_args,
    ema_decay,
    non_negative_float,
    positive_int,
    probability,
    train_config,
    whole_number,
)
from fromscratch.errors import UserError


def _make_tokenizer(kind: str, text: str):
    from fromscratch.tokenizers import BPETokenizer, CharTokenizer

    if kind == "char":
        return CharTokenizer.train(text)
    if kind == "gpt2":
        return BPETokenizer.gpt2()
    if kind.startswith("bpe:") and kind[4:].isdigit():
        return BPETokenizer.train(text, int(kind[4:]), progress=True)
    raise UserError(f"unknown tokenizer {kind!r}; use char, gpt2 or bpe:N (e.g. bpe:1024)")


def cmd_gpt_train(args) -> None:
    import torch

    from fromscratch.data.text import LMBatches, evaluate_lm, load_text, split_train_val
    from fromscratch.language.gpt import GPT, GPTConfig
    from fromscratch.language.recipes import RECIPES
    from fromscratch.training.loop import train
    from fromscratch.training.recipes import get_recipe

    recipe = get_recipe(RECIPES, args.recipe)
    out = Path(args.out)
    world_size = int(os.environ.get("WORLD_SIZE", 1))  # set by torchrun
    say = print if int(os.environ.get("RANK", 0)) == 0 else (lambda *a, **k: None)
    torch.manual_seed(args.seed)
    text = load_text(args.data)
    tokenizer = _make_tokenizer(args.tokenizer or recipe.extra["tokenizer"], text)
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    train_ids, val_ids = split_train_val(ids)
    block_size = recipe.model["block_size"]
    if len(val_ids) <= block_size:
        raise UserError(
            f"{args.data} is too short: the validation split needs more than {block_size} tokens"
        )

    config = GPTConfig(vocab_size=tokenizer.vocab_size, **recipe.model)
    model = GPT(config).to(args.device)
    grad_accum = args.grad_accum or recipe.train.get("grad_accum", 1)
    if grad_accum % world_size:  # each process computes an equal share of a step's micro-batches
        shared = -(-grad_accum // world_size) * world_size
        say(f"{world_size} processes: {shared} micro-batches per step (instead of {grad_accum})")
        grad_accum = shared
    cfg = train_config(recipe, args, grad_accum=grad_accum, dtype=args.dtype, ema_decay=args.ema,
                       grad_checkpointing=args.grad_checkpointing, compile=args.compile,
                       zero=args.zero)
    batch_size = args.batch_size or recipe.batch_size
    batches = LMBatches(train_ids, block_size, batch_size, seed=args.seed)

    def evaluate(m):
        return {"val_loss": evaluate_lm(m, val_ids, block_size, batch_size=64)}

    def save_model(m, directory):
        m.save_pretrained(directory)
        tokenizer.save(directory)

    say(
        f"training {model.num_params() / 1e6:.2f}M-parameter GPT ({args.recipe}) on {args.data}: "
        f"{len(train_ids):,} train / {len(val_ids):,} val tokens, vocab {tokenizer.vocab_size}"
    )
    result = train(
        model, batches, cfg, out_dir=out, evaluate=evaluate, save_model=save_model,
        resume=args.resume, overwrite=args.overwrite,
    )
    val_loss = result.last("val_loss")
    summary = f"stopped by {result.stopped_by} at step {result.step}"
    if val_loss is not None:
        summary += f"; validation loss {val_loss:.4f} over the whole validation split"
    say(summary)
    say(f"model, tokenizer, log.jsonl and loss.png in {out}")


# ---------------------------------------------------------------------------------------------
# gpt sample / eval
# ---------------------------------------------------------------------------------------------
def _load_model_and_tokenizer(ckpt: str, device: str):
    from fromscratch.language.gpt import GPT
    from fromscratch.tokenizers import BPETokenizer, load_tokenizer

    model = GPT.from_pretrained(ckpt).to(device).eval()
    folder = Path(ckpt)
    if folder.is_dir():
        tokenizer = load_tokenizer(folder)
    else:  # a hub name: every GPT-2 size shares GPT-2's vocabulary
        tokenizer = BPETokenizer.gpt2()
    if tokenizer.vocab_size > model.config.vocab_size:
        raise UserError(
            f"the tokenizer in {ckpt} has {tokenizer.vocab_size} tokens but the model only "
            f"{model.config.vocab_size}: the folder mixes files from different models"
        )
    return model, tokenizer


def cmd_gpt_sample(args) -> None:
    import torch

    model, tokenizer = _load_model_and_tokenizer(args.ckpt, args.device)
    prompt_ids = tokenizer.encode(args.prompt) if args.prompt else []
    if not prompt_ids:  # start from the first token of the vocabulary (a newline for char models)
        prompt_ids = tokenizer.encode("\n") if args.prompt is None else [0]
    generator = torch.Generator(device=args.device).manual_seed(args.seed)
    idx = torch.tensor([prompt_ids] * args.num_samples, dtype=torch.long, device=args.device)
    out = model.generate(
        idx, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
        top_p=args.top_p, generator=generator,
    )
    for i, row in enumerate(out.tolist()):
        if args.num_samples > 1:
            print(f"--- sample {i + 1}")
        print(tokenizer.decode(row))


def cmd_gpt_eval(args) -> None:
    import torch

    from fromscratch.data.text import evaluate_lm, load_text, split_train_val

    model, tokenizer = _load_model_and_tokenizer(args.ckpt, args.device)
    ids = torch.tensor(tokenizer.encode(load_text(args.data)), dtype=torch.long)
    _, val_ids = split_train_val(ids)
    loss = evaluate_lm(model, val_ids, model.config.block_size, batch_size=args.batch_size)
    print(f"validation loss {loss:.4f} over {len(val_ids):,} tokens of {args.data}")


# ---------------------------------------------------------------------------------------------
def register(commands) -> None:
    gpt = commands.add_parser("gpt", help="decoder-only language models (GPT, GPT-2)")
    verbs = gpt.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("train", help="train a GPT on a text corpus")
    p.add_argument("--data", required=True, help="shakespeare, pydoc (offline) or a UTF-8 file")
    add_training_args(p, recipe="demo")  # language/recipes.py: demo, shakespeare-char, ...
    p.add_argument("--tokenizer", help="override the recipe's tokenizer: char, gpt2 or bpe:N")
    p.add_argument("--grad-accum", type=positive_int,
                   help="micro-batches per step (all processes together under torchrun)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="autocast precision; auto = bfloat16 on GPUs (float16 on old ones), "
                   "float32 on CPU")
    p.add_argument("--ema", type=ema_decay, metavar="DECAY",
                   help="keep an exponential moving average of the weights (e.g. 0.999); "
                   "evaluation and the saved model use it")
    p.add_argument("--grad-checkpointing", action="store_true",
                   help="recompute activations in backward: less memory, one more forward pass")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--zero", action="store_true",
                   help="under torchrun: shard the optimizer state across processes")
    p.set_defaults(func=cmd_gpt_train)

    p = verbs.add_parser("sample", help="generate text from a trained model or a GPT-2 hub name")
    p.add_argument("--ckpt", required=True, help="a model folder, or a hub name such as gpt2")
    p.add_argument("--prompt", help="text to continue")
    p.add_argument("--max-new-tokens", type=positive_int, default=200)
    p.add_argument("--temperature", type=non_negative_float, default=1.0, help="0 = greedy")
    p.add_argument("--top-k", type=positive_int)
    p.add_argument("--top-p", type=probability, help="nucleus sampling: a number in (0, 1]")
    p.add_argument("--num-samples", type=positive_int, default=1)
    p.add_argument("--seed", type=whole_number, default=1337)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_gpt_sample)

    p = verbs.add_parser("eval", help="validation loss over the whole validation split")
    p.add_argument("--ckpt", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_gpt_eval)
