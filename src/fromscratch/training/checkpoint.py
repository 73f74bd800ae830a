"""Checkpoints: safetensors + JSON, written atomically, enough to resume a run exactly.

Two rules make a checkpoint trustworthy:

1. Atomic writes. A file is written to a temporary name in the same folder, flushed to disk
   (fsync), then renamed over the target with `os.replace` (folders.py) — a rename is
   all-or-nothing, so a crash leaves either the old file or the new one, never half of each. A
   training checkpoint is a whole folder, built under a temporary name and renamed the same way.
2. No pickle. `torch.load` of a pickle can run arbitrary code; tensors go to safetensors files
   and everything else (step, config, optimizer hyperparameters, random-generator states) to JSON.

Layout of a run folder `out_dir`:

    out_dir/checkpoints/step-00000100/model.safetensors      model.state_dict()
                                     optimizer.safetensors  optimizer tensors (Adam's m and v)
                                     ema.safetensors        averaged weights (runs with an EMA)
                                     state.json             step, config, RNG states, file sizes
    out_dir/checkpoints/latest                              text: the newest folder's name
"""

import json
import os
import random
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from fromscratch.errors import UserError
from fromscratch.folders import fsync, load_state, write_bytes, write_json, write_tensors
from fromscratch.training.ema import EMA

CHECKPOINTS = "checkpoints"
LATEST = "latest"
FORMAT = 1  # the layout of a training checkpoint; raised when it changes incompatibly


# ---------------------------------------------------------------------------------------------
# Tied weights
# ---------------------------------------------------------------------------------------------
def unshare(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Split a state dict into tensors safetensors can store and a table of tied names.

    Tied weights (GPT-2's token embedding and output layer are one matrix) appear in a state dict
    under two names pointing at the same memory; safetensors refuses that. We store the first
    name only and return {second_name: first_name}. Two *different* views of one storage are
    cloned apart instead.
    """
    unique: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    views: dict[tuple, str] = {}  # (address, shape, stride, dtype) -> first name
    storages: set[int] = set()
    for name, tensor in tensors.items():
        view = (tensor.data_ptr(), tuple(tensor.shape), tensor.stride(), tensor.dtype)
        storage = tensor.untyped_storage().data_ptr()
        if view in views:
            aliases[name] = views[view]
            continue
        views[view] = name
        unique[name] = tensor.clone() if storage in storages else tensor
        storages.add(storage)
    return unique, aliases


# ---------------------------------------------------------------------------------------------
# Training state: model + optimizer + random generators + step
# ---------------------------------------------------------------------------------------------


def _optimizer_to_files(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer state dict -> (tensors named 'state.{param}.{name}', JSON-able rest)."""
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for param_id, param_state in state_dict["state"].items():
        for name, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{param_id}.{name}"] = value
            else:
                scalars.setdefault(str(param_id), {})[name] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _optimizer_from_files(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], saved: dict
) -> dict:
    """Inverse of `_optimizer_to_files`, shaped like `optimizer.state_dict()`."""
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        _, param_id, name = key.split(".", 2)
        state.setdefault(int(param_id), {})[name] = value
    for param_id, values in saved["scalars"].items():
        state.setdefault(int(param_id), {}).update(values)
    # JSON turns tuples into lists; give back tuples where the live optimizer has them (betas).
    groups = []
    for saved_group, live_group in zip(saved["param_groups"], optimizer.param_groups, strict=False):
        groups.append({
            key: tuple(value) if isinstance(live_group.get(key), tuple) else value
            for key, value in saved_group.items()
        })
    groups += saved["param_groups"][len(groups):]
    return {"state": state, "param_groups": groups}


def _rng_states() -> tuple[dict[str, torch.Tensor], dict]:
    """Every random generator training may draw from: torch (CPU and CUDA), Python, numpy."""
    tensors = {"torch": torch.get_rng_state()}  # uint8 tensor
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = state
    version, mt_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    json_states = {
        "python": [version, list(mt_state), gauss],
        "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
    }
    return tensors, json_states


def _set_rng_states(tensors: dict[str, torch.Tensor], json_states: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    n_cuda = sum(key.startswith("cuda.") for key in tensors)
    cuda_states = [tensors[f"cuda.{i}"] for i in range(n_cuda)]
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    version, mt_state, gauss = json_states["python"]
    random.setstate((version, tuple(mt_state), gauss))
    kind, keys, pos, has_gauss, cached = json_states["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def _step_of(folder: Path) -> int:
    return int(folder.name.removeprefix("step-"))


def _step_folders(checkpoints: Path) -> list[Path]:
    """Finished checkpoint folders, newest first."""
    folders = [p for p in checkpoints.glob("step-*") if p.is_dir() and p.name[5:].isdigit()]
    return sorted(folders, key=_step_of, reverse=True)


def save_training_state(
    out_dir: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    *,
    train_config: dict,
    extra: dict | None = None,
    keep: int = 2,
    ema: EMA | None = None,
) -> Path:
    """Write out_dir/checkpoints/step-{step:08d} atomically, point `latest` at it, keep `keep`.

    `step` is the number of optimizer steps already taken: resuming starts at step `step`.
    `ema`, if given, is saved beside the model (ema.safetensors). Returns the checkpoint folder.
    """
    checkpoints = Path(out_dir) / CHECKPOINTS
    checkpoints.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    tmp = Path(tempfile.mkdtemp(dir=checkpoints, prefix=f".tmp-{name}-"))
    tmp.chmod(0o755)  # mkdtemp makes it private; a checkpoint is readable like its files (0o644)
    try:
        model_tensors, tied = unshare(model.state_dict())
        optimizer_tensors, optimizer_json = _optimizer_to_files(optimizer)
        rng_tensors, rng_json = _rng_states()
        rng_tensors = {f"rng.{k}": t for k, t in rng_tensors.items()}
        write_tensors(tmp / "model.safetensors", model_tensors)
        write_tensors(tmp / "optimizer.safetensors", {**optimizer_tensors, **rng_tensors})
        ema_json = None
        if ema is not None:
            ema_state = ema.state_dict()
            ema_tensors = {f"{kind}.{name}": tensor for kind in ("params", "buffers")
                           for name, tensor in ema_state.pop(kind).items()}
            write_tensors(tmp / "ema.safetensors", ema_tensors)
            ema_json = ema_state  # decay, warmup, num_updates
        files = {f.name: f.stat().st_size for f in tmp.iterdir()}
        state = {
            "format": FORMAT,
            "step": step,
            "train_config": train_config,
            "extra": extra or {},
            "tied": tied,
            "optimizer": optimizer_json,
            "rng": rng_json,
            "ema": ema_json,
            "files": files,  # sizes, to spot a truncated file before trusting it
        }
        write_json(tmp / "state.json", state)  # each file flushed to disk, and tmp's names

        final = checkpoints / name
        if final.exists():  # the same step saved again (e.g. after a resume): swap it out
            old = Path(tempfile.mkdtemp(dir=checkpoints, prefix=f".old-{name}-"))
            os.replace(final, old / name)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        fsync(checkpoints)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_bytes(checkpoints / LATEST, (name + "\n").encode())

    for stale in [*checkpoints.glob(".tmp-*"), *checkpoints.glob(".old-*")]:  # crash leftovers
        shutil.rmtree(stale, ignore_errors=True)
    for stale in checkpoints.glob(f".{LATEST}.*.tmp"):  # a `latest` whose writer was killed
        stale.unlink(missing_ok=True)
    for old_folder in _step_folders(checkpoints)[max(keep, 1):]:
        _remove_folder(old_folder)
    return final


def _remove_folder(folder: Path) -> None:
    """Rename, then delete: a crash halfway leaves a hidden leftover, never a half-deleted
    checkpoint that looks like a real one."""
    trash = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".old-{folder.name}-"))
    os.replace(folder, trash / folder.name)
    shutil.rmtree(trash, ignore_errors=True)


class _Corrupt(Exception):
    """A checkpoint folder that is incomplete or damaged: try an older one."""


def _read_folder(folder: Path) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(state.json, model tensors, every other tensor: optimizer, rng and "ema." ones)."""
    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        for file_name, size in state["files"].items():
            actual = (folder / file_name).stat().st_size
            if actual != size:
                raise _Corrupt(f"{folder / file_name} has {actual} bytes, expected {size}")
        model_tensors = load_file(folder / "model.safetensors")
        other_tensors = load_file(folder / "optimizer.safetensors")
        if "ema.safetensors" in state["files"]:
            ema_tensors = load_file(folder / "ema.safetensors")
            other_tensors |= {f"ema.{k}": t for k, t in ema_tensors.items()}
    except (OSError, KeyError, ValueError, SafetensorError) as error:
        raise _Corrupt(f"{folder}: {error}") from error
    return state, model_tensors, other_tensors


def load_training_state(
    out_dir: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    ema: EMA | None = None,
) -> dict:
    """Restore model, optimizer and random generators from the newest usable checkpoint.

    `ema` is restored too; from a checkpoint saved without one it restarts at the loaded weights.
    Tries the folder named in `latest` first, then older ones (newest first), skipping with a
    warning any that is incomplete or damaged. Returns {"step", "train_config", "extra", "path"}.
    """
    checkpoints = Path(out_dir) / CHECKPOINTS
    folders = _step_folders(checkpoints) if checkpoints.is_dir() else []
    if not folders:
        raise UserError(f"no checkpoint in {out_dir}: start a new run instead of resuming")
    latest = checkpoints / LATEST
    if latest.is_file():
        named = checkpoints / latest.read_text().strip()
        folders.sort(key=lambda f: f != named)  # the one `latest` names first, order otherwise kept

    problems = []
    for folder in folders:
        try:
            state, model_tensors, other_tensors = _read_folder(folder)
        except _Corrupt as error:
            warnings.warn(f"skipping damaged checkpoint: {error}", stacklevel=2)
            problems.append(str(error))
            continue
        if state.get("format", 1) > FORMAT:
            raise UserError(
                f"{folder} was written by a newer fromscratch (checkpoint format "
                f"{state['format']}; this one reads up to {FORMAT}): upgrade fromscratch to use it"
            )
        for alias, source in state["tied"].items():
            model_tensors[alias] = model_tensors[source]
        load_state(model, model_tensors, folder, advice="use the same model settings as the run")
        if optimizer is not None:
            optimizer_tensors = {k: t for k, t in other_tensors.items() if k.startswith("state.")}
            try:
                optimizer.load_state_dict(
                    _optimizer_from_files(optimizer, optimizer_tensors, state["optimizer"])
                )
            except (ValueError, KeyError) as error:
                raise UserError(
                    f"the optimizer state in {folder} does not fit this model's parameters "
                    f"({error}): use the same model settings as the run"
                ) from error
        if ema is not None:
            _load_ema(ema, model, state.get("ema"), other_tensors, folder)
        rng_tensors = {k[4:]: t for k, t in other_tensors.items() if k.startswith("rng.")}
        _set_rng_states(rng_tensors, state["rng"])
        return {
            "step": state["step"],
            "train_config": state["train_config"],
            "extra": state["extra"],
            "path": folder,
        }
    raise UserError(f"no usable checkpoint in {checkpoints} ({'; '.join(problems)}): start "
                    "afresh (--overwrite) or resume from a copy of the run")


def _load_ema(
    ema: EMA, model: torch.nn.Module, saved: dict | None, tensors: dict[str, torch.Tensor],
    folder: Path,
) -> None:
    if saved is None:  # the run had no EMA until now: the average starts here
        ema.load_state_dict(EMA(model, ema.decay, warmup=ema.warmup).state_dict())
        return
    state = {**saved, "params": {}, "buffers": {}}
    for key, tensor in tensors.items():
        if key.startswith("ema."):
            kind, name = key[4:].split(".", 1)
            state[kind][name] = tensor
    try:
        ema.load_state_dict(state)
    except ValueError as error:
        raise UserError(f"the EMA in {folder} does not fit this model ({error}): use the same "
                        "model settings as the run") from error
