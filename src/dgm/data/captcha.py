r"""CAPTCHAs rendered on the fly, seeded (chapter "Variational diffusion models", notebooks/captcha_diffusion).

The images come from the ``captcha`` package (``captcha.image.ImageCaptcha``,
version 0.7, which ships its font, DroidSansMono): each character is drawn in
a random font size, shifted, rotated by up to ±30° and warped, a random space
may precede it, and dots and an arc in the text's colour are drawn over the
whole. Nothing is downloaded or stored.

What this module adds:

* **Seeding.** ``captcha`` 0.7 draws every random choice from the standard
  ``secrets`` module, which cannot be seeded. :meth:`CaptchaSpec.render` swaps
  the module name ``secrets`` inside ``captcha.image`` for a seeded
  :class:`random.Random` while it draws (:func:`seeded_captcha`), one stream
  per image made from ``(seed, index)``: the same texts and seed give the same
  pixels, and the first ``k`` images of a batch do not depend on what follows.
  (``tests/test_captcha.py`` checks this, so a ``captcha`` release that stops
  drawing from ``secrets`` fails the tests instead of silently losing
  reproducibility.)
* **Size and grey levels.** An image is drawn at ``captcha``'s own size,
  160 × 60 (its fonts, 42–56 px, are made for it), made grey, reduced by area
  averaging to 24 × 64 — the same 8 : 3 aspect, so nothing is squeezed — and
  inverted so the **text is bright on black**, like MNIST. Its grey levels are
  then stretched to fill [0, 1]: ``captcha`` picks a random text and
  background colour per image, which says nothing about the text, so after the
  stretch the background is 0 and the strokes near 1. At 24 × 64 the four
  digits are still as legible as at full size (look at a grid of them); both
  sides divide by 4 (and 8), as a U-Net with two or three halvings needs, and
  1,536 pixels cost a diffusion model about twice an MNIST digit.
* **A held-out set of texts.** :meth:`CaptchaSpec.is_held_out` splits the
  text space once and for all by a hash of the text (about 10 % held out, the
  same on every machine); :meth:`CaptchaSpec.random_texts` draws training
  texts only from the rest, so a conditional model evaluated on held-out texts
  has never seen those strings.
* **Codes.** :meth:`CaptchaSpec.encode` turns texts into indices into the
  alphabet ``(N, L)``, :meth:`CaptchaSpec.decode` back.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import torch
from torch import Tensor

Split = Literal["train", "held_out"]

HOLD_OUT_SALT = "dgm captcha held-out texts v1"  # changing it changes which texts are held out


class SeededSecrets(random.Random):
    """The three functions ``captcha.image`` calls on ``secrets``, drawn from a seeded :class:`random.Random`."""

    def randbelow(self, exclusive_upper_bound: int) -> int:
        if exclusive_upper_bound <= 0:
            raise ValueError("Upper bound must be positive.")  # as secrets.randbelow
        return self.randrange(exclusive_upper_bound)

    def randbits(self, k: int) -> int:
        return self.getrandbits(k)

    # choice(sequence) is random.Random.choice


@contextmanager
def seeded_captcha(source: SeededSecrets) -> Iterator[None]:
    """While inside, ``captcha.image`` draws from ``source`` instead of the unseedable ``secrets`` module."""
    import captcha.image

    original = captcha.image.secrets
    captcha.image.secrets = source
    try:
        yield
    finally:
        captcha.image.secrets = original


@lru_cache(maxsize=4)
def _renderer(width: int, height: int):
    """One ``ImageCaptcha`` per render size (it loads its fonts once)."""
    from captcha.image import ImageCaptcha

    return ImageCaptcha(width=width, height=height)


@dataclass(frozen=True)
class CaptchaSpec:
    """Which CAPTCHAs: the alphabet, the text length, the image size, the held-out share of texts.

    Attributes:
        alphabet: the characters a text is made of, each once (default the ten digits).
        length: characters per text (default 4).
        height, width: the size of the images the models see (default 24 × 64; each divisible by 4).
        render_size: ``(width, height)`` at which ``captcha`` draws before the reduction (default its own 160 × 60).
        held_out_fraction: the share of all texts kept out of training (default 0.1).
    """

    alphabet: str = "0123456789"
    length: int = 4
    height: int = 24
    width: int = 64
    render_size: tuple[int, int] = (160, 60)
    held_out_fraction: float = 0.1

    def __post_init__(self) -> None:
        unique = len(set(self.alphabet)) == len(self.alphabet)
        if not self.alphabet or not unique or any(c.isspace() for c in self.alphabet):
            raise ValueError(f"alphabet must be non-empty characters, each once and no spaces, got {self.alphabet!r}")
        if self.length < 1:
            raise ValueError(f"length must be at least 1, got {self.length}")
        if self.height < 4 or self.width < 4 or self.height % 4 or self.width % 4:
            raise ValueError(
                f"height and width must be positive multiples of 4 (for the U-Net), got {self.height} × {self.width}"
            )
        if not 0.0 < self.held_out_fraction < 1.0:
            raise ValueError(f"held_out_fraction must lie in (0, 1), got {self.held_out_fraction}")

    @property
    def classes(self) -> int:
        """The size of the alphabet, ``K``."""
        return len(self.alphabet)

    # --- texts ---------------------------------------------------------------------------------------------

    def check(self, texts: Sequence[str]) -> list[str]:
        """``texts`` as a list; a ``ValueError`` names the first text of a wrong length or with a foreign character."""
        if isinstance(texts, str):
            raise TypeError(f"pass a list of texts, e.g. [{texts!r}], not one string")
        texts = list(texts)
        allowed = set(self.alphabet)
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"texts must be strings, got {text!r}")
            if len(text) != self.length:
                raise ValueError(f"text {text!r} has {len(text)} characters; this spec's texts have {self.length}")
            foreign = [c for c in text if c not in allowed]
            if foreign:
                raise ValueError(f"text {text!r} has {foreign[0]!r}, which is not in the alphabet {self.alphabet!r}")
        return texts

    def is_held_out(self, text: str) -> bool:
        """Whether ``text`` is held out: its salted SHA-256's first 8 bytes, over 2⁶⁴, are below ``held_out_fraction``."""
        (text,) = self.check([text])
        digest = hashlib.sha256(f"{HOLD_OUT_SALT}\n{text}".encode()).digest()
        return int.from_bytes(digest[:8], "big") < self.held_out_fraction * 2**64

    def all_texts(self, split: Split) -> list[str]:
        """Every text of ``split`` in alphabetical order (only for small text spaces, at most a million texts)."""
        size = self.classes**self.length
        if size > 1_000_000:
            raise ValueError(f"the text space has {size:,} texts; draw from it with random_texts instead")
        held_out = _split_name(split) == "held_out"
        texts = ("".join(chars) for chars in itertools.product(self.alphabet, repeat=self.length))
        return [text for text in texts if self.is_held_out(text) == held_out]

    def random_texts(self, n: int, generator: torch.Generator | None = None, split: Split = "train") -> list[str]:
        """``n`` texts drawn uniformly, with replacement, from the training texts (default) or the held-out ones.

        Uniform texts are drawn with ``torch.randint`` from ``generator`` and those of the other split are rejected.
        """
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        held_out = _split_name(split) == "held_out"
        found: list[str] = []
        while len(found) < n:
            codes = torch.randint(self.classes, (2 * (n - len(found)) + 16, self.length), generator=generator)  # (M, L)
            found += [text for text in self.decode(codes) if self.is_held_out(text) == held_out]
        return found[:n]

    def encode(self, texts: Sequence[str]) -> Tensor:
        """Texts → ``(N, L)`` int64 indices into the alphabet."""
        texts = self.check(texts)
        index = {c: i for i, c in enumerate(self.alphabet)}
        codes = torch.tensor([[index[c] for c in text] for text in texts], dtype=torch.long)
        return codes.reshape(len(texts), self.length)  # (N, L), also for N = 0

    def decode(self, codes: Tensor) -> list[str]:
        """``(N, L)`` (or ``(L,)``) indices into the alphabet → texts."""
        if codes.dim() == 1:
            codes = codes.unsqueeze(0)
        if codes.dim() != 2 or codes.shape[1] != self.length:
            raise ValueError(f"codes must be (N, {self.length}), got {tuple(codes.shape)}")
        if codes.dtype.is_floating_point or (codes.numel() and (codes.min() < 0 or codes.max() >= self.classes)):
            raise ValueError(f"codes must be integers in 0..{self.classes - 1}")
        return ["".join(self.alphabet[i] for i in row) for row in codes.tolist()]

    # --- images --------------------------------------------------------------------------------------------

    def render(self, texts: Sequence[str], seed: int = 0) -> Tensor:
        """Images of ``texts``: ``(N, 1, height, width)`` float32 in [0, 1], text bright on black.

        Image ``i`` draws from its own stream, seeded by ``(seed, i)``, so a call is reproducible
        and the first ``k`` images do not depend on the texts after them.
        """
        from PIL.Image import Resampling

        texts = self.check(texts)
        renderer = _renderer(*self.render_size)
        images = np.empty((len(texts), self.height, self.width), dtype=np.float32)
        for i, text in enumerate(texts):
            with seeded_captcha(SeededSecrets(f"{seed}:{i}")):
                drawn = renderer.generate_image(text)
            grey = drawn.convert("L").resize((self.width, self.height), Resampling.BOX)  # area average
            ink = 255.0 - np.asarray(grey, dtype=np.float32)  # (H, W), text bright
            low, high = ink.min(), ink.max()
            images[i] = (ink - low) / max(high - low, 1.0)  # background 0, strokes near 1
        return torch.from_numpy(images).unsqueeze(1)  # (N, 1, H, W)


def _split_name(split: str) -> str:
    if split not in ("train", "held_out"):
        raise ValueError(f"split must be 'train' or 'held_out', not {split!r}")
    return split
