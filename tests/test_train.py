"""The training loop: it learns, it resumes exactly, it survives an interrupt, checkpoints load safely."""

import traceback
from pathlib import Path

import pytest
import torch
from toy_training import toy_step_loop

from dgm.data import mnist
from dgm.latent.vae import VAE, VAESettings, vae_loss
from dgm.training import EMA, CheckpointError, TrainSettings, fit, load_checkpoint


def small_model() -> VAE:
    torch.manual_seed(0)
    return VAE(VAESettings(latent_dim=8, hidden=(128,)))


def test_seeded_training_reaches_a_loss_threshold():
    images = mnist.subset("train").images
    history = fit(small_model(), vae_loss, images, TrainSettings(epochs=4, batch_size=100, progress=False), transform=mnist.binarized)
    losses = history.terms["loss"]
    assert losses[-1] < losses[0] - 40  # -ELBO falls from ~300 nats
    assert losses[-1] < 230  # 222 nats with this seed (torch 2.14, CPU)
    assert set(history.terms) == {"loss", "reconstruction", "kl"}


def test_resume_continues_exactly_where_it_stopped(tmp_path):
    images = mnist.subset("train").images[:600]
    torch.manual_seed(1)
    straight = fit(small_model(), vae_loss, images, TrainSettings(epochs=4, batch_size=100, progress=False), transform=mnist.binarized)

    checkpoint = tmp_path / "run.pt"
    torch.manual_seed(1)
    fit(small_model(), vae_loss, images, TrainSettings(epochs=2, batch_size=100, checkpoint=checkpoint, progress=False), transform=mnist.binarized)
    resumed = fit(small_model(), vae_loss, images, TrainSettings(epochs=4, batch_size=100, checkpoint=checkpoint, progress=False), transform=mnist.binarized)
    assert resumed.epochs == 4
    assert resumed.terms == straight.terms  # to the last bit


def test_interrupt_keeps_the_last_finished_epoch(tmp_path):
    images = mnist.subset("train").images[:400]
    checkpoint = tmp_path / "run.pt"
    calls = {"n": 0}

    def interrupted_loss(model, batch):
        calls["n"] += 1
        if calls["n"] == 10:  # in the third epoch (4 batches an epoch)
            raise KeyboardInterrupt
        return vae_loss(model, batch)

    settings = TrainSettings(epochs=5, batch_size=100, checkpoint=checkpoint, progress=False)
    with pytest.raises(KeyboardInterrupt):
        fit(small_model(), interrupted_loss, images, settings, transform=mnist.binarized)
    state = load_checkpoint(checkpoint)  # weights_only=True
    assert len(state["history"]["seconds"]) == 2
    history = fit(small_model(), vae_loss, images, settings, transform=mnist.binarized)
    assert history.epochs == 5


def test_checkpoint_of_another_model_is_refused_clearly(tmp_path):
    images = mnist.subset("train").images[:200]
    checkpoint = tmp_path / "run.pt"
    fit(small_model(), vae_loss, images, TrainSettings(epochs=1, checkpoint=checkpoint, progress=False), transform=mnist.binarized)
    other = VAE(VAESettings(latent_dim=4, hidden=(16,)))
    with pytest.raises(CheckpointError, match=r"other settings \(VAESettings\.latent_dim: 8 in the checkpoint, 4 now"):
        fit(other, vae_loss, images, TrainSettings(epochs=2, checkpoint=checkpoint, progress=False), transform=mnist.binarized)
    # a model without a settings dataclass is told apart by its weights
    def loss(model, batch):
        return {"loss": model(batch).pow(2).mean()}

    data, plain = torch.randn(20, 3), tmp_path / "plain.pt"
    fit(torch.nn.Linear(3, 2), loss, data, TrainSettings(epochs=1, checkpoint=plain, progress=False))
    with pytest.raises(RuntimeError, match="different model"):
        fit(torch.nn.Linear(3, 1), loss, data, TrainSettings(epochs=2, checkpoint=plain, progress=False))


def test_checkpoint_loads_with_weights_only(tmp_path):
    images = mnist.subset("train").images[:200]
    checkpoint = tmp_path / "run.pt"
    fit(small_model(), vae_loss, images, TrainSettings(epochs=1, checkpoint=checkpoint, progress=False), transform=mnist.binarized)
    state = torch.load(checkpoint, weights_only=True)
    assert set(state) == {"model", "optimizer", "hooks", "scaler", "history", "rng", "settings"}


def test_time_budget_stops_at_an_epoch_boundary():
    images = mnist.subset("train").images[:200]
    history = fit(small_model(), vae_loss, images, TrainSettings(epochs=50, time_budget_s=0.0, progress=False), transform=mnist.binarized)
    assert history.epochs == 1 and history.stopped_by_budget


def test_a_run_stopped_by_its_budget_is_loaded_as_it_ended(tmp_path):
    """Running the same call again after a budget stop trains nothing more: the notebook's re-run shows the recorded model."""
    images = mnist.subset("train").images[:200]
    settings = TrainSettings(epochs=50, time_budget_s=0.0, checkpoint=tmp_path / "run.pt", progress=False)
    model = small_model()
    first = fit(model, vae_loss, images, settings, transform=mnist.binarized)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    again = small_model()
    second = fit(again, vae_loss, images, settings, transform=mnist.binarized)
    assert first.epochs == second.epochs == 1 and second.stopped_by_budget
    assert second.terms == first.terms
    assert all(torch.equal(weights[k], v) for k, v in again.state_dict().items())
    # without a budget the same checkpoint is an interrupted run: it resumes
    resumed = fit(small_model(), vae_loss, images, TrainSettings(epochs=2, checkpoint=tmp_path / "other.pt", progress=False),
                  transform=mnist.binarized)
    assert resumed.epochs == 2 and not resumed.stopped_by_budget


def test_bad_settings():
    with pytest.raises(ValueError):
        TrainSettings(epochs=0)


def test_tuple_data_must_have_one_length():
    from dgm.evaluation.quality import DigitClassifier, classification_loss

    images, labels = torch.zeros(10, 1, 28, 28, dtype=torch.uint8), torch.zeros(9, dtype=torch.long)
    with pytest.raises(ValueError, match="same length"):
        fit(DigitClassifier(), classification_loss, (images, labels), TrainSettings(epochs=1, progress=False))


def test_a_damaged_checkpoint_is_named_with_the_way_out(tmp_path):
    images = mnist.subset("train").images[:200]
    checkpoint = tmp_path / "run.pt"
    settings = TrainSettings(epochs=1, checkpoint=checkpoint, progress=False)
    fit(small_model(), vae_loss, images, settings, transform=mnist.binarized)
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # cut short, as by a full disk
    with pytest.raises(CheckpointError, match=r"run\.pt is damaged.*delete it to start the run afresh"):
        fit(small_model(), vae_loss, images, TrainSettings(epochs=2, checkpoint=checkpoint, progress=False), transform=mnist.binarized)
    checkpoint.write_bytes(b"")
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(checkpoint)


def test_ema_hook_averages_the_weights_after_every_step():
    images = mnist.subset("train").images[:300]
    model = small_model()
    snapshots = []

    def record(model, step):
        snapshots.append([p.detach().clone() for p in model.parameters()])

    ema = EMA(model, decay=0.9)
    fit(model, vae_loss, images, TrainSettings(epochs=2, batch_size=100, progress=False), transform=mnist.binarized, hooks=[record, ema])
    assert len(snapshots) == 6  # 3 steps an epoch
    expected = snapshots[0]  # the first update copies the weights
    for weights in snapshots[1:]:
        expected = [0.9 * e + 0.1 * w for e, w in zip(expected, weights)]
    for averaged, want, last in zip(ema.model.parameters(), expected, snapshots[-1]):
        torch.testing.assert_close(averaged, want)
    assert any((a - b).abs().max() > 1e-4 for a, b in zip(ema.model.parameters(), snapshots[-1]))


def test_resume_restores_the_ema_and_refuses_other_hooks(tmp_path):
    images = mnist.subset("train").images[:300]
    model = small_model()
    straight = EMA(model, decay=0.8)
    fit(model, vae_loss, images, TrainSettings(epochs=3, batch_size=100, progress=False), transform=mnist.binarized, hooks=[straight])

    checkpoint = tmp_path / "run.pt"
    first = small_model()
    fit(first, vae_loss, images, TrainSettings(epochs=1, batch_size=100, checkpoint=checkpoint, progress=False),
        transform=mnist.binarized, hooks=[EMA(first, decay=0.8)])
    second = small_model()
    resumed = EMA(second, decay=0.8)
    fit(second, vae_loss, images, TrainSettings(epochs=3, batch_size=100, checkpoint=checkpoint, progress=False),
        transform=mnist.binarized, hooks=[resumed])
    for a, b in zip(resumed.model.parameters(), straight.model.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(CheckpointError, match="other step hooks"):
        fit(small_model(), vae_loss, images, TrainSettings(epochs=4, batch_size=100, checkpoint=checkpoint, progress=False),
            transform=mnist.binarized)


def test_the_loop_reads_the_device_once_an_epoch_not_once_a_step(monkeypatch):
    """Every read-back of a tensor's value (float, item, bool, tolist) waits for a GPU; count ours on the CPU.

    Reads made inside torch itself are not counted: the optimizer reads its step
    counter, which lives on the CPU for foreach Adam and on the device, unread, for fused Adam.
    """
    reads = {"n": 0}
    torch_dir = str(Path(torch.__file__).parent)
    for name in ("__float__", "item", "__bool__", "tolist"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            if not traceback.extract_stack(limit=2)[0].filename.startswith(torch_dir):
                reads["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    images = mnist.subset("train").images[:1200]
    fit(small_model(), vae_loss, images, TrainSettings(epochs=2, batch_size=100, progress=False), transform=mnist.binarized)
    steps, terms = 24, 3
    assert reads["n"] <= 2 * terms, f"{reads['n']} reads of device values in {steps} steps"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_no_synchronisation_in_the_gpu_step():
    images = mnist.subset("train").images[:1000].cuda()
    model = small_model().cuda()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with pytest.warns(UserWarning) as caught:
            fit(model, vae_loss, images, TrainSettings(epochs=1, batch_size=100, progress=False), transform=mnist.binarized)
        syncs = [w for w in caught if "synchroniz" in str(w.message)]
        assert len(syncs) <= 3 + 1, [str(w.message) for w in syncs]  # one read-back per term, plus the randperm copy
    finally:
        torch.cuda.set_sync_debug_mode(0)


def test_amp_on_a_cpu_is_refused_with_a_message():
    images = mnist.subset("train").images[:100]
    with pytest.raises(ValueError, match="amp=True needs the model on a CUDA device"):
        fit(small_model(), vae_loss, images, TrainSettings(epochs=1, amp=True, progress=False), transform=mnist.binarized)


def test_step_run_resumes_between_logging_intervals_with_every_series_intact(tmp_path):
    # the toy loop logs every 4 steps and saves a checkpoint every 3
    model, straight, extra = toy_step_loop(None, 14)
    checkpoint = tmp_path / "steps.pt"
    with pytest.raises(KeyboardInterrupt):
        toy_step_loop(checkpoint, 14, interrupt_at=7)  # the last checkpoint is at step 6, mid-interval (4..8)
    assert load_checkpoint(checkpoint)["step"] == 6
    resumed_model, resumed, resumed_extra = toy_step_loop(checkpoint, 14)
    assert resumed.terms == straight.terms
    assert resumed_extra == extra == {"trace": [4, 8, 12, 14]}
    for a, b in zip(resumed_model.parameters(), model.parameters()):
        assert torch.equal(a, b)


def test_annotations_join_the_last_record_and_refuse_clashes():
    from dgm.training import History

    history = History()
    history.record({"loss": 1.0}, 0.1)
    history.annotate({"modes": 3})
    history.record({"loss": 0.5}, 0.1)
    history.annotate({"modes": 5})
    assert history.terms == {"loss": [1.0, 0.5], "modes": [3.0, 5.0]}
    with pytest.raises(ValueError, match="already recorded"):
        history.annotate({"loss": 0.0})
    history.record({"loss": 0.2}, 0.1)
    history.record({"loss": 0.1}, 0.1)
    with pytest.raises(ValueError, match="some records but not at others"):
        history.annotate({"modes": 7})
