import errno
import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from switch_sae_mini import (CheckpointError, InputError, SwitchSAEError, TrainConfig, TrainingDivergedError, load,
                             make_sae, save, train)
from switch_sae_mini.data.toy import ToyData
from switch_sae_mini.training import snapshots
from switch_sae_mini.training.checkpoint import load_training_state

from conftest import tiny_cfg

DATA = Path(__file__).parent / "data"


def snapshot_of(folder: Path) -> Path:
    return folder / (folder / "latest").read_text().split()[0]


@pytest.mark.parametrize("arch", ["relu", "topk", "switch"])
def test_round_trip_gives_identical_outputs(tmp_path, arch):
    sae = make_sae(tiny_cfg(arch))
    with torch.no_grad():
        sae.b_dec.normal_()
        sae.tokens_since_fired.random_(1000)
    folder = save(sae, tmp_path / arch)
    assert sorted(p.name for p in folder.iterdir()) == ["000001-save", "latest"]  # no temp files left
    assert sorted(p.name for p in snapshot_of(folder).iterdir()) == ["config.json", "manifest.json",
                                                                     "model.safetensors"]
    loaded = load(folder)
    assert loaded.cfg == sae.cfg and type(loaded) is type(sae)
    x = torch.randn(9, 16)
    torch.testing.assert_close(loaded(x).x_hat, sae(x).x_hat, rtol=0, atol=0)
    assert torch.equal(loaded.tokens_since_fired, sae.tokens_since_fired)


def test_overwriting_keeps_the_newest_snapshots(tmp_path):
    saes = [make_sae(tiny_cfg("topk")) for _ in range(4)]
    for sae in saes:
        save(sae, tmp_path / "ck")
    assert torch.equal(load(tmp_path / "ck").W_enc, saes[-1].W_enc)
    assert snapshots.snapshot_names(tmp_path / "ck") == ["000003-save", "000004-save"]  # keep=2 by default
    save(saes[0], tmp_path / "ck", keep=1)
    assert snapshots.snapshot_names(tmp_path / "ck") == ["000005-save"]


@pytest.mark.parametrize("arch", ["topk", "switch"])
def test_checkpoints_of_version_0_1_keep_loading(tmp_path, arch):
    """tests/data holds folders written by switch_sae_mini 0.1.0 (config.json + model.safetensors at the top)."""
    expected = load_file(DATA / f"checkpoint_v1_{arch}" / "expected_io.safetensors")
    sae = load(DATA / f"checkpoint_v1_{arch}")
    assert json.loads((DATA / f"checkpoint_v1_{arch}" / "config.json").read_text())["format_version"] == 1
    # the same weights give the same outputs up to float32 rounding: a kernel that changes the summation order
    # (the Switch experts' batched matmul, kernels.py) may move the last bits, never more
    torch.testing.assert_close(sae.eval()(expected["x"]).x_hat, expected["x_hat"], rtol=1e-5, atol=1e-6)
    # saving into such a folder migrates it: one new snapshot, the old top-level files gone
    folder = shutil.copytree(DATA / f"checkpoint_v1_{arch}", tmp_path / "old")
    save(sae, folder)
    assert not (folder / "config.json").exists() and not (folder / "model.safetensors").exists()
    torch.testing.assert_close(load(folder).eval()(expected["x"]).x_hat, sae.eval()(expected["x"]).x_hat,
                               rtol=0, atol=0)  # the migrated files hold exactly the 0.1 weights


def test_other_architecture_is_refused(tmp_path):
    save(make_sae(tiny_cfg("switch")), tmp_path / "sw")
    with pytest.raises(CheckpointError, match="holds a 'switch' SAE but arch='topk'"):
        load(tmp_path / "sw", arch="topk")
    # resuming a topk run from a switch checkpoint is refused too
    result = train(tiny_cfg("switch"), ToyData(d_in=16).batches(32), TrainConfig(n_steps=2),
                   checkpoint_dir=tmp_path / "run", progress=False)
    assert result.steps == 2
    sae = make_sae(tiny_cfg("topk"))
    with pytest.raises(CheckpointError, match="same SAEConfig"):
        load_training_state(tmp_path / "run", sae, torch.optim.Adam(sae.parameters()))


@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "manifest.json"])
def test_damaged_or_edited_files_are_detected(tmp_path, name):
    folder = save(make_sae(tiny_cfg("topk")), tmp_path / "ck")
    path = snapshot_of(folder) / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged|edited by hand|not a switch_sae_mini"):
        load(folder)


def test_a_hand_edited_config_is_refused(tmp_path):
    folder = save(make_sae(tiny_cfg("topk")), tmp_path / "ck")
    config = snapshot_of(folder) / "config.json"
    raw = json.loads(config.read_text())
    raw["sae_config"]["k"] = 3  # still a valid config, but not what the weights were trained with
    config.write_text(json.dumps(raw, indent=2))
    with pytest.raises(CheckpointError, match="config.json does not match the hash"):
        load(folder)


def test_truncated_weights_and_the_fallback_to_an_older_snapshot(tmp_path):
    first, second = make_sae(tiny_cfg("topk")), make_sae(tiny_cfg("topk"))
    save(first, tmp_path / "ck")
    folder = save(second, tmp_path / "ck")
    weights = snapshot_of(folder) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="damaged"):
        load(folder)
    with pytest.warns(RuntimeWarning, match="damaged.*000001-save"):
        assert torch.equal(load(folder, fallback=True).W_enc, first.W_enc)


def test_legacy_checkpoint_damage_is_detected(tmp_path):
    folder = shutil.copytree(DATA / "checkpoint_v1_topk", tmp_path / "old")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="truncated"):
        load(folder)
    raw = json.loads((folder / "config.json").read_text())
    del raw["weights_sha256"]
    (folder / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="not a readable safetensors"):  # safetensors' own check
        load(folder)


def test_things_that_are_not_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint"):
        load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="No checkpoint"):
        load(tmp_path / "empty")
    pkl = tmp_path / "model.pt"
    pkl.write_bytes(pickle.dumps({"W_enc": [1, 2]}))
    with pytest.raises(CheckpointError, match="is a file, not a checkpoint folder"):
        load(pkl)
    with pytest.raises(CheckpointError, match="is a file"):
        save(make_sae(tiny_cfg("topk")), pkl)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(CheckpointError, match="not a switch_sae_mini checkpoint"):
        load(tmp_path / "foreign")
    (tmp_path / "garbled").mkdir()
    (tmp_path / "garbled" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load(tmp_path / "garbled")
    assert issubclass(CheckpointError, SwitchSAEError) and issubclass(CheckpointError, ValueError)


def test_weights_only_checkpoint_cannot_resume(tmp_path):
    sae = make_sae(tiny_cfg("topk"))
    save(sae, tmp_path / "w")
    with pytest.raises(CheckpointError, match="weights only"):
        train(sae, ToyData(d_in=16).batches(8), TrainConfig(n_steps=2), checkpoint_dir=tmp_path / "w",
              resume=True, progress=False)


def test_resume_without_a_checkpoint_yet_starts_over(tmp_path):
    cfg = TrainConfig(n_steps=3)
    with pytest.warns(RuntimeWarning, match="no checkpoint yet"):
        resumed = train(tiny_cfg("topk"), ToyData(d_in=16).batches(32), cfg, checkpoint_dir=tmp_path / "new",
                        resume=True, progress=False)
    fresh = train(tiny_cfg("topk"), ToyData(d_in=16).batches(32), cfg, progress=False)
    assert torch.equal(resumed.sae.W_enc, fresh.sae.W_enc)


def test_training_checkpoint_holds_optimizer_state(tmp_path):
    result = train(tiny_cfg("topk"), ToyData(d_in=16).batches(32), TrainConfig(n_steps=3),
                   checkpoint_dir=tmp_path / "run", progress=False)
    snapshot = snapshot_of(tmp_path / "run")
    assert snapshot.name == "000001-step-00000003"
    state = json.loads((snapshot / "trainer.json").read_text())
    assert state["step"] == 3 and state["history"][-1]["step"] == 3
    sae = make_sae(tiny_cfg("topk"))
    optimizer = torch.optim.Adam(sae.parameters())
    load_training_state(tmp_path / "run", sae, optimizer)
    assert torch.equal(sae.W_enc, result.sae.W_enc)
    assert float(optimizer.state[sae.W_enc]["step"]) == 3
    assert torch.equal(load(tmp_path / "run").W_enc, result.sae.W_enc)  # load() reads training snapshots too


def test_no_space_left_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    first = make_sae(tiny_cfg("topk"))
    save(first, tmp_path / "ck")

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("switch_sae_mini.training.checkpoint.save_file", full_disk)
    with pytest.raises(CheckpointError, match="no space left on the device.*000001-save is intact") as info:
        save(make_sae(tiny_cfg("topk")), tmp_path / "ck")
    assert isinstance(info.value, OSError) and info.value.__cause__.errno == errno.ENOSPC
    monkeypatch.undo()
    assert torch.equal(load(tmp_path / "ck").W_enc, first.W_enc)
    assert [p.name for p in (tmp_path / "ck").iterdir() if p.name.startswith(".")] == []  # no temp folder left


@pytest.mark.parametrize("point", ["file:config.json", "file:model.safetensors", "renamed", "pointer"])
def test_an_interrupted_save_leaves_a_complete_checkpoint(tmp_path, monkeypatch, point):
    """An exception at each write point (tests/test_faults.py kills the process there instead)."""
    first, second = make_sae(tiny_cfg("topk")), make_sae(tiny_cfg("topk"))
    save(first, tmp_path / "ck")

    def interrupt(at):
        if at == point:
            raise KeyboardInterrupt

    monkeypatch.setattr(snapshots, "fault_hook", interrupt)
    with pytest.raises(KeyboardInterrupt):
        save(second, tmp_path / "ck")
    monkeypatch.setattr(snapshots, "fault_hook", None)
    loaded = load(tmp_path / "ck")
    expected = second if point == "pointer" else first
    assert torch.equal(loaded.W_enc, expected.W_enc)


def test_non_finite_values_stop_training_at_that_step_and_keep_the_last_checkpoint(tmp_path):
    batches = list(ToyData(d_in=16).batches(32, 8))
    batches[5] = batches[5].clone()
    batches[5][3, 7] = float("inf")
    cfg = TrainConfig(n_steps=8, checkpoint_every=2)
    with pytest.raises(InputError, match="batch 5 contains 1 NaN/inf"):
        train(tiny_cfg("topk"), batches, cfg, checkpoint_dir=tmp_path / "run", progress=False)
    state = json.loads((snapshot_of(tmp_path / "run") / "trainer.json").read_text())
    assert state["step"] == 4  # the last good checkpoint, loadable
    load(tmp_path / "run")
    # a huge LR: the first update overflows; that checkpoint is refused, then the loss is NaN at step 1
    with pytest.raises(TrainingDivergedError, match="by step 1 .*The checkpoint was not written"):
        train(tiny_cfg("topk"), batches, TrainConfig(n_steps=8, lr=1e38, grad_clip=0, checkpoint_every=1),
              checkpoint_dir=tmp_path / "blowup", progress=False)
    assert not (tmp_path / "blowup" / "latest").exists()
    with pytest.raises(TrainingDivergedError, match="loss became nan at step 1;"):
        train(tiny_cfg("topk"), batches, TrainConfig(n_steps=8, lr=1e38, grad_clip=0), progress=False)
    assert issubclass(TrainingDivergedError, FloatingPointError)


def test_provenance_is_saved_settable_by_hand_and_unknown_for_old_checkpoints(tmp_path, capsys):
    from switch_sae_mini.cli import main

    sae = make_sae(tiny_cfg("topk"))
    sae.provenance = {"model_name": "gpt2", "hook": "blocks.8.hook_resid_post", "tokens_trained": 819_200_000}
    save(sae, tmp_path / "ck")
    loaded = load(tmp_path / "ck")
    assert loaded.provenance["hook"] == "blocks.8.hook_resid_post" and loaded.provenance["tokens_trained"] == 819_200_000
    assert "package_version" in loaded.provenance
    assert "unknown" in load(DATA / "checkpoint_v1_topk").provenance
    assert main(["info", str(tmp_path / "ck")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["provenance"]["model_name"] == "gpt2" and report["loads"] == "000001-save"
    assert report["sae_config"]["arch"] == "topk" and report["training_state"] is False
