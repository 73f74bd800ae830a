"""fromscratch: transformers, LLMs and diffusion models built from first principles.

The package has five parts, in the order of the curriculum, and the pieces they share:

    language/          GPT, BERT, LoRA, classification, retrieval
    beyond/            the same transformers on images, digits, sound and music
    diffusion/         the mathematics of diffusion: SDEs, exact scores, losses, samplers
    stable_diffusion/  UNet, VAE, text encoders, the text-to-image pipeline
    neuro/             spikes, the Neural Data Transformer, generative models of trials

    tokenizers/  attention.py  seeds.py  modes.py  training/  folders.py  data/  exercises/
    commands/  cli.py

The main names are here too, `from fromscratch import GPT, train`, imported the first time they are
used: `import fromscratch` itself imports no torch.
"""

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_FACE = {
    "GPT": "fromscratch.language.gpt",
    "GPTConfig": "fromscratch.language.gpt",
    "Llama": "fromscratch.language.llama",
    "LlamaConfig": "fromscratch.language.llama",
    "BertModel": "fromscratch.language.bert",
    "SentenceEncoder": "fromscratch.language.bert",
    "CharTokenizer": "fromscratch.tokenizers.char",
    "BPETokenizer": "fromscratch.tokenizers.bpe",
    "WordPieceTokenizer": "fromscratch.tokenizers.wordpiece",
    "CLIPTokenizer": "fromscratch.tokenizers.clip",
    "load_tokenizer": "fromscratch.tokenizers",
    "ViT": "fromscratch.beyond.vit",
    "ViTConfig": "fromscratch.beyond.vit",
    "UNet": "fromscratch.stable_diffusion.unet",
    "UNetConfig": "fromscratch.stable_diffusion.unet",
    "AutoencoderKL": "fromscratch.stable_diffusion.vae",
    "StableDiffusion": "fromscratch.stable_diffusion.pipeline",
    "TrainConfig": "fromscratch.training.loop",
    "train": "fromscratch.training.loop",
    "UserError": "fromscratch.errors",
}

__all__ = sorted(_FACE)


def __getattr__(name: str):
    if name not in _FACE:
        raise AttributeError(f"module 'fromscratch' has no attribute {name!r}")
    value = getattr(importlib.import_module(_FACE[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_FACE])
