"""One short training loop with checkpoints, a progress bar and a time budget.

``fit`` knows nothing of the model's objective: it takes a ``loss_fn(model,
batch) -> {"loss": scalar, other parts...}`` and logs every part. It saves a
checkpoint at the end of each epoch (atomically, so an interrupted save loses
nothing), and a run started again with the same checkpoint path resumes from
the last finished epoch. Checkpoints hold only tensors and plain Python
values, so they load with ``torch.load(..., weights_only=True)``.

Loops that alternate several optimizers step by step (``dgm.adversarial.gan.train_gan``,
``dgm.latent.factor_vae.train_factor_vae``) write their updates out themselves and
share the rest — resume, interval means, checkpoints, time budget — through
:class:`StepRun`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from dgm.profile import progress_enabled

Batch = Tensor | tuple[Tensor, ...]
LossFn = Callable[[nn.Module, Batch], dict[str, Tensor]]


@dataclass
class TrainSettings:
    """How long and how to train; the profile picks the numbers (:func:`dgm.profile.pick`)."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    checkpoint: Path | None = None
    time_budget_s: float | None = None
    progress: bool = field(default_factory=progress_enabled)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"epochs and batch_size must be positive and lr > 0, got {self}")


@dataclass
class History:
    """Per-epoch means of every term the loss returns, and the wall time of each epoch."""

    terms: dict[str, list[float]] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)
    stopped_by_budget: bool = False

    @property
    def epochs(self) -> int:
        return len(self.seconds)

    def record(self, means: dict[str, float], seconds: float) -> None:
        for name, value in means.items():
            self.terms.setdefault(name, []).append(value)
        self.seconds.append(seconds)


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically: an interrupted save leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    torch.save(state, partial)
    partial.replace(path)


def load_checkpoint(path: Path) -> dict:
    """A checkpoint written by :func:`fit`, loaded safely (``weights_only=True``)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def restore_weights(model: nn.Module, weights: dict, path: Path, *, kind: str, settings: str) -> None:
    """Load ``weights`` from the checkpoint at ``path`` into ``model``, or say plainly that they belong to another model."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        raise RuntimeError(
            f"the checkpoint {path} was written by a different {kind}; "
            f"delete it to start afresh, or point {settings}.checkpoint elsewhere"
        ) from error


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    data: Tensor | tuple[Tensor, ...],
    settings: TrainSettings,
    *,
    transform: Callable[[Batch], Batch] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> History:
    """Train ``model`` on ``data`` (``(N, ...)``, on any device) by minimising ``loss_fn(...)["loss"]``.

    ``data`` may also be a tuple of tensors with the same first dimension
    (images and labels); each batch is then the tuple of their rows.

    Args:
        transform: applied to each batch on the model's device (e.g. dynamic binarisation).
        optimizer: defaults to Adam with ``settings.lr``.
        on_epoch: called with the epoch's index (from 0) before each epoch, also
            after a resume — e.g. to set a KL weight that warms up over epochs.

    Returns the history of all epochs, including those of a resumed run.
    On ``KeyboardInterrupt`` the last finished epoch is already saved; running
    the same call again resumes there.
    """
    device = next(model.parameters()).device
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=settings.lr)
    history = History()
    start_epoch = 0
    if settings.checkpoint is not None and settings.checkpoint.exists():
        state = load_checkpoint(settings.checkpoint)
        restore_weights(model, state["model"], settings.checkpoint, kind="model", settings="TrainSettings")
        optimizer.load_state_dict(state["optimizer"])
        history = History(**state["history"])
        torch.set_rng_state(state["rng"])
        start_epoch = history.epochs
        print(f"resumed from {settings.checkpoint} after epoch {start_epoch}")

    columns = data if isinstance(data, tuple) else (data,)
    size = len(columns[0])
    if any(len(column) != size for column in columns):
        raise ValueError(f"the tensors in data must have the same length, got {[len(c) for c in columns]}")
    batches = math.ceil(size / settings.batch_size)
    remaining = max(settings.epochs - start_epoch, 0)
    started = time.time()
    bar = tqdm(total=remaining * batches, disable=not settings.progress or remaining == 0, desc="training")
    model.train()
    for epoch in range(start_epoch, settings.epochs):
        epoch_start = time.time()
        if on_epoch is not None:
            on_epoch(epoch)
        shuffle = torch.Generator().manual_seed(settings.seed * 100_003 + epoch)
        order = torch.randperm(size, generator=shuffle)
        sums: dict[str, float] = {}
        for index in range(batches):
            rows = order[index * settings.batch_size : (index + 1) * settings.batch_size]
            batch = tuple(column[rows].to(device) for column in columns)
            batch = batch if isinstance(data, tuple) else batch[0]
            if transform is not None:
                batch = transform(batch)
            terms = loss_fn(model, batch)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimizer.step()
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach()) * len(rows)
            bar.update()
        means = {name: total / size for name, total in sums.items()}
        history.record(means, time.time() - epoch_start)
        bar.set_postfix(epoch=epoch + 1, loss=f"{means['loss']:.2f}")
        if settings.checkpoint is not None:
            save_checkpoint(
                settings.checkpoint,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "history": asdict(history),
                    "rng": torch.get_rng_state(),
                },
            )
        if settings.time_budget_s is not None and time.time() - started > settings.time_budget_s:
            history.stopped_by_budget = True
            print(f"stopped after epoch {epoch + 1}: time budget of {settings.time_budget_s:.0f} s reached")
            break
    bar.close()
    model.eval()
    return history


class StepRun:
    """The bookkeeping of a step-based loop with several optimizers (``train_gan``, ``train_factor_vae``).

    The loop itself — which network steps when — stays in the caller; this
    object resumes from ``checkpoint`` (weights, optimizers, history, random
    state, step), averages the logged terms over each ``log_every`` steps,
    saves every ``checkpoint_every`` steps and at the end, and stops the run
    when ``time_budget_s`` is spent (saving first). ``optimizers`` maps the
    names they are stored under in the checkpoint to the optimizers.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizers: dict[str, torch.optim.Optimizer],
        *,
        steps: int,
        log_every: int,
        checkpoint: Path | None,
        checkpoint_every: int,
        time_budget_s: float | None,
        progress: bool,
        kind: str,
        settings: str,
    ) -> None:
        self.model, self.optimizers = model, optimizers
        self.steps, self.log_every, self.checkpoint = steps, log_every, checkpoint
        self.checkpoint_every, self.time_budget_s = checkpoint_every, time_budget_s
        self.history, self.start = History(), 0
        if checkpoint is not None and checkpoint.exists():
            state = load_checkpoint(checkpoint)
            restore_weights(model, state["model"], checkpoint, kind=kind, settings=settings)
            for name, optimizer in optimizers.items():
                optimizer.load_state_dict(state[name])
            self.history = History(**state["history"])
            torch.set_rng_state(state["rng"])
            self.start = state["step"]
            print(f"resumed from {checkpoint} at step {self.start}")
        self.sums: dict[str, float] = {}
        self.started = self.interval_start = time.time()
        self.bar = tqdm(total=steps, initial=self.start, disable=not progress, desc="training")

    def save(self, step: int) -> None:
        state = {"model": self.model.state_dict(), **{name: opt.state_dict() for name, opt in self.optimizers.items()},
                 "history": asdict(self.history), "rng": torch.get_rng_state(), "step": step}
        save_checkpoint(self.checkpoint, state)

    def log(self, done: int, logged: dict[str, Tensor], postfix: tuple[str, ...]) -> bool:
        """Add step ``done``'s terms; at the end of an interval record their means and return True."""
        for name, value in logged.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(value)
        self.bar.update()
        if done % self.log_every and done != self.steps:
            return False
        count = self.log_every if done % self.log_every == 0 else done % self.log_every
        self.history.record({name: total / count for name, total in self.sums.items()}, time.time() - self.interval_start)
        self.bar.set_postfix({name: f"{self.history.terms[name][-1]:.3f}" for name in postfix})
        self.sums, self.interval_start = {}, time.time()
        return True

    def stop(self, done: int) -> bool:
        """Save when a checkpoint is due; True (after saving) when the time budget is spent."""
        if self.checkpoint is not None and (done % self.checkpoint_every == 0 or done == self.steps):
            self.save(done)
        if self.time_budget_s is not None and time.time() - self.started > self.time_budget_s:
            self.history.stopped_by_budget = True
            if self.checkpoint is not None:
                self.save(done)
            print(f"stopped after step {done}: time budget of {self.time_budget_s:.0f} s reached")
            return True
        return False

    def finish(self) -> History:
        self.bar.close()
        return self.history
