"""The quick/full switch and the run record."""

import pytest
import torch

from dgm import profile


def test_pick_follows_the_environment(monkeypatch):
    monkeypatch.setenv("DGM_PROFILE", "quick")
    assert profile.pick(1, 2) == 1
    monkeypatch.setenv("DGM_PROFILE", "full")
    assert profile.pick(1, 2) == 2
    monkeypatch.delenv("DGM_PROFILE")
    assert profile.profile() == "full"


def test_bad_profile_is_refused(monkeypatch):
    monkeypatch.setenv("DGM_PROFILE", "fast")
    with pytest.raises(ValueError, match="quick"):
        profile.profile()


def test_start_run_prints_and_warns_on_cpu_in_full_profile(monkeypatch, capsys):
    monkeypatch.setenv("DGM_PROFILE", "full")
    monkeypatch.setenv("DGM_DEVICE", "cpu")
    with pytest.warns(UserWarning, match="GPU"):
        record = profile.start_run()
    printed = capsys.readouterr().out
    assert "profile=full" in printed and "device=cpu" in printed and "commit" in printed
    assert record.device == torch.device("cpu")


def test_asking_for_a_missing_gpu_is_a_clear_error(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.setenv("DGM_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match="sees none"):
        profile.default_device()
