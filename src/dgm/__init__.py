"""dgm: the shared library of the Deep Generative Models course companion.

One concept per module:

* :mod:`dgm.derive` — derivations whose every step is checked;
* :mod:`dgm.instances` — tractable instances (Gaussians, the linear-Gaussian model);
* :mod:`dgm.graphs` — Bayesian networks on binary variables: d-separation against the joint table;
* :mod:`dgm.answers` and :mod:`dgm.exercises` — grading formula answers;
* :mod:`dgm.profile` — the quick/full switch, the device, the run record;
* :mod:`dgm.data` — datasets (MNIST);
* :mod:`dgm.dsprites` — dSprites, re-rendered from its factor grid;
* :mod:`dgm.mixtures` — 2-D Gaussian mixtures and their mode-coverage score;
* :mod:`dgm.nets` — plain networks;
* :mod:`dgm.vae` — the VAE, its losses and the IWAE bound;
* :mod:`dgm.factor_vae` — β-VAE and FactorVAE: the objective, the TC discriminator, the alternating loop;
* :mod:`dgm.disentanglement` — the FactorVAE metric and the mutual information gap;
* :mod:`dgm.hvae` — the two-layer hierarchical VAE, free bits, KL warm-up, active units;
* :mod:`dgm.gan` — GAN losses (standard, non-saturating, WGAN-GP), packing, the alternating loop;
* :mod:`dgm.dirac_gan` — the Dirac-GAN's dynamics and their eigenvalues;
* :mod:`dgm.train` — the training loop with checkpoints;
* :mod:`dgm.metrics` — evaluation (ELBO, IWAE NLL, active units);
* :mod:`dgm.quality` — judging MNIST samples: a digit classifier and the Fréchet distance;
* :mod:`dgm.plots` — figures.
"""

__version__ = "0.1.0"
