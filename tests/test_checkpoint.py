"""Checkpoints: exact round trips, tied weights, damaged folders, crashes during writes."""

import errno
import json
import os
import random
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from safetensors.torch import load_file

from fromscratch.errors import UserError
from fromscratch.folders import write_tensors
from fromscratch.training.checkpoint import load_training_state, save_training_state, unshare


class Net(nn.Module):
    """Embedding, LayerNorm and an output layer that may share the embedding matrix."""

    def __init__(self, dim=4, vocab=10, tied=True):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)
        if tied:
            self.head.weight = self.emb.weight

    def forward(self, x):
        return self.head(self.ln(self.emb(x)))


def trained(steps=2, **net_options):
    """A Net and its AdamW after a few updates, so the optimizer has state to save."""
    model = Net(**net_options)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, betas=(0.9, 0.95))
    for _ in range(steps):
        model(torch.arange(10)).logsumexp(-1).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    return model, optimizer


def test_round_trip_restores_model_optimizer_and_random_generators(tmp_path):
    torch.manual_seed(0)
    model, optimizer = trained()
    save_training_state(tmp_path, model, optimizer, 2, train_config={"lr": 0.1},
                        extra={"note": "hi"})
    next_draws = (torch.rand(3), random.random(), np.random.rand())

    torch.manual_seed(99)  # disturb every generator; build a differently initialised model
    random.seed(99)
    np.random.seed(99)
    model2 = Net()
    optimizer2 = torch.optim.AdamW(model2.parameters(), lr=0.5)
    state = load_training_state(tmp_path, model2, optimizer2)

    assert state["step"] == 2
    assert state["train_config"] == {"lr": 0.1} and state["extra"] == {"note": "hi"}
    for key, value in model.state_dict().items():
        assert torch.equal(model2.state_dict()[key], value), key
    assert model2.head.weight is model2.emb.weight  # still one tied matrix
    expected, restored = optimizer.state_dict(), optimizer2.state_dict()
    assert restored["param_groups"] == expected["param_groups"]  # lr 0.1 and tuple betas back
    assert restored["state"].keys() == expected["state"].keys()
    for i, values in expected["state"].items():
        for name, tensor in values.items():
            assert torch.equal(restored["state"][i][name], tensor), (i, name)
    assert torch.equal(torch.rand(3), next_draws[0])
    assert random.random() == next_draws[1]
    assert np.random.rand() == next_draws[2]


def test_tied_weights_are_stored_once(tmp_path):
    model, optimizer = trained()
    folder = save_training_state(tmp_path, model, optimizer, 2, train_config={})
    stored = load_file(folder / "model.safetensors")
    assert "emb.weight" in stored and "head.weight" not in stored
    assert json.loads((folder / "state.json").read_text())["tied"] == {"head.weight": "emb.weight"}


def test_unshare_aliases_same_tensor_and_clones_other_views(tmp_path):
    base = torch.arange(6.0)
    unique, aliases = unshare({"a": base, "b": base, "c": base[:2]})
    assert list(unique) == ["a", "c"] and aliases == {"b": "a"}
    assert unique["c"].untyped_storage().data_ptr() != base.untyped_storage().data_ptr()
    write_tensors(tmp_path / "t.safetensors", unique)  # safetensors accepts it
    assert torch.equal(load_file(tmp_path / "t.safetensors")["c"], torch.tensor([0.0, 1.0]))


def test_keep_prunes_older_folders_and_latest_names_the_newest(tmp_path):
    model, optimizer = trained()
    for step in [1, 2, 3]:
        save_training_state(tmp_path, model, optimizer, step, train_config={}, keep=2)
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "latest", "step-00000002", "step-00000003"]
    assert (checkpoints / "latest").read_text() == "step-00000003\n"
    save_training_state(tmp_path, model, optimizer, 3, train_config={}, keep=2)  # same step again
    assert load_training_state(tmp_path, Net())["step"] == 3


@pytest.mark.parametrize("damage", ["truncate", "garble header"])
def test_damaged_latest_falls_back_to_previous_checkpoint(tmp_path, damage):
    torch.manual_seed(0)
    model, optimizer = trained(steps=1)
    save_training_state(tmp_path, model, optimizer, 1, train_config={})
    weights_at_1 = {k: v.clone() for k, v in model.state_dict().items()}
    model, optimizer = trained(steps=2)
    folder = save_training_state(tmp_path, model, optimizer, 2, train_config={})
    data = (folder / "model.safetensors").read_bytes()
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:  # same size, so only safetensors' own parsing can notice
        data = b"\xff" * 8 + data[8:]
    (folder / "model.safetensors").write_bytes(data)

    fresh = Net()
    with pytest.warns(UserWarning, match="damaged checkpoint"):
        state = load_training_state(tmp_path, fresh, torch.optim.AdamW(fresh.parameters()))
    assert state["step"] == 1
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in weights_at_1.items())


def test_no_usable_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no checkpoint"):
        load_training_state(tmp_path, Net())
    model, optimizer = trained()
    folder = save_training_state(tmp_path, model, optimizer, 1, train_config={})
    (folder / "optimizer.safetensors").write_bytes(b"")
    with pytest.warns(UserWarning), pytest.raises(UserError, match="no usable checkpoint"):
        load_training_state(tmp_path, Net())


def test_tensors_that_do_not_fit_name_the_key(tmp_path):
    model, optimizer = trained(dim=4)
    save_training_state(tmp_path, model, optimizer, 1, train_config={})
    with pytest.raises(UserError, match=r"emb.weight has shape \(10, 4\) where the model has "
                                        r"\(10, 6\).*same model settings as the run"):
        load_training_state(tmp_path, Net(dim=6))
    bigger = Net(dim=4)
    bigger.extra = nn.Linear(4, 4)
    with pytest.raises(UserError, match="missing extra.weight, extra.bias; use the same model"):
        load_training_state(tmp_path, bigger)


def test_checkpoint_files_are_readable_by_others(tmp_path):
    model, optimizer = trained()
    old_umask = os.umask(0o077)
    try:
        folder = save_training_state(tmp_path, model, optimizer, 1, train_config={})
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    for path in [*folder.iterdir(), tmp_path / "checkpoints" / "latest"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name


def _crash(*args, **kwargs):
    raise OSError("simulated crash during rename")


def test_crash_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model, optimizer = trained(steps=1)
    save_training_state(tmp_path, model, optimizer, 1, train_config={})
    model2, optimizer2 = trained(steps=2)
    monkeypatch.setattr(os, "replace", _crash)
    with pytest.raises(OSError, match="simulated"):
        save_training_state(tmp_path, model2, optimizer2, 2, train_config={})
    monkeypatch.undo()
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest", "step-00000001"]
    fresh = Net()
    assert load_training_state(tmp_path, fresh)["step"] == 1
    assert torch.equal(fresh.emb.weight, model.emb.weight)


def _disk_full_halfway(tensors, filename, metadata=None):
    """safetensors' save_file on a disk that fills up: some bytes land, then ENOSPC."""
    Path(filename).write_bytes(b"\0" * 100)
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model, optimizer = trained(steps=1)
    save_training_state(tmp_path, model, optimizer, 1, train_config={})
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    model2, optimizer2 = trained(steps=2)
    monkeypatch.setattr("fromscratch.folders.save_file", _disk_full_halfway)
    with pytest.raises(OSError) as raised:
        save_training_state(tmp_path, model2, optimizer2, 2, train_config={})
    assert raised.value.errno == errno.ENOSPC
    monkeypatch.undo()
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest", "step-00000001"]
    fresh = Net()
    assert load_training_state(tmp_path, fresh)["step"] == 1
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in weights.items())
