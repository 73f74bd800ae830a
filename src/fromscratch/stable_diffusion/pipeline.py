"""Text to image, Stable Diffusion's way: every piece ours, end to end.

    prompt ─ tokenizer ─ text encoder ─ c (B, T, D) ─┐
                                                      ├─ UNet ε̂(z_t, t, c), guided ─ sampler ─ z_0
    z_T ~ N(0, I)  (B, 4, H/8, W/8) ──────────────────┘                                          │
                                                                 image = VAE decoder(z_0 / s) ─┘

The diffusion runs on VAE latents z (vae.py), with the discrete noise schedule the UNet was
trained on (a DiscreteSchedule, read from scheduler/scheduler_config.json), classifier-free
guidance (diffusion/guidance.py: one batched UNet forward for the prompt and the empty prompt)
and our samplers (diffusion/samplers.py: DDIM = Euler in σ/α, DPM-Solver++(2M), DDPM).

`StableDiffusion.from_pretrained` reads a diffusers pipeline folder (unet/, vae/, text_encoder/,
tokenizer/, scheduler/) or a Hub name, fetched once into the Hugging Face cache. The scheduler's
timestep spacing is ours (samplers.discrete_timesteps), with diffusers' `steps_offset` for the
"leading" spacing (Stable Diffusion's pipeline always uses 1: timesteps 1, 1 + N/steps, ...).
One detail we do not copy: `set_alpha_to_one=False` (SD v1's DDIM ends on ᾱ_0 ≈ 0.999 instead of
clean data); our samplers end on clean data. With set_alpha_to_one=True our images equal those
of diffusers' StableDiffusionPipeline (tests/equivalence/test_pipeline_diffusers.py).
"""

from pathlib import Path

import torch

from fromscratch.diffusion import samplers
from fromscratch.diffusion.guidance import guided
from fromscratch.diffusion.sde import (
    DiscreteSchedule,
    cosine_betas,
    linear_betas,
    scaled_linear_betas,
)
from fromscratch.errors import UserError
from fromscratch.folders import read_config, resolve, write_bytes, write_json

# "euler" is Euler's method on the probability flow ODE in the scaled variables y = x/α, σ/α,
# dy/d(σ/α) = ε̂ (diffusers' EulerDiscreteScheduler): its step y + (σ_s/α_s − σ_t/α_t) ε̂ is
# exactly deterministic DDIM's (notebooks/16_samplers.py §2), so it runs as DDIM.
SAMPLERS = {"ddim": samplers.ddim, "dpm++": samplers.dpm_solver_2m, "euler": samplers.ddim,
            "ddpm": samplers.ddpm}
PREDICTIONS = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}
# Stable Diffusion v1's noise schedule (scheduler_config.json of its pipeline)
SCHEDULE = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
            "beta_schedule": "scaled_linear"}
FOLDER_FILES = ["model_index.json", "scheduler/scheduler_config.json", "unet/config.json",
                "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
                "vae/diffusion_pytorch_model.safetensors", "text_encoder/config.json",
                "text_encoder/model.safetensors", "tokenizer/*"]


def schedule_from_config(cfg: dict) -> DiscreteSchedule:
    """The DiscreteSchedule a diffusers scheduler_config.json describes."""
    n = cfg.get("num_train_timesteps", 1000)
    start, end = cfg.get("beta_start", 1e-4), cfg.get("beta_end", 0.02)
    kind = cfg.get("beta_schedule", "linear")
    if kind == "linear":
        betas = linear_betas(n, start, end)
    elif kind == "scaled_linear":  # linear in √β: Stable Diffusion's
        betas = scaled_linear_betas(n, start, end)
    elif kind == "squaredcos_cap_v2":
        betas = cosine_betas(n)
    else:
        raise UserError(f"beta_schedule {kind!r} is not supported: use linear, scaled_linear or "
                        "squaredcos_cap_v2")
    return DiscreteSchedule(betas)


def shifted(schedule: DiscreteSchedule, offset: int) -> DiscreteSchedule:
    """The schedule seen from index `offset` on, ᾱ'_n = ᾱ_{n + offset}, still N long (the last
    `offset` levels repeat β_{N−1}; leading timesteps never reach them). Sampling on it with the
    model asked at t + offset is sampling at timesteps shifted by `offset`."""
    if offset == 0:
        return schedule
    betas = schedule.betas.double()
    first = 1 - torch.prod(1 - betas[: offset + 1])  # 1 − ᾱ_offset
    tail = torch.cat([betas[offset + 1:], betas[-1:].repeat(offset)])
    return DiscreteSchedule(torch.cat([first[None], tail]))


class StableDiffusion:
    """unet, vae, text_encoder (anything with `encode(prompts) → (c, mask or None)`), the
    schedule, and what the UNet predicts ("eps" or "v")."""

    def __init__(self, unet, vae, text_encoder, schedule: DiscreteSchedule, *,
                 prediction: str = "eps", spacing: str = "leading", steps_offset: int = 0):
        self.unet, self.vae, self.text_encoder = unet.eval(), vae.eval(), text_encoder.eval()
        self.schedule = schedule
        self.prediction = prediction
        self.spacing = spacing
        self.steps_offset = steps_offset if spacing == "leading" else 0

    @classmethod
    def from_pretrained(cls, name: str | Path, cache_dir: str | Path | None = None
                        ) -> "StableDiffusion":
        """A diffusers pipeline folder, or a Hub name such as
        "stable-diffusion-v1-5/stable-diffusion-v1-5" (about 2.7 GB in float16 ... float32).

        The text encoder is the one model_index.json names: CLIP's (Stable Diffusion's own) or a
        BERT with its WordPiece vocabulary (the folders `save_pipeline` writes)."""
        from fromscratch.stable_diffusion.unet import UNet
        from fromscratch.stable_diffusion.vae import AutoencoderKL

        folder = resolve(name, FOLDER_FILES, cache_dir=cache_dir)
        missing = [file for file in PIPELINE_FILES if not (folder / file).is_file()]
        if missing:
            raise UserError(f"{folder} is not a diffusers pipeline folder (no {missing[0]}): "
                            "give a folder written by `fromscratch sd train` or a Hub name")
        scheduler = read_config(folder, "scheduler/scheduler_config.json")
        prediction = scheduler.get("prediction_type", "epsilon")
        if prediction not in PREDICTIONS:
            raise UserError(f"prediction_type {prediction!r} is not supported")
        index = read_config(folder, "model_index.json")
        text_encoder = _text_encoder(folder, index.get("text_encoder", [None, None])[1])
        unet = UNet.from_diffusers(folder / "unet")
        if unet.config.cross_attention_dim != text_encoder.hidden_size:
            raise UserError(f"{folder}: the UNet reads {unet.config.cross_attention_dim}-d text, "
                            f"the text encoder gives {text_encoder.hidden_size}-d")
        return cls(unet, AutoencoderKL.from_diffusers(folder / "vae"), text_encoder,
                   schedule_from_config(scheduler), prediction=PREDICTIONS[prediction],
                   spacing=scheduler.get("timestep_spacing", "leading"),
                   # diffusers' StableDiffusionPipeline replaces a steps_offset of 0 with 1 (it
                   # only matters for the "leading" spacing: __init__ drops it for the others)
                   steps_offset=1)

    def to(self, device=None, dtype=None) -> "StableDiffusion":
        for model in (self.unet, self.vae, self.text_encoder):
            model.to(device=device, dtype=dtype)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @torch.no_grad()
    def __call__(self, prompts: list[str], *, steps: int = 50, guidance: float = 7.5,
                 sampler: str = "ddim", negative_prompt: str = "",
                 height: int | None = None, width: int | None = None,
                 generator: torch.Generator | None = None, latents: torch.Tensor | None = None,
                 progress: bool = False) -> torch.Tensor:
        """Images (B, C, H, W) in [0, 1] for `prompts`.

        guidance: our classifier-free guidance scale w (0 unconditional, 1 conditional, > 1
            guided; diffusers' guidance_scale g > 1 is the same w).
        latents: the starting noise z_T (B, 4, H/8, W/8); drawn with `generator` if None.
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        if sampler not in SAMPLERS:
            raise UserError(f"unknown sampler {sampler!r}: use one of {', '.join(SAMPLERS)}")
        unet_dtype = next(self.unet.parameters()).dtype
        if latents is None:
            factor = self.vae.downsampling_factor
            size = self.unet.config.sample_size * factor
            height, width = height or size, width or size
            multiple = factor * 2 ** (len(self.unet.config.block_out_channels) - 1)
            if height % multiple or width % multiple:
                raise UserError(f"height and width must be multiples of {multiple}")
            shape = (len(prompts), self.unet.config.in_channels, height // factor, width // factor)
            latents = torch.randn(shape, generator=generator, device=self.device)
        latents = latents.to(self.device, unet_dtype)

        cond = self.text_encoder.encode(prompts)
        uncond = self.text_encoder.encode([negative_prompt] * len(prompts))

        def unet(x, t, context):
            embeddings, mask = context
            context_mask = None if mask is None else mask.bool()[:, None, None, :]  # (B,1,1,T)
            return self.unet(x, t + self.steps_offset, embeddings.to(unet_dtype), context_mask)

        model = guided(unet, cond, uncond, guidance)
        schedule = shifted(self.schedule, self.steps_offset)
        z0 = SAMPLERS[sampler](model, latents, schedule, steps, prediction=self.prediction,
                               spacing=self.spacing, generator=generator, progress=progress)
        images = self.vae.decode_latents(z0.to(next(self.vae.parameters()).dtype))
        return (images.float() / 2 + 0.5).clamp(0, 1)  # [-1, 1] → [0, 1]


# ---------------------------------------------------------------------------------------------
# The pipeline folder
# ---------------------------------------------------------------------------------------------
PIPELINE_FILES = ("model_index.json", "scheduler/scheduler_config.json", "unet/config.json",
                  "vae/config.json", "text_encoder/config.json")


def save_pipeline(folder: str | Path, unet, vae, encoder, *, schedule: dict = SCHEDULE,
                  prediction: str = "eps", write_text_encoder: bool = True) -> None:
    """Write a diffusers-layout folder: unet/ and vae/ (diffusers' own formats),
    text_encoder/ (a transformers BertModel: `encoder` is a BertTextEncoder), tokenizer/
    (vocab.txt), scheduler/ (`schedule`, a diffusers noise-schedule config), and
    model_index.json last, so that a folder with model_index.json is complete. The text encoder
    (frozen, the same at every save) is written only if absent or `write_text_encoder`."""
    folder = Path(folder)
    unet.save_diffusers(folder / "unet")
    vae.save_diffusers(folder / "vae")
    if write_text_encoder or not (folder / "text_encoder" / "config.json").is_file():
        encoder.bert.save_pretrained(folder / "text_encoder")
        tokenizer = folder / "tokenizer"
        write_bytes(tokenizer / "vocab.txt", "\n".join(encoder.tokenizer.vocab).encode("utf-8"))
        write_json(tokenizer / "tokenizer_config.json",
                   {"do_lower_case": encoder.tokenizer.lowercase,
                    "model_max_length": encoder.max_length})
    kind = {v: k for k, v in PREDICTIONS.items()}[prediction]
    write_json(folder / "scheduler" / "scheduler_config.json",
               {"_class_name": "DDIMScheduler", **schedule, "prediction_type": kind,
                "timestep_spacing": "trailing", "steps_offset": 0, "clip_sample": False,
                "set_alpha_to_one": True})
    write_json(folder / "model_index.json",
               {"_class_name": "StableDiffusionPipeline",
                "unet": ["diffusers", "UNet2DConditionModel"],
                "vae": ["diffusers", "AutoencoderKL"],
                "text_encoder": ["transformers", "BertModel"],
                "tokenizer": ["transformers", "BertTokenizer"],
                "scheduler": ["diffusers", "DDIMScheduler"]})


def _text_encoder(folder: Path, class_name: str | None):
    """The prompt encoder of a pipeline folder: a BERT (BertModel + WordPiece vocab.txt) or CLIP."""
    if class_name == "BertModel":
        from fromscratch.language.bert import BertModel
        from fromscratch.stable_diffusion.text_encoder import BertTextEncoder
        from fromscratch.tokenizers import WordPieceTokenizer

        tokenizer_config = read_config(folder, "tokenizer/tokenizer_config.json")
        return BertTextEncoder(BertModel.from_pretrained(folder / "text_encoder"),
                               WordPieceTokenizer.from_vocab(folder / "tokenizer"),
                               tokenizer_config["model_max_length"])
    from fromscratch.stable_diffusion.text_encoder import CLIPPromptEncoder, CLIPTextModel
    from fromscratch.tokenizers.clip import CLIPTokenizer

    return CLIPPromptEncoder(CLIPTextModel.from_pretrained(folder / "text_encoder"),
                             CLIPTokenizer.from_pretrained(folder / "tokenizer"))


def is_pipeline(folder: str | Path) -> bool:
    return all((Path(folder) / name).is_file() for name in PIPELINE_FILES)
