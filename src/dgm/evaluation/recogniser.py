r"""Reading CAPTCHAs: a small CRNN trained with CTC, greedy decoding, and its accuracy (notebooks/captcha_diffusion).

The recogniser judges the text-conditioned diffusion model: it reads each
generated image, and the share read as the requested text is the model's
accuracy. Its accuracy on real renders of held-out texts is the ceiling.

**The network** (a CRNN, Shi, Bai and Yao, 2017): convolutions turn an image
``(N, 1, H, W)`` into a feature map ``(N, C, H/4, W/4)``; each of its ``T = W/4``
columns, height folded into channels, is one time step; a bidirectional GRU reads
the columns left to right and right to left, and a linear layer gives each
column logits over the ``K`` characters and a blank (index ``K``).

**CTC** (Graves et al., 2006) trains it without saying which column holds which
character. A path $\pi \in \{1..K, \text{blank}\}^T$ reads as a text
$\mathcal{B}(\pi)$ by collapsing repeats, then dropping blanks
("1 1 blank 1" → "11"); the loss is
$-\log p(y \mid x) = -\log \sum_{\pi : \mathcal{B}(\pi) = y} \prod_t p_t(\pi_t \mid x)$,
summed over paths by dynamic programming (``torch.nn.functional.ctc_loss``).
**Greedy decoding** reads $\mathcal{B}(\arg\max_k p_t(k))$: the most likely
path, not the most likely text, which is the usual and close approximation.

**Accuracy.** Sequence accuracy: the share of images read exactly. Character
accuracy: position by position over the true text — character ``i`` of the
reading against character ``i`` of the truth; a reading that is too short
counts its missing positions wrong, characters beyond the true length are
ignored (the sequence accuracy already counts such a reading wrong). A dropped
character early in a reading therefore also costs the positions after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.data.captcha import CaptchaSpec
from dgm.training import History, TrainSettings, adam, fit


class CRNN(nn.Module):
    """Three convolution blocks, a bidirectional GRU over the image's columns, logits per column.

    ``(N, 1, H, W)`` in ``[0, 1]`` → ``(N, W/4, K + 1)`` logits; the last class is the CTC blank.
    """

    def __init__(self, alphabet: str, height: int, channels: int = 64, hidden: int = 96) -> None:
        super().__init__()
        if height % 4:
            raise ValueError(f"height must be a multiple of 4, got {height}")
        self.alphabet, self.height = alphabet, height
        self.blank = len(alphabet)

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]

        self.conv = nn.Sequential(
            *block(1, channels // 2), nn.MaxPool2d(2),  # (N, C/2, H/2, W/2)
            *block(channels // 2, channels), nn.MaxPool2d(2),  # (N, C, H/4, W/4)
            *block(channels, channels),  # (N, C, H/4, W/4)
        )
        self.rnn = nn.GRU(channels * height // 4, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, len(alphabet) + 1)

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != 1 or images.shape[2] != self.height:
            raise ValueError(f"images must be (N, 1, {self.height}, W), got {tuple(images.shape)}")
        features = self.conv(images)  # (N, C, H/4, T)
        n, c, h, t = features.shape
        columns = features.permute(0, 3, 1, 2).reshape(n, t, c * h)  # (N, T, C·H/4): one vector per column
        states, _ = self.rnn(columns)  # (N, T, 2·hidden)
        return self.head(states)  # (N, T, K + 1)


def ctc_loss(model: CRNN, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
    """CTC loss of a batch ``(images (B, 1, H, W) in [0, 1], targets (B, L) indices into the alphabet)``, per image.

    The ``loss_fn`` :func:`dgm.training.fit` takes; ``-log p(y | x)`` averaged over the batch.
    """
    images, targets = batch
    logits = model(images)  # (B, T, K + 1)
    log_probs = logits.log_softmax(-1).transpose(0, 1)  # (T, B, K + 1), as ctc_loss wants
    steps, size = log_probs.shape[0], log_probs.shape[1]
    input_lengths = torch.full((size,), steps, dtype=torch.long, device=targets.device)
    target_lengths = torch.full((size,), targets.shape[1], dtype=torch.long, device=targets.device)
    loss = F.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=model.blank, reduction="sum") / size
    return {"loss": loss}


def greedy_decode(logits: Tensor, blank: int) -> list[list[int]]:
    """Best-path CTC decoding of ``(N, T, classes)`` logits: per column the argmax, repeats collapsed, blanks dropped.

    ``[1, 1, blank, 1]`` → ``[1, 1]``; ``[1, 1]`` → ``[1]``. Returns one list of class indices per row.
    """
    if logits.dim() != 3:
        raise ValueError(f"logits must be (N, T, classes), got {tuple(logits.shape)}")
    if not 0 <= blank < logits.shape[2]:
        raise ValueError(f"blank must index one of the {logits.shape[2]} classes, got {blank}")
    readings = []
    for path in logits.argmax(-1).tolist():  # (N, T)
        collapsed = [k for t, k in enumerate(path) if t == 0 or k != path[t - 1]]
        readings.append([k for k in collapsed if k != blank])
    return readings


@torch.no_grad()
def read(model: CRNN, images: Tensor, batch_size: int = 1000) -> list[str]:
    """The text the recogniser reads in each image ``(N, 1, H, W)`` in [0, 1] (any length, possibly empty).

    Reads in eval mode (batch-norm running statistics) and leaves the model in the mode it found it in,
    so it can be called between epochs of a training run.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    texts = []
    for start in range(0, len(images), batch_size):
        logits = model(images[start : start + batch_size].to(device).float()).cpu()
        texts += ["".join(model.alphabet[k] for k in reading) for reading in greedy_decode(logits, model.blank)]
    model.train(was_training)
    return texts


@dataclass(frozen=True)
class ReadingScore:
    """How well readings match the truth: the share read exactly, and the share of characters right by position."""

    sequence: float
    character: float


def score(readings: list[str], truth: list[str]) -> ReadingScore:
    """Sequence and character accuracy of ``readings`` against ``truth`` (wrong lengths: see the module docstring)."""
    if len(readings) != len(truth) or not truth:
        raise ValueError(f"need as many readings as true texts, at least one, got {len(readings)} and {len(truth)}")
    exact = sum(read_ == true for read_, true in zip(readings, truth))
    right = sum(i < len(read_) and read_[i] == c for read_, true in zip(readings, truth) for i, c in enumerate(true))
    return ReadingScore(sequence=exact / len(truth), character=right / sum(len(true) for true in truth))


def accuracy(model: CRNN, images: Tensor, texts: list[str]) -> ReadingScore:
    """Sequence and character accuracy of the recogniser on ``images`` ``(N, 1, H, W)`` of ``texts``."""
    return score(read(model, images), list(texts))


def train_recogniser(
    spec: CaptchaSpec,
    images: Tensor,
    texts: list[str],
    settings: TrainSettings,
    *,
    channels: int = 64,
    hidden: int = 96,
    schedule: Literal["constant", "cosine"] = "constant",
    device: torch.device | str = "cpu",
) -> tuple[CRNN, History]:
    """Train a :class:`CRNN` for ``spec`` with the CTC loss on images ``(N, 1, H, W)`` in [0, 1] of ``texts``.

    Adam with ``settings.lr`` throughout (``schedule="constant"``), or falling along a half cosine set at the
    start of each epoch (``schedule="cosine"``: epoch ``e`` of ``E`` uses ``lr · ½(1 + cos(π e / E))``), so the
    last epochs take small steps. A CRNN with ``channels`` convolution channels and ``hidden`` GRU units a direction.
    """
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be 'constant' or 'cosine', not {schedule!r}")
    if spec.width // 4 < 2 * spec.length:
        raise ValueError(
            f"the CRNN reads {spec.width // 4} columns; CTC needs at least {2 * spec.length} for "
            f"{spec.length} characters with repeats (a blank between them): make the images wider"
        )
    targets = spec.encode(texts)  # (N, L)
    if images.shape[1:] != (1, spec.height, spec.width) or len(images) != len(targets):
        raise ValueError(
            f"images must be (N, 1, {spec.height}, {spec.width}), one per text; "
            f"got {tuple(images.shape)} for {len(targets)} texts"
        )
    torch.manual_seed(settings.seed)
    model = CRNN(spec.alphabet, spec.height, channels, hidden).to(device)
    optimizer = adam(model, settings.lr)

    def cosine_decay(epoch: int) -> None:
        for group in optimizer.param_groups:
            group["lr"] = settings.lr * 0.5 * (1 + math.cos(math.pi * epoch / settings.epochs))

    on_epoch = cosine_decay if schedule == "cosine" else None
    history = fit(model, ctc_loss, (images, targets), settings, optimizer=optimizer, on_epoch=on_epoch)
    return model, history
