"""Latent-variable models: the VAE, β-VAE and FactorVAE, the hierarchical VAE (Parts I–II)."""
