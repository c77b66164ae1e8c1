"""One short training loop with checkpoints, a progress bar and a time budget.

``fit`` knows nothing of the model's objective: it takes a ``loss_fn(model,
batch) -> {"loss": scalar, other parts...}`` and logs every part. It saves a
checkpoint at the end of each epoch (atomically, so an interrupted save loses
nothing), and a run started again with the same checkpoint path resumes from
the last finished epoch. Checkpoints hold only tensors and plain Python
values, so they load with ``torch.load(..., weights_only=True)``.

A checkpoint also records the run's settings (:func:`run_settings`): the
training settings, the ``settings`` of each module that has them (a GAN's λ and
scale, a VAE's sizes) and each hook's (an EMA's decay). A run resumes only a
checkpoint written with the same ones, except the few that may change on
resume (how long to train, the time budget, where the checkpoint lies, the
progress bar); any other difference is refused with a message naming it. A
checkpoint written before settings were recorded still loads, with a
:class:`CheckpointWarning`.

After every optimizer step ``fit`` calls its *hooks* (``hook(model, step)``):
:class:`EMA` keeps the exponential moving average of the weights that
diffusion models sample with. A hook with ``state_dict``/``load_state_dict``
is saved in the checkpoint and restored on resume.

On a GPU nothing in the step waits for the device: data is moved to the
model's device once, batches are drawn there, and the logged terms are summed
there (:class:`RunningSums`) and read back once per epoch (or logging interval).

Loops that alternate several optimizers step by step (``dgm.adversarial.gan.train_gan``,
``dgm.latent.factor_vae.train_factor_vae``) write their updates out themselves and
share the rest — resume, interval means, checkpoints, time budget — through
:class:`StepRun`.
"""

from __future__ import annotations

import math
import pickle
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from dgm.profile import progress_enabled

Batch = Tensor | tuple[Tensor, ...]
LossFn = Callable[[nn.Module, Batch], dict[str, Tensor]]


class StepHook(Protocol):
    """Called after every optimizer step with the model and the number of steps done so far (from 1)."""

    def __call__(self, model: nn.Module, step: int) -> None: ...


class EMA:
    r"""The exponential moving average of a model's weights, updated by a hook after every step.

    $\theta_{\mathrm{EMA}} \leftarrow \mathrm{decay}\,\theta_{\mathrm{EMA}} + (1 - \mathrm{decay})\,\theta$,
    starting from a copy of the weights at the first step (``torch.optim.swa_utils.AveragedModel``).
    Sample from :attr:`model`, not from the trained network: DDPM's samples come from these weights.

    With ``warmup=True`` the decay of an update that follows ``n`` earlier ones is
    $\min\bigl(\mathrm{decay}, \tfrac{1 + n}{10 + n}\bigr)$ (diffusers' ``EMAModel`` without
    ``use_ema_warmup``): the average forgets the first weights quickly, so a short
    run's EMA is usable (with decay 0.999 the warm-up ends at the 8,991st update).
    Off by default (the average is then exactly the plain one above).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, *, warmup: bool = False) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must lie in (0, 1), got {decay}")
        self.decay, self.warmup = decay, warmup
        self.updates = 0  # updates so far, counted in Python: reading the averaged model's counter waits for a GPU
        average = self._warmed_up if warmup else get_ema_multi_avg_fn(decay)
        self.averaged = AveragedModel(model, multi_avg_fn=average, use_buffers=True)

    @property
    def model(self) -> nn.Module:
        """The averaged copy of the network (same class, same forward)."""
        return self.averaged.module

    @property
    def settings(self) -> dict[str, Any]:
        """What decides the average (recorded in a checkpoint, so a resume with another decay is refused)."""
        return {"decay": self.decay, "warmup": self.warmup}

    def current_decay(self) -> float:
        """The decay the next update uses (after the first, which copies the weights)."""
        if not self.warmup:
            return self.decay
        # $\min(d, (1 + n) / (10 + n))$, n = the updates before this one
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    def _warmed_up(self, averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        get_ema_multi_avg_fn(self.current_decay())(averaged, current, num_averaged)

    def __call__(self, model: nn.Module, step: int) -> None:
        self.averaged.update_parameters(model)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaged.load_state_dict(state)
        self.updates = int(state["n_averaged"])  # read once, at load


def adam(model: nn.Module, lr: float, **options: Any) -> torch.optim.Adam:
    """Adam with the fastest exact implementation for where the weights live: fused on CUDA, foreach elsewhere.

    ``foreach`` gives the same numbers as the plain loop on a CPU; ``fused``
    (one kernel for all parameters) is the fast path on a GPU.
    """
    parameters = list(model.parameters())
    if all(p.is_cuda for p in parameters):
        return torch.optim.Adam(parameters, lr=lr, fused=True, **options)
    return torch.optim.Adam(parameters, lr=lr, foreach=True, **options)


def shuffled_batches(size: int, batch_size: int, seed: int, device: torch.device) -> Iterator[Tensor]:
    """Row indices ``(batch_size,)`` of one epoch in a seeded random order, on ``device`` (the last batch may be short).

    The order depends only on ``seed``, so a resumed epoch sees the same batches
    on any device; the permutation is drawn once per epoch and moved in one copy.
    """
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed)).to(device)
    yield from order.split(batch_size)


def rng_state() -> dict[str, Any]:
    """Every random state a run draws from: the CPU generator and, where present, each CUDA device's."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any] | Tensor) -> None:
    """Restore :func:`rng_state` (or a bare CPU state from a checkpoint written before CUDA states were saved)."""
    if isinstance(state, Tensor):
        torch.set_rng_state(state)
        return
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read: damaged on disk, or written by something else."""


class CheckpointWarning(UserWarning):
    """A checkpoint resumed without every check: written before checkpoints recorded their settings."""


def _plain(value: object) -> object:
    """A setting as a checkpoint stores it: plain Python values that ``torch.load(weights_only=True)`` reads."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return repr(value)


def _fields(prefix: str, settings: object) -> dict[str, object]:
    return {f"{prefix}.{f.name}": _plain(getattr(settings, f.name)) for f in fields(settings)}


def run_settings(settings: Any, model: nn.Module, hooks: Sequence[StepHook] = ()) -> dict[str, object]:
    """Every setting a checkpoint records, by name: what decides the numbers a run computes (and how long it runs).

    The training settings (``"TrainSettings.lr"``), the ``settings`` dataclass of
    each module that has one (``"GANSettings.gradient_penalty"``; a submodule's
    with its name in front, ``"vae: VAESettings.latent_dim"``) and each hook's
    ``settings`` (``"EMA[0].decay"``). What a loss function or a schedule built
    outside the settings does is not seen here: keep it with the checkpoint yourself.
    """
    record = _fields(type(settings).__name__, settings)
    for path, module in model.named_modules():
        own = module.__dict__.get("settings")  # an attribute, not a submodule or parameter
        if is_dataclass(own) and not isinstance(own, type):
            record |= _fields((f"{path}: " if path else "") + type(own).__name__, own)
    for index, hook in enumerate(hooks):
        for name, value in getattr(hook, "settings", {}).items():
            record[f"{type(hook).__name__}[{index}].{name}"] = _plain(value)
    return record


def check_settings(
    stored: Mapping[str, object] | None,
    current: Mapping[str, object],
    free: Sequence[str],
    path: Path,
    *,
    owner: str,
    kind: str = "model",
) -> None:
    """Refuse to resume the checkpoint at ``path`` if its recorded settings differ from this run's.

    ``free`` names the fields of the training settings (``owner``, e.g. ``"TrainSettings"``)
    that may change on resume. A checkpoint without recorded settings (written before they
    were recorded) is resumed with a :class:`CheckpointWarning`, as are settings recorded on
    one side only (a field added to a settings class since), which are not compared.
    """
    if stored is None:
        warnings.warn(
            f"the checkpoint {path} was written before checkpoints recorded their settings, so nothing can tell "
            "whether it was made with this run's settings: it is resumed as it is. If its settings were others "
            f"(learning rate, seed, sizes, ...), delete it or point {owner}.checkpoint elsewhere to start afresh.",
            CheckpointWarning,
            stacklevel=3,
        )
        return
    free_names = {f"{owner}.{name}" for name in free}
    differing = [name for name in current if name in stored and name not in free_names and stored[name] != current[name]]
    if differing:
        changes = "; ".join(f"{name}: {stored[name]!r} in the checkpoint, {current[name]!r} now" for name in differing)
        raise CheckpointError(
            f"the checkpoint {path} was written by a different {kind} run, with other settings ({changes}). "
            f"To resume it, use its settings; to train with these, delete it or point {owner}.checkpoint elsewhere. "
            f"A resumed run may change only {', '.join(free)}."
        )
    one_sided = sorted((set(stored) ^ set(current)) - free_names)
    if one_sided:
        warnings.warn(
            f"the checkpoint {path} and this run record different settings ({', '.join(one_sided)}): a settings class "
            "changed since it was written; those are not compared",
            CheckpointWarning,
            stacklevel=3,
        )


class RunningSums:
    """Weighted sums of a loop's scalar terms, kept on their device and read back once, by :meth:`means`.

    Each step adds one stacked row (no read-back, so no wait for a GPU); a
    checkpoint stores the sums so far, so a resumed interval continues them.
    Terms that are not scalars (e.g. codes returned for a second loss) are not logged.
    """

    def __init__(self) -> None:
        self.names: list[str] | None = None
        self.rows: list[Tensor] = []
        self.weights: list[float] = []

    def add(self, terms: dict[str, Tensor], weight: float = 1.0) -> None:
        if self.names is None:
            self.names = [name for name, value in terms.items() if value.dim() == 0]
        self.rows.append(torch.stack([terms[name].detach() for name in self.names]))  # (terms,)
        self.weights.append(weight)

    def totals(self) -> Tensor:
        """``(terms,)`` float64: each term's weighted sum."""
        rows = torch.stack(self.rows).double()  # (steps, terms)
        weights = torch.tensor(self.weights, dtype=torch.float64, device=rows.device)
        return weights @ rows

    def means(self, count: float) -> dict[str, float]:
        """Each term's sum divided by ``count``: the one read-back of the interval."""
        if not self.rows:
            return {}
        return dict(zip(self.names or [], (self.totals() / count).tolist()))

    def state_dict(self) -> dict[str, Any]:
        return {"names": self.names or [], "totals": self.totals().cpu() if self.rows else torch.zeros(0)}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.names, self.rows, self.weights = None, [], []
        if state["names"]:
            self.names = list(state["names"])
            self.rows, self.weights = [state["totals"].to(device)], [1.0]


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
    amp: bool = False  # float16 autocast with a gradient scaler: CUDA only

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"epochs and batch_size must be positive and lr > 0, got {self}")

    def free_on_resume(self) -> tuple[str, ...]:
        """The fields a resumed run may change: how many epochs in all, the time budget, the checkpoint's path, the bar.

        Every other field must match the checkpoint's. (A schedule over ``epochs`` that the caller sets with
        ``on_epoch`` is the caller's to keep: it is not a field here.)
        """
        return ("epochs", "time_budget_s", "checkpoint", "progress")


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

    def annotate(self, scores: dict[str, float]) -> None:
        """Add ``scores`` (e.g. a callback's evaluation) to the record just made; they are checkpointed with it.

        A name must not be one the loop logs, and must be given at every record or at none.
        """
        for name, value in scores.items():
            series = self.terms.setdefault(name, [])
            if len(series) == self.epochs:
                raise ValueError(f"{name!r} is already recorded for this interval (a logged term?): pick another name")
            if len(series) != self.epochs - 1:
                raise ValueError(f"{name!r} was given at some records but not at others")
            series.append(float(value))


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically: an interrupted save leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    torch.save(state, partial)
    partial.replace(path)


def load_checkpoint(path: Path) -> dict:
    """A checkpoint written by :func:`fit`, loaded safely (``weights_only=True``).

    A file that cannot be read (cut short by a full disk, overwritten, not a
    checkpoint) raises :class:`CheckpointError` naming the file and how to start afresh.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (EOFError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as error:
        raise CheckpointError(
            f"the checkpoint {path} is damaged and cannot be read ({type(error).__name__}: {error}); "
            "delete it to start the run afresh, or point the settings' checkpoint elsewhere"
        ) from error


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
    hooks: Sequence[StepHook] = (),
) -> History:
    """Train ``model`` on ``data`` (``(N, ...)``, on any device) by minimising ``loss_fn(...)["loss"]``.

    ``data`` may also be a tuple of tensors with the same first dimension
    (images and labels); each batch is then the tuple of their rows. The data is
    moved to the model's device once, at the start.

    Args:
        transform: applied to each batch on the model's device (e.g. dynamic binarisation).
        optimizer: defaults to :func:`adam` with ``settings.lr``.
        on_epoch: called with the epoch's index (from 0) before each epoch, also
            after a resume — e.g. to set a KL weight that warms up over epochs.
        hooks: called after every optimizer step (:class:`StepHook`), e.g. :class:`EMA`.

    Returns the history of all epochs, including those of a resumed run.
    On ``KeyboardInterrupt`` the last finished epoch is already saved; running
    the same call again resumes there, with the weights, optimizer, hooks and
    every random state (CPU and CUDA) of that moment.
    """
    device = next(model.parameters()).device
    if settings.amp and device.type != "cuda":
        raise ValueError(f"amp=True needs the model on a CUDA device, but it is on {device}; set amp=False")
    optimizer = optimizer or adam(model, settings.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=settings.amp)
    history = History()
    start_epoch = 0
    recorded = run_settings(settings, model, hooks)
    if settings.checkpoint is not None and settings.checkpoint.exists():
        state = load_checkpoint(settings.checkpoint)
        check_hooks(hooks, state.get("hooks", []), settings.checkpoint)  # first: the settings name each hook's
        check_settings(state.get("settings"), recorded, settings.free_on_resume(), settings.checkpoint,
                       owner=type(settings).__name__)
        restore_weights(model, state["model"], settings.checkpoint, kind="model", settings="TrainSettings")
        optimizer.load_state_dict(state["optimizer"])
        restore_hooks(hooks, state.get("hooks", []), settings.checkpoint)
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        history = History(**state["history"])
        set_rng_state(state["rng"])
        start_epoch = history.epochs
        if history.stopped_by_budget:
            print(f"loaded {settings.checkpoint}: that run stopped at its time budget after epoch {start_epoch} "
                  "(delete the file to train afresh)")
        else:
            print(f"resumed from {settings.checkpoint} after epoch {start_epoch}")

    columns = data if isinstance(data, tuple) else (data,)
    size = len(columns[0])
    if any(len(column) != size for column in columns):
        raise ValueError(f"the tensors in data must have the same length, got {[len(c) for c in columns]}")
    columns = tuple(column.to(device) for column in columns)
    batches = math.ceil(size / settings.batch_size)
    step = start_epoch * batches
    last_epoch = start_epoch if history.stopped_by_budget else settings.epochs  # a budget-stopped run is finished
    remaining = max(last_epoch - start_epoch, 0)
    started = time.time()
    bar = tqdm(total=remaining * batches, disable=not settings.progress or remaining == 0, desc="training")
    autocast = torch.autocast("cuda", dtype=torch.float16) if settings.amp else nullcontext()
    model.train()
    for epoch in range(start_epoch, last_epoch):
        epoch_start = time.time()
        if on_epoch is not None:
            on_epoch(epoch)
        sums = RunningSums()
        for rows in shuffled_batches(size, settings.batch_size, settings.seed * 100_003 + epoch, device):
            batch = tuple(column[rows] for column in columns)
            batch = batch if isinstance(data, tuple) else batch[0]
            if transform is not None:
                batch = transform(batch)
            with autocast:
                terms = loss_fn(model, batch)
            optimizer.zero_grad(set_to_none=True)
            if settings.amp:
                scaler.scale(terms["loss"]).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                terms["loss"].backward()
                optimizer.step()
            step += 1
            for hook in hooks:
                hook(model, step)
            sums.add(terms, len(rows))
            bar.update()
        means = sums.means(size)  # the epoch's one read-back
        history.record(means, time.time() - epoch_start)
        bar.set_postfix(epoch=epoch + 1, loss=f"{means['loss']:.2f}")
        # the budget's verdict is saved with the epoch, so running the same call again loads the run as it ended
        history.stopped_by_budget = settings.time_budget_s is not None and time.time() - started > settings.time_budget_s
        if settings.checkpoint is not None:
            save_checkpoint(
                settings.checkpoint,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "hooks": hook_states(hooks),
                    "scaler": scaler.state_dict(),
                    "history": asdict(history),
                    "rng": rng_state(),
                    "settings": recorded,
                },
            )
        if history.stopped_by_budget:
            print(f"stopped after epoch {epoch + 1}: time budget of {settings.time_budget_s:.0f} s reached")
            break
    bar.close()
    model.eval()
    return history


def hook_states(hooks: Sequence[StepHook]) -> list[dict[str, Any] | None]:
    """The state of each hook that has one (``state_dict``), in order; ``None`` for a stateless hook."""
    return [hook.state_dict() if hasattr(hook, "state_dict") else None for hook in hooks]


def check_hooks(hooks: Sequence[StepHook], states: list[dict[str, Any] | None], path: Path) -> None:
    """Say plainly if the hooks given are not those whose :func:`hook_states` the checkpoint at ``path`` holds."""
    if len(states) != len(hooks) or any((state is None) == hasattr(hook, "load_state_dict") for hook, state in zip(hooks, states)):
        raise CheckpointError(
            f"the checkpoint {path} was written with other step hooks ({len(states)} saved, {len(hooks)} given); "
            "pass the same hooks (e.g. the same EMA) to resume, or delete it to start afresh"
        )


def restore_hooks(hooks: Sequence[StepHook], states: list[dict[str, Any] | None], path: Path) -> None:
    """Load :func:`hook_states` back into the same hooks, or say plainly that they differ."""
    check_hooks(hooks, states, path)
    for hook, state in zip(hooks, states):
        if state is not None:
            hook.load_state_dict(state)


@dataclass
class StepSettings:
    """What every step-based loop needs (``train_gan``, ``train_factor_vae`` extend it with their own fields).

    ``log_every`` steps make one record of the history; a checkpoint is saved every
    ``checkpoint_every`` steps and at the end; ``time_budget_s`` stops the run (after saving).
    """

    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    seed: int = 0
    log_every: int = 100
    checkpoint: Path | None = None
    checkpoint_every: int = 500
    time_budget_s: float | None = None
    progress: bool = field(default_factory=progress_enabled)

    def __post_init__(self) -> None:
        if min(self.steps, self.batch_size, self.log_every, self.checkpoint_every) < 1 or self.lr <= 0:
            raise ValueError(f"steps, batch_size, log_every, checkpoint_every and lr must be positive, got {self}")

    def free_on_resume(self) -> tuple[str, ...]:
        """The fields a resumed run may change: how many steps in all, how often it saves, its time budget, the
        checkpoint's path and the bar. ``steps`` is fixed where a learning-rate schedule runs over them
        (an ``lr_schedule`` field other than ``"constant"``: the rate at a step depends on the total)."""
        free = ("checkpoint_every", "time_budget_s", "checkpoint", "progress")
        return free if getattr(self, "lr_schedule", "constant") != "constant" else ("steps", *free)


class StepRun:
    """The bookkeeping of a step-based loop with several optimizers (``train_gan``, ``train_factor_vae``).

    The loop itself — which network steps when — stays in the caller; this
    object reads its :class:`StepSettings`, resumes from ``settings.checkpoint`` (weights, optimizers, history, the running
    sums of the current logging interval, every random state, the step and
    :attr:`extra`), averages the logged terms over each ``log_every`` steps,
    saves every ``checkpoint_every`` steps and at the end, and stops the run
    when ``time_budget_s`` is spent (saving first). ``optimizers`` maps the
    names they are stored under in the checkpoint to the optimizers.

    The checkpoint records the run's settings (:func:`run_settings`: ``settings`` and the
    model's own, e.g. a GAN's λ and scale); a checkpoint written with others is refused
    (:func:`check_settings`), except for the fields of ``settings.free_on_resume()``.

    :attr:`extra` is a dict the caller may fill with plain values or tensors
    (e.g. a trace of mode coverage); it is saved and restored with the rest.
    The logged terms are summed on their device and read back only at the end of
    each logging interval.
    """

    def __init__(
        self, model: nn.Module, optimizers: dict[str, torch.optim.Optimizer], settings: StepSettings, *, kind: str
    ) -> None:
        steps, log_every, checkpoint = settings.steps, settings.log_every, settings.checkpoint
        checkpoint_every, time_budget_s, progress = settings.checkpoint_every, settings.time_budget_s, settings.progress
        self.model, self.optimizers = model, optimizers
        self.steps, self.log_every, self.checkpoint = steps, log_every, checkpoint
        self.checkpoint_every, self.time_budget_s = checkpoint_every, time_budget_s
        self.history, self.start = History(), 0
        self.sums = RunningSums()
        self.extra: dict[str, Any] = {}
        self.settings = run_settings(settings, model)
        if checkpoint is not None and checkpoint.exists():
            state = load_checkpoint(checkpoint)
            check_settings(state.get("settings"), self.settings, settings.free_on_resume(), checkpoint,
                           owner=type(settings).__name__, kind=kind)
            restore_weights(model, state["model"], checkpoint, kind=kind, settings=type(settings).__name__)
            for name, optimizer in optimizers.items():
                optimizer.load_state_dict(state[name])
            self.history = History(**state["history"])
            set_rng_state(state["rng"])
            self.start = state["step"]
            if "sums" in state:
                self.sums.load_state_dict(state["sums"], next(model.parameters()).device)
            self.extra = state.get("extra", {})
            print(f"resumed from {checkpoint} at step {self.start}")
        self.started = self.interval_start = time.time()
        self.bar = tqdm(total=steps, initial=self.start, disable=not progress, desc="training")

    def save(self, step: int) -> None:
        state = {"model": self.model.state_dict(), **{name: opt.state_dict() for name, opt in self.optimizers.items()},
                 "history": asdict(self.history), "rng": rng_state(), "step": step,
                 "sums": self.sums.state_dict(), "extra": self.extra, "settings": self.settings}
        save_checkpoint(self.checkpoint, state)

    def log(self, done: int, logged: dict[str, Tensor], postfix: tuple[str, ...]) -> bool:
        """Add step ``done``'s terms; at the end of an interval record their means and return True."""
        self.sums.add(logged)
        self.bar.update()
        if done % self.log_every and done != self.steps:
            return False
        count = self.log_every if done % self.log_every == 0 else done % self.log_every
        self.history.record(self.sums.means(count), time.time() - self.interval_start)
        self.bar.set_postfix({name: f"{self.history.terms[name][-1]:.3f}" for name in postfix})
        self.sums, self.interval_start = RunningSums(), time.time()
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
