"""Latent-variable models (Parts I–II): :mod:`~dgm.latent.model` (the API every VAE here shares,
:class:`~dgm.latent.model.LatentVariableModel`, and :class:`~dgm.latent.model.ELBOTerms`),
:mod:`~dgm.latent.vae`, :mod:`~dgm.latent.factor_vae` (β-VAE and FactorVAE), :mod:`~dgm.latent.hvae`."""
