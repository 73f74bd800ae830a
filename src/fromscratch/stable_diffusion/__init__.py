"""Stable Diffusion piece by piece: every network its pipeline runs, and a small one trained here.

    unet.py          the noise-predicting UNet with time embeddings and cross-attention
    vae.py           the autoencoder between pixels and latents (AutoencoderKL)
    text_encoder.py  CLIP's and BERT's text encoders: prompt -> one vector per token
    pipeline.py      StableDiffusion: prompt -> guided latent sampling -> image; its folder
    mnist.py         the CPU recipe: a VAE and a latent UNet trained on MNIST digits and prompts
"""
