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

Stopping: at max_steps, at max_time seconds, or on Ctrl-C. The first Ctrl-C lets the current
step finish, saves a checkpoint and returns with stopped_by="interrupted"; a second Ctrl-C raises
KeyboardInterrupt at once and saves nothing (the last periodic checkpoint stays). A loss of nan
or inf raises `TrainingDiverged` without saving the broken state.
"""

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

import torch
from tqdm.auto import tqdm

from fromscratch.checkpoint import (
    CHECKPOINTS,
    atomic_write_bytes,
    load_training_state,
    save_training_state,
)
from fromscratch.ema import EMA
from fromscratch.errors import UserError
from fromscratch.plots import plot_loss_curves, read_log


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


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    on_cuda = next(model.parameters()).is_cuda
    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
        fused=True if on_cuda else None,  # one kernel for the whole update on a GPU
    )


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
            self.records = [r for r in read_log(self.path) if r["step"] <= resume_step]
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


def _checked(losses: list[torch.Tensor], last_step: int) -> list[float]:
    """Bring the per-step losses to the CPU (one sync) and stop if any is nan or inf."""
    values = torch.stack(losses).tolist()
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
    """
    if resume and out_dir is None:
        raise UserError("resume needs out_dir, the folder of the run to continue")
    out_dir = Path(out_dir) if out_dir is not None else None
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' asked for, but torch sees no GPU: use device='cpu'")
    torch.manual_seed(cfg.seed)
    model.to(device)
    model.train()
    optimizer = make_optimizer(model, cfg)
    ema = EMA(model, cfg.ema_decay, warmup=cfg.ema_warmup) if cfg.ema_decay is not None else None

    def averaged_weights():  # the weights evaluate and save_model see
        return ema.swap(model) if ema is not None else nullcontext()

    step = 0  # optimizer updates done
    saved_at = evaluated_at = -1
    if resume:
        step = saved_at = load_training_state(out_dir, model, optimizer, ema=ema)["step"]
    elif out_dir is not None and (out_dir / CHECKPOINTS).exists():
        if not overwrite:
            raise UserError(
                f"{out_dir} already holds a training run: resume it (--resume), start afresh "
                "(--overwrite) or choose another output folder"
            )
        shutil.rmtree(out_dir / CHECKPOINTS)
    log = _Log(out_dir, resume_step=step if resume else None)
    if any(r["step"] == step and "loss" not in r for r in log.records):
        evaluated_at = step

    pending_losses: list[torch.Tensor] = []  # per-step losses, left on the device until logged
    pending_norms: list[torch.Tensor] = []  # gradient norms before clipping, likewise
    items, unit = 0, "items"  # tokens or examples since the last log line, for the speed
    start = last_log = time.perf_counter()

    def log_train() -> None:
        nonlocal items, last_log
        losses = _checked(pending_losses, step)  # the one GPU -> CPU sync of a log interval
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

    def checkpoint() -> None:
        nonlocal saved_at, last_log
        began = time.perf_counter()
        if pending_losses:
            _checked(pending_losses, step)  # never save a diverged state
        save_training_state(out_dir, model, optimizer, step, train_config=cfg.to_dict(), ema=ema)
        if save_model is not None:
            with averaged_weights():
                save_model(model, out_dir)
        saved_at = step
        last_log += time.perf_counter() - began

    stopped_by = "max_steps"
    bar = tqdm(total=cfg.max_steps, initial=step, unit="step", disable=not cfg.progress,
               dynamic_ncols=True)
    try:
        with _ctrl_c_requests_stop() as stop_requested:
            if evaluate is not None and step == 0:
                run_eval()  # the curve starts at the untrained model
            while step < cfg.max_steps:
                lr = lr_at(step, cfg)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                step_loss = torch.zeros((), device=device)
                for micro in range(cfg.grad_accum):
                    batch = _to_device(batches(step, micro), device)
                    loss = model.loss(batch)
                    (loss / cfg.grad_accum).backward()  # gradients add up over micro-batches
                    step_loss += loss.detach().float() / cfg.grad_accum
                    count, unit = count_items(batch)
                    items += count
                if cfg.grad_clip > 0:
                    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    pending_norms.append(norm.float())
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)  # free gradient memory before next forward
                if ema is not None:
                    ema.update(model)
                step += 1
                pending_losses.append(step_loss)
                bar.update()

                if step % cfg.log_interval == 0:
                    log_train()
                if evaluate is not None and step % cfg.eval_interval == 0:
                    run_eval()
                if out_dir is not None and step % cfg.checkpoint_interval == 0:
                    checkpoint()
                if stop_requested.is_set():
                    stopped_by = "interrupted"
                    break
                elapsed = time.perf_counter() - start
                if cfg.max_time is not None and elapsed >= cfg.max_time and step < cfg.max_steps:
                    stopped_by = "max_time"
                    break

            if pending_losses:
                log_train()
            if evaluate is not None and evaluated_at != step and stopped_by != "interrupted":
                run_eval()
            if out_dir is not None and saved_at != step:
                checkpoint()
            log.plot()
    finally:
        bar.close()
    return TrainResult(log.records, step, stopped_by, time.perf_counter() - start, ema)
