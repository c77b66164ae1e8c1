"""DiffAugment's transformations: shapes, ranges, reproducibility under a seed, and gradients through them."""

import pytest
import torch

from dgm.adversarial.augment import AUGMENTATIONS, AugmentSettings, color, cutout, diff_augment, translation


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("shape", [(5, 1, 28, 28), (3, 3, 8, 12)])
@pytest.mark.parametrize("policy", [("color",), ("translation",), ("cutout",), AUGMENTATIONS])
def test_shapes_and_dtypes_are_kept(shape, policy):
    for dtype in (torch.float32, torch.float64):
        x = torch.rand(shape, dtype=dtype)
        y = diff_augment(x, AugmentSettings(policy=policy), seeded())
        assert y.shape == x.shape and y.dtype == dtype


def test_brightness_and_contrast_stay_in_their_ranges():
    # a constant image: contrast and saturation leave it alone, brightness moves it by b ~ U(-1/2, 1/2)
    flat = torch.full((2000, 1, 4, 4), 0.3)
    moved = color(flat, seeded())
    per_image = moved.view(2000, -1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image), atol=1e-6)  # still constant
    shift = per_image[:, 0] - 0.3
    assert shift.min() >= -0.5 - 1e-6 and shift.max() <= 0.5 + 1e-6
    assert shift.min() < -0.45 and shift.max() > 0.45 and abs(shift.mean()) < 0.03  # the whole range, centred
    # one channel: the deviation from the image's mean is scaled by c ~ U(1/2, 3/2), whatever the brightness
    x = torch.rand(2000, 1, 6, 6)
    y = color(x, seeded(1))
    ratio = (y - y.mean((1, 2, 3), keepdim=True)).std((1, 2, 3)) / (x - x.mean((1, 2, 3), keepdim=True)).std((1, 2, 3))
    assert ratio.min() >= 0.5 - 1e-4 and ratio.max() <= 1.5 + 1e-4
    assert ratio.min() < 0.55 and ratio.max() > 1.45


def test_saturation_scales_the_spread_across_channels():
    # grey pixels (equal channels) stay grey; coloured ones have their spread across channels scaled by s·c,
    # s ~ U(0, 2) and c ~ U(1/2, 3/2), so by at most 3 and down to 0
    grey = torch.rand(500, 1, 5, 5).expand(500, 3, 5, 5)
    out = color(grey, seeded())
    assert torch.allclose(out, out[:, :1].expand_as(out), atol=1e-6)
    x = torch.rand(2000, 3, 5, 5)
    spread = lambda images: (images - images.mean(1, keepdim=True)).norm(dim=1).mean((1, 2))
    ratio = spread(color(x, seeded(2))) / spread(x)
    assert ratio.min() >= 0 and ratio.max() <= 3 + 1e-4
    assert ratio.min() < 0.05 and ratio.max() > 2.2


def test_translation_moves_a_pixel_by_at_most_the_reach_and_fills_with_zeros():
    x = torch.zeros(3000, 1, 28, 28)
    x[:, 0, 14, 14] = 1.0  # one bright pixel in the middle; 28 · 1/8 rounds to a reach of 4 pixels
    y = translation(x, seeded(), ratio=0.125)
    assert torch.equal(y.sum((1, 2, 3)), torch.ones(3000))  # moved, not blurred or lost (it stays inside)
    assert set(y.unique().tolist()) == {0.0, 1.0}
    where = y[:, 0].flatten(1).argmax(1)
    rows, cols = where // 28 - 14, where % 28 - 14
    assert rows.abs().max() == 4 and cols.abs().max() == 4
    assert len(set(zip(rows.tolist(), cols.tolist()))) == 81  # every shift in {-4..4}² occurs
    # a bright border shifted inwards leaves zeros behind
    full = translation(torch.ones(2000, 1, 28, 28), seeded(3))
    shifted = (full == 0).flatten(1).any(1)
    assert 0 < shifted.float().mean() < 1  # only an image shifted by (0, 0) keeps all its pixels (1 in 81)


def test_cutout_zeroes_one_square_cut_off_at_the_border():
    x = torch.ones(3000, 1, 28, 28)
    y = cutout(x, seeded(), ratio=0.5)
    holes = y[:, 0] == 0  # (N, 28, 28)
    rows_hit, cols_hit = holes.any(2), holes.any(1)  # (N, 28) each
    heights, widths = rows_hit.sum(1), cols_hit.sum(1)
    # the zeros are exactly the rectangle of the rows and columns they touch: one square, cut at the border
    assert torch.equal(holes, rows_hit[:, :, None] & cols_hit[:, None, :])
    assert heights.max() == 14 and widths.max() == 14 and heights.min() >= 7 and widths.min() >= 7
    assert torch.equal(holes.sum((1, 2)), heights * widths)
    assert set(y.unique().tolist()) == {0.0, 1.0}  # the rest untouched


def test_the_same_seed_gives_the_same_augmentation_and_the_global_stream_is_untouched():
    x = torch.rand(16, 1, 28, 28)
    settings = AugmentSettings()
    state = torch.get_rng_state()
    first, again = diff_augment(x, settings, seeded(5)), diff_augment(x, settings, seeded(5))
    assert torch.equal(first, again)
    assert not torch.equal(first, diff_augment(x, settings, seeded(6)))
    generator = seeded(5)
    assert not torch.equal(diff_augment(x, settings, generator), diff_augment(x, settings, generator))  # fresh draws
    assert torch.equal(torch.get_rng_state(), state)


def test_gradients_flow_through_every_augmentation():
    x = torch.rand(4, 2, 7, 9, dtype=torch.float64, requires_grad=True)
    for policy in [("color",), ("translation",), ("cutout",), AUGMENTATIONS]:
        settings = AugmentSettings(policy=policy)
        # the same draw at every evaluation, so gradcheck sees one fixed (piecewise linear) map
        assert torch.autograd.gradcheck(lambda images, settings=settings: diff_augment(images, settings, seeded(7)), (x,))
    (grad,) = torch.autograd.grad(diff_augment(x, AugmentSettings(), seeded(7)).sum(), x)
    assert grad.abs().sum() > 0  # the gradient reaches the input, it is not cut off


def test_bad_input_fails_with_a_message():
    with pytest.raises(ValueError, match="policy"):
        AugmentSettings(policy=("color", "rotation"))
    with pytest.raises(ValueError, match="policy"):
        AugmentSettings(policy=())
    with pytest.raises(ValueError, match="cutout_ratio"):
        AugmentSettings(cutout_ratio=0.0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        diff_augment(torch.rand(4, 784), AugmentSettings(), seeded())
