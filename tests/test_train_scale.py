"""Trainer options for scale: autocast precision, gradient scaling, activation checkpointing,
and torch.compile."""

import functools
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from test_loop import TinyLM

from fromscratch.data.text import LMBatches
from fromscratch.errors import UserError
from fromscratch.language.gpt import GPT, GPTConfig
from fromscratch.training.loop import TrainConfig, autocast_dtype, train

VOCAB = 32
IDS = (torch.arange(3000) * 7 + torch.randint(0, 3, (3000,),
                                              generator=torch.Generator().manual_seed(0))) % VOCAB
DATA = LMBatches(IDS, block_size=16, batch_size=8, seed=1)
# bfloat16 keeps 8 significant bits: relative rounding 2⁻⁸ ≈ 0.4% per operation. Rounding errors
# of a mean over 128 positions mostly cancel; we allow 0.01 on a loss of ~3.4 (0.3%) over 6 steps.
BF16_LOSS_TOLERANCE = 0.01


def tiny_gpt(dropout=0.1):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=VOCAB, block_size=16, n_layer=2, n_head=2, n_embd=32,
                         dropout=dropout))


def settings(**changes):
    return TrainConfig(**{**dict(max_steps=6, lr=3e-3, warmup_steps=2, log_interval=1,
                                 progress=False), **changes})


@functools.cache
def float32_losses() -> tuple[float, ...]:
    return tuple(losses(train(tiny_gpt(), DATA, settings(dtype="float32"))))


def losses(result):
    return [r["loss"] for r in result.history if "loss" in r]


def test_activation_checkpointing_recomputes_blocks_and_gives_equal_gradients():
    x, y = DATA(0)
    grads, calls = [], []
    for checkpointed in (False, True):
        model = tiny_gpt(dropout=0.1)
        model.grad_checkpointing = checkpointed
        mlp, mlp_calls = model.transformer.h[0].mlp, []
        mlp.forward = lambda h, forward=mlp.forward, seen=mlp_calls: seen.append(1) or forward(h)
        torch.manual_seed(5)  # the same dropout masks
        model.loss((x, y)).backward()
        grads.append({name: p.grad for name, p in model.named_parameters()})
        calls.append(len(mlp_calls))
    assert calls == [1, 2]  # with checkpointing the block runs again in backward
    for name, g in grads[0].items():
        assert torch.allclose(g, grads[1][name], rtol=0, atol=1e-7), name


def test_the_trainer_turns_checkpointing_on_and_losses_stay_equal():
    model = tiny_gpt()
    checkpointed = train(model, DATA, settings(grad_checkpointing=True))
    assert model.grad_checkpointing
    assert losses(checkpointed) == pytest.approx(float32_losses(), abs=1e-6)
    with pytest.raises(UserError, match="no activation checkpointing"):
        train(TinyLM(), lambda step, micro: None, settings(grad_checkpointing=True))


def test_bfloat16_autocast_on_cpu_stays_within_tolerance_of_float32():
    dtypes = []
    model = tiny_gpt()
    model.lm_head.register_forward_hook(lambda module, inputs, out: dtypes.append(out.dtype))
    low = train(model, DATA, settings(dtype="bfloat16"))
    assert set(dtypes) == {torch.bfloat16}  # the matmuls ran in bfloat16
    assert model.lm_head.weight.dtype == torch.float32  # the weights stay float32
    differences = [abs(a - b) for a, b in zip(losses(low), float32_losses(), strict=True)]
    assert 0 < max(differences) <= BF16_LOSS_TOLERANCE
    assert autocast_dtype(TrainConfig(), torch.device("cpu")) == torch.float32  # CPU default


def test_float16_with_a_gradient_scaler_resumes_exactly(tmp_path):
    cfg = settings(dtype="float16", checkpoint_interval=3)
    full = train(tiny_gpt(), DATA, cfg, out_dir=tmp_path / "full")
    assert max(abs(a - b) for a, b in zip(losses(full), float32_losses(), strict=True)) <= 0.01
    saved = json.loads((tmp_path / "full/checkpoints/step-00000003/state.json").read_text())
    scaler = saved["extra"]["grad_scaler"]
    assert scaler["scale"] > 0 and scaler["growth_interval"] == 2000
    (tmp_path / "split/checkpoints").mkdir(parents=True)
    shutil.copytree(tmp_path / "full/checkpoints/step-00000003",
                    tmp_path / "split/checkpoints/step-00000003")
    resumed = train(GPT(tiny_gpt().config), DATA, cfg, out_dir=tmp_path / "split", resume=True)
    assert losses(resumed) == losses(full)[3:]


def test_a_gradient_scaler_skips_overflowing_steps_and_backs_off():
    """With an absurd initial scale the first float16 backward overflows: the update is skipped."""
    model = tiny_gpt()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    with torch.autocast("cpu", dtype=torch.float16):
        loss = model.loss(DATA(0))
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # skipped
    assert scaler.get_scale() == 2.0**39  # halved


def test_bad_dtype_is_a_user_error():
    with pytest.raises(UserError, match="dtype must be"):
        TrainConfig(dtype="float8")


@pytest.mark.slow
def test_compiled_training_matches_eager():
    eager = train(tiny_gpt(dropout=0.0), DATA, settings(max_steps=3))
    compiled = train(tiny_gpt(dropout=0.0), DATA, settings(max_steps=3, compile=True))
    assert losses(compiled) == pytest.approx(losses(eager), abs=1e-5)


def test_the_cli_passes_the_scale_options_to_the_trainer(tmp_path):
    from pydoc_data.topics import topics

    from fromscratch.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(topics[k] for k in sorted(topics))[:12_000], encoding="utf-8")
    out = tmp_path / "run"
    code = main(["gpt", "train", "--data", str(corpus), "--out", str(out), "--max-steps", "2",
                 "--batch-size", "4", "--grad-accum", "2", "--dtype", "bfloat16", "--ema", "0.9",
                 "--grad-checkpointing"])
    assert code == 0
    folder = out / "checkpoints" / "step-00000002"
    state = json.loads((folder / "state.json").read_text())
    assert {k: state["train_config"][k] for k in
            ["dtype", "ema_decay", "grad_checkpointing", "grad_accum", "max_steps"]} == {
        "dtype": "bfloat16", "ema_decay": 0.9, "grad_checkpointing": True, "grad_accum": 2,
        "max_steps": 2}
    saved_model = load_file(out / "model.safetensors")  # the folder's model is the EMA
    ema = load_file(folder / "ema.safetensors")
    assert torch.equal(saved_model["transformer.h.0.mlp.c_fc.weight"].T,  # GPT-2's (in, out) layout
                       ema["params.transformer.h.0.mlp.c_fc.weight"])
