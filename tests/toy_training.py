"""A toy step-based training loop on :class:`dgm.training.StepRun`, shared by the tests of the loop itself.

``test_train.py`` kills and resumes it between logging intervals; ``test_training_settings.py`` resumes it with
other settings. It is the shape of the library's GAN and diffusion loops, as small as it goes: a linear model
learns ``x ↦ x₁ + x₂ + x₃`` by SGD, logs its loss and a draw of noise (a series that only matches on resume if
every RNG is restored), and keeps a trace in ``run.extra`` (a series only the checkpoint can carry over).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch

from dgm.training import History, StepRun, StepSettings


class ToyRun(NamedTuple):
    model: torch.nn.Linear
    history: History
    extra: dict  # run.extra: {"trace": the steps at which a record was logged}


def toy_step_loop(checkpoint: Path | None, steps: int, *, interrupt_at: int | None = None, **settings) -> ToyRun:
    """Train the toy model for ``steps`` steps (resuming from ``checkpoint`` if it exists) and return what it made.

    Args:
        checkpoint: where StepRun saves and resumes, or ``None``.
        steps: the run's length.
        interrupt_at: raise ``KeyboardInterrupt`` after this step, as a disconnect would.
        settings: StepSettings fields over the defaults: logging every 4 steps, a checkpoint every 3 (never a
            multiple of 4, so a resume starts mid-interval), no progress bar.
    """
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    options = {"log_every": 4, "checkpoint_every": 3, "progress": False} | settings
    run = StepRun(model, {"opt": optimizer}, StepSettings(steps=steps, checkpoint=checkpoint, **options), kind="model")
    run.extra.setdefault("trace", [])
    for step in range(run.start, steps):
        x = torch.randn(8, 3)  # (batch, 3)
        loss = (model(x).squeeze(1) - x.sum(1)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if run.log(step + 1, {"loss": loss.detach(), "noise": torch.randn(())}, postfix=("loss",)):
            run.extra["trace"].append(step + 1)
        if run.stop(step + 1):
            break
        if step + 1 == interrupt_at:
            raise KeyboardInterrupt
    return ToyRun(model, run.finish(), run.extra)
