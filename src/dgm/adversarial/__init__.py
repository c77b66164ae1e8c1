"""Adversarial models: GAN losses and the alternating loop, PacGAN, WGAN-GP, the Dirac-GAN (Part III)."""
