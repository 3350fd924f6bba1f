"""The course's shared caches (data/shared_cache.py, training/run_cache.py): the same rows and SAEs as a fresh
harvest or training run, read back instead of recomputed, safe against concurrent and interrupted writers."""

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

import switch_sae_mini as ssm
from switch_sae_mini.data import shared_cache
from switch_sae_mini.errors import ArgumentError
from switch_sae_mini.training import run_cache

SMALL = {"n_tokens": 2000, "context_len": 32, "progress": False}


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    root = tmp_path / "course-cache"
    monkeypatch.setenv(shared_cache.ENV, str(root))
    return root


def _entries(root: Path, kind: str) -> list[str]:
    return sorted(p.name for p in (root / kind).iterdir() if not p.name.endswith(".lock"))


def test_cached_harvest_equals_in_memory_harvest_and_is_read_back(tiny_lm, cache_root, monkeypatch):
    acts_mem, meta_mem, _ = ssm.notebook.harvest(tiny_lm, cache=False, **SMALL)
    assert not cache_root.exists()  # cache=False touches no disk
    acts, meta, buffer = ssm.notebook.harvest(tiny_lm, **SMALL)
    assert torch.equal(acts, acts_mem) and all(torch.equal(a, b) for a, b in zip(meta, meta_mem))
    assert len(_entries(cache_root, "activations")) == 1 and buffer.hook.endswith("hook_resid_post")

    def no_model(*args, **kwargs):
        raise AssertionError("the second harvest ran the model")

    monkeypatch.setattr(shared_cache, "harvest_to_disk", no_model)
    again, meta_again, _ = ssm.notebook.harvest(tiny_lm, **SMALL)
    assert torch.equal(again, acts) and torch.equal(meta_again.token_id, meta.token_id)
    other, _, _ = ssm.notebook.harvest(tiny_lm, cache=False, **{**SMALL, "n_tokens": 1500})
    with pytest.raises(AssertionError, match="ran the model"):  # other settings are another cache
        ssm.notebook.harvest(tiny_lm, **{**SMALL, "n_tokens": 1500})


def test_cache_off_and_unwritable_folder_harvest_in_memory(tiny_lm, tmp_path, monkeypatch):
    reference, _, _ = ssm.notebook.harvest(tiny_lm, cache=False, **SMALL)
    monkeypatch.setenv(shared_cache.ENV, "off")
    assert shared_cache.cache_root() is None
    acts, _, _ = ssm.notebook.harvest(tiny_lm, **SMALL)
    assert torch.equal(acts, reference)

    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv(shared_cache.ENV, str(blocked / "cache"))
    with pytest.warns(RuntimeWarning, match="cannot be used"):
        acts, _, _ = ssm.notebook.harvest(tiny_lm, **SMALL)
    assert torch.equal(acts, reference)


def test_damaged_cache_and_interrupted_build_are_replaced(tiny_lm, cache_root):
    reference, _, _ = ssm.notebook.harvest(tiny_lm, **SMALL)
    (name,) = _entries(cache_root, "activations")
    shard = cache_root / "activations" / name / "acts_00000.npy"
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0xFF
    shard.write_bytes(bytes(data))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = cache_root / "activations" / f"{name}.build-{int(dead.stdout)}"
    leftover.mkdir()
    (leftover / "acts_00000.npy").write_bytes(b"half a harvest")
    with pytest.warns(RuntimeWarning, match="damaged"):
        acts, _, _ = ssm.notebook.harvest(tiny_lm, **SMALL)
    assert torch.equal(acts, reference)
    assert _entries(cache_root, "activations") == [name]  # rebuilt in place, the dead build removed


def test_two_processes_harvesting_at_once_share_one_whole_cache(tiny_lm_dir, cache_root):
    script = textwrap.dedent(f"""
        import sys, time, hashlib, switch_sae_mini as ssm
        from switch_sae_mini.data import shared_cache
        real = shared_cache.harvest_to_disk
        def counted(*args, **kwargs):
            print("harvested", file=sys.stderr)
            time.sleep(4)  # hold the lock long enough that the other process surely arrives meanwhile
            return real(*args, **kwargs)
        shared_cache.harvest_to_disk = counted
        model = ssm.load_model({str(tiny_lm_dir)!r})
        acts, _, _ = ssm.notebook.harvest(model, n_tokens=6000, context_len=32, progress=False)
        print(hashlib.sha256(acts.numpy().tobytes()).hexdigest())
    """)
    env = {**os.environ, shared_cache.ENV: str(cache_root), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outputs]
    assert outputs[0][0] == outputs[1][0]
    assert sum("harvested" in err for _, err in outputs) == 1  # the lock made the second wait, then read
    assert len(_entries(cache_root, "activations")) == 1  # one cache, no build folder left behind
    cache = ssm.data.DiskActivations(cache_root / "activations" / _entries(cache_root, "activations")[0])
    assert cache.n_tokens == 6000


# ----------------------------------------------------------------------------- train_once


def _setup(make_cfg):
    acts = torch.randn(3000, 16)
    return make_cfg("topk"), acts, ssm.TrainConfig(n_steps=12, lr=1e-3, log_every=4)


def test_train_once_trains_once_and_returns_the_same_sae(make_cfg, cache_root, monkeypatch, capsys):
    cfg, acts, train_cfg = _setup(make_cfg)
    fresh = ssm.train(cfg, ssm.notebook.shuffled_batches(acts, 64, seed=0), train_cfg, progress=False)
    first = ssm.notebook.train_once(cfg, acts, 64, train_cfg)
    for name, value in fresh.sae.state_dict().items():
        assert torch.equal(first.sae.state_dict()[name], value), name
    assert first.history == fresh.history and first.steps == 12

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(run_cache, "train", no_training)
    capsys.readouterr()
    second = ssm.notebook.train_once(cfg, acts, 64, train_cfg)
    assert "read from the course cache" in capsys.readouterr().out  # an instant cell says why
    for name, value in fresh.sae.state_dict().items():
        assert torch.equal(second.sae.state_dict()[name], value), name
    assert second.history == fresh.history and second.final == fresh.final
    assert second.wall_time == first.wall_time  # the time of the run that trained it

    for changed in (lambda: ssm.notebook.train_once(cfg.replace(k=3), acts, 64, train_cfg),
                    lambda: ssm.notebook.train_once(cfg, acts, 32, train_cfg),
                    lambda: ssm.notebook.train_once(cfg, acts, 64, train_cfg.replace(n_steps=13)),
                    lambda: ssm.notebook.train_once(cfg, acts, 64, train_cfg, data_seed=1),
                    lambda: ssm.notebook.train_once(cfg, acts.clone().mul_(1.001), 64, train_cfg)):
        with pytest.raises(AssertionError, match="trained again"):
            changed()
    acts.mul_(2.0)  # the same tensor, changed in place: its hash is taken again
    with pytest.raises(AssertionError, match="trained again"):
        ssm.notebook.train_once(cfg, acts, 64, train_cfg)


def test_train_once_survives_damage_and_an_unusable_cache(make_cfg, cache_root, tmp_path, monkeypatch):
    cfg, acts, train_cfg = _setup(make_cfg)
    first = ssm.notebook.train_once(cfg, acts, 64, train_cfg)
    (name,) = _entries(cache_root, "runs")
    (cache_root / "runs" / name / "run.json").write_text("{ not json")
    again = ssm.notebook.train_once(cfg, acts, 64, train_cfg)  # damaged: trained again and replaced
    assert torch.equal(again.sae.W_dec, first.sae.W_dec)
    assert (cache_root / "runs" / name / "run.json").read_text().startswith("{\"history\"")

    monkeypatch.setenv(shared_cache.ENV, "off")
    off = ssm.notebook.train_once(cfg, acts, 64, train_cfg)
    assert torch.equal(off.sae.W_dec, first.sae.W_dec)
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv(shared_cache.ENV, str(blocked))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        unwritable = ssm.notebook.train_once(cfg, acts, 64, train_cfg)
    assert torch.equal(unwritable.sae.W_dec, first.sae.W_dec)


def test_an_unreadable_cache_trains_and_harvests_without_it(make_cfg, tiny_lm, cache_root, monkeypatch):
    """As another user (a grading sandbox), the folder may exist but be unreadable: PermissionError on every stat.
    The tests run as root, where permissions do not bind, so the stat itself is made to fail."""
    cfg, acts, train_cfg = _setup(make_cfg)
    reference = ssm.notebook.train_once(cfg, acts, 64, train_cfg)
    harvested, _, _ = ssm.notebook.harvest(tiny_lm, **SMALL)
    real_stat = Path.stat

    def denied(self, *args, **kwargs):
        if str(self).startswith(str(cache_root)):
            raise PermissionError(13, "Permission denied", str(self))
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", denied)
    again = ssm.notebook.train_once(cfg, acts, 64, train_cfg)
    assert torch.equal(again.sae.W_dec, reference.sae.W_dec)
    with pytest.warns(RuntimeWarning, match="cannot be used"):
        rows, _, _ = ssm.notebook.harvest(tiny_lm, **SMALL)
    assert torch.equal(rows, harvested)


def test_train_once_refuses_a_prepared_module(make_cfg, cache_root):
    cfg, acts, train_cfg = _setup(make_cfg)
    with pytest.raises(ArgumentError, match="needs an SAEConfig"):
        ssm.notebook.train_once(ssm.make_sae(cfg), acts, 64, train_cfg)
