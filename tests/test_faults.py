"""Fault injection: SIGKILL a checkpointing training run, resume it, and get the weights of an uninterrupted run.

A child process trains a Switch SAE (checkpoint every 3 steps) and kills itself with SIGKILL at one write point
of a save (snapshots.fault_hook: after each file, after the rename, after the pointer, after pruning), or the
parent kills it at a seeded moment. The parent then resumes with train(..., resume=True) and compares every
tensor with an uninterrupted run, bit for bit. Deterministic points, so CI cannot flake; the seeded moments add
kills in between (wherever they land, the guarantee is the same).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from switch_sae_mini import SAEConfig, TrainConfig, make_sae, train
from switch_sae_mini.data.toy import ToyData

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

N_STEPS, EVERY = 9, 3
POINTS_PER_SAVE = ["file:config.json", "file:model.safetensors", "file:trainer.safetensors", "file:trainer.json",
                   "renamed", "pointer", "pruned"]
ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent(f"""
    import os, signal, sys
    import torch
    torch.set_num_threads(1)
    from switch_sae_mini import SAEConfig, TrainConfig, train
    from switch_sae_mini.data.toy import ToyData
    from switch_sae_mini.training import snapshots

    kill_at = int(sys.argv[2])  # the n-th write point of the run (0: no injected kill)
    calls = 0

    def hook(point):
        global calls
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    snapshots.fault_hook = hook
    print("started", flush=True)
    cfg = SAEConfig(arch="switch", d_in=16, d_sae=64, k=4, n_experts=4)
    train(cfg, ToyData(d_in=16, seed=3).batches(128), TrainConfig(n_steps={N_STEPS}, checkpoint_every={EVERY},
          seed=1), checkpoint_dir=sys.argv[1], progress=False)
    print("calls", calls, flush=True)
""")


def _config():
    return SAEConfig(arch="switch", d_in=16, d_sae=64, k=4, n_experts=4)


def _train_cfg():
    return TrainConfig(n_steps=N_STEPS, checkpoint_every=EVERY, seed=1)


@pytest.fixture(scope="module")
def uninterrupted():
    torch.manual_seed(1)
    return train(make_sae(_config()), ToyData(d_in=16, seed=3).batches(128), _train_cfg(),
                 progress=False).sae.state_dict()


def _child(folder: Path, kill_at: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(folder), str(kill_at)], stdout=subprocess.PIPE,
                            text=True, env=env)


def _resume_and_compare(folder: Path, uninterrupted) -> None:
    torch.manual_seed(1)  # what train() would do for a fresh start; a resume restores the saved RNG instead
    resumed = train(make_sae(_config()), ToyData(d_in=16, seed=3).batches(128), _train_cfg(),
                    checkpoint_dir=folder, resume=True, progress=False)
    for name, tensor in uninterrupted.items():
        assert torch.equal(tensor, resumed.sae.state_dict()[name]), name
    assert resumed.history[-1]["step"] == N_STEPS


def test_the_child_passes_every_write_point(tmp_path):
    proc = _child(tmp_path / "run", 0)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert int(out.split("calls")[-1]) == len(POINTS_PER_SAVE) * (N_STEPS // EVERY)


# every write point of the first two saves, and the pointer of the last: 15 deterministic kills
KILL_POINTS = list(range(1, 2 * len(POINTS_PER_SAVE) + 1)) + [2 * len(POINTS_PER_SAVE) + 6]


@pytest.mark.filterwarnings("ignore:resume=True but")
def test_sigkill_at_every_write_point_then_resume_is_exact(tmp_path, uninterrupted):
    identical = 0
    for kill_at in KILL_POINTS:
        folder = tmp_path / f"kill{kill_at}"
        proc = _child(folder, kill_at)
        proc.communicate(timeout=120)
        assert proc.returncode == -signal.SIGKILL, f"write point {kill_at} did not kill the child"
        _resume_and_compare(folder, uninterrupted)
        identical += 1
    assert identical == len(KILL_POINTS)


@pytest.mark.filterwarnings("ignore:resume=True but")
def test_sigkill_at_seeded_moments_then_resume_is_exact(tmp_path, uninterrupted):
    rng = random.Random(20261202)
    probe = _child(tmp_path / "probe", 0)  # how long a whole run takes here, after start-up
    probe.stdout.readline()
    start = time.perf_counter()
    probe.communicate(timeout=120)
    run_seconds = time.perf_counter() - start
    for trial in range(6):
        folder = tmp_path / f"timed{trial}"
        proc = _child(folder, 0)
        assert proc.stdout.readline().strip() == "started"
        time.sleep(rng.uniform(0, run_seconds))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=120)
        _resume_and_compare(folder, uninterrupted)
