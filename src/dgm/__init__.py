"""dgm: the shared library of the Deep Generative Models course companion.

Grouped so that a chapter's code is found under the chapter's name; one concept
per module. Dependencies point one way — the book's pages and notebooks import
``dgm``; inside ``dgm`` a package imports only those above it in this list
(``tests/test_layout.py`` checks it):

* :mod:`dgm.profile` — the quick/full switch, the device, the run record;
* :mod:`dgm.derivations` — the checked derivations behind every page (SymPy only, no torch):
  :mod:`~dgm.derivations.notation` (objects printed as the book writes them),
  :mod:`~dgm.derivations.derive` (chains whose every step is checked),
  :mod:`~dgm.derivations.instances` (tractable instances),
  :mod:`~dgm.derivations.graphs` (Bayesian and Markov networks, d-separation and separation),
  :mod:`~dgm.derivations.formulas`, :mod:`~dgm.derivations.answers` and
  :mod:`~dgm.derivations.exercises` (grading answers: formulas and sets of names);
* :mod:`dgm.distributions` — Gaussian and Bernoulli log-densities, KL, the reparameterised draw;
* :mod:`dgm.networks` — plain networks (MLPs, convolutional encoder and decoder, score networks,
  U-Nets, the text-conditioned U-Net);
* :mod:`dgm.data` — :mod:`~dgm.data.mnist`, :mod:`~dgm.data.dsprites` (re-rendered from
  its :mod:`~dgm.data.factors`), :mod:`~dgm.data.mixtures` (2-D Gaussian mixtures),
  :mod:`~dgm.data.captcha` (seeded CAPTCHA renders), :mod:`~dgm.data.celeba` (optional, local files only);
* :mod:`dgm.training` — the training loop, its checkpoints and the stepwise runner;
* :mod:`dgm.latent` — latent-variable models, one protocol (:mod:`~dgm.latent.model`): :mod:`~dgm.latent.vae`,
  :mod:`~dgm.latent.factor_vae` (β-VAE and FactorVAE), :mod:`~dgm.latent.hvae`;
* :mod:`dgm.adversarial` — :mod:`~dgm.adversarial.gan` (GAN, PacGAN, WGAN-GP),
  :mod:`~dgm.adversarial.augment` (differentiable augmentation), :mod:`~dgm.adversarial.dirac_gan`;
* :mod:`dgm.evaluation` — :mod:`~dgm.evaluation.likelihood` (ELBO, IWAE NLL, bits/dim,
  active units), :mod:`~dgm.evaluation.quality` (digit classifier, Fréchet distance),
  :mod:`~dgm.evaluation.disentanglement` (FactorVAE metric, MIG),
  :mod:`~dgm.evaluation.total_correlation` (minibatch-weighted estimate of TC), :mod:`~dgm.evaluation.recogniser`
  (a CTC reader of CAPTCHAs);
* :mod:`dgm.diffusion` — Part IV: score matching and Langevin samplers, noise schedules, the
  Gaussian diffusion process, DDPM, DDIM and DPM-Solver++ samplers, classifier-free guidance, and the
  continuous-time process of variational diffusion models (:mod:`~dgm.diffusion.continuous`);
* :mod:`dgm.grading` — ``dgm-grade``: assignments graded from an instructor's key, without running them
  (uses only :mod:`dgm.derivations`);
* :mod:`dgm.plots` — figures.
"""

__version__ = "0.1.0"
