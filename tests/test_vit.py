"""ViT: patchify = a strided convolution; the encoder block = GPT's block without its mask; the
whole model = transformers' ViT on the same weights; attention maps; training; checkpoints."""

import math

import pytest
import torch
import torch.nn.functional as F

from fromscratch.beyond.vit import (
    CNNConfig,
    Distilled,
    EncoderBlock,
    SmallCNN,
    ViT,
    ViTConfig,
    accuracy,
    attention_rollout,
    cls_attention_map,
    distillation_loss,
    patchify,
)
from fromscratch.errors import UserError
from fromscratch.language.gpt import Block, GPTConfig

TINY = dict(n_layer=2, n_head=2, n_embd=32)


def test_patchify_cuts_patches_in_raster_order():
    x = torch.randn(2, 3, 8, 8)
    patches = patchify(x, 4)  # (2, 4, 48)
    assert patches.shape == (2, 4, 3 * 4 * 4)
    for n, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        expected = x[:, :, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4].reshape(2, -1)
        assert torch.equal(patches[:, n], expected)


def test_patchify_then_linear_is_a_conv_with_kernel_equal_to_stride():
    x = torch.randn(3, 2, 12, 12)
    conv = torch.nn.Conv2d(2, 16, kernel_size=3, stride=3)
    by_conv = conv(x).flatten(2).transpose(1, 2)  # (B, N, C)
    by_linear = patchify(x, 3) @ conv.weight.flatten(1).T + conv.bias  # W_E = the conv kernel
    assert torch.allclose(by_conv, by_linear, atol=1e-5)


@pytest.mark.parametrize("bias", [True, False])
def test_encoder_block_with_a_causal_mask_is_gpt_block(bias):
    config = GPTConfig(vocab_size=10, block_size=16, n_head=4, n_embd=32, bias=bias)
    torch.manual_seed(0)
    gpt_block, ours = Block(config, 0).eval(), EncoderBlock(config).eval()
    ours.load_gpt_block(gpt_block)
    x = torch.randn(2, 9, 32)
    assert torch.allclose(ours(x, causal=True), gpt_block(x), atol=1e-5)
    assert not torch.allclose(ours(x), gpt_block(x), atol=1e-3)  # without the mask: not GPT


def hf_vit_with_our_weights(ours: ViT):
    """transformers' ViTForImageClassification, same sizes, our weights copied in by name."""
    transformers = pytest.importorskip("transformers")
    c = ours.config
    hf_config = transformers.ViTConfig(
        image_size=c.image_size, patch_size=c.patch_size, num_channels=c.num_channels,
        hidden_size=c.n_embd, num_hidden_layers=c.n_layer, num_attention_heads=c.n_head,
        intermediate_size=4 * c.n_embd, hidden_act="gelu_pytorch_tanh",  # GPT-2's GELU
        layer_norm_eps=c.layer_norm_eps, num_labels=c.num_classes, qkv_bias=True,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    hf = transformers.ViTForImageClassification(hf_config).eval()
    names = {  # ours -> transformers'
        "cls_token": "vit.embeddings.cls_token",
        "pos_embed": "vit.embeddings.position_embeddings",
        "patch_embed": "vit.embeddings.patch_embeddings.projection",
        "ln_f": "vit.layernorm",
        "head": "classifier",
    }
    if "vit.layers.0.attention.q_proj.weight" in hf.state_dict():  # transformers >= 5
        prefix = "vit.layers"
        layer = {"ln_1": "layernorm_before", "attn.q_proj": "attention.q_proj",
                 "attn.k_proj": "attention.k_proj", "attn.v_proj": "attention.v_proj",
                 "attn.out_proj": "attention.o_proj", "ln_2": "layernorm_after",
                 "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
    else:
        prefix = "vit.encoder.layer"
        layer = {"ln_1": "layernorm_before", "attn.q_proj": "attention.attention.query",
                 "attn.k_proj": "attention.attention.key",
                 "attn.v_proj": "attention.attention.value",
                 "attn.out_proj": "attention.output.dense", "ln_2": "layernorm_after",
                 "mlp.c_fc": "intermediate.dense", "mlp.c_proj": "output.dense"}
    state = {}
    for key, tensor in ours.state_dict().items():
        if key.startswith("h."):
            _, i, rest = key.split(".", 2)
            module, leaf = rest.rsplit(".", 1)
            state[f"{prefix}.{i}.{layer[module]}.{leaf}"] = tensor
        else:
            module, _, leaf = key.partition(".")
            state[names[module] + ("." + leaf if leaf else "")] = tensor
    hf.load_state_dict(state)
    return hf


def test_vit_equals_transformers_vit_on_the_same_weights():
    torch.manual_seed(0)
    ours = ViT(ViTConfig(image_size=12, patch_size=4, num_classes=5, **TINY)).eval()
    hf = hf_vit_with_our_weights(ours)
    x = torch.rand(3, 1, 12, 12)
    with torch.no_grad():
        logits, attentions = ours(x, return_attentions=True)
        hf_out = hf(pixel_values=x, output_attentions=True)
    assert torch.allclose(logits, hf_out.logits, atol=1e-5)
    if hf_out.attentions:  # older transformers with the eager kernel return them
        for mine, theirs in zip(attentions, hf_out.attentions, strict=True):
            assert torch.allclose(mine, theirs, atol=1e-5)
    assert torch.allclose(ours(x), logits, atol=1e-5)  # fused path = written-out path


def test_conv_stem_halves_the_side_per_conv_and_keeps_the_token_count_formula():
    config = ViTConfig(stem_channels=[8, 16], patch_size=1, **TINY)
    assert (config.feature_side, config.num_patches) == (7, 49)
    model = ViT(config)
    assert model.embed(torch.rand(2, 1, 28, 28)).shape == (2, 50, 32)
    with pytest.raises(UserError, match="patch_size 2 does not divide the 7×7 map"):
        ViTConfig(stem_channels=[8, 16], patch_size=2)


@pytest.mark.parametrize("downsample", ["stride", "maxpool"])
@pytest.mark.parametrize("side", [28, 15, 9])
def test_the_feature_side_the_config_computes_is_what_the_stem_makes(downsample, side):
    config = ViTConfig(image_size=side, stem_channels=[4, 4], stem_downsample=downsample,
                       patch_size=1, **TINY)
    # odd sides: a stride-2 conv keeps the last row (15 -> 8 -> 4), a max-pool drops it (7 -> 3)
    expected = {("stride", 28): 7, ("stride", 15): 4, ("stride", 9): 3,
                ("maxpool", 28): 7, ("maxpool", 15): 3, ("maxpool", 9): 2}[downsample, side]
    assert config.feature_side == expected
    model = ViT(config)
    assert model.stem(torch.rand(2, 1, side, side)).shape == (2, 4, expected, expected)
    assert model(torch.rand(2, 1, side, side)).shape == (2, 10)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in model.stem) == (
        2 if downsample == "maxpool" else 0)


def test_an_unknown_stem_downsampling_is_refused():
    with pytest.raises(UserError, match="stem_downsample must be 'stride' or 'maxpool'"):
        ViTConfig(stem_channels=[4], stem_downsample="avgpool")


def test_cls_attention_map_and_rollout_by_hand():
    T = 5  # class token + a 2 × 2 grid of patches
    attention = torch.zeros(1, 2, T, T)
    attention[:, :, :, 0] = 1.0  # every token looks only at the class token...
    attention[:, :, 0, 0], attention[:, :, 0, 3] = 0.0, 1.0  # ...which looks only at patch 3
    assert torch.equal(cls_attention_map(attention)[0], torch.tensor([[0.0, 0.0], [1.0, 0.0]]))
    # one layer: Â = ½A + ½I, row 0 = ½ e_3 + ½ e_0, so all of the patches' share is patch 3
    assert torch.allclose(attention_rollout([attention])[0], torch.tensor([[0.0, 0], [1, 0]]))
    # two layers: R = Â Â; row 0 of Â² = ½ (½ e_3 + ½ e_0) + ½ Â[3] = ..., still only patch 3
    # can reach the class token, since every patch row of Â mixes only itself and the class token
    rollout = attention_rollout([attention, attention])
    assert torch.allclose(rollout.sum(dim=(1, 2)), torch.ones(1))
    assert torch.allclose(rollout[0], torch.tensor([[0.0, 0], [1, 0]]))


def test_uniform_attention_rolls_out_to_uniform_patches():
    T = 10  # 9 patches
    uniform = torch.full((2, 3, T, T), 1 / T)
    rollout = attention_rollout([uniform] * 3)
    assert torch.allclose(rollout, torch.full((2, 3, 3), 1 / 9))


def test_loss_at_initialisation_is_about_ln_of_the_number_of_classes():
    torch.manual_seed(0)
    model = ViT(ViTConfig(**TINY))
    x, y = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))
    assert abs(model.loss((x, y)).item() - math.log(10)) < 0.1


def test_vit_and_cnn_overfit_a_handful_of_images():
    torch.manual_seed(0)
    x, y = torch.rand(10, 1, 28, 28), torch.arange(10)
    for model in (ViT(ViTConfig(stem_channels=[8], patch_size=7, **TINY)),
                  SmallCNN(CNNConfig(width=8, hidden=32))):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        for _ in range(50):
            optimizer.zero_grad()
            model.loss((x, y)).backward()
            optimizer.step()
        assert model.loss((x, y)).item() < 0.05
        assert accuracy(model, x, y) == 1.0


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    for model, cls in ((ViT(ViTConfig(stem_channels=[4], stem_downsample="maxpool",
                                      patch_size=7, **TINY)), ViT),
                       (SmallCNN(CNNConfig(width=4, hidden=8)), SmallCNN)):
        folder = tmp_path / type(model).__name__
        model.save_pretrained(folder)
        assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
        loaded = cls.from_pretrained(folder)
        x = torch.rand(2, 1, 28, 28)
        assert torch.equal(loaded(x), model.eval()(x))


def test_bad_checkpoints_and_images_give_one_line_errors(tmp_path):
    model = ViT(ViTConfig(**TINY))
    with pytest.raises(UserError, match="has no config.json"):
        ViT.from_pretrained(tmp_path)
    model.save_pretrained(tmp_path / "vit")
    with pytest.raises(UserError, match="is not a cnn model"):
        SmallCNN.from_pretrained(tmp_path / "vit")
    config = (tmp_path / "vit" / "config.json").read_text().replace('"n_embd": 32', '"n_embd": 64')
    (tmp_path / "vit" / "config.json").write_text(config)
    with pytest.raises(UserError, match=r"has shape \(1, 1, 32\) where the model has \(1, 1, 64\)"):
        ViT.from_pretrained(tmp_path / "vit")
    with pytest.raises(UserError, match="must have 1 channel"):
        model.predict(torch.rand(2, 3, 28, 28))
    with pytest.raises(UserError, match=r"reads images \(1, 28, 28\); got shape \(2, 1, 32, 32\)"):
        model(torch.rand(2, 1, 32, 32))


def test_predict_takes_uint8_and_matches_argmax():
    torch.manual_seed(0)
    model = ViT(ViTConfig(**TINY)).eval()
    pixels = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    expected = model(pixels[:, None].float() / 255).argmax(-1)
    assert torch.equal(model.predict(pixels, batch_size=2), expected)
    assert F.softmax(model(pixels[:, None].float() / 255), -1).sum(-1).allclose(torch.ones(5))


def test_distillation_loss_is_cross_entropy_plus_scaled_kl():
    torch.manual_seed(0)
    student, teacher, labels = torch.randn(6, 10), torch.randn(6, 10), torch.randint(0, 10, (6,))
    ce = F.cross_entropy(student, labels)
    assert torch.allclose(distillation_loss(student, teacher, labels, alpha=0.0), ce)
    kl = F.kl_div(F.log_softmax(student / 3, -1), F.log_softmax(teacher / 3, -1),
                  log_target=True, reduction="batchmean")  # torch's KL(teacher ‖ student)
    got = distillation_loss(student, teacher, labels, alpha=0.25, temperature=3.0)
    assert torch.allclose(got, 0.75 * ce + 0.25 * 9 * kl, atol=1e-6)
    assert distillation_loss(student, student, labels, alpha=1.0).abs() < 1e-6  # q = p: KL 0


def test_label_smoothing_is_the_smoothed_target_cross_entropy():
    torch.manual_seed(0)
    model = ViT(ViTConfig(image_size=8, patch_size=4, label_smoothing=0.1, **TINY))
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 3, 9, 3])
    target = 0.9 * F.one_hot(y, 10) + 0.1 / 10
    by_hand = -(target * F.log_softmax(model(x), -1)).sum(-1).mean()
    assert torch.allclose(model.loss((x, y)), by_hand, atol=1e-6)
    with pytest.raises(UserError, match="label_smoothing"):
        ViTConfig(label_smoothing=1.0)


def test_distilled_trains_only_the_student_and_keeps_the_teacher_in_eval_mode():
    torch.manual_seed(0)
    student = ViT(ViTConfig(image_size=8, patch_size=4, **TINY))
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5),
                                  torch.nn.Linear(64, 10))
    model = Distilled(student, teacher, alpha=0.5, temperature=2.0).train()
    assert not teacher.training and student.training
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([1, 2, 3, 4])
    loss = model.loss((x, y))
    assert torch.allclose(loss, distillation_loss(student(x), teacher(x), y))  # teacher: eval
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())
    assert torch.equal(model(x), student(x))
