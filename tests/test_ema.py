"""EMA of weights: equal to the update written out by hand; buffers copied; exact resume."""

import os
import signal

import pytest
import torch
import torch.nn as nn
from safetensors.torch import load_file
from test_loop import DATA, TinyLM, config, evaluate, train_losses
from torch.optim.optimizer import register_optimizer_step_post_hook

from fromscratch.errors import UserError
from fromscratch.training.checkpoint import load_training_state
from fromscratch.training.ema import EMA
from fromscratch.training.loop import TrainConfig, train


class NormNet(nn.Module):
    """A BatchNorm (running-statistics buffers), a tied weight and a frozen parameter."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(6, 4)
        self.bn = nn.BatchNorm1d(4)
        self.head = nn.Linear(4, 6)
        self.head.weight = self.emb.weight
        self.scale = nn.Parameter(torch.tensor(2.0), requires_grad=False)

    def forward(self, x):
        return self.head(self.bn(self.emb(x))) * self.scale


def perturbed(model, generator):
    """Move every trainable parameter at random and run a forward pass (updates BN buffers)."""
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=generator))
    model.train()
    model(torch.randint(0, 6, (8,), generator=generator))


@pytest.mark.parametrize("warmup", [False, True])
def test_update_equals_the_loop_written_out(warmup):
    g = torch.Generator().manual_seed(0)
    model = NormNet()
    ema = EMA(model, decay=0.9, warmup=warmup)
    by_hand = {name: p.detach().clone().double() for name, p in model.named_parameters()}
    assert set(by_hand) == {"emb.weight", "bn.weight", "bn.bias", "head.bias", "scale"}  # tied once
    for n in range(6):
        perturbed(model, g)
        ema.update(model)
        d = min(0.9, (1 + n) / (10 + n)) if warmup else 0.9
        for name, p in model.named_parameters():
            by_hand[name] = d * by_hand[name] + (1 - d) * p.detach().double()
    if warmup:
        assert [ema.decay_at(n) for n in (0, 1, 5, 1000)] == [0.1, 2 / 11, 6 / 15, 0.9]
    for name in by_hand:
        assert torch.allclose(ema.params[name].double(), by_hand[name], rtol=0, atol=1e-6), name
    assert not torch.allclose(ema.params["emb.weight"], model.emb.weight)  # it is an average
    assert torch.equal(ema.params["scale"], torch.tensor(2.0))  # frozen: average of constants
    for name, b in model.named_buffers():  # copied, not averaged (num_batches_tracked = 6)
        assert torch.equal(ema.buffers[name], b), name
    assert ema.buffers["bn.num_batches_tracked"].item() == 6


def test_swap_copy_to_and_averaged_model():
    g = torch.Generator().manual_seed(1)
    model = NormNet()
    ema = EMA(model, decay=0.5)
    perturbed(model, g)
    ema.update(model)
    perturbed(model, g)  # model now differs from the EMA in parameters and buffers
    own = {k: v.clone() for k, v in model.state_dict().items()}
    with ema.swap(model) as swapped:
        assert swapped is model
        assert torch.equal(model.emb.weight, ema.params["emb.weight"])
        assert model.head.weight is model.emb.weight  # the tie survives
        assert torch.equal(model.bn.running_mean, ema.buffers["bn.running_mean"])
    assert all(torch.equal(model.state_dict()[k], v) for k, v in own.items())  # restored

    copy = ema.averaged_model(model)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in own.items())  # untouched
    assert torch.equal(copy.emb.weight, ema.params["emb.weight"])
    ema.copy_to(model)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in copy.state_dict().items())


def test_state_dict_round_trip_and_mismatch():
    g = torch.Generator().manual_seed(2)
    model = NormNet()
    ema = EMA(model, decay=0.8, warmup=True)
    for _ in range(3):
        perturbed(model, g)
        ema.update(model)
    other = EMA(NormNet(), decay=0.1)
    other.load_state_dict(ema.state_dict())
    assert (other.decay, other.warmup, other.num_updates) == (0.8, True, 3)
    assert all(torch.equal(other.params[k], v) for k, v in ema.params.items())
    with pytest.raises(ValueError, match="missing"):
        EMA(TinyLM()).load_state_dict(ema.state_dict())
    with pytest.raises(UserError, match="decay"):
        EMA(model, decay=1.0)


def test_trainer_ema_matches_its_definition_and_callbacks_see_it(tmp_path):
    weights_after_each_step = []

    def record(optimizer, args, kwargs):
        weights_after_each_step.append(
            {k: v.detach().clone() for k, v in model.named_parameters()})

    seen_by_evaluate, seen_by_save = [], []

    def evaluate_and_remember(m):
        seen_by_evaluate.append(m.head.weight.detach().clone())
        return evaluate(m)

    torch.manual_seed(0)
    plain = train(TinyLM(), DATA, config(), evaluate=evaluate)
    torch.manual_seed(0)
    model = TinyLM()
    handle = register_optimizer_step_post_hook(record)
    try:
        result = train(model, DATA, config(ema_decay=0.7), out_dir=tmp_path,
                       evaluate=evaluate_and_remember,
                       save_model=lambda m, d: seen_by_save.append(m.head.weight.detach().clone()))
    finally:
        handle.remove()
    assert train_losses(result) == train_losses(plain)  # the EMA does not change training
    torch.manual_seed(0)
    by_hand = {k: v.detach().clone() for k, v in TinyLM().named_parameters()}  # θ_0
    for weights in weights_after_each_step:
        by_hand = {k: 0.7 * by_hand[k] + 0.3 * weights[k] for k in by_hand}
    assert len(weights_after_each_step) == 8
    for name, value in by_hand.items():
        assert torch.allclose(result.ema.params[name], value, atol=1e-6), name
    assert not torch.allclose(model.head.weight, result.ema.params["head.weight"], atol=1e-3)
    # evaluate at steps 0, 4, 8 and save_model at steps 4, 8 saw the EMA, not θ
    assert torch.equal(seen_by_evaluate[-1], result.ema.params["head.weight"])
    assert torch.equal(seen_by_save[-1], result.ema.params["head.weight"])
    assert len(seen_by_evaluate) == 3 and len(seen_by_save) == 2
    assert [r["val_loss"] for r in result.history if "val_loss" in r] != [
        r["val_loss"] for r in plain.history if "val_loss" in r]


def test_ema_is_checkpointed_and_resumed_exactly(tmp_path):
    cfg = config(ema_decay=0.9, ema_warmup=True)
    torch.manual_seed(0)
    full = train(TinyLM(), DATA, cfg, out_dir=tmp_path / "full", evaluate=evaluate)

    def ctrl_c_in_step_5(step, micro):
        if (step, micro) == (5, 0):
            os.kill(os.getpid(), signal.SIGINT)
        return DATA(step, micro)

    torch.manual_seed(0)
    train(TinyLM(), ctrl_c_in_step_5, cfg, out_dir=tmp_path / "split", evaluate=evaluate)
    torch.manual_seed(1)
    second = train(TinyLM(), DATA, cfg, out_dir=tmp_path / "split", evaluate=evaluate,
                   resume=True)
    assert [(r["step"], r.get("val_loss")) for r in second.history] == [
        (r["step"], r.get("val_loss")) for r in full.history]  # val_loss is of the EMA
    assert second.ema.num_updates == full.ema.num_updates == 8
    a = load_file(tmp_path / "full" / "checkpoints" / "step-00000008" / "ema.safetensors")
    b = load_file(tmp_path / "split" / "checkpoints" / "step-00000008" / "ema.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert sorted(a) == sorted(f"params.{k}" for k, _ in TinyLM().named_parameters())


def test_ema_decay_out_of_range_is_a_user_error():
    with pytest.raises(UserError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)


def test_resuming_a_run_saved_without_ema_starts_the_average_at_the_loaded_weights(tmp_path):
    torch.manual_seed(0)
    trained = train(TinyLM(), DATA, config(max_steps=2), out_dir=tmp_path)
    assert trained.ema is None
    assert not (tmp_path / "checkpoints" / "step-00000002" / "ema.safetensors").exists()
    model = TinyLM()
    ema = EMA(model, 0.9)
    load_training_state(tmp_path, model, ema=ema)
    assert all(torch.equal(ema.params[k], p) for k, p in model.named_parameters())
    assert ema.num_updates == 0
