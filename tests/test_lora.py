"""LoRA: the layer by hand, zero init, merge = unmerged, what trains, adapters on disk; proven
equal to Hugging Face's peft on our GPT and on HF GPT-2 (adapters saved by us, loaded by peft)."""

import copy
import json

import pytest
import torch
from torch import nn

from fromscratch.errors import UserError
from fromscratch.language.gpt import GPT, GPTConfig
from fromscratch.language.lora import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    LoRALinear,
    add_lora,
    count_parameters,
    load_adapters,
    lora_layers,
    mark_only_lora_trainable,
    merge_lora,
    remove_lora,
    save_adapters,
    unmerge_lora,
)
from fromscratch.training.loop import TrainConfig, train

TINY = dict(vocab_size=97, block_size=16, n_layer=2, n_head=4, n_embd=32)


def tiny_gpt(seed=0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(**TINY)).eval()


def ids(batch=3, length=12, seed=1):
    return torch.randint(0, TINY["vocab_size"], (batch, length),
                         generator=torch.Generator().manual_seed(seed))


def randomize_B(model, seed=2, scale=0.1):
    """Trained-looking adapters: B is zero after add_lora, so give it values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora_layers(model).values():
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=gen) * scale)


# ---------------------------------------------------------------------------------------------
# one layer
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
def test_lora_linear_equals_the_formula_written_out(bias):
    torch.manual_seed(0)
    base = nn.Linear(20, 12, bias=bias)
    W = base.weight.detach().clone()
    b = base.bias.detach().clone() if bias else torch.zeros(12)
    layer = LoRALinear(base, rank=4, alpha=8.0)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(5, 7, 20)
    A, B = layer.lora_A.detach(), layer.lora_B.detach()
    # h = x Wᵀ + b + (α/r) x Aᵀ Bᵀ, elementwise sums
    expected = torch.einsum("...i,oi->...o", x, W) + b
    expected += (8.0 / 4) * torch.einsum("...i,ri,or->...o", x, A, B)
    assert torch.allclose(layer(x), expected, atol=1e-5)
    assert layer.weight is base.weight  # the frozen weight is shared, not copied


def test_A_starts_uniform_within_nn_linear_bound_and_B_at_zero():
    layer = LoRALinear(nn.Linear(400, 30), rank=16, generator=torch.Generator().manual_seed(0))
    bound = 1 / 400**0.5
    A = layer.lora_A.detach()
    assert A.abs().max() <= bound and A.abs().max() > 0.95 * bound
    assert abs(A.std().item() - bound / 3**0.5) < 0.05 * bound  # std of U(-c, c) is c/√3
    assert torch.count_nonzero(layer.lora_B) == 0


def test_same_generator_seed_gives_same_adapters():
    a, b = tiny_gpt(), tiny_gpt()
    add_lora(a, ["c_attn"], generator=torch.Generator().manual_seed(5))
    add_lora(b, ["c_attn"], generator=torch.Generator().manual_seed(5))
    for la, lb in zip(lora_layers(a).values(), lora_layers(b).values(), strict=True):
        assert torch.equal(la.lora_A, lb.lora_A)


def test_bad_rank_and_dropout_are_one_line_errors():
    with pytest.raises(UserError, match="rank"):
        LoRALinear(nn.Linear(4, 4), rank=0)
    with pytest.raises(UserError, match="dropout"):
        LoRALinear(nn.Linear(4, 4), dropout=1.0)


# ---------------------------------------------------------------------------------------------
# wrapping a model by name
# ---------------------------------------------------------------------------------------------
def test_zero_init_leaves_the_model_exactly_unchanged():
    model = tiny_gpt()
    x = ids()
    with torch.no_grad():
        before = model(x)
        add_lora(model, ["c_attn", "c_proj", "c_fc"], rank=4)
        after = model(x)
    assert torch.equal(before, after)


def test_targets_by_name_ending_and_by_regex():
    model = tiny_gpt()
    names = add_lora(model, ["c_attn"])
    assert names == ["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"]
    model = tiny_gpt()
    names = add_lora(model, r"transformer\.h\.\d+\.(attn|mlp)\.c_proj")
    assert names == [f"transformer.h.{i}.{part}.c_proj" for i in range(2) for part in
                     ("attn", "mlp")]
    assert sorted(lora_layers(model)) == sorted(names)
    # parameter names of the base weights are unchanged: the base state dict still loads
    keys = set(model.state_dict())
    assert "transformer.h.0.attn.c_proj.weight" in keys
    assert "transformer.h.0.attn.c_proj.lora_A" in keys


def test_wrapping_errors():
    model = tiny_gpt()
    with pytest.raises(UserError, match="no nn.Linear .* matches"):
        add_lora(model, ["query"])
    with pytest.raises(UserError, match="regular expression"):
        add_lora(model, "c_attn(")
    add_lora(model, ["c_attn"])
    with pytest.raises(UserError, match="already has a LoRA adapter"):
        add_lora(model, ["c_attn"])


def test_merge_equals_unmerged_forward_and_unmerge_restores_weights():
    model = tiny_gpt()
    original = {k: v.clone() for k, v in model.state_dict().items()}
    add_lora(model, ["c_attn", "c_fc"], rank=4, alpha=8)
    randomize_B(model)
    x = ids()
    with torch.no_grad():
        unmerged = model(x)
        merge_lora(model)
        merged = model(x)
        assert all(layer.merged for layer in lora_layers(model).values())
        merge_lora(model)  # a second merge changes nothing
        assert (model(x) - merged).abs().max() == 0
        unmerge_lora(model)
        again = model(x)
    assert (merged - unmerged).abs().max() <= 1e-6
    assert (again - unmerged).abs().max() <= 1e-6
    for key, value in model.state_dict().items():
        if "lora_" not in key:
            assert (value - original[key]).abs().max() <= 1e-6, key
    assert not torch.equal(merged, original_logits(original, x))  # the adapters do something


def original_logits(state, x):
    model = tiny_gpt()
    model.load_state_dict(state)
    with torch.no_grad():
        return model(x)


def test_remove_lora_gives_plain_linears_with_the_same_outputs():
    model = tiny_gpt()
    add_lora(model, ["c_attn"], rank=2)
    randomize_B(model)
    x = ids()
    with torch.no_grad():
        expected = model(x)
        remove_lora(model)
        got = model(x)
    assert lora_layers(model) == {}
    assert type(model.transformer.h[0].attn.c_attn) is nn.Linear
    assert (got - expected).abs().max() <= 1e-6


# ---------------------------------------------------------------------------------------------
# what trains
# ---------------------------------------------------------------------------------------------
def test_trainable_counts_are_r_times_in_plus_out():
    model = tiny_gpt()
    total_before = count_parameters(model)[1]
    add_lora(model, ["c_attn"], rank=4)
    trainable, total = mark_only_lora_trainable(model)
    C = TINY["n_embd"]
    per_layer = 4 * (C + 3 * C)  # A (r, C) + B (3C, r)
    assert trainable == TINY["n_layer"] * per_layer
    assert total == total_before + trainable
    trainable, _ = mark_only_lora_trainable(model, also=["transformer.ln_f"])
    assert trainable == TINY["n_layer"] * per_layer + 2 * C  # LayerNorm gain and bias


def test_training_with_the_shared_loop_changes_only_the_adapters(tmp_path):
    model = tiny_gpt()
    frozen = {k: v.clone() for k, v in model.state_dict().items()}
    add_lora(model, ["c_attn", "c_fc"], rank=4, alpha=8)
    mark_only_lora_trainable(model)
    data = ids(8, 16, seed=3)

    def batches(step, micro):
        return data[:, :-1], data[:, 1:]

    with torch.no_grad():
        loss_before = model.loss(batches(0, 0)).item()
    cfg = TrainConfig(max_steps=30, lr=1e-2, warmup_steps=2, progress=False, log_interval=5)
    result = train(model, batches, cfg)
    model.eval()
    with torch.no_grad():
        loss_after = model.loss(batches(0, 0)).item()
    assert loss_after < loss_before - 0.1
    for key, value in model.state_dict().items():
        if "lora_" not in key:
            assert torch.equal(value, frozen[key]), f"{key} changed"
    assert result.step == 30
    assert any(torch.count_nonzero(m.lora_B) > 0 for m in lora_layers(model).values())


# ---------------------------------------------------------------------------------------------
# adapters on disk
# ---------------------------------------------------------------------------------------------
def test_save_and_load_adapters_alone(tmp_path):
    model = tiny_gpt()
    add_lora(model, ["c_attn", "c_fc"], rank=4, alpha=16, dropout=0.1)
    randomize_B(model)
    model.eval()
    x = ids()
    with torch.no_grad():
        expected = model(x)
    save_adapters(model, tmp_path / "ad")
    assert sorted(p.name for p in (tmp_path / "ad").iterdir()) == [ADAPTER_CONFIG, ADAPTER_WEIGHTS]
    config = json.loads((tmp_path / "ad" / ADAPTER_CONFIG).read_text())
    assert (config["peft_type"], config["r"], config["lora_alpha"], config["lora_dropout"]) == (
        "LORA", 4, 16, 0.1)

    fresh = tiny_gpt()  # the same base weights
    names = load_adapters(fresh, tmp_path / "ad")
    assert names == sorted(lora_layers(model))
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh(x), expected)


def test_loading_adapters_into_a_merged_model_replaces_the_old_delta(tmp_path):
    trained = tiny_gpt()
    add_lora(trained, ["c_attn"], rank=4)
    randomize_B(trained, seed=7)
    save_adapters(trained, tmp_path)
    other = tiny_gpt()
    add_lora(other, ["c_attn"], rank=4)
    randomize_B(other, seed=8)
    merge_lora(other)
    load_adapters(other, tmp_path)
    x = ids()
    with torch.no_grad():
        assert (other(x) - trained(x)).abs().max() <= 1e-6


def test_adapter_errors(tmp_path):
    with pytest.raises(UserError, match="no LoRA layers"):
        save_adapters(tiny_gpt(), tmp_path)
    with pytest.raises(UserError, match="has no adapter_config.json"):
        load_adapters(tiny_gpt(), tmp_path)
    model = tiny_gpt()
    add_lora(model, ["c_attn"], rank=4)
    save_adapters(model, tmp_path)
    wider = GPT(GPTConfig(**{**TINY, "n_embd": 48}))
    with pytest.raises(UserError, match=r"lora_A.weight has shape \(4, 32\) where the model has "
                                        r"\(4, 48\).*onto the base model they were trained on"):
        load_adapters(wider, tmp_path)
    (tmp_path / ADAPTER_WEIGHTS).write_bytes(b"not safetensors")
    with pytest.raises(UserError, match="cannot read"):
        load_adapters(tiny_gpt(), tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


# ---------------------------------------------------------------------------------------------
# proven equal to peft
# ---------------------------------------------------------------------------------------------
peft = pytest.importorskip("peft")


def test_our_lora_equals_peft_on_our_gpt():
    model = tiny_gpt()
    reference = peft.get_peft_model(copy.deepcopy(model), peft.LoraConfig(
        r=4, lora_alpha=12, target_modules=["c_attn", "c_fc"], lora_dropout=0.0))
    add_lora(model, ["c_attn", "c_fc"], rank=4, alpha=12)
    randomize_B(model)
    with torch.no_grad():
        for name, layer in lora_layers(model).items():
            theirs = reference.base_model.model.get_submodule(name)
            theirs.lora_A["default"].weight.copy_(layer.lora_A)
            theirs.lora_B["default"].weight.copy_(layer.lora_B)
    x = ids()
    reference.eval()
    with torch.no_grad():
        assert (model(x) - reference(x)).abs().max() <= 1e-5
    assert mark_only_lora_trainable(model)[0] == reference.get_nb_trainable_parameters()[0]


def test_adapters_we_save_load_into_peft_on_hf_gpt2(tmp_path):
    transformers = pytest.importorskip("transformers")
    model = tiny_gpt()
    model.save_pretrained(tmp_path / "base")
    add_lora(model, ["c_attn", "c_proj"], rank=4, alpha=8)
    randomize_B(model)
    save_adapters(model, tmp_path / "adapters")

    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "base")
    with pytest.warns(UserWarning, match="fan_in_fan_out"):  # HF GPT-2's Conv1D is transposed
        hf = peft.PeftModel.from_pretrained(hf, tmp_path / "adapters").eval()
    x = ids()
    with torch.no_grad():
        assert (hf(x).logits - model(x)).abs().max() <= 1e-5


def test_lora_on_our_bert_equals_peft_on_hf_bert(tmp_path):
    transformers = pytest.importorskip("transformers")
    from fromscratch.language.bert import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=16)
    BertModel(config).save_pretrained(tmp_path / "base")
    ours = BertModel.from_pretrained(tmp_path / "base")
    names = add_lora(ours, ["query", "value"], rank=4, alpha=8)
    assert len(names) == 4  # two layers, query and value
    randomize_B(ours)
    save_adapters(ours, tmp_path / "adapters")

    hf = transformers.BertModel.from_pretrained(tmp_path / "base", add_pooling_layer=False)
    hf = peft.PeftModel.from_pretrained(hf, tmp_path / "adapters").eval()
    ids = torch.randint(0, 50, (3, 10), generator=torch.Generator().manual_seed(4))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    with torch.no_grad():
        theirs = hf(input_ids=ids, attention_mask=mask).last_hidden_state
        assert (ours.eval()(ids, mask) - theirs).abs().max() <= 1e-5
        merge_lora(ours)
        assert (ours(ids, mask) - theirs).abs().max() <= 1e-5
