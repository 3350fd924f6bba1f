"""models.py: loading through TransformerBridge.boot_transformers offline, default hook rule, clear errors."""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from switch_sae_mini import models
from switch_sae_mini.data.models import BUNDLED_MODEL, ModelUnavailableError, default_hook, load_model

pytestmark = pytest.mark.usefixtures("torch_single_thread")

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("n_layers, layer", [(12, 8), (24, 16), (6, 4), (4, 2), (2, 0), (1, 0)])
def test_default_hook_rule(n_layers, layer):
    fake = SimpleNamespace(cfg=SimpleNamespace(n_layers=n_layers))
    assert default_hook(fake) == f"blocks.{layer}.hook_resid_post"


def _block_network(monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise OSError("network blocked by test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)  # must hold without the offline switches too
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # read from the env at import
    return attempts


def test_local_dir_loads_without_network(tiny_lm_dir, monkeypatch):
    attempts = _block_network(monkeypatch)
    model = load_model(str(tiny_lm_dir))
    assert attempts == []
    assert type(model).__name__ == "TransformerBridge"
    assert (model.cfg.n_layers, model.cfg.d_model, model.cfg.n_ctx) == (2, 64, 128)
    assert model.cfg.model_name == str(tiny_lm_dir)
    assert not model.training
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in model.parameters())
    assert model.tokenizer("Hello world", add_special_tokens=False)["input_ids"] == [15496, 995]
    assert model(torch.tensor([[50256, 15496, 995]])).shape == (1, 3, 50257)


def test_bundled_model_loads_without_network(monkeypatch):
    if not (models.BUNDLED_MODEL_DIR / "config.json").exists():
        pytest.skip("the bundled model's trained weights are not there yet")
    attempts = _block_network(monkeypatch)
    model = load_model()
    assert attempts == []
    assert model.cfg.model_name == BUNDLED_MODEL
    assert default_hook(model) in model.hook_dict


def test_missing_bundled_weights_give_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "BUNDLED_MODEL_DIR", tmp_path)
    with pytest.raises(ModelUnavailableError, match="bundled model's weights are missing"):
        load_model()


def test_local_dir_without_config_gives_clear_error(tmp_path):
    with pytest.raises(ModelUnavailableError, match="no config.json"):
        load_model(str(tmp_path))


@pytest.mark.parametrize("offline_env", [True, False])
def test_unavailable_hub_name_fails_fast_and_clearly(monkeypatch, offline_env):
    _block_network(monkeypatch)
    if offline_env:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError, match="needs the Hugging Face hub.*bundled model.*HF_HOME") as err:
        load_model("no-such-org/no-such-model-xyz")
    assert time.perf_counter() - start < 5
    assert ("HF_HUB_OFFLINE is set" if offline_env else "unreachable") in str(err.value)


FAKE_CACHE_SCRIPT = textwrap.dedent("""
    import json, socket
    def refuse(*args, **kwargs):
        raise OSError("network blocked by test")
    socket.socket.connect = refuse
    socket.getaddrinfo = refuse
    from switch_sae_mini.data.models import load_model
    model = load_model("gpt2")
    print(json.dumps(dict(name=model.cfg.model_name, n_layers=model.cfg.n_layers, d_model=model.cfg.d_model,
                          hello=model.tokenizer("Hello world", add_special_tokens=False)["input_ids"])))
""")


def test_hub_name_loads_from_local_hf_cache(tiny_lm_dir, tmp_path):
    """The real "gpt2" code path, offline, against a fake HF cache holding the tiny random model. Runs in a subprocess because huggingface_hub reads HF_HOME when it is imported."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--gpt2"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    shutil.copytree(tiny_lm_dir, repo / "snapshots" / revision)
    env = dict(os.environ, HF_HOME=str(tmp_path), HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO),
               OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", FAKE_CACHE_SCRIPT], env=env, capture_output=True, text=True, check=False,
                            timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == {"name": "gpt2", "n_layers": 2, "d_model": 64, "hello": [15496, 995]}


def test_model_fingerprint_tracks_weights(tiny_lm):
    before = models.model_fingerprint(tiny_lm)
    assert before == models.model_fingerprint(tiny_lm)
    param = next(tiny_lm.parameters())
    original = param[0, 0].item()
    with torch.no_grad():
        param[0, 0] = original + 1.0
    try:
        assert models.model_fingerprint(tiny_lm) != before
    finally:
        with torch.no_grad():
            param[0, 0] = original
    assert models.model_fingerprint(tiny_lm) == before
