"""A checkpoint records its run's settings: a resume with other settings is refused by name; EMA warm-up.

`fit` and `StepRun` used to resume any checkpoint whose weight shapes matched,
even one written with another learning rate, seed, GAN λ or scale. These tests
fail if a differing setting is resumed silently, if a setting that may change on
resume (epochs, steps, the time budget, the path) is refused, or if a checkpoint
written before settings were recorded stops loading.
"""

import functools
import shutil
import warnings

import pytest
import torch
from toy_training import toy_step_loop

from dgm.adversarial.gan import GAN, AdversarialSettings, GANSettings, train_gan
from dgm.data import mnist
from dgm.latent.vae import VAE, VAESettings, vae_loss
from dgm.training import (
    EMA,
    CheckpointError,
    CheckpointWarning,
    StepSettings,
    TrainSettings,
    fit,
    load_checkpoint,
    run_settings,
    save_checkpoint,
)


def small_model() -> VAE:
    torch.manual_seed(0)
    return VAE(VAESettings(latent_dim=4, hidden=(32,)))


def images():
    return mnist.subset("train").images[:200]


def train(checkpoint, epochs=1, hooks=(), **changes):
    model = small_model()
    settings = TrainSettings(epochs=epochs, batch_size=100, checkpoint=checkpoint, progress=False, **changes)
    history = fit(model, vae_loss, images(), settings, transform=mnist.binarized, hooks=hooks)
    return model, history


def straight_and_first_epoch(checkpoint, epochs):
    """The history of an uninterrupted ``epochs``-epoch run, and the first epoch of the same run saved at ``checkpoint``."""
    torch.manual_seed(1)
    _, straight = train(None, epochs=epochs)
    torch.manual_seed(1)
    train(checkpoint, epochs=1)
    return straight


def without_settings(path):
    """Make ``path`` a checkpoint as written before settings were recorded (the recorded runs under notebooks/runs are)."""
    state = load_checkpoint(path)
    del state["settings"]
    save_checkpoint(path, state)


# -- fit ------------------------------------------------------------------------------------------


def test_fit_records_every_setting_and_refuses_a_resume_with_others(tmp_path):
    checkpoint = tmp_path / "run.pt"
    train(checkpoint)
    recorded = load_checkpoint(checkpoint)["settings"]  # weights_only=True reads it
    assert recorded["TrainSettings.lr"] == 1e-3 and recorded["TrainSettings.batch_size"] == 100
    assert recorded["VAESettings.hidden"] == [32] and recorded["VAESettings.latent_dim"] == 4
    for change, named in [({"lr": 2e-3}, r"TrainSettings\.lr: 0\.001 in the checkpoint, 0\.002 now"),
                          ({"seed": 3}, r"TrainSettings\.seed: 0 in the checkpoint, 3 now")]:
        with pytest.raises(CheckpointError, match=named) as refused:
            train(checkpoint, epochs=2, **change)
        message = str(refused.value)
        assert "delete it or point TrainSettings.checkpoint elsewhere" in message
        assert "may change only epochs, time_budget_s, checkpoint, progress" in message
    assert len(load_checkpoint(checkpoint)["history"]["seconds"]) == 1  # nothing was trained on top of it


def test_fit_resumes_with_more_epochs_a_budget_and_a_moved_checkpoint(tmp_path):
    first = tmp_path / "run.pt"
    straight = straight_and_first_epoch(first, epochs=3)
    moved = tmp_path / "elsewhere" / "run.pt"
    moved.parent.mkdir()
    shutil.move(first, moved)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)  # a change that may be made says nothing
        _, resumed = train(moved, epochs=3, time_budget_s=1e6)
    assert resumed.terms == straight.terms


def test_fit_refuses_an_ema_with_another_decay_or_warm_up(tmp_path):
    checkpoint = tmp_path / "run.pt"
    model = small_model()
    fit(model, vae_loss, images(), TrainSettings(epochs=1, batch_size=100, checkpoint=checkpoint, progress=False),
        transform=mnist.binarized, hooks=[EMA(model, decay=0.9)])
    for other, named in [({"decay": 0.8}, r"EMA\[0\]\.decay: 0\.9 in the checkpoint, 0\.8 now"),
                         ({"decay": 0.9, "warmup": True}, r"EMA\[0\]\.warmup: False in the checkpoint, True now")]:
        again = small_model()
        with pytest.raises(CheckpointError, match=named):
            fit(again, vae_loss, images(), TrainSettings(epochs=2, batch_size=100, checkpoint=checkpoint, progress=False),
                transform=mnist.binarized, hooks=[EMA(again, **other)])


def test_a_checkpoint_from_before_settings_were_recorded_resumes_with_a_warning(tmp_path):
    checkpoint = tmp_path / "old.pt"
    straight = straight_and_first_epoch(checkpoint, epochs=2)
    without_settings(checkpoint)
    with pytest.warns(CheckpointWarning, match=r"old\.pt was written before checkpoints recorded their settings"):
        _, resumed = train(checkpoint, epochs=2)
    assert resumed.terms == straight.terms
    assert "settings" in load_checkpoint(checkpoint)  # the epoch saved on top records them


def test_a_setting_recorded_on_one_side_only_is_named_and_not_compared(tmp_path):
    checkpoint = tmp_path / "run.pt"
    train(checkpoint)
    state = load_checkpoint(checkpoint)
    del state["settings"]["TrainSettings.amp"]  # as if the field were added to TrainSettings since
    save_checkpoint(checkpoint, state)
    with pytest.warns(CheckpointWarning, match=r"TrainSettings\.amp"):
        _, history = train(checkpoint, epochs=2)
    assert history.epochs == 2


# -- StepRun ---------------------------------------------------------------------------------------


def test_step_run_trains_further_but_refuses_other_settings(tmp_path):
    step_loop = functools.partial(toy_step_loop, log_every=2, checkpoint_every=2)  # the shared toy loop
    checkpoint = tmp_path / "steps.pt"
    straight = step_loop(None, 8).history
    step_loop(checkpoint, 4)
    with pytest.raises(CheckpointError, match=r"StepSettings\.lr: 0\.0001 in the checkpoint, 0\.001 now"):
        step_loop(checkpoint, 8, lr=1e-3)
    with pytest.raises(CheckpointError, match=r"StepSettings\.log_every: 2 in the checkpoint, 4 now"):
        step_loop(checkpoint, 8, log_every=4)
    resumed = step_loop(checkpoint, 8, checkpoint_every=3, time_budget_s=1e6).history  # more steps, other saving
    assert resumed.terms == straight.terms


def gan_run(checkpoint, steps=4, lr_schedule="constant", **gan_changes):
    torch.manual_seed(0)
    gan = GAN(GANSettings(generator_hidden=(8,), discriminator_hidden=(8,), **gan_changes))
    data = torch.randn(64, 2)
    settings = AdversarialSettings(steps=steps, batch_size=8, log_every=2, checkpoint=checkpoint, checkpoint_every=2,
                                   lr_schedule=lr_schedule, progress=False)
    return gan, train_gan(gan, data, settings)


def test_a_gan_checkpoint_of_another_lambda_or_scale_is_refused(tmp_path):
    """The case found last session: a notebook whose GAN settings changed resumed the old runs' checkpoints."""
    checkpoint = tmp_path / "gan.pt"
    gan_run(checkpoint, gradient_penalty=0.1)
    assert load_checkpoint(checkpoint)["settings"]["GANSettings.gradient_penalty"] == 0.1
    with pytest.raises(CheckpointError, match=r"GANSettings\.gradient_penalty: 0\.1 in the checkpoint, 10\.0 now"):
        gan_run(checkpoint, steps=6, gradient_penalty=10.0)
    with pytest.raises(CheckpointError, match=r"GANSettings\.scale: 1\.0 in the checkpoint, 2\.83 now"):
        gan_run(checkpoint, steps=6, gradient_penalty=0.1, scale=2.83)
    _, history = gan_run(checkpoint, steps=6, gradient_penalty=0.1)
    assert len(history.terms["d_loss"]) == 3


def test_steps_are_fixed_where_the_learning_rate_runs_down_over_them(tmp_path):
    checkpoint = tmp_path / "gan.pt"
    gan_run(checkpoint, steps=4, lr_schedule="linear")
    with pytest.raises(CheckpointError, match=r"AdversarialSettings\.steps: 4 in the checkpoint, 6 now"):
        gan_run(checkpoint, steps=6, lr_schedule="linear")


def test_an_old_gan_checkpoint_resumes_with_a_warning(tmp_path):
    _, straight = gan_run(None, steps=6)
    checkpoint = tmp_path / "gan.pt"
    gan_run(checkpoint, steps=4)
    without_settings(checkpoint)
    with pytest.warns(CheckpointWarning, match="before checkpoints recorded their settings"):
        _, resumed = gan_run(checkpoint, steps=6)
    assert resumed.terms == straight.terms


def test_run_settings_names_a_submodule_s_settings_by_its_path():
    modules = torch.nn.ModuleDict({"vae": small_model(), "discriminator": torch.nn.Linear(4, 1)})
    recorded = run_settings(StepSettings(progress=False), modules)
    assert recorded["vae: VAESettings.latent_dim"] == 4
    assert recorded["StepSettings.betas"] == [0.9, 0.999]
    assert not any(name.startswith("discriminator") for name in recorded)


# -- EMA warm-up -----------------------------------------------------------------------------------


def test_ema_warm_up_uses_the_decay_min_d_and_1_plus_n_over_10_plus_n():
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 2)
    ema, plain = EMA(model, decay=0.5, warmup=True), EMA(model, decay=0.5)
    expected_plain = expected = None
    decays = []
    for update in range(12):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        weights = [p.detach().clone() for p in model.parameters()]
        if expected is None:  # the first update copies the weights
            expected, expected_plain = weights, weights
        else:
            n = update  # updates before this one
            decay = min(0.5, (1 + n) / (10 + n))
            decays.append(decay)
            expected = [decay * e + (1 - decay) * w for e, w in zip(expected, weights)]
            expected_plain = [0.5 * e + 0.5 * w for e, w in zip(expected_plain, weights)]
        ema(model, update + 1)
        plain(model, update + 1)
    assert decays[0] == pytest.approx(2 / 11) and decays[-1] == 0.5  # warming up, then the decay itself
    for a, b, c, d in zip(ema.model.parameters(), expected, plain.model.parameters(), expected_plain):
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(c, d)
        assert (a - c).abs().max() > 1e-3  # the warm-up changed the average


def test_ema_without_warm_up_is_torch_s_plain_average_bit_for_bit():
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 3)
    ema = EMA(model, decay=0.99)
    reference = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.99), use_buffers=True)
    for step in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.1).add_(0.01)
        ema(model, step + 1)
        reference.update_parameters(model)
    for a, b in zip(ema.model.parameters(), reference.module.parameters()):
        assert torch.equal(a, b)


def test_ema_warm_up_resumes_where_it_stopped(tmp_path):
    model = small_model()
    straight = EMA(model, decay=0.99, warmup=True)
    fit(model, vae_loss, images(), TrainSettings(epochs=3, batch_size=50, progress=False), transform=mnist.binarized,
        hooks=[straight])
    checkpoint = tmp_path / "run.pt"
    first = small_model()
    fit(first, vae_loss, images(), TrainSettings(epochs=1, batch_size=50, checkpoint=checkpoint, progress=False),
        transform=mnist.binarized, hooks=[EMA(first, decay=0.99, warmup=True)])
    second = small_model()
    resumed = EMA(second, decay=0.99, warmup=True)
    fit(second, vae_loss, images(), TrainSettings(epochs=3, batch_size=50, checkpoint=checkpoint, progress=False),
        transform=mnist.binarized, hooks=[resumed])
    assert resumed.updates == straight.updates == 12 and resumed.current_decay() == pytest.approx(13 / 22)
    for a, b in zip(resumed.model.parameters(), straight.model.parameters()):
        assert torch.equal(a, b)
