"""Evaluation: likelihood bounds, sample quality, disentanglement."""
