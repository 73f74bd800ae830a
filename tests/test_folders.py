"""Model folders: round trips, atomic writes, the file mode, mismatch errors, Hub names."""

import json
import os
import stat
import subprocess
import sys
from dataclasses import asdict, dataclass

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from fromscratch import folders
from fromscratch.errors import UserError
from fromscratch.folders import (
    FILE_MODE,
    atomic_path,
    check_tensors,
    load_model,
    load_state,
    read_config,
    read_tensors,
    read_weights,
    resolve,
    save_model,
    write_bytes,
    write_json,
    write_tensors,
)


@dataclass
class TinyConfig:
    width: int = 3
    depth: int = 2


class Tiny(nn.Module):
    def __init__(self, config: TinyConfig):
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(nn.Linear(config.width, config.width) for _ in
                                    range(config.depth))
        self.register_buffer("scale", torch.arange(config.width, dtype=torch.float64))


def test_save_model_and_load_model_round_trip(tmp_path):
    torch.manual_seed(0)
    model = Tiny(TinyConfig(width=4, depth=3))
    save_model(tmp_path / "m", model, "tiny", asdict(model.config))
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json",
                                                                   "model.safetensors"]
    assert json.loads((tmp_path / "m" / "config.json").read_text()) == {
        "model_type": "tiny", "width": 4, "depth": 3}
    with safe_open(tmp_path / "m" / "model.safetensors", "pt") as f:
        assert f.metadata() == {"format": "pt"}  # the tag transformers looks for
    model.train()
    loaded = load_model(Tiny, TinyConfig, tmp_path / "m", "tiny")
    assert loaded.config == model.config and not loaded.training
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)
    assert loaded.scale.dtype == torch.float64


def test_json_and_tensors_round_trip(tmp_path):
    write_json(tmp_path / "a" / "c.json", {"n": 1, "names": ["x"]})  # the folder is created
    text = (tmp_path / "a" / "c.json").read_text()
    assert text == '{\n  "n": 1,\n  "names": [\n    "x"\n  ]\n}\n'
    assert read_config(tmp_path / "a", "c.json") == {"n": 1, "names": ["x"]}
    base = torch.arange(6.0).view(2, 3)
    write_tensors(tmp_path / "t.safetensors", {"t": base.t(), "i": torch.tensor([7])})
    back = read_tensors(tmp_path / "t.safetensors")  # a transposed view is stored contiguous
    assert torch.equal(back["t"], base.t()) and back["i"].dtype == torch.int64


def test_read_weights_reads_one_file_or_every_shard_of_the_index(tmp_path):
    write_tensors(tmp_path / "one" / "model.safetensors", {"a": torch.ones(2)})
    assert list(read_weights(tmp_path / "one")) == ["a"]
    shards = tmp_path / "sharded"
    write_tensors(shards / "model-00001-of-00002.safetensors", {"a": torch.ones(2)})
    write_tensors(shards / "model-00002-of-00002.safetensors", {"b": torch.zeros(3)})
    write_json(shards / "model.safetensors.index.json", {"metadata": {}, "weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})
    tensors = read_weights(shards)
    assert sorted(tensors) == ["a", "b"] and torch.equal(tensors["b"], torch.zeros(3))
    (shards / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(UserError, match=r"has no model-00002-of-00002\.safetensors"):
        read_weights(shards)
    write_json(shards / "model.safetensors.index.json", {"metadata": {}})
    with pytest.raises(UserError, match="has no weight_map"):
        read_weights(shards)
    with pytest.raises(UserError, match=r"has no model\.safetensors"):
        read_weights(tmp_path / "empty")


def test_a_write_that_fails_midway_leaves_the_old_file(tmp_path, monkeypatch):
    write_bytes(tmp_path / "blob.bin", b"old")
    with pytest.raises(RuntimeError, match="midway"), atomic_path(tmp_path / "blob.bin") as temp:
        temp.write_bytes(b"half of the ne")
        raise RuntimeError("stopped midway")
    assert (tmp_path / "blob.bin").read_bytes() == b"old"

    write_tensors(tmp_path / "w.safetensors", {"w": torch.ones(2)})

    def save_half(tensors, path, metadata=None):
        path.write_bytes(b"\x10\x00")  # the start of a header, then the crash
        raise OSError("disk full")

    monkeypatch.setattr(folders, "save_file", save_half)
    with pytest.raises(OSError, match="disk full"):
        write_tensors(tmp_path / "w.safetensors", {"w": torch.zeros(2)})
    assert torch.equal(load_file(tmp_path / "w.safetensors")["w"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob.bin", "w.safetensors"]


def test_a_crash_during_the_rename_leaves_the_old_file(tmp_path, monkeypatch):
    write_json(tmp_path / "config.json", {"version": 1})
    write_bytes(tmp_path / "blob.bin", b"old")
    write_tensors(tmp_path / "w.safetensors", {"w": torch.ones(2)})

    def crash(*args):
        raise OSError("simulated crash during rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        write_json(tmp_path / "config.json", {"version": 2})
    with pytest.raises(OSError, match="simulated"):
        write_bytes(tmp_path / "blob.bin", b"new")
    with pytest.raises(OSError, match="simulated"):
        write_tensors(tmp_path / "w.safetensors", {"w": torch.zeros(2)})
    assert json.loads((tmp_path / "config.json").read_text()) == {"version": 1}
    assert (tmp_path / "blob.bin").read_bytes() == b"old"
    assert torch.equal(load_file(tmp_path / "w.safetensors")["w"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob.bin", "config.json",
                                                         "w.safetensors"]  # no temporary file


def test_every_file_is_written_with_mode_0o644_whatever_the_umask(tmp_path):
    (tmp_path / "private.bin").write_bytes(b"")
    (tmp_path / "private.bin").chmod(0o600)
    old_umask = os.umask(0o077)  # a umask that would make new files private
    try:
        write_bytes(tmp_path / "private.bin", b"replaced")
        write_json(tmp_path / "config.json", {})
        write_tensors(tmp_path / "model.safetensors", {"w": torch.ones(1)})
    finally:
        os.umask(old_umask)
    assert FILE_MODE == 0o644
    for name in ("private.bin", "config.json", "model.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_the_mismatch_error_names_every_missing_unexpected_and_misshaped_tensor():
    expected = {"a": torch.zeros(2), "b": torch.zeros(3), "c": torch.zeros(2, 3),
                "d": torch.zeros(4)}
    got = {"c": torch.zeros(3, 2), "d": torch.zeros(5), "x": torch.zeros(1), "y": torch.zeros(1)}
    with pytest.raises(UserError) as caught:
        check_tensors(expected, got, "some/folder", advice="use the same settings")
    assert str(caught.value) == (
        "the tensors in some/folder do not match the model: missing a, b; unexpected x, y; "
        "c has shape (3, 2) where the model has (2, 3); d has shape (5,) where the model has "
        "(4,); use the same settings")
    check_tensors(expected, {k: torch.ones_like(v) for k, v in expected.items()}, "f")  # fits


def test_load_state_checks_first_then_casts_to_the_models_dtype():
    model = Tiny(TinyConfig(width=2, depth=1))
    state = {k: torch.full_like(v, 2.0).half() for k, v in model.state_dict().items()}
    load_state(model, state, "f")
    assert model.layers[0].weight.dtype == torch.float32
    assert torch.equal(model.layers[0].weight, torch.full((2, 2), 2.0))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(UserError, match="missing scale"):
        load_state(model, {k: v for k, v in state.items() if k != "scale"}, "f")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())  # untouched


def test_load_state_assign_fills_a_model_built_on_the_meta_device():
    with torch.device("meta"):
        model = Tiny(TinyConfig(width=2, depth=1))
    state = {k: torch.ones(v.shape, dtype=v.dtype) for k, v in model.state_dict().items()}
    load_state(model, state, "f", assign=True)
    assert model.layers[0].weight.device.type == "cpu"
    assert torch.equal(model.layers[0].bias, torch.ones(2))


def test_bad_folders_are_one_line_errors_that_say_what_to_do(tmp_path):
    folder = tmp_path / "m"
    with pytest.raises(UserError, match=r"m has no config.json: give a folder written by"):
        load_model(Tiny, TinyConfig, folder, "tiny")
    save_model(folder, Tiny(TinyConfig()), "tiny", asdict(TinyConfig()))
    with pytest.raises(UserError, match=r"is not a other model \(its model_type is 'tiny'\)"):
        load_model(Tiny, TinyConfig, folder, "other")

    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "colour": "red"}))
    with pytest.raises(UserError, match=r"settings a tiny model does not know, \['colour'\]"):
        load_model(Tiny, TinyConfig, folder, "tiny")
    (folder / "config.json").write_text(json.dumps({**config, "depth": 3}))
    with pytest.raises(UserError, match="missing layers.2.weight, layers.2.bias;"):
        load_model(Tiny, TinyConfig, folder, "tiny")
    (folder / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot read .*config.json"):
        load_model(Tiny, TinyConfig, folder, "tiny")
    (folder / "config.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="holds no JSON object"):
        load_model(Tiny, TinyConfig, folder, "tiny")

    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes(b"truncated")
    with pytest.raises(UserError, match="model.safetensors .*damaged or incomplete"):
        load_model(Tiny, TinyConfig, folder, "tiny")
    (folder / "model.safetensors").unlink()
    with pytest.raises(UserError, match="m has no model.safetensors"):
        load_model(Tiny, TinyConfig, folder, "tiny")


def fill_hub_cache(cache, repo_id: str, files: dict[str, bytes]):
    """What huggingface_hub leaves after downloading `repo_id`: blobs reached through a
    snapshot folder named after the commit, and refs/main naming that commit."""
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    for name, data in files.items():
        (repo / "snapshots" / sha / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / "snapshots" / sha / name).write_bytes(data)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    return repo / "snapshots" / sha


@pytest.fixture
def offline(monkeypatch):
    from huggingface_hub import constants

    # huggingface_hub reads HF_HUB_OFFLINE once, at import: patch its constant too
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return constants


def test_a_hub_name_resolves_to_its_snapshot_in_the_cache_offline(tmp_path, offline,
                                                                  monkeypatch):
    cache = tmp_path / "cache"
    snapshot = fill_hub_cache(cache, "org/tiny", {"config.json": b"{}",
                                                  "model.safetensors": b"",
                                                  "tokenizer/vocab.txt": b"a\n"})
    files = ["config.json", "model.safetensors", "tokenizer/*"]
    assert resolve("org/tiny", files, cache_dir=cache) == snapshot
    fill_hub_cache(cache, "gpt2", {"config.json": b'{"n_layer": 12}'})
    monkeypatch.setattr(offline, "HF_HUB_CACHE", str(cache))  # the default cache
    assert read_config(resolve("gpt2", ["config.json"])) == {"n_layer": 12}

    with pytest.raises(UserError, match=r"^'org/missing' is not a folder, and fetching it from "
                                        r"the Hugging Face Hub failed \(.*\); check the name, "
                                        r"your network, or the cache if HF_HUB_OFFLINE=1$"):
        resolve("org/missing", files, cache_dir=cache)


def test_folders_and_files_on_disk_are_used_as_they_are(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert resolve(tmp_path, []) == tmp_path
    assert resolve(tmp_path / "model.safetensors", []) == tmp_path / "model.safetensors"
    with pytest.raises(UserError, match="no folder .*missing/deeper; give a model folder"):
        resolve(tmp_path / "missing" / "deeper", ["config.json"])  # not a Hub name: no lookup


def test_huggingface_hub_is_imported_only_for_a_hub_name(tmp_path):
    code = ("import sys; from fromscratch.folders import resolve; "
            f"resolve({str(tmp_path)!r}, []); print('huggingface_hub' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
