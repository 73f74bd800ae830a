"""`fromscratch arithmetic train|eval`: a GPT that learns to add or multiply digit strings.

    fromscratch arithmetic train --out DIR [--op +|*] [--recipe NAME] [--digits 3] [--plain] ...
    fromscratch arithmetic eval  --ckpt DIR [--problem 123+45]
"""

from pathlib import Path

from fromscratch.commands.common import add_training_args, positive_int, train_config
from fromscratch.errors import UserError


def cmd_arithmetic_train(args) -> None:
    import torch

    from fromscratch.beyond import arithmetic as ar
    from fromscratch.training.loop import train
    from fromscratch.training.recipes import get_recipe

    torch.manual_seed(args.seed)
    task = ar.ArithmeticTask(op=args.op, n_digits=args.digits, reverse=not args.plain)
    recipe = get_recipe(ar.RECIPES, args.recipe or ar.OPERATION_RECIPES[args.op])
    model = ar.make_model(task, args.digits + ar.EXTRA_DIGITS, **recipe.model)
    held_out = ar.test_pairs(task, args.digits, n=500)
    print(f"training a {model.num_params() / 1e6:.2f}M-parameter GPT on {args.digits}-digit "
          f"'{args.op}' with the answer {'plain' if args.plain else 'reversed'}")
    result = train(
        model, ar.ArithmeticBatches(task, args.batch_size or recipe.batch_size, seed=args.seed),
        train_config(recipe, args), out_dir=Path(args.out),
        evaluate=lambda m: {"exact_match": ar.exact_match(m, task, held_out)},
        save_model=lambda m, folder: ar.save(m, task, folder),
        resume=args.resume, overwrite=args.overwrite,
    )
    print(f"stopped by {result.stopped_by} at step {result.step} after {result.seconds:.0f} s; "
          f"exact match {result.last('exact_match'):.1%} on 500 held-out problems")


def cmd_arithmetic_eval(args) -> None:
    from fromscratch.beyond import arithmetic as ar

    model, task = ar.load(args.ckpt)
    if args.problem:
        parts = args.problem.rstrip("=").split(task.op)
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise UserError(f"--problem must look like 123{task.op}45 (this model does "
                            f"'{task.op}'), got {args.problem!r}")
        a, b = int(parts[0]), int(parts[1])
        answer = ar.solve(model, task, [(a, b)])[0]
        print(f"{a}{task.op}{b}={answer if answer is not None else '(no answer)'}")
        return
    print("| digits per operand | exact match |")
    print("|---|---|")
    digits = 1
    while task.sequence_length(digits) <= model.config.block_size:  # what the model can read
        score = ar.exact_match(model, task, ar.test_pairs(task, digits, n=args.n))
        trained = " (trained)" if digits <= task.n_digits else ""
        print(f"| {digits}{trained} | {score:.1%} |")
        digits += 1


def register(commands) -> None:
    arith = commands.add_parser("arithmetic", help="a GPT that learns addition / multiplication")
    verbs = arith.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("train", help="train on random problems (1%% held out)")
    p.add_argument("--op", default="+", choices=["+", "*"],
                   help="trains with the addition or the multiplication recipe, unless --recipe")
    p.add_argument("--digits", type=positive_int, default=3, help="most digits per operand")
    p.add_argument("--plain", action="store_true", help="write the answer most significant "
                   "digit first (default: reversed, as a person adds)")
    add_training_args(p, recipe=None)  # beyond/arithmetic.py: addition, multiplication
    p.set_defaults(func=cmd_arithmetic_train)

    p = verbs.add_parser("eval", help="exact match by number of digits, or answer one problem")
    p.add_argument("--ckpt", required=True)
    p.add_argument("--problem", help="e.g. 123+45")
    p.add_argument("--n", type=positive_int, default=500, help="problems per digit count")
    p.set_defaults(func=cmd_arithmetic_eval)
