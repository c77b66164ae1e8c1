"""Datasets: MNIST, dSprites and its factors, 2-D Gaussian mixtures."""
