import json
import pickle

import pytest
import torch

from switch_sae_mini import CheckpointError, TrainConfig, load, make_sae, save, train
from switch_sae_mini.training.checkpoint import load_training_state
from switch_sae_mini.data.toy import ToyData

from conftest import tiny_cfg


@pytest.mark.parametrize("arch", ["relu", "topk", "switch"])
def test_round_trip_gives_identical_outputs(tmp_path, arch):
    sae = make_sae(tiny_cfg(arch))
    with torch.no_grad():
        sae.b_dec.normal_()
        sae.tokens_since_fired.random_(1000)
    folder = save(sae, tmp_path / arch)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]  # no temp files left
    loaded = load(folder)
    assert loaded.cfg == sae.cfg and type(loaded) is type(sae)
    x = torch.randn(9, 16)
    torch.testing.assert_close(loaded(x).x_hat, sae(x).x_hat, rtol=0, atol=0)
    assert torch.equal(loaded.tokens_since_fired, sae.tokens_since_fired)


def test_overwriting_a_checkpoint_replaces_it(tmp_path):
    a, b = make_sae(tiny_cfg("topk")), make_sae(tiny_cfg("topk"))
    save(a, tmp_path / "ck")
    save(b, tmp_path / "ck")
    assert torch.equal(load(tmp_path / "ck").W_enc, b.W_enc)


def test_other_architecture_is_refused(tmp_path):
    save(make_sae(tiny_cfg("switch")), tmp_path / "sw")
    with pytest.raises(CheckpointError, match="holds a 'switch' SAE but arch='topk'"):
        load(tmp_path / "sw", arch="topk")
    # resuming a topk run from a switch checkpoint is refused too
    sae = make_sae(tiny_cfg("topk"))
    with pytest.raises(CheckpointError, match="same SAEConfig"):
        load_training_state(tmp_path / "sw", sae, torch.optim.Adam(sae.parameters()))


def test_truncated_weights_are_detected(tmp_path):
    folder = save(make_sae(tiny_cfg("topk")), tmp_path / "ck")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="truncated"):
        load(folder)
    # even without the hash, safetensors' own check fails cleanly
    raw = json.loads((folder / "config.json").read_text())
    del raw["weights_sha256"]
    (folder / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
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
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(CheckpointError, match="not a switch_sae_mini checkpoint"):
        load(tmp_path / "foreign")
    (tmp_path / "garbled").mkdir()
    (tmp_path / "garbled" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load(tmp_path / "garbled")


def test_weights_only_checkpoint_cannot_resume(tmp_path):
    sae = make_sae(tiny_cfg("topk"))
    save(sae, tmp_path / "w")
    with pytest.raises(CheckpointError, match="weights only"):
        train(sae, ToyData(d_in=16).batches(8), TrainConfig(n_steps=2), checkpoint_dir=tmp_path / "w",
              resume=True, progress=False)


def test_training_checkpoint_holds_optimizer_state(tmp_path):
    result = train(tiny_cfg("topk"), ToyData(d_in=16).batches(32), TrainConfig(n_steps=3),
                   checkpoint_dir=tmp_path / "run", progress=False)
    state = json.loads((tmp_path / "run" / "trainer.json").read_text())
    assert state["step"] == 3 and state["history"][-1]["step"] == 3
    sae = make_sae(tiny_cfg("topk"))
    optimizer = torch.optim.Adam(sae.parameters())
    load_training_state(tmp_path / "run", sae, optimizer)
    assert torch.equal(sae.W_enc, result.sae.W_enc)
    assert float(optimizer.state[sae.W_enc]["step"]) == 3
