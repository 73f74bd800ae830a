"""Our text-to-image pipeline equals diffusers' StableDiffusionPipeline.

A tiny random pipeline (UNet, VAE, CLIP text model, a CLIP tokenizer with a small vocabulary,
a scheduler) is built from diffusers/transformers parts and saved with `save_pretrained`; ours
reads the folder. Given the same prompts and starting latents, both make the same images, with
DDIM, DPM-Solver++(2M) and Euler, with and without guidance. A Hub name loads offline from a
pre-filled Hugging Face cache.
"""

import shutil

import pytest
import torch

diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")
from diffusers import (  # noqa: E402
    AutoencoderKL,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)

from fromscratch.errors import UserError  # noqa: E402
from fromscratch.stable_diffusion.pipeline import StableDiffusion  # noqa: E402

pytestmark = [
    # diffusers' pipeline warns that steps_offset=0 is outdated (and uses 1, as ours does)
    pytest.mark.filterwarnings("ignore:The configuration file of this scheduler:FutureWarning"),
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),  # diffusers'
]
TOL = 1e-3
PROMPTS = ["a red cat", "the dog and the cat's hat"]
SCHEDULE = dict(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                beta_end=0.012)
SCHEDULERS = {
    "ddim": lambda: DDIMScheduler(**SCHEDULE, clip_sample=False, set_alpha_to_one=True,
                                  steps_offset=0, timestep_spacing="leading"),
    "dpm++": lambda: DPMSolverMultistepScheduler(**SCHEDULE, algorithm_type="dpmsolver++",
                                                 solver_order=2, final_sigmas_type="zero",
                                                 timestep_spacing="trailing"),
    "euler": lambda: EulerDiscreteScheduler(**SCHEDULE, timestep_spacing="leading"),
}


def tokenizer(folder):
    from test_clip_hf import tiny_vocabulary  # tests/equivalence is on sys.path

    vocab = tiny_vocabulary(folder)
    merges = [tuple(line.split()) for line in (folder / "merges.txt").read_text().splitlines()[1:]]
    return transformers.CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def tiny_pipeline(tmp_path, scheduler: str) -> StableDiffusionPipeline:
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, sample_size=8,
        in_channels=4, out_channels=4, cross_attention_dim=16, attention_head_dim=2,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    vae = AutoencoderKL(block_out_channels=(4, 8), norm_num_groups=2, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1)
    tok = tokenizer(tmp_path / "vocab")
    text = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=77, eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id, pad_token_id=tok.pad_token_id)).eval()
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet,
                                   scheduler=SCHEDULERS[scheduler](), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(tmp_path / "pipe")
    return pipe


@pytest.mark.parametrize("sampler,guidance,steps", [("ddim", 7.5, 3), ("dpm++", 5.0, 4),
                                                    ("ddim", 1.0, 2), ("euler", 7.5, 3)])
def test_images_equal_diffusers(tmp_path, sampler, guidance, steps):
    theirs = tiny_pipeline(tmp_path, sampler)
    ours = StableDiffusion.from_pretrained(tmp_path / "pipe")
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    expected = theirs(PROMPTS, num_inference_steps=steps, guidance_scale=guidance,
                      latents=latents.clone(), output_type="pt").images
    got = ours(PROMPTS, steps=steps, guidance=guidance, sampler=sampler, latents=latents)
    assert got.shape == expected.shape == (2, 3, 16, 16)
    assert (got - expected).abs().max().item() <= TOL
    unguided = ours(PROMPTS, steps=steps, guidance=0.0, sampler=sampler, latents=latents)
    assert (unguided - got).abs().max() > 10 * TOL  # the prompt matters


def test_hub_name_loads_offline_from_cache(tmp_path, monkeypatch):
    import huggingface_hub

    tiny_pipeline(tmp_path, "ddim")
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "cache" / "models--org--tiny-sd"
    shutil.copytree(tmp_path / "pipe", repo / "snapshots" / sha)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    from_cache = StableDiffusion.from_pretrained("org/tiny-sd", cache_dir=tmp_path / "cache")
    from_folder = StableDiffusion.from_pretrained(tmp_path / "pipe")
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    a = from_cache(["a cat"], steps=2, latents=latents)
    assert torch.equal(a, from_folder(["a cat"], steps=2, latents=latents))
    with pytest.raises(UserError, match="'org/not-cached' is not a folder"):
        StableDiffusion.from_pretrained("org/not-cached", cache_dir=tmp_path / "cache")
