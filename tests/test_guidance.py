"""Classifier-free guidance (dgm.diffusion.guidance) and the text-conditioned U-Net (dgm.networks)."""

import math

import pytest
import torch

from dgm.diffusion.guidance import drop_condition, guided
from dgm.diffusion.process import GaussianDiffusion
from dgm.diffusion.samplers import DDIMSampler
from dgm.diffusion.schedules import linear_schedule
from dgm.networks import TextConditionedUNet, UNet


def test_drop_condition_replaces_whole_texts_at_the_given_rate():
    tokens = torch.randint(0, 10, (20_000, 4), generator=torch.Generator().manual_seed(0))
    dropped = drop_condition(tokens, 0.2, null_token=10, generator=torch.Generator().manual_seed(1))
    null_rows = (dropped == 10).all(1)
    assert torch.equal(dropped[~null_rows], tokens[~null_rows])  # a row is kept whole or dropped whole
    assert not (dropped == 10)[~null_rows].any()
    rate = null_rows.float().mean().item()
    assert abs(rate - 0.2) < 4 * math.sqrt(0.2 * 0.8 / len(tokens))
    assert torch.equal(drop_condition(tokens, 0.0, 10), tokens)
    assert (drop_condition(tokens, 1.0, 10) == 10).all()
    with pytest.raises(ValueError, match="probability"):
        drop_condition(tokens, 1.5, 10)


class Recorder(torch.nn.Module):
    """A conditional 'network' whose output depends on the text, counting its calls."""

    null_token = 9

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x, t, tokens):
        self.calls += 1
        return x * tokens.float().sum(1).view(-1, *[1] * (x.dim() - 1)) + t.float().view(-1, *[1] * (x.dim() - 1))


def test_guided_is_the_weighted_difference_and_one_call_per_step():
    network = Recorder()
    x, t = torch.randn(5, 3), torch.full((5,), 7)
    tokens = torch.randint(0, 9, (5, 2), generator=torch.Generator().manual_seed(0))
    null = torch.full_like(tokens, 9)
    conditional, unconditional = network(x, t, tokens), network(x, t, null)
    network.calls = 0
    for w in (0.5, 3.0):
        assert torch.allclose(guided(network, tokens, w)(x, t), (1 + w) * conditional - w * unconditional)
    assert network.calls == 2  # one doubled batch per call
    assert torch.equal(guided(network, tokens, 0.0)(x, t), conditional)
    with pytest.raises(ValueError, match="w must be"):
        guided(network, tokens, -1.0)
    with pytest.raises(ValueError, match="texts"):
        guided(network, tokens, 1.0)(x[:3], t[:3])


class TwoClassGaussians(torch.nn.Module):
    r"""The exact $\varepsilon^*(x_t, t, c) = E[\varepsilon \mid x_t, c]$ for $x_0 \mid c \sim N(\mu_c, 1)$ in 1-D, $\mu = \mp 1$,
    and for the equal mixture when $c$ is the null token 2 (responsibility-weighted)."""

    null_token = 2

    def __init__(self, process):
        super().__init__()
        self.alpha_bar = process.schedule.alpha_bar

    def forward(self, x, t, tokens):
        a = self.alpha_bar[t].view(-1, 1).to(x.dtype)
        means = torch.tensor([-1.0, 1.0])  # (2,)
        var = a + (1 - a)  # alpha_bar * 1 + (1 - alpha_bar): the variance of x_t given the class
        eps_given = (1 - a).sqrt() * (x - a.sqrt() * means) / var  # (B, 2): E[eps | x_t, c] per class
        log_lik = -((x - a.sqrt() * means) ** 2) / (2 * var)  # (B, 2)
        responsibility = torch.softmax(log_lik, dim=1)
        unconditional = (responsibility * eps_given).sum(1, keepdim=True)
        c = tokens[:, 0].clamp(max=1)
        conditional = eps_given.gather(1, c.view(-1, 1))
        return torch.where(tokens[:, :1] == self.null_token, unconditional, conditional)


def test_guidance_sharpens_the_class_in_the_direction_the_convention_says():
    """w = 0 samples p(x | c) (about Φ(1) = 0.84 of class 1 on its side); w = 3 pushes samples away from the other class."""
    process = GaussianDiffusion(linear_schedule(1000))
    network = TwoClassGaussians(process)
    n = 4000
    tokens = torch.ones(n, 1, dtype=torch.long)  # class 1: mean +1
    x_T = torch.randn(n, 1, generator=torch.Generator().manual_seed(0))
    sampler = DDIMSampler(process, steps=50, eta=0.0)
    plain = sampler.sample(guided(network, tokens, 0.0), x_T)
    strong = sampler.sample(guided(network, tokens, 3.0), x_T)
    side_plain, side_strong = (plain > 0).float().mean().item(), (strong > 0).float().mean().item()
    assert abs(side_plain - 0.8413) < 0.03  # the conditional model's own distribution N(1, 1)
    assert abs(plain.mean().item() - 1.0) < 0.08 and abs(plain.std().item() - 1.0) < 0.08
    assert side_strong > 0.97 and strong.mean().item() > 1.5  # sharper and further from class 0
    unconditional = sampler.sample(guided(network, torch.full_like(tokens, 2), 0.0), x_T)
    assert abs((unconditional > 0).float().mean().item() - 0.5) < 0.04


def test_text_conditioned_unet_shapes_texts_and_errors():
    torch.manual_seed(0)
    network = TextConditionedUNet(vocabulary=10, length=4, channels=8)
    x, t = torch.randn(3, 1, 16, 48), torch.tensor([1, 500, 1000])
    texts = torch.tensor([[1, 2, 3, 4], [4, 3, 2, 1], [10, 10, 10, 10]])
    torch.nn.init.normal_(network.unet.head[-1].weight)  # the head starts at zero; make the output depend on its input
    out = network(x, t, texts)
    assert out.shape == x.shape
    swapped = network(x, t, texts[[1, 0, 2]])
    assert not torch.allclose(out[:2], swapped[:2])  # the text (and its order) changes the prediction
    assert torch.equal(network(x, t, texts)[2], out[2])
    out.sum().backward()
    assert network.characters.weight.grad is not None and network.positions.grad.abs().sum() > 0
    assert network.null_token == 10
    with pytest.raises(ValueError, match="tokens must lie"):
        network(x, t, torch.full((3, 4), 11))
    with pytest.raises(ValueError, match="integer tensor"):
        network(x, t, texts[:, :3])
    with pytest.raises(ValueError, match="condition must be"):
        UNet(8)(x, t, condition=torch.zeros(3, 5))


def test_unet_without_condition_is_unchanged():
    torch.manual_seed(0)
    net = UNet(8)
    torch.nn.init.normal_(net.head[-1].weight)
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([3, 900])
    zero = torch.zeros(2, 4 * 8)
    assert torch.equal(net(x, t), net(x, t, condition=zero))
