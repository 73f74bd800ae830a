"""Lesson 04's exercises (training): the cross-entropy loss and one training step, their test
inputs and the mistakes we recognise.

A training step shows whether it is right only over several steps (gradients that were never
zeroed, a schedule that moves too slowly), so its check runs the learner's step cfg.max_steps
times on a tiny GPT and compares the weights with those the reference step reaches from the same
initial weights, batches and seeds (the reference equals the library's `train_step`: the tests
hold the two to 1e-6).
"""

import torch

from fromscratch.exercises import l04_training_solutions as solutions
from fromscratch.exercises.checking import Case, Exercise, Mistake, register
from fromscratch.exercises.inputs import randint, randn
from fromscratch.language.gpt import GPT, GPTConfig
from fromscratch.seeds import LOSS, micro_batch_seed
from fromscratch.training.loop import TrainConfig, lr_at, make_optimizer


def _cross_entropy_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for n, v, scale, note in [
        (4, 10, 1.0, ""),
        (8, 3, 2.0, ""),
        (1, 5, 1.0, " (a single example)"),
        (3, 6, 100.0, " (large logits, in the hundreds)"),
    ]:
        logits = randn(gen, n, v, scale=scale)
        targets = torch.randint(0, v, (n,), generator=gen)
        cases.append(Case((logits, targets), f"logits ({n}, {v}), targets ({n},){note}"))
    return cases


def _log_softmax_picked(logits, targets, dim=-1):
    log_probs = logits - torch.logsumexp(logits, dim=dim, keepdim=True)
    return log_probs[torch.arange(len(targets)), targets]  # (N,)


register(
    Exercise(
        name="cross_entropy",
        lesson="04_training",
        prompt=(
            "cross_entropy(logits, targets) -> Tensor\n"
            "For logits (N, V) and integer targets (N,): the mean over the N examples of\n"
            "-log softmax(logits)[target], as a 0-d tensor. Stable for large logits."
        ),
        reference=solutions.cross_entropy,
        make_cases=_cross_entropy_cases,
        mistakes=(
            Mistake(
                "sum",
                "take the mean over the N examples, not the sum.",
                lambda z, t: -_log_softmax_picked(z, t).sum(),
            ),
            Mistake(
                "sign",
                "the minus sign is missing: the loss is -log p(target), a positive number.",
                lambda z, t: _log_softmax_picked(z, t).mean(),
            ),
            Mistake(
                "per_example",
                "return one number, the mean over examples (shape ()), not one loss per example.",
                lambda z, t: -_log_softmax_picked(z, t),
            ),
            Mistake(
                "raw_logits",
                "you used the raw logit; take log softmax first: "
                "-log p_t = -(z_t - log Σ_j exp z_j).",
                lambda z, t: -z[torch.arange(len(t)), t].mean(),
            ),
            Mistake(
                "no_log",
                "take the log of the probability: -log p(target), not -p(target).",
                lambda z, t: -torch.softmax(z, dim=-1)[torch.arange(len(t)), t].mean(),
            ),
            Mistake(
                "axis",
                "softmax over the wrong axis: normalize over the V classes (dim=-1) of each "
                "example.",
                lambda z, t: -_log_softmax_picked(z, t, dim=0).mean(),
            ),
        ),
        nan_hint=(
            "NaN or inf for large logits: exp overflows, or a probability underflows to 0 and "
            "log 0 = -∞. Compute log softmax directly: z - torch.logsumexp(z, dim=-1, "
            "keepdim=True)."
        ),
    )
)


# ---------------------------------------------------------------------------------------------
# One training step
# ---------------------------------------------------------------------------------------------
class EpochBatches:
    """batches(step, micro) -> (x, y) (B, T) from a fixed set of windows (N, T + 1), in order,
    one pass (epoch) after another: batch n = step · grad_accum + micro is batch n mod per_epoch.
    """

    def __init__(self, windows: torch.Tensor, batch_size: int, grad_accum: int):
        self.windows, self.batch_size, self.grad_accum = windows, batch_size, grad_accum
        self.per_epoch = len(windows) // batch_size  # batches in one pass over the windows
        self.steps_per_epoch = self.per_epoch // grad_accum

    def __call__(self, step: int, micro: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        n = (step * self.grad_accum + micro) % self.per_epoch
        rows = self.windows[n * self.batch_size : (n + 1) * self.batch_size]  # (B, T + 1)
        return rows[:, :-1], rows[:, 1:]


TINY_BATCH = 4  # windows per micro-batch


def _train_step_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for grad_accum, dropout, note in [
        (1, 0.0, ""),
        (2, 0.0, ", 2 micro-batches a step"),
        (1, 0.1, ", dropout 0.1 (seed each micro-batch)"),
    ]:
        config = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16,
                           dropout=dropout)
        cfg = TrainConfig(max_steps=6, lr=1e-2, warmup_steps=2, grad_clip=0.5,
                          grad_accum=grad_accum, seed=randint(gen, 0, 10_000), progress=False)
        n_windows = 2 * grad_accum * TINY_BATCH  # an epoch is 2 steps
        windows = torch.randint(11, (n_windows, config.block_size + 1), generator=gen)
        cases.append(Case((config, cfg, windows), f"a 2-layer GPT, {cfg.max_steps} steps with "
                          f"warmup {cfg.warmup_steps}, grad_clip {cfg.grad_clip}{note}"))
    return cases


def _weights_after_steps(step_fn, config: GPTConfig, cfg: TrainConfig,
                         windows: torch.Tensor) -> torch.Tensor:
    """All the weights of a tiny GPT, flattened, after step_fn(model, optimizer, batches, k, cfg)
    for k = 0, ..., cfg.max_steps - 1."""
    with torch.random.fork_rng():  # the lesson's own random numbers are left as they were
        torch.manual_seed(cfg.seed)  # the same initial weights for every step function
        model = GPT(config)
        optimizer = make_optimizer(model, cfg)
        batches = EpochBatches(windows, TINY_BATCH, cfg.grad_accum)
        for step in range(cfg.max_steps):
            step_fn(model, optimizer, batches, step, cfg)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _step_with(*, zero_grad=True, clip_before_step=True, lr_of=lambda step, batches: step,
               seeded=True):
    """A written-out training step, with one of its lines wrong or missing."""
    def step_fn(model, optimizer, batches, step, cfg):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(lr_of(step, batches), cfg)
        for micro in range(cfg.grad_accum):
            if seeded:
                torch.manual_seed(micro_batch_seed(cfg.seed, step, micro, LOSS))
            (model.loss(batches(step, micro)) / cfg.grad_accum).backward()
        if clip_before_step:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        if not clip_before_step:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        if zero_grad:
            optimizer.zero_grad()

    return step_fn


def _step_without_schedule(model, optimizer, batches, step, cfg):
    """The step with the lr left at the optimizer's cfg.lr: no warmup, no decay."""
    for micro in range(cfg.grad_accum):
        torch.manual_seed(micro_batch_seed(cfg.seed, step, micro, LOSS))
        (model.loss(batches(step, micro)) / cfg.grad_accum).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    optimizer.zero_grad()


register(
    Exercise(
        name="train_step",
        lesson="04_training",
        prompt=(
            "train_step(model, optimizer, batches, step, cfg)\n"
            "One optimizer step k = step: set every parameter group's lr to lr_at(k, cfg); for\n"
            "each micro-batch m < cfg.grad_accum, seed torch with micro_batch_seed(cfg.seed, k,\n"
            "m, LOSS) and backpropagate model.loss(batches(k, m)) / cfg.grad_accum; clip the\n"
            "gradient norm to cfg.grad_clip; optimizer.step(); zero the gradients; return the\n"
            "step's mean loss. The check runs it cfg.max_steps times on a tiny GPT and\n"
            "compares the weights with those of the library's train_step."
        ),
        reference=solutions.train_step,
        make_cases=_train_step_cases,
        run=_weights_after_steps,
        mistakes=(
            Mistake(
                "no_zero_grad",
                "the gradients are never zeroed, so each step adds its gradient to all the "
                "earlier ones: call optimizer.zero_grad() after optimizer.step().",
                _step_with(zero_grad=False),
            ),
            Mistake(
                "clip_after_step",
                "you clipped after optimizer.step(): the update already used the unclipped "
                "gradient. Clip between backward() and optimizer.step().",
                _step_with(clip_before_step=False),
            ),
            Mistake(
                "lr_per_epoch",
                "the learning rate moved once per epoch: lr_at takes the optimizer step, so set "
                "group['lr'] = lr_at(step, cfg) at the start of every step.",
                _step_with(lr_of=lambda step, batches: step // batches.steps_per_epoch),
            ),
            Mistake(
                "no_schedule",
                "the learning rate never followed the schedule (it stayed at cfg.lr): set "
                "group['lr'] = lr_at(step, cfg) for every parameter group at each step.",
                _step_without_schedule,
            ),
            Mistake(
                "not_seeded",
                "dropout drew other masks than train_step's: before each micro-batch, "
                "torch.manual_seed(micro_batch_seed(cfg.seed, step, micro, LOSS)).",
                _step_with(seeded=False),
            ),
        ),
    )
)
