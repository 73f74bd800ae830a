"""The MNIST text-to-image model: its losses equal written-out computations, guidance at w = 0 and
w = 1 IS the unconditional / conditional sampler, cached prompt embeddings equal the encoder's,
a short run learns, a saved folder samples the same images, diffusers reads its UNet and VAE."""

import re

import pytest
import torch

from fromscratch.attention import padding_mask
from fromscratch.data.prompts import HELD_OUT_TEMPLATES, TRAIN_TEMPLATES, PromptSet
from fromscratch.diffusion import samplers
from fromscratch.diffusion.guidance import cfg_combine
from fromscratch.diffusion.metrics import frechet_distance
from fromscratch.errors import UserError
from fromscratch.language.bert import BertConfig, BertModel
from fromscratch.stable_diffusion.mnist import (
    ConditionalDiffusion,
    DiffusionBatches,
    PromptEmbeddings,
    check_prompts,
    record_cross_attention,
)
from fromscratch.stable_diffusion.pipeline import (
    SCHEDULE,
    StableDiffusion,
    save_pipeline,
    schedule_from_config,
)
from fromscratch.stable_diffusion.text_encoder import BertTextEncoder
from fromscratch.stable_diffusion.unet import BasicTransformerBlock, UNet, UNetConfig
from fromscratch.stable_diffusion.vae import AutoencoderKL, VAEConfig
from fromscratch.tokenizers import WordPieceTokenizer

PROMPTS = PromptSet.from_templates(TRAIN_TEMPLATES[:4])


def tiny_encoder(max_length: int = 12) -> BertTextEncoder:
    """A random 1-layer BERT over the words of every template (MiniLM is not needed here)."""
    words = set()
    for template in TRAIN_TEMPLATES + HELD_OUT_TEMPLATES:
        words |= set(re.findall(r"[a-z]+", template))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", "-", *map(str, range(10)),
             "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
             *sorted(words - {"digit", "a"}), "digit", "a"]
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=32,
                                max_position_embeddings=32)).eval()
    return BertTextEncoder(bert, WordPieceTokenizer(vocab), max_length)


def tiny_models():
    torch.manual_seed(1)
    unet = UNet(UNetConfig(in_channels=4, out_channels=4, block_out_channels=(16,),
                           attention_levels=(True,), layers_per_block=1, num_attention_heads=2,
                           cross_attention_dim=16, norm_num_groups=4, sample_size=4))
    vae = AutoencoderKL(VAEConfig(in_channels=1, out_channels=1, block_out_channels=(8, 8),
                                  layers_per_block=1, latent_channels=4, norm_num_groups=4,
                                  sample_size=8, scaling_factor=0.7))
    return unet.eval(), vae.eval()


@pytest.fixture(scope="module")
def pipeline():
    unet, vae = tiny_models()
    return StableDiffusion(unet, vae, tiny_encoder(), schedule_from_config(SCHEDULE),
                           spacing="trailing")


# ---------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------
def test_vae_loss_terms_equal_the_written_out_elbo():
    _, vae = tiny_models()
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    torch.manual_seed(5)
    mse, kl = vae.loss_terms(x)
    torch.manual_seed(5)
    loss = vae.loss(x)

    torch.manual_seed(5)
    mean, logvar = vae.encode(x)
    z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape)
    expected_mse = ((vae.decode(z) - x) ** 2).sum() / x.numel()
    # KL(N(μ, σ²) ‖ N(0, 1)) per latent dimension, from torch.distributions, summed per image
    posterior = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    prior = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    expected_kl = torch.distributions.kl_divergence(posterior, prior).sum(dim=(1, 2, 3)).mean()
    torch.testing.assert_close(mse, expected_mse)
    torch.testing.assert_close(kl, expected_kl)
    torch.testing.assert_close(loss, expected_mse + vae.kl_weight * expected_kl)


def diffusion_batch(text: PromptEmbeddings, labels: torch.Tensor):
    latents = torch.randn(len(labels), 4, 4, 4, generator=torch.Generator().manual_seed(2))
    batches = DiffusionBatches(latents, None, labels, text, batch_size=6, seed=3)
    return batches(step=0)


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_diffusion_loss_equals_the_written_out_objective(prediction):
    unet, _ = tiny_models()
    text = PromptEmbeddings.compute(tiny_encoder(), PROMPTS)
    model = ConditionalDiffusion(unet, schedule_from_config(SCHEDULE),
                                 text.null_embedding, text.null_mask,
                                 prediction=prediction, cfg_dropout=0.5)
    x0, context, mask = diffusion_batch(text, torch.arange(10))
    torch.manual_seed(7)
    loss = model.loss((x0, context, mask))

    torch.manual_seed(7)
    dropped = torch.rand(6) < 0.5
    t = torch.randint(0, 1000, (6,))
    eps = torch.randn_like(x0)
    alpha_bar = schedule_from_config(SCHEDULE).alphas_cumprod[t].view(6, 1, 1, 1)
    x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps
    target = eps if prediction == "eps" else alpha_bar.sqrt() * eps - (1 - alpha_bar).sqrt() * x0
    context = torch.where(dropped[:, None, None], text.null_embedding, context)
    mask = torch.where(dropped[:, None], text.null_mask, mask)
    expected = ((unet(x_t, t, context, mask.bool()[:, None, None, :]) - target) ** 2).mean()
    assert 0 < dropped.sum() < 6  # both kinds of example occur in this batch
    torch.testing.assert_close(loss, expected)


def test_cfg_dropout_one_trains_only_the_empty_prompt():
    unet, _ = tiny_models()
    text = PromptEmbeddings.compute(tiny_encoder(), PROMPTS)
    x0, context, mask = diffusion_batch(text, torch.arange(10))
    always = ConditionalDiffusion(unet, schedule_from_config(SCHEDULE),
                                  text.null_embedding, text.null_mask,
                                  cfg_dropout=1.0)
    never = ConditionalDiffusion(unet, schedule_from_config(SCHEDULE),
                                 text.null_embedding, text.null_mask,
                                 cfg_dropout=0.0)
    torch.manual_seed(0)
    dropped_all = always.loss((x0, context, mask))
    torch.manual_seed(0)
    null_batch = (x0, text.null_embedding.expand_as(context), text.null_mask.expand_as(mask))
    assert torch.equal(dropped_all, never.loss(null_batch))
    torch.manual_seed(0)
    assert not torch.equal(dropped_all, never.loss((x0, context, mask)))


def test_batches_pair_images_with_prompts_for_their_labels():
    text = PromptEmbeddings.compute(tiny_encoder(), PROMPTS)
    labels = torch.tensor([3, 3, 7, 7, 7, 1])
    images = torch.arange(6.0).view(6, 1, 1, 1).expand(6, 1, 2, 2)
    batches = DiffusionBatches(images, None, labels, text, batch_size=32, scale=2.0, seed=0)
    x0, context, mask = batches(step=4)
    index = (x0[:, 0, 0, 0] / 2).long()  # which image each example is
    for b in range(32):
        # the context is the cached embedding of a prompt naming that image's digit
        matches = [i for i in range(len(PROMPTS)) if torch.equal(text.embeddings[i], context[b])]
        assert matches and all(PROMPTS.digits[i] == labels[index[b]] for i in matches)
        assert torch.equal(mask[b], text.masks[matches[0]])
    again = batches(step=4)
    assert all(torch.equal(a, b) for a, b in zip((x0, context, mask), again, strict=True))


# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------
def test_cached_embeddings_equal_fresh_encoder_output():
    encoder = tiny_encoder()
    text = PromptEmbeddings.compute(encoder, PROMPTS, batch_size=7)
    assert text.embeddings.shape == (len(PROMPTS), 12, 16)
    for i in (0, 13, len(PROMPTS) - 1):
        fresh, mask = encoder.encode([PROMPTS.prompts[i]])
        torch.testing.assert_close(text.embeddings[i], fresh[0], atol=1e-5, rtol=1e-5)
        assert torch.equal(text.masks[i], mask[0])
    null, null_mask = encoder.encode([""])
    torch.testing.assert_close(text.null_embedding, null)
    assert null_mask.sum() == 2  # [CLS] [SEP]


def test_empty_and_too_long_prompts_are_refused():
    encoder = tiny_encoder(max_length=8)
    with pytest.raises(UserError, match="empty"):
        check_prompts(encoder, ["  "])
    with pytest.raises(UserError, match="at most 8"):
        check_prompts(encoder, ["a handwritten seven, " * 3])
    check_prompts(encoder, ["a handwritten seven"])


# ---------------------------------------------------------------------------------------------
# Guidance: w = 0 and w = 1 are the plain samplers
# ---------------------------------------------------------------------------------------------
def plain_sample(pipe, prompts, latents, sampler, steps, guidance=None):
    """Sampling written out without guidance.py: the UNet on one context per call."""
    cond, cond_mask = pipe.text_encoder.encode(prompts)
    null, null_mask = pipe.text_encoder.encode([""] * len(prompts))

    def eps(x, t, context, mask):
        return pipe.unet(x, t, context, padding_mask(mask))

    if guidance is None:  # the unconditional model
        def model(x, t):
            return eps(x, t, null, null_mask)
    elif guidance == 1:
        def model(x, t):
            return eps(x, t, cond, cond_mask)
    else:
        def model(x, t):
            return cfg_combine(eps(x, t, null, null_mask), eps(x, t, cond, cond_mask), guidance)
    fn = {"ddim": samplers.ddim, "dpm++": samplers.dpm_solver_2m}[sampler]
    z0 = fn(model, latents, pipe.schedule, steps, prediction="eps", spacing="trailing")
    return (pipe.vae.decode_latents(z0) / 2 + 0.5).clamp(0, 1)


@pytest.mark.parametrize("sampler", ["ddim", "dpm++"])
def test_guidance_zero_is_the_unconditional_sampler_exactly(pipeline, sampler):
    prompts = ["a handwritten 3", "the digit seven"]
    latents = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = pipeline(prompts, guidance=0.0, steps=6, sampler=sampler, latents=latents)
        plain = plain_sample(pipeline, prompts, latents, sampler, 6)
        conditional = pipeline(prompts, guidance=1.0, steps=6, sampler=sampler, latents=latents)
        plain_conditional = plain_sample(pipeline, prompts, latents, sampler, 6, guidance=1)
    assert torch.equal(ours, plain)
    assert torch.equal(conditional, plain_conditional)
    assert (conditional - ours).abs().max() > 1e-4  # the prompt does change the image


def test_guidance_four_is_the_extrapolation_from_two_forwards(pipeline):
    prompts = ["a handwritten 3", "eight"]
    latents = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = pipeline(prompts, guidance=4.0, steps=5, sampler="ddim", latents=latents)
        plain = plain_sample(pipeline, prompts, latents, "ddim", 5, guidance=4.0)
    torch.testing.assert_close(ours, plain, atol=1e-5, rtol=1e-5)  # one batched forward vs two


# ---------------------------------------------------------------------------------------------
# Training, saving, loading
# ---------------------------------------------------------------------------------------------
def test_a_short_run_halves_the_diffusion_loss():
    from dataclasses import replace

    from fromscratch.stable_diffusion.mnist import RECIPES, train_diffusion

    # one fixed "digit" per label: learnable in a few dozen steps
    text = PromptEmbeddings.compute(tiny_encoder(), PROMPTS)
    torch.manual_seed(0)
    patterns = torch.randn(10, 4, 4, 4).sign()
    batches = DiffusionBatches(patterns, None, torch.arange(10), text, batch_size=32, seed=0)
    unet, _ = tiny_models()
    model = ConditionalDiffusion(unet, schedule_from_config(SCHEDULE),
                                 text.null_embedding, text.null_mask)
    fixed = [batches(10_000 + i) for i in range(4)]

    def held_out_loss():
        torch.manual_seed(0)
        with torch.no_grad():
            return sum(model.loss(b).item() for b in fixed) / len(fixed)

    before = held_out_loss()
    recipe = replace(RECIPES["tiny"], train=dict(max_steps=60, lr=3e-3, warmup_steps=5,
                                                 weight_decay=0.0))
    train_diffusion(model.train(), batches, recipe, out_dir=None, seed=0, progress=False)
    after = held_out_loss()
    assert after < before / 2, (before, after)


def test_save_load_gives_identical_samples_and_diffusers_reads_the_parts(pipeline, tmp_path):
    save_pipeline(tmp_path, pipeline.unet, pipeline.vae, pipeline.text_encoder)
    loaded = StableDiffusion.from_pretrained(tmp_path)
    assert loaded.spacing == "trailing" and loaded.prediction == "eps"
    assert loaded.vae.config.scaling_factor == pytest.approx(0.7)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    before = pipeline(["a 4", "nine"], guidance=3.0, steps=4, sampler="dpm++", generator=g1)
    after = loaded(["a 4", "nine"], guidance=3.0, steps=4, sampler="dpm++", generator=g2)
    assert before.shape == (2, 1, 8, 8)
    assert torch.equal(before, after)

    diffusers = pytest.importorskip("diffusers")
    theirs = diffusers.UNet2DConditionModel.from_pretrained(tmp_path / "unet").eval()
    x, t = torch.randn(2, 4, 4, 4), torch.tensor([10, 700])
    context, mask = pipeline.text_encoder.encode(["a 4", "nine"])
    with torch.no_grad():
        ours = pipeline.unet(x, t, context)
        reference = theirs(x, t, encoder_hidden_states=context).sample
        torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-4)
        vae = diffusers.AutoencoderKL.from_pretrained(tmp_path / "vae").eval()
        image = torch.rand(1, 1, 8, 8) * 2 - 1
        torch.testing.assert_close(pipeline.vae(image), vae(image).sample, atol=1e-5, rtol=1e-4)


def test_a_folder_that_is_not_a_pipeline_is_refused(tmp_path):
    with pytest.raises(UserError, match="not a diffusers pipeline folder"):
        StableDiffusion.from_pretrained(tmp_path)


# ---------------------------------------------------------------------------------------------
# Cross-attention maps and the Fréchet distance
# ---------------------------------------------------------------------------------------------
def test_recorded_cross_attention_reproduces_the_layer_output():
    torch.manual_seed(0)
    block = BasicTransformerBlock(dim=8, heads=1, context_dim=6).eval()
    context = torch.randn(2, 4, 6)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    h = block.norm2(torch.randn(2, 5, 8))
    with record_cross_attention(block) as maps, torch.no_grad():
        out = block.attn2(h, context, padding_mask(mask))
    (probs,) = maps  # (B, N, T): one head, so the mean over heads is that head
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 5))
    assert (probs[0, :, 3] == 0).all() and (probs[1, :, 2:] == 0).all()
    with torch.no_grad():  # out = (P V) W_o + b: the recorded P gives the layer's output back
        rebuilt = block.attn2.to_out[0](probs @ block.attn2.to_v(context))
    torch.testing.assert_close(out, rebuilt, atol=1e-6, rtol=1e-5)
    assert len(maps) == 1


def test_frechet_distance_of_gaussians():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 3, generator=g, dtype=torch.float64)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    # 1-D: (μ_a − μ_b)² + (s_a − s_b)²; here with the sample moments, exactly
    x, y = torch.randn(500, 1, generator=g), 2 + 3 * torch.randn(700, 1, generator=g)
    expected = (x.mean() - y.mean()) ** 2 + (x.std() - y.std()) ** 2
    assert frechet_distance(x, y) == pytest.approx(expected.item(), rel=1e-5)
    # against scipy's matrix square root on correlated features
    linalg = pytest.importorskip("scipy.linalg")
    b = a @ torch.randn(3, 3, generator=g, dtype=torch.float64) + 1
    ca, cb = torch.cov(a.T).numpy(), torch.cov(b.T).numpy()
    trace = ca.trace() + cb.trace() - 2 * linalg.sqrtm(ca @ cb).real.trace()
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum().item() + trace
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
