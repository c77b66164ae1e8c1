"""dSprites: every factor combination is addressable, and each factor changes the image the way it says."""

import math

import pytest
import torch

from dgm.data import dsprites


def test_the_grid_has_the_original_factor_sizes():
    assert dsprites.FACTOR_SIZES == (3, 6, 40, 32, 32)
    assert dsprites.COUNT == 737_280 == math.prod(dsprites.FACTOR_SIZES)


def test_indices_and_factors_are_inverse_and_the_last_factor_varies_fastest():
    index = torch.cat([torch.tensor([0, 1, 31, 32, dsprites.COUNT - 1]), torch.randint(dsprites.COUNT, (1000,))])
    factors = dsprites.factors_of(index)
    assert torch.equal(dsprites.index_of(factors), index)
    assert factors[:4].tolist() == [[0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 31], [0, 0, 0, 1, 0]]
    assert factors[4].tolist() == [2, 5, 39, 31, 31]


def test_images_are_binary_and_every_sprite_stays_inside_the_frame():
    corners = [(s, 5, o, x, y) for s in range(3) for o in range(40) for x in (0, 31) for y in (0, 31)]
    images = dsprites.render(torch.tensor(corners))
    assert images.shape == (len(corners), 1, 64, 64) and images.dtype == torch.float32
    assert set(images.unique().tolist()) == {0.0, 1.0}
    border = torch.cat([images[..., 0, :], images[..., -1, :], images[..., :, 0], images[..., :, -1]], dim=-1)
    assert border.sum() == 0
    assert (images.sum(dim=(1, 2, 3)) > 30).all()


def test_area_grows_with_the_square_of_the_scale():
    # averaged over the 32×32 positions, which fall at every phase of the pixel grid, the pixel count is the area
    def mean_area(shape, scale):
        grid = torch.tensor([[shape, scale, 3, x, y] for x in range(32) for y in range(32)])
        return float(dsprites.render(grid).sum(dim=(1, 2, 3)).mean())

    for shape in range(3):
        assert mean_area(shape, 5) / mean_area(shape, 0) == pytest.approx(4.0, rel=0.03)
    # the square's side is 1.5 radii: (1.5 · 0.15 · 64)² pixels at scale 1
    assert mean_area(0, 5) == pytest.approx((1.5 * dsprites.RADIUS * 64) ** 2, rel=0.02)


def centroid(image: torch.Tensor) -> tuple[float, float]:
    rows, cols = image[0].nonzero(as_tuple=True)
    return float(rows.float().mean()), float(cols.float().mean())


def test_x_moves_the_sprite_right_and_y_moves_it_down():
    along_x = [centroid(im) for im in dsprites.render(torch.tensor([[1, 3, 7, x, 10] for x in range(32)]))]
    along_y = [centroid(im) for im in dsprites.render(torch.tensor([[1, 3, 7, 10, y] for y in range(32)]))]
    assert all(b[1] > a[1] for a, b in zip(along_x, along_x[1:]))
    assert all(b[0] > a[0] for a, b in zip(along_y, along_y[1:]))
    assert along_x[-1][1] - along_x[0][1] == pytest.approx(64 * (1 - 2 * dsprites.MARGIN), abs=1.0)


def test_rotation_turns_the_ellipse_and_tells_a_heart_from_its_upside_down():
    flat, upright = dsprites.render(torch.tensor([[1, 5, 0, 16, 16], [1, 5, 10, 16, 16]]))
    rows, cols = flat[0].nonzero(as_tuple=True)
    assert cols.max() - cols.min() > 1.8 * (rows.max() - rows.min())
    rows, cols = upright[0].nonzero(as_tuple=True)
    assert rows.max() - rows.min() > 1.8 * (cols.max() - cols.min())
    heart, turned = dsprites.render(torch.tensor([[2, 5, 0, 16, 16], [2, 5, 20, 16, 16]]))
    assert (heart != turned).float().mean() > 0.01


def test_a_quarter_turn_leaves_the_square_nearly_unchanged():
    square, turned = dsprites.render(torch.tensor([[0, 5, 0, 16, 16], [0, 5, 10, 16, 16]]))
    overlap = (square * turned).sum() / torch.maximum(square, turned).sum()
    assert overlap > 0.95


def test_the_three_shapes_differ():
    images = dsprites.render(torch.tensor([[s, 5, 3, 16, 16] for s in range(3)]))
    for a in range(3):
        for b in range(a + 1, 3):
            assert (images[a] != images[b]).float().mean() > 0.01


def test_random_images_repeat_with_a_seed_and_match_their_factors():
    a, factors = dsprites.random_images(16, torch.Generator().manual_seed(3))
    b, _ = dsprites.random_images(16, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and torch.equal(a, dsprites.render(factors))
    assert torch.equal(dsprites.render_indices(dsprites.index_of(factors)), a)


@pytest.mark.parametrize(
    "bad", [torch.zeros(2, 5), torch.zeros(2, 4, dtype=torch.long), torch.tensor([[3, 0, 0, 0, 0]]), torch.tensor([[0, 0, 40, 0, 0]])]
)
def test_malformed_factors_are_refused_with_a_message(bad):
    with pytest.raises(ValueError, match="factor"):
        dsprites.render(bad)


def test_indices_out_of_range_are_refused():
    with pytest.raises(ValueError, match="0..737279"):
        dsprites.factors_of(torch.tensor([dsprites.COUNT]))
