"""Model folders: a config.json and a file of tensors, read, checked and written in one place.

Every model here lives in a folder laid out the way Hugging Face models are:

    config.json          the settings that rebuild the model: its sizes, its kind (model_type)
    model.safetensors    its tensors by name (diffusers names this file
                         diffusion_pytorch_model.safetensors)

so where a model has a counterpart in `transformers` or `diffusers`, a folder written here loads
there and theirs loads here. Reading a folder takes four steps:

    resolve(source, files)     a folder or file on disk, or a Hub name ("gpt2", "org/name") fetched
                               once into the Hugging Face cache: a path on this machine
    read_config(folder)        config.json (or another JSON file of the folder) as a dict
    read_tensors(path)         a safetensors file as {name: tensor}; never a pickle, which can run
                               code while it is read (read_weights: a folder's one file, or all
                               the shards of a large model)
    load_state(model, state)   every name and shape checked against the model (one error that
                               names every misfit, `check_tensors`), then the tensors copied in

Writing one: `write_bytes`, `write_json` and `write_tensors` write each file atomically. The bytes
go to a temporary file in the same folder, are flushed to disk (fsync) and renamed over the target
with `os.replace`; then the folder's list of names is flushed too. A rename is all-or-nothing, so a
crash leaves the old file or the new one, never half of each. Every file written has mode 0o644
(`FILE_MODE`), whatever the umask: its owner may change it and everyone may read it, as with any
model file one shares (the temporary file would otherwise keep mkstemp's private 0o600).

`save_model` and `load_model` are the whole round trip of the models that exist only here (ViT,
the audio and music transformers, the NDT, ...): config.json with their model_type, and
model.safetensors. A problem the user can fix is a one-line `UserError` that says what to do.
"""

import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from fromscratch.errors import UserError

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"  # a model cut into shards: {"weight_map": ...}
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"  # the same file, as diffusers names it
FILE_MODE = 0o644  # rw-r--r--: every file this module writes
WRITTEN_HERE = "give a folder written by save_pretrained or by training"
SAME_MODEL = "the weights and config.json must come from the same model"


# ---------------------------------------------------------------------------------------------
# Where a model comes from: a folder, a file, or a name on the Hugging Face Hub
# ---------------------------------------------------------------------------------------------
def resolve(source: str | os.PathLike, files: list[str], *,
            cache_dir: str | os.PathLike | None = None) -> Path:
    """The path on this machine of `source`: a folder or file on disk as it is; otherwise a Hub
    name whose `files` (names or patterns such as "tokenizer/*") are downloaded into Hugging
    Face's cache (or `cache_dir`) the first time and read from there afterwards, offline too
    (HF_HUB_OFFLINE=1). A Hub name gives the folder of its files, e.g. for "gpt2":
    ~/.cache/huggingface/hub/models--gpt2/snapshots/<commit>/.
    """
    path = Path(source).expanduser()
    if path.exists():
        return path
    if not is_hub_name(str(source)):
        raise UserError(f"no folder {path}; give a model folder or a Hugging Face Hub name "
                        "(such as gpt2 or org/name)")
    return _download(str(source), files, cache_dir)


def is_hub_name(name: str) -> bool:
    """'gpt2' or 'org/name': letters, digits, '-', '_', '.', at most one '/'."""
    return re.fullmatch(r"[\w\-][\w\-.]*(/[\w\-][\w\-.]*)?", name) is not None


def _download(name: str, files: list[str], cache_dir) -> Path:
    from huggingface_hub import snapshot_download  # imported here: only this path needs it

    try:
        return Path(snapshot_download(name, cache_dir=cache_dir, allow_patterns=files))
    except (OSError, ValueError) as err:  # no such model, no network, not in the offline cache
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"{name!r} is not a folder, and fetching it from the Hugging Face Hub failed "
            f"({reason}); check the name, your network, or the cache if HF_HUB_OFFLINE=1"
        ) from err


# ---------------------------------------------------------------------------------------------
# Reading: config.json and the tensors
# ---------------------------------------------------------------------------------------------
def read_config(folder: str | os.PathLike, name: str = CONFIG, *,
                advice: str = WRITTEN_HERE) -> dict:
    """The JSON object in `folder`/`name` (config.json unless said). `advice` ends the error
    when the file is not there: what the user should give instead."""
    path = Path(folder) / name
    if not path.is_file():
        raise UserError(f"{folder} has no {name}: {advice}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"cannot read {path} ({err}): mend the file or save the model again"
                        ) from err
    if not isinstance(config, dict):
        raise UserError(f"{path} holds no JSON object ({{...}}): {advice}")
    return config


def read_tensors(path: str | os.PathLike, *, advice: str = WRITTEN_HERE
                 ) -> dict[str, torch.Tensor]:
    """The tensors of the safetensors file `path`, by name, on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path.parent} has no {path.name}: {advice}")
    try:
        return load_file(path)
    except (OSError, SafetensorError) as err:
        raise UserError(f"cannot read {path} ({err}): the file is damaged or incomplete; save or "
                        "download it again") from err


def read_weights(folder: str | os.PathLike, *, advice: str = WRITTEN_HERE
                 ) -> dict[str, torch.Tensor]:
    """All the tensors of a model folder: its model.safetensors or, for a model cut into
    shards (model-00001-of-00002.safetensors, ...), every shard that model.safetensors.index.json
    names in its "weight_map" of tensor name -> file."""
    folder = Path(folder)
    if (folder / WEIGHTS).is_file() or not (folder / WEIGHTS_INDEX).is_file():
        return read_tensors(folder / WEIGHTS, advice=advice)
    weight_map = read_config(folder, WEIGHTS_INDEX, advice=advice).get("weight_map")
    if not isinstance(weight_map, dict):
        raise UserError(f"{folder / WEIGHTS_INDEX} has no weight_map of tensor name -> file: "
                        "download the model again")
    tensors = {}
    for shard in sorted(set(weight_map.values())):
        tensors.update(read_tensors(folder / shard, advice=advice))
    return tensors


# ---------------------------------------------------------------------------------------------
# Checking tensors against a model, then loading them
# ---------------------------------------------------------------------------------------------
def check_tensors(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor], source, *,
                  advice: str = SAME_MODEL) -> None:
    """Return if `got` has exactly the names and shapes of `expected`; otherwise raise one
    UserError naming every missing tensor, every unexpected one and every one of another shape.

    Expected {"w": (2, 3)} and got {"w": (3, 2), "b": (2,)} from a folder f read: "the tensors
    in f do not match the model: unexpected b; w has shape (3, 2) where the model has (2, 3);
    the weights and config.json must come from the same model".
    """
    problems = []
    missing = [name for name in expected if name not in got]
    unexpected = [name for name in got if name not in expected]
    if missing:
        problems.append("missing " + ", ".join(missing))
    if unexpected:
        problems.append("unexpected " + ", ".join(unexpected))
    problems += [f"{name} has shape {tuple(got[name].shape)} where the model has "
                 f"{tuple(tensor.shape)}" for name, tensor in expected.items()
                 if name in got and got[name].shape != tensor.shape]
    if problems:
        raise UserError(f"the tensors in {source} do not match the model: {'; '.join(problems)}; "
                        f"{advice}")


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source, *,
               advice: str = SAME_MODEL, assign: bool = False) -> None:
    """Check `state` against `model` (`check_tensors`), then load it, each tensor cast to the
    dtype of the model's. assign: the tensors become the parameters instead of being copied
    into them (for a model built on the meta device, which has shapes but no memory)."""
    expected = model.state_dict()
    check_tensors(expected, state, source, advice=advice)
    model.load_state_dict({name: t.to(expected[name].dtype) for name, t in state.items()},
                          assign=assign)


# ---------------------------------------------------------------------------------------------
# Writing atomically
# ---------------------------------------------------------------------------------------------
def fsync(path: Path) -> None:
    """Ask the OS to put `path` (a file, or a folder's list of names) on disk now."""
    flags = os.O_RDONLY
    if path.is_dir():
        flags |= getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # some systems (Windows) cannot open a folder; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path next to `path` to write to; when the block ends without an error, it is
    flushed to disk and renamed to `path`. On an error it is deleted and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    temp = Path(temp_name)
    try:
        yield temp
        temp.chmod(FILE_MODE)  # after writing: a writer may have made the file anew, umask-masked
        fsync(temp)
        os.replace(temp, path)
        fsync(path.parent)
    finally:
        temp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as temp:
        temp.write_bytes(data)


def write_json(path: str | os.PathLike, obj) -> None:
    """`obj` as indented JSON, one key per line, with a final newline."""
    write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode("utf-8"))


def write_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor],
                  metadata: dict[str, str] | None = None) -> None:
    """A safetensors file of `tensors`, copied to the CPU. Two names must not share memory (tied
    weights): store one of them."""
    on_cpu = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    with atomic_path(path) as temp:
        save_file(on_cpu, temp, metadata=metadata)


# ---------------------------------------------------------------------------------------------
# The models that exist only here: config.json with a model_type, and model.safetensors
# ---------------------------------------------------------------------------------------------
def save_model(folder: str | os.PathLike, model: nn.Module, model_type: str, config: dict
               ) -> None:
    """Write `model`'s tensors, then config.json = {"model_type": model_type, **config}: a
    folder that has a config.json is complete."""
    folder = Path(folder)
    write_tensors(folder / WEIGHTS, model.state_dict(), metadata={"format": "pt"})
    write_json(folder / CONFIG, {"model_type": model_type, **config})


def load_model(model_class, config_class, folder: str | os.PathLike, model_type: str):
    """The model in a folder `save_model` wrote, in eval mode: config_class(**config.json
    without its model_type) builds model_class, then the tensors are checked and loaded."""
    folder = Path(folder).expanduser()
    settings = read_config(folder)
    found = settings.pop("model_type", None)
    if found != model_type:
        raise UserError(f"{folder / CONFIG} is not a {model_type} model (its model_type is "
                        f"{found!r}): give a folder that a {model_type} model's save_pretrained "
                        "wrote")
    unknown = sorted(set(settings) - {field.name for field in fields(config_class)})
    if unknown:
        raise UserError(f"{folder / CONFIG} has settings a {model_type} model does not know, "
                        f"{unknown}: it was written by another version of fromscratch")
    try:
        model = model_class(config_class(**settings))
    except TypeError as err:  # a setting that has no default is missing
        raise UserError(f"{folder / CONFIG} is not a whole {model_type} config ({err}): save "
                        "the model again") from err
    load_state(model, read_tensors(folder / WEIGHTS), folder)
    return model.eval()


def load_diffusers(model_class, config_from_diffusers, folder: str | os.PathLike, what: str):
    """The model of a diffusers folder (config.json + diffusion_pytorch_model.safetensors), in
    eval mode: `config_from_diffusers` turns diffusers' config into ours, which builds
    model_class; `what` (e.g. "UNet") names the folder in errors."""
    folder = Path(folder)
    advice = f"give a diffusers {what} folder (as save_diffusers writes)"
    model = model_class(config_from_diffusers(read_config(folder, advice=advice)))
    load_state(model, read_tensors(folder / DIFFUSERS_WEIGHTS, advice=advice), folder)
    return model.eval()
