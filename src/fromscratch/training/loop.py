"""One training loop for every model.

The trainer knows one thing about a model: `loss = model.loss(batch)`, a scalar tensor to make
small. Batches come from a function `batches(step, micro) -> batch`, so the data of every step is
fixed by its number, and a run resumed at step k replays exactly what an uninterrupted run does.

Optimizer step k (k = 0, 1, ..., max_steps - 1), with parameters θ, is `train_step`:

    lr_k = lr_at(k)                                   linear warmup, then cosine decay
    g    = Σ_m ∇ loss(batches(k, m)) / grad_accum     gradient accumulation over micro-batches
    g    ← g · min(1, grad_clip / ‖g‖)                clip the global gradient norm
    θ    ← AdamW(θ, g, lr_k)                          weight decay on matrices only
    θ̄    ← d θ̄ + (1 − d) θ                           optional EMA of the weights (ema.py)

`train` runs train_step for k = 0, 1, ... and around it keeps the run's books in one `RunState`:
every log_interval steps a log record (`log_progress`), every eval_interval steps an evaluation
(`evaluate_now`), every checkpoint_interval steps a checkpoint (`save_checkpoint`), and the stops
below.

Step numbers in logs and checkpoints count the updates already done: the record with "step": 100
is written after the 100th update (its loss is the mean of the losses those updates were computed
from), and a checkpoint at step 100 resumes with k = 100.

Randomness: before micro-batch m of step k, torch's generator is seeded with
micro_batch_seed(seed, k, m, LOSS) (seeds.py; the batch sources follow the same rule), so dropout
masks and noise drawn inside `model.loss` depend on the step and micro-batch only: a resumed run
and a run split over several processes draw the same numbers as one whole run.

Scale (each a TrainConfig field; lesson notebooks/22_training_at_scale.py explains them):
  data parallel   under `torchrun --nproc_per_node=N`, each process computes its share of every
                  step's micro-batches and DDP averages the gradients (distributed.py); rank 0
                  logs and writes checkpoints. zero=True also shards AdamW's m and v across the
                  processes (ZeroRedundancyOptimizer), for models whose optimizer state is big.
  dtype           autocast precision: "auto" is bfloat16 on GPUs that have it, float16 (with a
                  gradient scaler against underflow) on older GPUs, float32 on the CPU.
  grad_checkpointing   recompute activations in the backward pass instead of storing them (the
                  model opts in with a `grad_checkpointing` attribute, as GPT does).
  compile         torch.compile the loss computation.

Stopping: at max_steps, at max_time seconds, or on Ctrl-C. The first Ctrl-C lets the current
step finish, saves a checkpoint and returns with stopped_by="interrupted"; a second Ctrl-C raises
KeyboardInterrupt at once and saves nothing (the last periodic checkpoint stays). A loss of nan
or inf raises `TrainingDiverged` without saving the broken state.
"""

import errno
import json
import math
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from fromscratch.errors import UserError
from fromscratch.folders import write_bytes
from fromscratch.modes import evaluating
from fromscratch.seeds import LOSS, micro_batch_seed
from fromscratch.training import distributed
from fromscratch.training.checkpoint import (
    CHECKPOINTS,
    load_training_state,
    save_training_state,
)
from fromscratch.training.distributed import World
from fromscratch.training.ema import EMA
from fromscratch.training.plots import plot_loss_curves

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class TrainingDiverged(UserError):
    """The loss became nan or inf."""


@dataclass
class TrainConfig:
    max_steps: int = 1000
    max_time: float | None = None  # seconds; stop early (evaluate, save) once exceeded
    lr: float = 1e-3
    min_lr: float | None = None  # where the cosine ends; None means lr / 10
    warmup_steps: int = 100
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip: float = 1.0  # largest global gradient norm; 0 turns clipping off
    grad_accum: int = 1  # micro-batches per optimizer step
    eval_interval: int = 250
    log_interval: int = 10
    checkpoint_interval: int = 1000
    seed: int = 1337  # seeds torch's generator (dropout, noise) at the start of a run
    device: str = "cpu"
    progress: bool = True
    ema_decay: float | None = None  # keep an EMA of the weights with this decay (e.g. 0.999)
    ema_warmup: bool = False  # decay min(ema_decay, (1 + n) / (10 + n)) at update n
    dtype: str = "auto"  # autocast precision: auto, float32, bfloat16 or float16
    compile: bool = False  # torch.compile the model's loss
    grad_checkpointing: bool = False  # recompute activations in backward (models that opt in)
    zero: bool = False  # with several processes, shard AdamW's state (ZeroRedundancyOptimizer)

    def __post_init__(self):
        if self.min_lr is None:
            self.min_lr = self.lr / 10
        self.betas = tuple(self.betas)
        for name in ["max_steps", "grad_accum", "eval_interval", "log_interval",
                     "checkpoint_interval"]:
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ["warmup_steps", "weight_decay", "grad_clip", "min_lr"]:
            if getattr(self, name) < 0:
                raise UserError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.lr <= 0:
            raise UserError(f"lr must be positive, got {self.lr}")
        if self.ema_decay is not None and not 0 <= self.ema_decay < 1:
            raise UserError(f"ema_decay must be in [0, 1) (e.g. 0.999), got {self.ema_decay}")
        if self.dtype not in ("auto", *DTYPES):
            raise UserError(f"dtype must be auto, {', '.join(DTYPES)}; got {self.dtype!r}")
        if self.max_time is not None and self.max_time < 0:
            raise UserError(f"max_time must be a number of seconds, got {self.max_time}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise UserError(f"unknown training settings {sorted(unknown)}")
        return cls(**values)


@dataclass
class TrainResult:
    history: list[dict]  # every log and eval record of the run, as in log.jsonl
    step: int  # optimizer updates done
    stopped_by: str  # "max_steps", "max_time" or "interrupted"
    seconds: float = 0.0  # wall time of this call
    ema: EMA | None = None  # the averaged weights, when cfg.ema_decay is set

    def last(self, key: str) -> float | None:
        """The most recent value of `key` in the history (e.g. "loss", "val_loss")."""
        return next((r[key] for r in reversed(self.history) if key in r), None)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of optimizer step `step` (W = warmup_steps, S = max_steps):

        k < W:       lr_k = lr · (k + 1) / W
        W ≤ k ≤ S:   lr_k = min_lr + ½ (1 + cos(π (k − W) / (S − W))) (lr − min_lr)
        k > S:       lr_k = min_lr
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if step > cfg.max_steps:
        return cfg.min_lr
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)  # 0 → 1
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay for matrices (linear weights, embeddings), none for the rest.

    Weight decay pulls weights toward 0; on a bias or a LayerNorm gain that only fights the fit,
    so vectors are not decayed. `named_parameters` lists a tied weight once, so no parameter
    lands in two groups. Frozen parameters (requires_grad=False) are left out.
    """
    trainable = [p for _, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for p in trainable if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in trainable if p.dim() < 2], "weight_decay": 0.0},
    ]


def make_optimizer(
    model: torch.nn.Module, cfg: TrainConfig, world: World | None = None
) -> torch.optim.Optimizer:
    """AdamW over `param_groups`; sharded across processes (ZeRO stage 1) if cfg.zero.

    ZeroRedundancyOptimizer gives each process the Adam state (m, v) of a 1/N share of the
    parameters: each updates its share, then broadcasts the new values to the others. The
    updates are the same as AdamW's; the optimizer memory per process falls N-fold.
    """
    on_cuda = next(model.parameters()).is_cuda
    options = dict(lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                   fused=True if on_cuda else None)  # one kernel for the whole update on a GPU
    groups = param_groups(model, cfg.weight_decay)
    if cfg.zero and world is not None and world.size > 1:
        from torch.distributed.optim import ZeroRedundancyOptimizer  # slow to import

        return ZeroRedundancyOptimizer(groups, optimizer_class=torch.optim.AdamW, **options)
    return torch.optim.AdamW(groups, **options)


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype:
    """The precision of the forward pass (the weights and optimizer stay float32).

    bfloat16 keeps float32's 8 exponent bits (same range, ~3 significant digits): no scaling
    needed. float16 has 5 exponent bits: small gradients underflow to 0 unless the loss is
    scaled up first (the GradScaler), so it is used only on GPUs without bfloat16.
    """
    if cfg.dtype != "auto":
        return DTYPES[cfg.dtype]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def count_items(batch) -> tuple[int, str]:
    """(how much, unit) for speed reports, from shapes only (no GPU sync).

    The first tensor of the batch decides: int64/int32 ids count as tokens (all B·T of them),
    anything else (images, vectors) counts examples along dimension 0.
    """
    first = batch
    while isinstance(first, (tuple, list, dict)) and len(first) > 0:
        first = next(iter(first.values())) if isinstance(first, dict) else first[0]
    if not isinstance(first, torch.Tensor):
        return 0, "items"
    if first.dtype in (torch.int64, torch.int32):  # token ids (uint8 would be pixels)
        return first.numel(), "tokens"
    return (first.shape[0] if first.dim() else 1), "items"


def _to_device(batch, device: torch.device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


# ---------------------------------------------------------------------------------------------
# One optimizer step
# ---------------------------------------------------------------------------------------------
def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Callable[[int, int], object],
    step: int,
    cfg: TrainConfig,
    *,
    micros: range | None = None,
    compute_loss: Callable | None = None,
    ddp: DistributedDataParallel | None = None,
    scaler: torch.amp.GradScaler | None = None,
    amp_dtype: torch.dtype = torch.float32,
    ema: EMA | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Optimizer step k = `step` (the equations at the top of this file).

    Returns the step's loss (its mean over the micro-batches; under DDP this process's share,
    the shares adding up to the mean) and the gradient norm before clipping (None with clipping
    off), both left on the device: reading them waits for the GPU.
    By hand, on one device: `train_step(model, make_optimizer(model, cfg), batches, k, cfg)`.
    The keywords are what `train` adds at scale: this process's share of the micro-batches, the
    loss through DDP (which averages gradients across processes) or torch.compile, the DDP
    wrapper itself, float16's gradient scaler, the autocast precision, and the EMA.
    """
    micros = range(cfg.grad_accum) if micros is None else micros
    compute_loss = model.loss if compute_loss is None else compute_loss
    if scaler is None:
        scaler = torch.amp.GradScaler(enabled=False)  # off: float32 and bfloat16 need none
    device = next(model.parameters()).device
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, cfg)
    step_loss = torch.zeros((), device=device)
    for i, micro in enumerate(micros):
        torch.manual_seed(micro_batch_seed(cfg.seed, step, micro, LOSS))  # dropout, noise
        batch = _to_device(batches(step, micro), device)
        # DDP all-reduces gradients in backward; only the last micro-batch needs it.
        last = i == len(micros) - 1
        with ddp.no_sync() if ddp is not None and not last else nullcontext():
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype != torch.float32):
                loss = compute_loss(batch)
            scaler.scale(loss / len(micros)).backward()  # gradients add up over micro-batches
        step_loss += loss.detach().float() / cfg.grad_accum
    scaler.unscale_(optimizer)  # true gradients before clipping (float16 only)
    norm = None
    if cfg.grad_clip > 0:
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    scaler.step(optimizer)  # skips the update if float16 gradients overflowed
    scaler.update()
    optimizer.zero_grad(set_to_none=True)  # free gradient memory before the next forward
    if ema is not None:
        ema.update(model)
    return step_loss, norm


# ---------------------------------------------------------------------------------------------
# The run around the steps: its state, log, evaluations and checkpoints
# ---------------------------------------------------------------------------------------------
class _Log:
    """The run's records: kept in memory, appended to out_dir/log.jsonl, drawn to loss.png."""

    def __init__(self, out_dir: Path | None, resume_step: int | None):
        self.records: list[dict] = []
        self.plotted: list[dict] = []  # the records loss.png shows
        self.path = out_dir / "log.jsonl" if out_dir is not None else None
        if self.path is None:
            return
        if resume_step is not None and self.path.exists():
            # Records after the checkpoint belong to steps that will be run again.
            self.records = [r for r in _complete_records(self.path) if r["step"] <= resume_step]
        lines = "".join(json.dumps(r) + "\n" for r in self.records)
        write_bytes(self.path, lines.encode("utf-8"))

    def write(self, record: dict) -> None:
        self.records.append(record)
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def plot(self) -> None:
        if self.path is not None and self.records and self.records != self.plotted:
            plot_loss_curves(self.records, self.path.parent / "loss.png")
            self.plotted = list(self.records)


def _complete_records(path: Path) -> list[dict]:
    """The records of log.jsonl; a last line cut short (a crash in mid-append) is left out."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    return [json.loads(line) for line in lines if line.endswith("\n") and line.strip()]


@dataclass
class RunState:
    """What `train` carries from step to step (the model and the optimizer hold the rest)."""

    cfg: TrainConfig
    world: World
    log: _Log
    bar: tqdm  # the progress bar (disabled unless cfg.progress, and on ranks other than 0)
    step: int = 0  # optimizer updates done
    saved_at: int = -1  # the step of the newest checkpoint
    evaluated_at: int = -1  # the step of the newest evaluation
    losses: list[torch.Tensor] = field(default_factory=list)  # per step, on the device until logged
    norms: list[torch.Tensor] = field(default_factory=list)  # gradient norms before clipping, same
    items: int = 0  # tokens or examples since the last log record, for the speed
    unit: str = "items"
    start: float = field(default_factory=time.perf_counter)
    last_log: float = field(init=False)  # when the speed's interval began (less any pauses)

    def __post_init__(self):
        self.last_log = self.start


class _Counted:
    """`batches`, counting what it hands out into run.items (every process takes as many)."""

    def __init__(self, batches: Callable[[int, int], object], run: RunState):
        self.batches, self.run = batches, run

    def __call__(self, step: int, micro: int):
        batch = self.batches(step, micro)
        count, self.run.unit = count_items(batch)
        self.run.items += count * self.run.world.size
        return batch


def _checked_losses(run: RunState) -> list[float]:
    """The losses of the steps since the last log record, on the CPU (one sync); a nan or inf
    among them stops the run."""
    # Each process holds Σ over its micro-batches of loss / grad_accum: summed over the
    # processes, that is the mean loss of the whole step.
    values = distributed.sum_over_processes(torch.stack(run.losses), run.world).tolist()
    for offset, value in enumerate(values):
        if not math.isfinite(value):
            bad_step = run.step - len(values) + 1 + offset
            raise TrainingDiverged(
                f"the loss became {value} at step {bad_step}; stopped without saving that state "
                "(the last checkpoint is kept): lower lr or keep grad_clip on"
            )
    return values


def log_progress(run: RunState) -> None:
    """Write the record of the steps since the last one: mean loss, lr, gradient norm, speed."""
    losses = _checked_losses(run)  # the one GPU -> CPU sync of a log interval
    now = time.perf_counter()
    record = {"step": run.step, "loss": sum(losses) / len(losses),
              "lr": lr_at(run.step - 1, run.cfg), "time": round(now - run.start, 3)}
    postfix = {"loss": f"{record['loss']:.4f}", "lr": f"{record['lr']:.2e}"}
    if run.norms:
        record["grad_norm"] = torch.stack(run.norms).mean().item()
    if run.items:
        record[f"{run.unit}_per_s"] = run.items / (now - run.last_log)
        postfix[f"{run.unit}/s"] = f"{record[f'{run.unit}_per_s']:,.0f}"
    run.log.write(record)
    run.bar.set_postfix(postfix)
    run.losses.clear()
    run.norms.clear()
    run.items, run.last_log = 0, now


@contextmanager
def _paused(run: RunState) -> Iterator[None]:
    """Time spent inside (evaluating, saving) does not count against the training speed."""
    began = time.perf_counter()
    yield
    run.last_log += time.perf_counter() - began


def _averaged(model: torch.nn.Module, ema: EMA | None):
    """Inside, the model holds the averaged weights θ̄ if there are any: what evaluate and
    save_model see."""
    return ema.swap(model) if ema is not None else nullcontext()


def evaluate_now(run: RunState, model: torch.nn.Module, ema: EMA | None,
                 evaluate: Callable[[torch.nn.Module], dict[str, float]]) -> None:
    """Log evaluate(model) in eval mode (then training mode again), and redraw loss.png."""
    with _paused(run):
        with _averaged(model, ema), evaluating(model):
            metrics = {name: float(value) for name, value in evaluate(model).items()}
        run.log.write({"step": run.step, **metrics,
                       "time": round(time.perf_counter() - run.start, 3)})
        if run.cfg.progress:
            run.bar.write(f"step {run.step}: "
                          + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        run.log.plot()
    run.evaluated_at = run.step


def save_checkpoint(run: RunState, out_dir: Path, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                    ema: EMA | None, save_model: Callable | None) -> None:
    """The training state of run.step into out_dir/checkpoints (rank 0 writes), then the model
    folder by save_model. Every process calls it: the checks before writing are collective."""
    with _paused(run):
        if run.losses:
            _checked_losses(run)  # never save a diverged state
        if hasattr(optimizer, "consolidate_state_dict"):  # ZeRO
            optimizer.consolidate_state_dict(to=0)  # gather the shards of Adam's state on rank 0
        if run.world.is_main:
            extra = {"grad_scaler": scaler.state_dict()} if scaler.is_enabled() else None
            with _disk_full_explained(run.step, out_dir):
                save_training_state(out_dir, model, optimizer, run.step,
                                    train_config=run.cfg.to_dict(), extra=extra, ema=ema)
                if save_model is not None:
                    with _averaged(model, ema):
                        save_model(model, out_dir)
    run.saved_at = run.step


@contextmanager
def _disk_full_explained(step: int, out_dir: Path) -> Iterator[None]:
    """A full disk (or quota) while writing becomes a UserError that says what to do."""
    try:
        yield
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise UserError(
            f"the disk is full: the checkpoint of step {step} could not be written to "
            f"{out_dir} (the previous one is intact); free some space, then resume"
        ) from error


def _reason_to_stop(run: RunState, stop_requested: threading.Event,
                    device: torch.device) -> str | None:
    """"interrupted" (Ctrl-C), "max_time", or None to go on; if one process stops, all do."""
    cfg = run.cfg
    out_of_time = cfg.max_time is not None and time.perf_counter() - run.start >= cfg.max_time
    interrupted, out_of_time = distributed.any_process(
        [stop_requested.is_set(), out_of_time and run.step < cfg.max_steps], run.world, device)
    return "interrupted" if interrupted else "max_time" if out_of_time else None


@contextmanager
def _ctrl_c_requests_stop() -> Iterator[threading.Event]:
    """While inside, the first Ctrl-C only sets the returned event; the second one interrupts."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # signals reach only main
        yield requested
        return
    previous = signal.getsignal(signal.SIGINT)

    def on_ctrl_c(signum, frame):
        requested.set()
        signal.signal(signal.SIGINT, previous)  # the next Ctrl-C behaves as usual

    signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield requested
    finally:
        signal.signal(signal.SIGINT, previous)


# ---------------------------------------------------------------------------------------------
# Setting up a run
# ---------------------------------------------------------------------------------------------
def _device(cfg: TrainConfig, world: World) -> torch.device:
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' asked for, but torch sees no GPU: use device='cpu'")
    if device.type == "cuda" and world.size > 1:
        device = torch.device("cuda", world.local_rank)  # one GPU per process
    return device


class _Loss(torch.nn.Module):
    """`model.loss(batch)` as a forward pass: DDP and torch.compile both wrap `forward`."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.loss(batch)


def _loss_computation(model: torch.nn.Module, cfg: TrainConfig, world: World,
                      device: torch.device) -> tuple[Callable, DistributedDataParallel | None]:
    """(what computes the loss, the DDP wrapper or None): the model itself, or DDP around it
    (which averages gradients across processes in backward), optionally compiled."""
    loss_module, ddp = _Loss(model), None
    if world.size > 1:
        ddp = loss_module = DistributedDataParallel(
            loss_module, device_ids=[device.index] if device.type == "cuda" else None)
    return (torch.compile(loss_module) if cfg.compile else loss_module), ddp


def _first_step(out_dir: Path | None, resume: bool, overwrite: bool, model: torch.nn.Module,
                optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, ema: EMA | None,
                world: World) -> int:
    """The step a run starts at: the newest checkpoint's (its state loaded) when resuming, else 0
    (a folder holding an older run is refused unless `overwrite`)."""
    if resume:
        restored = load_training_state(out_dir, model, optimizer, ema=ema)
        if "grad_scaler" in restored["extra"]:
            scaler.load_state_dict(restored["extra"]["grad_scaler"])
        return restored["step"]
    if out_dir is not None and (out_dir / CHECKPOINTS).exists():
        if not overwrite:
            raise UserError(
                f"{out_dir} already holds a training run: resume it (--resume), start afresh "
                "(--overwrite) or choose another output folder"
            )
        if world.is_main:
            shutil.rmtree(out_dir / CHECKPOINTS)
    return 0


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------
def train(
    model: torch.nn.Module,
    batches: Callable[[int, int], object],
    cfg: TrainConfig,
    *,
    out_dir: str | Path | None = None,
    evaluate: Callable[[torch.nn.Module], dict[str, float]] | None = None,
    save_model: Callable[[torch.nn.Module, Path], None] | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> TrainResult:
    """Train `model` by AdamW on `model.loss(batches(step, micro))`.

    out_dir: where log.jsonl, loss.png and checkpoints/ go (nothing is written if None).
    evaluate: called every eval_interval steps and at the end, in eval mode under
        torch.no_grad(); returns metrics such as {"val_loss": 1.47}; names ending in "loss" are
        drawn in loss.png.
    save_model: called after each checkpoint as save_model(model, out_dir), so that out_dir is
        also a model folder a user can load (e.g. weights + config + tokenizer).
    With cfg.ema_decay set, evaluate and save_model see the averaged weights θ̄ (swapped into
    the model for the call; the model trains on its own θ); result.ema holds them afterwards.
    resume: continue from the newest checkpoint in out_dir, exactly.
    overwrite: start afresh in an out_dir that holds an older run, deleting its checkpoints and
        log. Without resume or overwrite such a folder is refused, so no run is lost by mistake.

    Started by torchrun (WORLD_SIZE > 1), every process calls `train` with the same arguments;
    only rank 0 evaluates and writes, and its result holds the evaluations.
    """
    with distributed.joined(torch.device(cfg.device).type) as world:
        return _train(model, batches, cfg, world, out_dir=out_dir, evaluate=evaluate,
                      save_model=save_model, resume=resume, overwrite=overwrite)


def _train(model, batches, cfg, world, *, out_dir, evaluate, save_model, resume, overwrite):
    if resume and out_dir is None:
        raise UserError("resume needs out_dir, the folder of the run to continue")
    out_dir = Path(out_dir) if out_dir is not None else None
    device = _device(cfg, world)
    amp_dtype = autocast_dtype(cfg, device)
    torch.manual_seed(cfg.seed)
    model.to(device)
    model.train()
    if cfg.grad_checkpointing:
        if not hasattr(model, "grad_checkpointing"):
            raise UserError(f"{type(model).__name__} has no activation checkpointing: turn "
                            "grad_checkpointing off")
        model.grad_checkpointing = True
    optimizer = make_optimizer(model, cfg, world)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    ema = EMA(model, cfg.ema_decay, warmup=cfg.ema_warmup) if cfg.ema_decay is not None else None
    compute_loss, ddp = _loss_computation(model, cfg, world, device)
    step = _first_step(out_dir, resume, overwrite, model, optimizer, scaler, ema, world)

    log = _Log(out_dir if world.is_main else None, resume_step=step if resume else None)
    bar = tqdm(total=cfg.max_steps, initial=step, unit="step",
               disable=not (cfg.progress and world.is_main), dynamic_ncols=True)
    run = RunState(cfg, world, log, bar, step=step, saved_at=step if resume else -1)
    if any(r["step"] == step and "loss" not in r for r in log.records):
        run.evaluated_at = step  # the checkpoint's evaluation is in the log already
    evaluates = world.is_main and evaluate is not None  # only rank 0 evaluates
    counted_batches = _Counted(batches, run)
    stopped_by = "max_steps"
    with bar, _ctrl_c_requests_stop() as stop_requested:
        if evaluates and run.step == 0:
            evaluate_now(run, model, ema, evaluate)  # the curve starts at the untrained model
        while run.step < cfg.max_steps:
            loss, norm = train_step(
                model, optimizer, counted_batches, run.step, cfg,
                micros=distributed.my_micro_batches(world, cfg.grad_accum),
                compute_loss=compute_loss, ddp=ddp, scaler=scaler, amp_dtype=amp_dtype, ema=ema)
            run.step += 1
            run.losses.append(loss)
            if norm is not None:
                run.norms.append(norm)
            bar.update()

            if run.step % cfg.log_interval == 0:
                log_progress(run)
            if evaluates and run.step % cfg.eval_interval == 0:
                evaluate_now(run, model, ema, evaluate)
            if out_dir is not None and run.step % cfg.checkpoint_interval == 0:
                save_checkpoint(run, out_dir, model, optimizer, scaler, ema, save_model)
            reason = _reason_to_stop(run, stop_requested, device)
            if reason is not None:
                stopped_by = reason
                break

        if run.losses:
            log_progress(run)
        if evaluates and run.evaluated_at != run.step and stopped_by != "interrupted":
            evaluate_now(run, model, ema, evaluate)
        if out_dir is not None and run.saved_at != run.step:
            save_checkpoint(run, out_dir, model, optimizer, scaler, ema, save_model)
        log.plot()
    return TrainResult(log.records, run.step, stopped_by, time.perf_counter() - run.start, ema)
