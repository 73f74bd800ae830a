"""The training loop: schedule, parameter groups, accumulation, clipping, stops, exact resume."""

import errno
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file
from torch.optim.optimizer import register_optimizer_step_pre_hook

from fromscratch import folders
from fromscratch.data.text import LMBatches, evaluate_lm
from fromscratch.errors import UserError
from fromscratch.seeds import LOSS, micro_batch_seed
from fromscratch.training.checkpoint import load_training_state
from fromscratch.training.loop import (
    TrainConfig,
    TrainingDiverged,
    count_items,
    lr_at,
    make_optimizer,
    param_groups,
    train,
    train_step,
)
from fromscratch.training.plots import plot_loss_curves, smooth

VOCAB = 12


class TinyLM(nn.Module):
    """Embedding → LayerNorm → dropout → linear: a bigram LM with every kind of parameter."""

    def __init__(self, dim=8, tied=False, dropout=0.1):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, dim)
        self.ln = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(dim, VOCAB)
        if tied:
            self.head.weight = self.wte.weight

    def forward(self, x):
        return self.head(self.drop(self.ln(self.wte(x))))  # (B, T, V)

    def loss(self, batch):
        x, y = batch[0], batch[1]
        loss = F.cross_entropy(self(x).flatten(0, 1), y.flatten())
        return loss * batch[2] if len(batch) > 2 else loss  # optional scale, to make a nan


def corpus(n=600):
    """Mostly-predictable ids: each token is 5 more than the last (mod V), with a little noise."""
    g = torch.Generator().manual_seed(0)
    return (torch.arange(n) * 5 + torch.randint(0, 2, (n,), generator=g)) % VOCAB


IDS = corpus()
DATA = LMBatches(IDS, block_size=8, batch_size=4, seed=3)


def evaluate(model):
    return {"val_loss": evaluate_lm(model, IDS[:96], block_size=8, batch_size=4)}


def config(**changes):
    settings = dict(max_steps=8, lr=1e-2, warmup_steps=2, grad_accum=2, log_interval=1,
                    eval_interval=4, checkpoint_interval=4, progress=False)
    return TrainConfig(**{**settings, **changes})


def train_losses(result):
    return [(r["step"], r["loss"], r["lr"]) for r in result.history if "loss" in r]


def test_resume_after_ctrl_c_is_exact(tmp_path):
    cfg = config()
    torch.manual_seed(0)
    full = train(TinyLM(), DATA, cfg, out_dir=tmp_path / "full", evaluate=evaluate)

    def ctrl_c_in_step_5(step, micro):
        if (step, micro) == (5, 0):
            os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C now
        return DATA(step, micro)

    torch.manual_seed(0)
    first = train(TinyLM(), ctrl_c_in_step_5, cfg, out_dir=tmp_path / "split", evaluate=evaluate)
    assert (first.stopped_by, first.step) == ("interrupted", 6)  # step 5 finished, then saved
    torch.manual_seed(1)  # another initialisation: everything must come from the checkpoint
    second = train(TinyLM(), DATA, cfg, out_dir=tmp_path / "split", evaluate=evaluate,
                   resume=True)
    assert (second.stopped_by, second.step) == ("max_steps", 8)

    assert len(train_losses(full)) == 8
    assert train_losses(second) == train_losses(full)  # exactly equal floats, all 8 steps
    evals = [[(r["step"], r["val_loss"]) for r in result.history if "val_loss" in r]
             for result in (full, second)]
    assert evals[0] == evals[1] and [s for s, _ in evals[0]] == [0, 4, 8]
    assert [r["lr"] for r in full.history if "loss" in r] == [lr_at(k, cfg) for k in range(8)]
    for name in ["model.safetensors", "optimizer.safetensors"]:  # weights, Adam's m, v, RNG
        a = load_file(tmp_path / "full" / "checkpoints" / "step-00000008" / name)
        b = load_file(tmp_path / "split" / "checkpoints" / "step-00000008" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    log = (tmp_path / "split" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == [
        r["step"] for r in full.history]  # the log holds no duplicate of a replayed step


def test_train_step_by_hand_is_what_train_does():
    cfg = config(max_steps=5)
    torch.manual_seed(0)
    trained = TinyLM()
    result = train(trained, DATA, cfg)
    torch.manual_seed(0)
    by_hand = TinyLM()
    optimizer = make_optimizer(by_hand, cfg)
    losses = [train_step(by_hand, optimizer, DATA, k, cfg)[0].item() for k in range(5)]
    assert losses == [loss for _, loss, _ in train_losses(result)]
    for a, b in zip(trained.parameters(), by_hand.parameters(), strict=True):
        assert torch.equal(a, b)
    assert optimizer.param_groups[0]["lr"] == lr_at(4, cfg)


def test_each_micro_batch_draws_from_a_generator_seeded_by_its_step_and_number():
    draws = []

    class Drawing(TinyLM):
        def loss(self, batch):
            draws.append(torch.rand(()).item())  # as dropout or diffusion noise would
            return super().loss(batch)

    cfg = config(max_steps=3, grad_accum=2, seed=7)
    train(Drawing(), DATA, cfg)
    expected = [torch.rand((), generator=torch.Generator().manual_seed(
        micro_batch_seed(7, k, m, LOSS))).item() for k in range(3) for m in range(2)]
    assert draws == expected


def test_lr_schedule_matches_the_formula_by_hand():
    cfg = TrainConfig(max_steps=110, warmup_steps=10, lr=1e-3, min_lr=1e-4)
    assert lr_at(0, cfg) == pytest.approx(1e-4, rel=1e-12)  # 1e-3 · 1/10
    assert lr_at(9, cfg) == pytest.approx(1e-3, rel=1e-12)  # warmup reaches lr
    assert lr_at(10, cfg) == pytest.approx(1e-3, rel=1e-12)  # the cosine starts at its top
    assert lr_at(35, cfg) == pytest.approx(1e-4 + 0.5 * (1 + math.cos(math.pi / 4)) * 9e-4,
                                           rel=1e-12)
    assert lr_at(60, cfg) == pytest.approx(5.5e-4, rel=1e-12)  # halfway: (lr + min_lr) / 2
    assert lr_at(110, cfg) == pytest.approx(1e-4, rel=1e-12)
    assert lr_at(500, cfg) == pytest.approx(1e-4, rel=1e-12)
    assert TrainConfig(lr=3e-4).min_lr == pytest.approx(3e-5)


def test_config_round_trips_through_json_and_rejects_bad_values():
    cfg = config(max_time=12.5, betas=(0.8, 0.9))
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(UserError, match="unknown training settings"):
        TrainConfig.from_dict({"max_stepz": 3})
    with pytest.raises(UserError, match="grad_accum"):
        TrainConfig(grad_accum=0)


def test_param_groups_list_tied_weights_once_and_skip_decay_on_vectors():
    model = TinyLM(tied=True)
    decay, no_decay = param_groups(model, weight_decay=0.1)
    listed = [id(p) for group in (decay, no_decay) for p in group["params"]]
    assert len(listed) == len(set(listed)) == 4  # wte = head.weight, ln.weight, ln.bias, head.bias
    assert [id(p) for p in decay["params"]] == [id(model.wte.weight)]
    assert {id(p) for p in no_decay["params"]} == {
        id(model.ln.weight), id(model.ln.bias), id(model.head.bias)}
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.1, 0.0)
    model.ln.requires_grad_(False)
    assert len(param_groups(model, 0.1)[1]["params"]) == 1  # frozen ones are left out


def test_two_half_batches_equal_one_full_batch():
    full_batches = LMBatches(IDS, block_size=8, batch_size=8, seed=5)

    def halves(step, micro):
        x, y = full_batches(step)
        return x[4 * micro : 4 * micro + 4], y[4 * micro : 4 * micro + 4]

    torch.manual_seed(0)
    one = TinyLM(dropout=0.0)
    torch.manual_seed(0)
    two = TinyLM(dropout=0.0)
    r1 = train(one, lambda step, micro: full_batches(step), config(max_steps=3, grad_accum=1))
    r2 = train(two, halves, config(max_steps=3, grad_accum=2))
    for (_, loss1, _), (_, loss2, _) in zip(train_losses(r1), train_losses(r2), strict=True):
        assert abs(loss1 - loss2) <= 1e-6
    for p1, p2 in zip(one.parameters(), two.parameters(), strict=True):
        assert (p1 - p2).abs().max().item() <= 1e-6


def test_clipping_bounds_the_gradient_norm_the_optimizer_sees():
    norms = []

    def record_norm(optimizer, args, kwargs):
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())

    handle = register_optimizer_step_pre_hook(record_norm)
    try:
        clipped_run = train(TinyLM(), DATA, config(max_steps=3, grad_clip=0.05))
        clipped, unclipped = norms[:], norms.clear() or norms
        train(TinyLM(), DATA, config(max_steps=3, grad_clip=0.0))
    finally:
        handle.remove()
    assert len(clipped) == len(unclipped) == 3
    assert max(clipped) <= 0.05 * (1 + 1e-5)
    assert min(unclipped) > 0.2  # without clipping the norm is far above 0.05
    assert min(r["grad_norm"] for r in clipped_run.history if "loss" in r) > 0.2  # pre-clip norm


def test_max_time_stops_early_and_checkpoints(tmp_path):
    def slow(step, micro):
        time.sleep(0.05)
        return DATA(step, micro)

    cfg = config(max_steps=1000, max_time=0.5, grad_accum=1, checkpoint_interval=1000)
    result = train(TinyLM(), slow, cfg, out_dir=tmp_path)
    assert result.stopped_by == "max_time"
    assert 2 <= result.step <= 10  # at most 0.5 s / 0.05 s per step; fewer on a busy machine
    latest = (tmp_path / "checkpoints" / "latest").read_text().strip()
    assert latest == f"step-{result.step:08d}"
    assert load_training_state(tmp_path, TinyLM())["step"] == result.step


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    def nan_at_step_5(step, micro):
        x, y = DATA(step, micro)
        return x, y, torch.tensor(float("nan") if step == 5 else 1.0)

    cfg = config(max_steps=10, grad_accum=1, log_interval=4, checkpoint_interval=2)
    with pytest.raises(TrainingDiverged, match="loss became nan at step 6"):
        train(TinyLM(), nan_at_step_5, cfg, out_dir=tmp_path)
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("step-*")) == ["step-00000002", "step-00000004"]
    model = TinyLM()
    assert load_training_state(tmp_path, model)["step"] == 4
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_log_lines_loss_png_and_saved_model(tmp_path):
    saved = []
    cfg = config(max_steps=6, eval_interval=3, log_interval=2, lr=0.05)
    result = train(TinyLM(), DATA, cfg, out_dir=tmp_path, evaluate=evaluate,
                   save_model=lambda model, folder: saved.append(folder))
    png = (tmp_path / "loss.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == result.history
    assert [r["step"] for r in result.history if "loss" in r] == [2, 4, 6]
    val = [r["val_loss"] for r in result.history if "val_loss" in r]
    assert len(val) == 3 and val[-1] < val[0] - 0.3  # it learns (from about ln 12 = 2.48)
    assert abs(val[0] - math.log(VOCAB)) < 0.5
    assert all(r["tokens_per_s"] > 0 for r in result.history if "loss" in r)
    assert saved == [tmp_path, tmp_path]  # after the checkpoints at steps 4 and 6
    assert result.last("val_loss") == val[-1]


def test_a_new_run_refuses_an_old_runs_folder_unless_told_to_overwrite(tmp_path):
    train(TinyLM(), DATA, config(max_steps=4, checkpoint_interval=1), out_dir=tmp_path)
    with pytest.raises(UserError, match="already holds a training run"):
        train(TinyLM(), DATA, config(max_steps=1), out_dir=tmp_path)
    assert len(list((tmp_path / "checkpoints").glob("step-*"))) == 2  # nothing was lost
    result = train(TinyLM(), DATA, config(max_steps=1), out_dir=tmp_path, overwrite=True)
    assert [p.name for p in (tmp_path / "checkpoints").glob("step-*")] == ["step-00000001"]
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == len(result.history) == 1


def test_resume_needs_a_checkpoint(tmp_path):
    with pytest.raises(UserError, match="no checkpoint"):
        train(TinyLM(), DATA, config(), out_dir=tmp_path, resume=True)
    with pytest.raises(UserError, match="out_dir"):
        train(TinyLM(), DATA, config(), resume=True)


def test_count_items_counts_tokens_or_examples():
    assert count_items((torch.zeros(4, 8, dtype=torch.long), torch.zeros(4, 8))) == (32, "tokens")
    assert count_items({"pixels": torch.zeros(5, 3, 8, 8)}) == (5, "items")
    assert count_items(torch.zeros(6, 28, 28, dtype=torch.uint8)) == (6, "items")


def test_importing_the_trainer_does_not_import_matplotlib():
    code = "import sys, fromscratch.training.loop; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_training_without_out_dir_draws_nothing(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("plotted during training without out_dir")

    monkeypatch.setattr("fromscratch.training.loop.plot_loss_curves", fail)
    train(TinyLM(), DATA, config(max_steps=2), evaluate=evaluate)


@pytest.mark.parametrize("n_points", [1, 9, 10, 15, 20, 21, 400])
def test_the_loss_plot_draws_runs_of_any_length(tmp_path, n_points):
    history = [{"step": 10 * k, "loss": 4.0 / (k + 1)} for k in range(n_points)]
    history.append({"step": 10 * n_points, "val_loss": 1.0})
    png = plot_loss_curves(history, tmp_path / "loss.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_smoothing_is_a_bias_corrected_moving_average():
    assert smooth([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])
    # m1 = 0.5·1 = 0.5 → 0.5 / (1 - 0.5) = 1;  m2 = 0.5·0.5 + 0.5·3 = 1.75 → 1.75 / 0.75
    assert smooth([1.0, 3.0], 0.5) == pytest.approx([1.0, 1.75 / 0.75])


def test_disk_full_stops_with_a_message_and_the_run_resumes_once_there_is_space(
        tmp_path, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    cfg = config(checkpoint_interval=2, grad_accum=1)
    torch.manual_seed(0)
    full = train(TinyLM(), DATA, cfg)
    real_save = folders.save_file

    def fills_up_at_step_4(tensors, filename, metadata=None):
        if "step-00000004" in str(filename):
            return disk_full()
        return real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(folders, "save_file", fills_up_at_step_4)
    torch.manual_seed(0)
    with pytest.raises(UserError, match="disk is full.*step 4.*previous one is intact"):
        train(TinyLM(), DATA, cfg, out_dir=tmp_path)
    monkeypatch.undo()  # space was freed
    assert load_training_state(tmp_path, TinyLM())["step"] == 2
    resumed = train(TinyLM(), DATA, cfg, out_dir=tmp_path, resume=True)
    assert train_losses(resumed) == train_losses(full)
