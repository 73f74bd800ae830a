"""One training loop for every model.

The trainer knows one thing about a model: `loss = model.loss(batch)`, a scalar tensor to make
small. Batches come from a function `batches(step, micro) -> batch`, so the data of every step is
fixed by its number, and a run resumed at step k replays exactly what an uninterrupted run does.

Optimizer step k (k = 0, 1, ..., max_steps - 1), with parameters θ:

    lr_k = lr_at(k)                                   linear warmup, then cosine decay
    g    = Σ_m ∇ loss(batches(k, m)) / grad_accum     gradient accumulation over micro-batches
    g    ← g · min(1, grad_clip / ‖g‖)                clip the global gradient norm
    θ    ← AdamW(θ, g, lr_k)                          weight decay on matrices only
    θ̄    ← d θ̄ + (1 − d) θ                           optional EMA of the weights (ema.py)

Step numbers in logs and checkpoints count the updates already done: the record with "step": 100
is written after the 100th update (its loss is the mean of the losses those updates were computed
from), and a checkpoint at step 100 resumes with k = 100.

Randomness: before micro-batch m of step k, torch's generator is seeded from (seed, k, m), so
dropout masks and noise drawn inside `model.loss` depend on the step and micro-batch only: a
resumed run and a run split over several processes draw the same numbers as one whole run.

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
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from fromscratch.errors import UserError
from fromscratch.training import distributed
from fromscratch.training.checkpoint import (
    CHECKPOINTS,
    atomic_write_bytes,
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


def micro_batch_seed(seed: int, step: int, micro: int) -> int:
    """The seed of torch's generator for micro-batch `micro` of step `step`."""
    return int(np.random.SeedSequence([seed, step, micro]).generate_state(1, np.uint64)[0] >> 1)


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
        atomic_write_bytes(self.path, lines.encode("utf-8"))

    def write(self, record: dict) -> None:
        self.records.append(record)
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def plot(self) -> None:
        if self.path is not None and self.records and self.records != self.plotted:
            plot_loss_curves(self.records, self.path.parent / "loss.png")
            self.plotted = list(self.records)


class _Loss(torch.nn.Module):
    """`model.loss(batch)` as a forward pass: DDP and torch.compile both wrap `forward`."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.loss(batch)


def _complete_records(path: Path) -> list[dict]:
    """The records of log.jsonl; a last line cut short (a crash in mid-append) is left out."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    return [json.loads(line) for line in lines if line.endswith("\n") and line.strip()]


def _checked(losses: torch.Tensor, last_step: int) -> list[float]:
    """Bring the per-step losses (1-D) to the CPU (one sync) and stop if any is nan or inf."""
    values = losses.tolist()
    for offset, value in enumerate(values):
        if not math.isfinite(value):
            bad_step = last_step - len(values) + 1 + offset
            raise TrainingDiverged(
                f"the loss became {value} at step {bad_step}; stopped without saving that state "
                "(the last checkpoint is kept): lower lr or keep grad_clip on"
            )
    return values


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
    evaluate: called every eval_interval steps and at the end; returns metrics such as
        {"val_loss": 1.47}; names ending in "loss" are drawn in loss.png.
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
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' asked for, but torch sees no GPU: use device='cpu'")
    if device.type == "cuda" and world.size > 1:
        device = torch.device("cuda", world.local_rank)  # one GPU per process
    my_micros = distributed.my_micro_batches(world, cfg.grad_accum)
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

    # What computes the loss: the model itself, or DDP around it (which averages gradients
    # across processes in backward), optionally compiled.
    loss_module = _Loss(model)
    ddp = None
    if world.size > 1:
        ddp = loss_module = DistributedDataParallel(
            loss_module, device_ids=[device.index] if device.type == "cuda" else None)
    compute_loss = torch.compile(loss_module) if cfg.compile else loss_module

    def averaged_weights():  # the weights evaluate and save_model see
        return ema.swap(model) if ema is not None else nullcontext()

    step = 0  # optimizer updates done
    saved_at = evaluated_at = -1
    if resume:
        restored = load_training_state(out_dir, model, optimizer, ema=ema)
        step = saved_at = restored["step"]
        if "grad_scaler" in restored["extra"]:
            scaler.load_state_dict(restored["extra"]["grad_scaler"])
    elif out_dir is not None and (out_dir / CHECKPOINTS).exists():
        if not overwrite:
            raise UserError(
                f"{out_dir} already holds a training run: resume it (--resume), start afresh "
                "(--overwrite) or choose another output folder"
            )
        if world.is_main:
            shutil.rmtree(out_dir / CHECKPOINTS)
    writes = world.is_main and out_dir is not None  # only rank 0 writes files
    evaluating = world.is_main and evaluate is not None
    log = _Log(out_dir if world.is_main else None, resume_step=step if resume else None)
    if any(r["step"] == step and "loss" not in r for r in log.records):
        evaluated_at = step

    pending_losses: list[torch.Tensor] = []  # per-step losses, left on the device until logged
    pending_norms: list[torch.Tensor] = []  # gradient norms before clipping, likewise
    items, unit = 0, "items"  # tokens or examples since the last log line, for the speed
    start = last_log = time.perf_counter()

    def step_losses() -> list[float]:
        # Each process holds Σ over its micro-batches of loss / grad_accum: summed over the
        # processes, that is the mean loss of the whole step.
        return _checked(distributed.sum_over_processes(torch.stack(pending_losses), world), step)

    def log_train() -> None:
        nonlocal items, last_log
        losses = step_losses()  # the one GPU -> CPU sync of a log interval
        now = time.perf_counter()
        record = {"step": step, "loss": sum(losses) / len(losses), "lr": lr_at(step - 1, cfg),
                  "time": round(now - start, 3)}
        postfix = {"loss": f"{record['loss']:.4f}", "lr": f"{record['lr']:.2e}"}
        if pending_norms:
            record["grad_norm"] = torch.stack(pending_norms).mean().item()
        if items:
            record[f"{unit}_per_s"] = items / (now - last_log)
            postfix[f"{unit}/s"] = f"{record[f'{unit}_per_s']:,.0f}"
        log.write(record)
        bar.set_postfix(postfix)
        pending_losses.clear()
        pending_norms.clear()
        items, last_log = 0, now

    def run_eval() -> None:
        nonlocal evaluated_at, last_log
        began = time.perf_counter()
        with averaged_weights():
            metrics = {name: float(value) for name, value in evaluate(model).items()}
        model.train()
        log.write({"step": step, **metrics, "time": round(time.perf_counter() - start, 3)})
        if cfg.progress:
            bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        log.plot()
        evaluated_at = step
        last_log += time.perf_counter() - began  # evaluation time is not training speed

    def checkpoint() -> None:  # called by every process: the checks below are collective
        nonlocal saved_at, last_log
        began = time.perf_counter()
        if pending_losses:
            step_losses()  # never save a diverged state
        if hasattr(optimizer, "consolidate_state_dict"):  # ZeRO
            optimizer.consolidate_state_dict(to=0)  # gather the shards of Adam's state on rank 0
        if writes:
            extra = {"grad_scaler": scaler.state_dict()} if scaler.is_enabled() else None
            try:
                save_training_state(out_dir, model, optimizer, step, train_config=cfg.to_dict(),
                                    extra=extra, ema=ema)
                if save_model is not None:
                    with averaged_weights():
                        save_model(model, out_dir)
            except OSError as error:
                if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                raise UserError(
                    f"the disk is full: the checkpoint of step {step} could not be written to "
                    f"{out_dir} (the previous one is intact); free some space, then resume"
                ) from error
        saved_at = step
        last_log += time.perf_counter() - began

    stopped_by = "max_steps"
    bar = tqdm(total=cfg.max_steps, initial=step, unit="step",
               disable=not (cfg.progress and world.is_main), dynamic_ncols=True)
    try:
        with _ctrl_c_requests_stop() as stop_requested:
            if evaluating and step == 0:
                run_eval()  # the curve starts at the untrained model
            while step < cfg.max_steps:
                lr = lr_at(step, cfg)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                step_loss = torch.zeros((), device=device)
                for i, micro in enumerate(my_micros):
                    torch.manual_seed(micro_batch_seed(cfg.seed, step, micro))
                    batch = _to_device(batches(step, micro), device)
                    # DDP all-reduces gradients in backward; only the last micro-batch needs it.
                    last = i == len(my_micros) - 1
                    with ddp.no_sync() if ddp is not None and not last else nullcontext():
                        with torch.autocast(device.type, dtype=amp_dtype,
                                            enabled=amp_dtype != torch.float32):
                            loss = compute_loss(batch)
                        # gradients add up over micro-batches (and DDP averages over processes)
                        scaler.scale(loss / len(my_micros)).backward()
                    step_loss += loss.detach().float() / cfg.grad_accum
                    count, unit = count_items(batch)
                    items += count * world.size
                scaler.unscale_(optimizer)  # true gradients before clipping (float16 only)
                if cfg.grad_clip > 0:
                    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    pending_norms.append(norm.float())
                scaler.step(optimizer)  # skips the update if float16 gradients overflowed
                scaler.update()
                optimizer.zero_grad(set_to_none=True)  # free gradient memory before next forward
                if ema is not None:
                    ema.update(model)
                step += 1
                pending_losses.append(step_loss)
                bar.update()

                if step % cfg.log_interval == 0:
                    log_train()
                if evaluating and step % cfg.eval_interval == 0:
                    run_eval()
                if out_dir is not None and step % cfg.checkpoint_interval == 0:
                    checkpoint()
                elapsed = time.perf_counter() - start
                out_of_time = cfg.max_time is not None and elapsed >= cfg.max_time
                interrupted, out_of_time = distributed.any_process(
                    [stop_requested.is_set(), out_of_time and step < cfg.max_steps], world, device)
                if interrupted or out_of_time:
                    stopped_by = "interrupted" if interrupted else "max_time"
                    break

            if pending_losses:
                log_train()
            if evaluating and evaluated_at != step and stopped_by != "interrupted":
                run_eval()
            if out_dir is not None and saved_at != step:
                checkpoint()
            log.plot()
    finally:
        bar.close()
    return TrainResult(log.records, step, stopped_by, time.perf_counter() - start, ema)
