"""Two CPU processes (gloo on 127.0.0.1) train exactly like one process on the concatenated batch.

Each case trains 5 steps from the same seed on the same data: rank r gets rows [32r, 32r + 32) of every 64-row global
batch; the single-process reference runs train.training_step on the whole 64 rows. The spawned processes are fresh
interpreters, so conftest's Python-level network guard does not apply to them (gloo opens only loopback sockets).
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import switch_sae_mini as ssm
from switch_sae_mini.config import ConfigError
from switch_sae_mini.data.toy import ToyData
from switch_sae_mini.training.distributed import data_parallel_step, init_from_env, shutdown
from switch_sae_mini.training.expert_parallel import ExpertShard, expert_parallel_step, gather_switch_sae
from switch_sae_mini.training.step import make_optimizer, training_step

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="this torch build has no torch.distributed gloo backend")

WORLD, PER_RANK, STEPS, D_IN = 2, 32, 5, 16
# gradient norms here are 0.07-0.2: a clip at 0.05 is active, so a rank-local clipping norm would show up
TRAIN = ssm.TrainConfig(n_steps=STEPS, log_every=1, grad_clip=0.05)
CASES = {  # name: (mode, SAEConfig overrides)
    "ddp_relu": ("ddp", dict(arch="relu")),
    # 512 latents, k=2: most latents stay silent; dead after 64 tokens, so AuxK starts at step 3 - only if the
    # counters advance by the global 64 tokens per step (a per-rank count of 32 would start it one step later)
    "ddp_topk": ("ddp", dict(arch="topk", d_sae=512, k=2, dead_after_tokens=64)),
    "ddp_switch": ("ddp", dict(arch="switch", n_experts=4)),
    # the variants (docs/design-notes.md §12): the LB term's global f counts every (token, choice) pair
    "ddp_switch_shared": ("ddp", dict(arch="switch", n_experts=4, d_sae=80, shared_expert=16, k_shared=2)),
    "ddp_switch_top2": ("ddp", dict(arch="switch", n_experts=4, router_top_e=2)),
    "expert_switch": ("expert", dict(arch="switch", n_experts=4)),
}


def sae_config(overrides: dict) -> ssm.SAEConfig:
    return ssm.SAEConfig(**{"d_in": D_IN, "d_sae": 64, "k": 4, **overrides})


def global_batches() -> list[torch.Tensor]:
    return list(itertools.islice(ToyData(d_in=D_IN, seed=0).batches(WORLD * PER_RANK), STEPS))


def reference(cfg: ssm.SAEConfig) -> tuple[torch.nn.Module, list[float], list[float]]:
    """Single-process training_step on the full batches: (SAE, loss per step, AuxK loss per step)."""
    torch.manual_seed(0)
    sae = ssm.make_sae(cfg)
    lr = TRAIN.learning_rate(cfg.d_sae)
    optimizer = make_optimizer(sae, lr)
    sae.train()
    outs = [training_step(sae, x, optimizer, TRAIN, step, lr) for step, x in enumerate(global_batches())]
    return sae, [float(o.loss.detach()) for o in outs], [float(o.auxk_loss.detach()) for o in outs]


def _train_distributed(mode: str, cfg: ssm.SAEConfig, rank: int):
    torch.manual_seed(0)
    sae = ssm.make_sae(cfg)
    model = ExpertShard(sae, rank, WORLD) if mode == "expert" else sae
    step_fn = expert_parallel_step if mode == "expert" else data_parallel_step
    lr = TRAIN.learning_rate(cfg.d_sae)
    optimizer = make_optimizer(model, lr)
    model.train()
    losses = [step_fn(model, x[rank * PER_RANK:(rank + 1) * PER_RANK], optimizer, TRAIN, step, lr).loss
              for step, x in enumerate(global_batches())]
    return (gather_switch_sae(model) if mode == "expert" else model), losses


def _worker(rank: int, port: int, out_dir: str) -> None:
    """One rank: every case in turn; rank 0 saves checkpoints (rank 1 too for DDP, to compare replicas)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    init_from_env()
    try:
        for name, (mode, overrides) in CASES.items():
            sae, losses = _train_distributed(mode, sae_config(overrides), rank)
            if rank == 0 or mode == "ddp":
                ssm.save(sae, Path(out_dir) / f"{name}_rank{rank}")
            if rank == 0:
                (Path(out_dir) / f"{name}_losses.json").write_text(json.dumps(losses))
    finally:
        shutdown()  # barrier, destroy, and a pause so gloo's threads finish before exit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def distributed_run(tmp_path_factory) -> Path:
    """Spawn 2 ranks once for all cases (a hang is killed after 120 s instead of blocking the suite)."""
    import torch.multiprocessing as mp

    out_dir = tmp_path_factory.mktemp("distributed")
    context = mp.spawn(_worker, args=(free_port(), str(out_dir)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + 120
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.terminate()
            pytest.fail("the 2-process run did not finish within 120 s (a collective is probably mismatched)")
    return out_dir


def assert_same_weights(actual: torch.nn.Module, expected: torch.nn.Module, atol: float = 1e-5) -> None:
    expected_state = expected.state_dict()
    assert actual.state_dict().keys() == expected_state.keys()
    for name, tensor in actual.state_dict().items():
        torch.testing.assert_close(tensor, expected_state[name], atol=atol, rtol=1e-5, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("name", list(CASES))
def test_two_ranks_match_single_process(distributed_run, name):
    mode, overrides = CASES[name]
    expected, expected_losses, auxk = reference(sae_config(overrides))
    loaded = ssm.load(distributed_run / f"{name}_rank0")  # the distributed run's checkpoint, in one process
    assert type(loaded) is type(expected)
    assert_same_weights(loaded, expected)
    losses = json.loads((distributed_run / f"{name}_losses.json").read_text())
    assert losses == pytest.approx(expected_losses, rel=1e-5)
    if name == "ddp_topk":
        assert auxk[1] == 0 < auxk[2], "the AuxK path should start at step 3; the case no longer tests it"
    if mode == "ddp":  # data-parallel replicas must stay bitwise identical
        replica = ssm.load(distributed_run / f"{name}_rank1")
        for key, tensor in replica.state_dict().items():
            assert torch.equal(tensor, loaded.state_dict()[key]), key


def test_torchrun_cli_expert_parallel(tmp_path):
    """The user-facing command: torchrun, 2 ranks, expert parallel; its checkpoint equals single-process training."""
    out = tmp_path / "ckpt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", "-m", "switch_sae_mini", "distributed", "--mode", "expert",
           "--arch", "switch", "--d-in", str(D_IN), "--d-sae", "64", "--k", "4", "--n-experts", "4",
           "--batch-size", str(PER_RANK), "--steps", str(STEPS), "--grad-clip", str(TRAIN.grad_clip), "--out", str(out),
           "--bench"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "activations/s" in proc.stdout and "all_to_all ms" in proc.stdout
    expected, _, _ = reference(sae_config(dict(arch="switch", n_experts=4)))
    assert_same_weights(ssm.load(out, arch="switch"), expected)


def test_expert_count_must_divide_world_size(make_cfg):
    sae = ssm.make_sae(make_cfg("switch", n_experts=4))
    with pytest.raises(ConfigError, match=r"n_experts \(4\) must be divisible by the world size \(3\).*nproc_per_node"):
        ExpertShard(sae, rank=0, world_size=3)
    with pytest.raises(ConfigError, match="--mode ddp"):
        ExpertShard(ssm.make_sae(make_cfg("topk")), rank=0, world_size=2)


def _torchrun(mode: str, out, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", "-m", "switch_sae_mini", "distributed", "--mode", mode,
           "--arch", "switch", "--d-in", str(D_IN), "--d-sae", "64", "--k", "4", "--n-experts", "4",
           "--batch-size", str(PER_RANK), "--steps", "6", "--checkpoint-every", "3", "--keep-checkpoints", "3",
           "--out", str(out), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


@pytest.mark.parametrize("mode", ["ddp", "expert"])
def test_torchrun_checkpoints_on_schedule_and_resumes_exactly(tmp_path, mode):
    """A 6-step run checkpoints at steps 3 and 6. Dropping the step-6 snapshot (as if the job died after step
    5) and resuming with --resume recomputes steps 4-6: weights and Adam state equal the uninterrupted run's."""
    from switch_sae_mini.training import snapshots

    out = tmp_path / "run"
    _torchrun(mode, out)
    names = snapshots.snapshot_names(out)
    assert [n.split("-", 1)[1] for n in names] == ["step-00000003", "step-00000006"]
    uninterrupted = ssm.load(out)
    adam_full = (out / names[-1] / "trainer.safetensors").read_bytes()
    shutil.rmtree(out / names[-1])
    (out / "latest").unlink()
    proc = _torchrun(mode, out, "--resume")
    assert "resuming" in proc.stdout and "at step 3" in proc.stdout
    resumed = ssm.load(out)
    for key, tensor in uninterrupted.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[key]), key
    final = out / snapshots.snapshot_names(out)[-1]
    from safetensors.torch import load as load_bytes
    expected, got = load_bytes(adam_full), load_bytes((final / "trainer.safetensors").read_bytes())
    for key in expected:
        if key.startswith("adam."):
            assert torch.equal(expected[key], got[key]), key
