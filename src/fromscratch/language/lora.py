"""LoRA: low-rank adapters for any `nn.Linear` of a model (GPT, BERT, a UNet...).

Fine-tuning changes a pretrained weight W (out, in) into W + ΔW. LoRA (Hu et al., 2021) bets
that the useful ΔW has low rank r ≪ min(in, out) and learns it as a product of two thin matrices:

    ΔW = (α / r) · B A               A (r, in), B (out, r); W stays frozen
    h  = W x + b + (α / r) · B A dropout(x)

Only A and B train: r · (in + out) numbers instead of in · out. For a 384 x 384 projection at
r = 8 that is 6,144 instead of 147,456 (4%).

- B starts at zero, so ΔW = 0 and the wrapped model is exactly the pretrained one at step 0;
  A starts random (uniform in ±1/√in, nn.Linear's own init) so that B's gradient, which is
  (∂L/∂h) (A x)ᵀ, is not zero and training can start.
- α / r ("scaling") keeps the size of the update about the same when you try another r, so a
  learning rate tuned at one rank carries over to another.
- After training, `merge_lora` adds ΔW into W: the model runs at the speed of the original, with
  the same outputs. `unmerge_lora` subtracts it again.

The wrapped layer keeps the original's parameter names (`...query.weight`, `...query.bias`) and
adds `...query.lora_A` and `...query.lora_B`, so a base model's weights still load by name.
Adapters are saved alone, in the file layout of Hugging Face's `peft` library
(`adapter_config.json` + `adapter_model.safetensors`): a few hundred kilobytes instead of the
whole model, loadable into our model (`load_adapters`) or into `peft`.

    names = add_lora(model, targets=["query", "value"], rank=8, alpha=16)
    trainable, total = mark_only_lora_trainable(model, also=["classifier"])
    ... train ...
    save_adapters(model, "adapters/")
"""

import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fromscratch.errors import UserError
from fromscratch.folders import check_tensors, read_config, read_tensors, write_json, write_tensors

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."  # how peft names the wrapped model's modules in its files


class LoRALinear(nn.Module):
    """`base` (an nn.Linear, frozen or not) plus a trainable low-rank update (α / r) B A.

    Takes over base's `weight` and `bias` tensors (the same Parameter objects), so the wrapped
    layer has the same parameter names and shares memory with the original.
    """

    def __init__(
        self,
        base: nn.Linear,
        rank: int = 8,
        alpha: float = 16.0,
        dropout: float = 0.0,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if rank < 1:
            raise UserError(f"LoRA rank must be a positive integer, got {rank}")
        if not 0.0 <= dropout < 1.0:
            raise UserError(f"LoRA dropout must be in [0, 1), got {dropout}")
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight  # W (out, in)
        self.bias = base.bias  # b (out,) or None
        self.rank, self.alpha = rank, alpha
        self.scaling = alpha / rank
        factory = dict(device=base.weight.device, dtype=base.weight.dtype)
        # A ~ U(-1/√in, 1/√in): nn.Linear's default init (kaiming_uniform with a = √5)
        bound = 1.0 / math.sqrt(self.in_features)
        A = (torch.rand(rank, self.in_features, generator=generator) * 2 - 1) * bound
        self.lora_A = nn.Parameter(A.to(**factory))  # (r, in)
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, rank, **factory))  # (out, r)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False  # True while ΔW is added into self.weight

    def delta_weight(self) -> torch.Tensor:
        """ΔW = (α / r) B A, shape (out, in): what merging adds to W."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (..., in)
        h = F.linear(x, self.weight, self.bias)  # W x + b: (..., out)
        if self.merged:  # W already holds W + ΔW
            return h
        # B (A x) costs r (in + out) per row; forming ΔW first would cost in · out
        return h + self.scaling * (self.dropout(x) @ self.lora_A.T @ self.lora_B.T)

    @torch.no_grad()
    def merge(self) -> None:
        """W ← W + ΔW: the same outputs (up to float rounding), without the extra matmuls."""
        if not self.merged:
            self.weight += self.delta_weight()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """W ← W − ΔW: back to the frozen weight and a separate low-rank path."""
        if self.merged:
            self.weight -= self.delta_weight()
            self.merged = False

    def to_linear(self) -> nn.Linear:
        """A plain nn.Linear computing W x + b with ΔW merged in."""
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                           device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(self.weight if self.merged else self.weight + self.delta_weight())
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"rank={self.rank}, alpha={self.alpha}, merged={self.merged}")


# ---------------------------------------------------------------------------------------------
# Wrapping a model's layers by name
# ---------------------------------------------------------------------------------------------
def _matches(name: str, targets: list[str] | str) -> bool:
    """peft's rule: a list matches a module whose name is, or ends with ".", an entry; a string
    is a regular expression that must match the whole dotted name."""
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """Every LoRA-wrapped layer of `model`, by its dotted name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def add_lora(
    model: nn.Module,
    targets: list[str] | str,
    rank: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
    generator: torch.Generator | None = None,
) -> list[str]:
    """Wrap each nn.Linear of `model` whose name matches `targets` in a LoRALinear, in place.

    targets: module names or name endings (["query", "value"] matches
        "encoder.layer.0.attention.self.query"), or one regular expression for the whole name
        (r".*\\.attn\\.c_(attn|proj)").
    Returns the wrapped names. The model's outputs do not change (B = 0).
    """
    if isinstance(targets, str):
        try:
            re.compile(targets)
        except re.error as err:
            raise UserError(f"LoRA targets {targets!r} is not a regular expression: {err}") from err
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    chosen = [name for name in linears if _matches(name, targets)]
    already = [name for name in lora_layers(model) if _matches(name, targets)]
    if already:
        raise UserError(f"{already[0]} already has a LoRA adapter; add LoRA once per layer")
    if not chosen:
        examples = ", ".join(sorted({n.rsplit(".", 1)[-1] for n in linears})[:8])
        raise UserError(
            f"no nn.Linear of the model matches LoRA targets {targets!r}; "
            f"its linear layers are named: {examples or 'none'}"
        )
    for name in chosen:
        _set_submodule(model, name, LoRALinear(model.get_submodule(name), rank, alpha, dropout,
                                               generator))
    return chosen


def remove_lora(model: nn.Module) -> nn.Module:
    """Replace every LoRALinear by a plain nn.Linear with ΔW merged in; returns `model`."""
    for name, layer in lora_layers(model).items():
        _set_submodule(model, name, layer.to_linear())
    return model


def merge_lora(model: nn.Module) -> None:
    for layer in lora_layers(model).values():
        layer.merge()


def unmerge_lora(model: nn.Module) -> None:
    for layer in lora_layers(model).values():
        layer.unmerge()


# ---------------------------------------------------------------------------------------------
# What trains
# ---------------------------------------------------------------------------------------------
def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) numbers of parameters; a tied tensor counts once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def mark_only_lora_trainable(model: nn.Module, also: list[str] = ()) -> tuple[int, int]:
    """Freeze everything except the LoRA matrices and the parameters whose names start with
    one of `also` (e.g. a new classification head, which has no pretrained weights to keep).

    Returns count_parameters(model): (trainable, total).
    """
    for name, p in model.named_parameters():
        is_lora = name.endswith((".lora_A", ".lora_B"))
        p.requires_grad_(is_lora or any(name.startswith(prefix) for prefix in also))
    return count_parameters(model)


# ---------------------------------------------------------------------------------------------
# Saving and loading adapters alone (peft's file layout)
# ---------------------------------------------------------------------------------------------
def adapter_config(model: nn.Module) -> dict:
    """The adapter_config.json dictionary of `model`'s LoRA layers (peft's keys)."""
    layers = lora_layers(model)
    if not layers:
        raise UserError("the model has no LoRA layers: call add_lora first")
    settings = {(m.rank, m.alpha, _dropout_p(m)) for m in layers.values()}
    if len(settings) > 1:
        raise UserError("save_adapters needs one rank, alpha and dropout for all LoRA layers")
    rank, alpha, dropout = settings.pop()
    return {
        "peft_type": "LORA",
        "r": rank,
        "lora_alpha": alpha,
        "lora_dropout": dropout,
        "target_modules": sorted(layers),  # full names: each matches exactly one module
        "bias": "none",
        "fan_in_fan_out": False,
        "task_type": None,
        "inference_mode": True,
    }


def _dropout_p(layer: LoRALinear) -> float:
    return layer.dropout.p if isinstance(layer.dropout, nn.Dropout) else 0.0


def save_adapters(model: nn.Module, folder: str | Path) -> Path:
    """Write the LoRA matrices (adapter_model.safetensors) and adapter_config.json, atomically.

    Tensor names are peft's: "base_model.model.<module>.lora_A.weight". A merged layer saves
    the same A and B as an unmerged one.
    """
    folder = Path(folder)
    config = adapter_config(model)
    tensors = {}
    for name, layer in lora_layers(model).items():
        tensors[f"{PEFT_PREFIX}{name}.lora_A.weight"] = layer.lora_A
        tensors[f"{PEFT_PREFIX}{name}.lora_B.weight"] = layer.lora_B
    write_tensors(folder / ADAPTER_WEIGHTS, tensors, metadata={"format": "pt"})
    write_json(folder / ADAPTER_CONFIG, config)
    return folder


def load_adapters(model: nn.Module, folder: str | Path) -> list[str]:
    """Add (or refill) the LoRA layers saved in `folder` to `model`; returns their names.

    The model must be the base model the adapters were trained on (same layer names and
    shapes): a mismatch is reported in one line.
    """
    folder = Path(folder)
    advice = "give a folder save_adapters (or peft) wrote"
    config = read_config(folder, ADAPTER_CONFIG, advice=advice)
    tensors = read_tensors(folder / ADAPTER_WEIGHTS, advice=advice)
    if config.get("peft_type") != "LORA":
        raise UserError(f"{folder / ADAPTER_CONFIG} is not a LoRA adapter (peft_type "
                        f"{config.get('peft_type')!r})")

    targets = config["target_modules"]
    present = lora_layers(model)
    missing = [n for n in (targets if isinstance(targets, list) else []) if n not in present]
    if not present or missing:
        add_lora(model, missing if present else targets, rank=config["r"],
                 alpha=config["lora_alpha"], dropout=config.get("lora_dropout", 0.0))
    layers = lora_layers(model)
    expected = {}
    for name, layer in layers.items():
        expected[f"{PEFT_PREFIX}{name}.lora_A.weight"] = layer.lora_A
        expected[f"{PEFT_PREFIX}{name}.lora_B.weight"] = layer.lora_B
    check_tensors(expected, tensors, folder,
                  advice="load the adapters onto the base model they were trained on")
    merged = [layer for layer in layers.values() if layer.merged]
    for layer in merged:  # take the old ΔW out of W before replacing A and B
        layer.unmerge()
    with torch.no_grad():
        for key, param in expected.items():
            param.copy_(tensors[key])
    for layer in merged:
        layer.merge()
    return sorted(layers)
