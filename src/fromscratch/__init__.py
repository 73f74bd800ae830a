"""fromscratch: transformers, LLMs and diffusion models built from first principles."""

__version__ = "0.1.0"
