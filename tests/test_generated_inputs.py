"""Generated bad input (hypothesis, derandomised so a failure reproduces): every input either works correctly or
raises one of the package's own errors (SwitchSAEError) whose message names the field or the fix. Never a raw
exception from deep inside torch, never a hang, never a silently different result.

Counts per run are the max_examples below: 7,350 generated cases here, 700 more in tests/test_widgets.py.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switch_sae_mini import CheckpointError, SAEConfig, SwitchSAEError, TrainConfig, load, make_sae, save
from switch_sae_mini.cli import main

SETTINGS = dict(derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# Values of every kind a user might pass: good, boundary and wrong.
ANY_VALUE = st.one_of(
    st.integers(-3, 70), st.sampled_from([0, 1, 2**31, -(2**31), 10**12]),
    st.floats(allow_nan=True, allow_infinity=True, width=32), st.booleans(), st.none(),
    st.sampled_from(["topk", "switch", "relu", "prob", "heaviside", "", "3", "TopK"]),
    st.lists(st.integers(0, 3), max_size=2), st.just({}),
)


def _field_name_in(message: str, cls) -> bool:
    return any(f.name in message for f in dataclasses.fields(cls))


@settings(max_examples=3000, **SETTINGS)
@given(st.dictionaries(st.sampled_from([f.name for f in dataclasses.fields(SAEConfig)]), ANY_VALUE, max_size=5))
def test_sae_config_fields_are_validated(fields):
    try:
        cfg = SAEConfig(**fields)
    except SwitchSAEError as exc:
        assert _field_name_in(str(exc), SAEConfig), str(exc)
        return
    # a config that constructs is usable: every field has its documented type and range
    assert cfg.d_sae % cfg.n_experts == 0 and cfg.d_in > 0
    if cfg.d_in * cfg.d_sae <= 200_000:
        sae = make_sae(cfg)
        out = sae(torch.randn(3, cfg.d_in))
        assert out.x_hat.shape == (3, cfg.d_in) and torch.isfinite(out.loss)


@settings(max_examples=1500, **SETTINGS)
@given(st.dictionaries(st.sampled_from([f.name for f in dataclasses.fields(TrainConfig)]), ANY_VALUE, max_size=4))
def test_train_config_fields_are_validated(fields):
    try:
        cfg = TrainConfig(**fields)
    except SwitchSAEError as exc:
        assert _field_name_in(str(exc), TrainConfig), str(exc)
        return
    lr = cfg.learning_rate(4096)
    assert math.isfinite(lr) and lr > 0 and cfg.n_steps >= 1 and cfg.keep_checkpoints >= 1


DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int64, torch.bool, torch.complex64]
SAES = {arch: make_sae(SAEConfig(arch=arch, d_in=8, d_sae=32, k=4, n_experts=4 if arch == "switch" else 1))
        for arch in ("relu", "topk", "switch")}


@settings(max_examples=1500, **SETTINGS)
@given(arch=st.sampled_from(sorted(SAES)), dtype=st.sampled_from(DTYPES),
       shape=st.lists(st.integers(0, 4), min_size=0, max_size=2), last=st.sampled_from([8, 8, 8, 7, 0]),
       special=st.sampled_from([None, "nan", "inf", "huge"]), transpose=st.booleans(), training=st.booleans(),
       meta=st.sampled_from([False, False, False, True]))
def test_forward_takes_any_tensor_or_says_why(arch, dtype, shape, last, special, transpose, training, meta):
    sae = SAES[arch].train(training)
    x = torch.randn(*shape, last).to(dtype) if dtype not in (torch.bool,) else torch.ones(*shape, last, dtype=dtype)
    if transpose and x.ndim >= 2:
        x = x.transpose(0, -2)
    if special and x.is_floating_point() and x.numel():
        x = x.clone()
        x[(0,) * x.ndim] = {"nan": float("nan"), "inf": float("inf"), "huge": 1e30}[special]
    if meta:  # another device than the SAE's (the only other device a CPU-only machine has)
        x = x.to("meta")
    try:
        out = sae(x)
    except SwitchSAEError as exc:
        assert any(word in str(exc) for word in ("d_in", "empty", "floating point", "NaN", "device")), str(exc)
        return
    assert out.x_hat.shape == (*x.shape[:-1], 8) and out.x_hat.dtype == torch.float32
    if special != "huge":
        assert torch.isfinite(out.x_hat).all() and torch.isfinite(out.loss)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    sae = make_sae(SAEConfig(arch="switch", d_in=8, d_sae=32, k=4, n_experts=4))
    folder = save(sae, tmp_path_factory.mktemp("ckpt") / "sae")
    return folder, sae


@settings(max_examples=600, **SETTINGS)
@given(which=st.sampled_from(["config.json", "model.safetensors", "manifest.json", "latest"]),
       how=st.sampled_from(["flip", "truncate", "append", "empty"]), where=st.floats(0, 1), bit=st.integers(0, 7))
def test_damaged_checkpoint_bytes_never_load_silently(saved, tmp_path_factory, which, how, where, bit):
    source, sae = saved
    folder = shutil.copytree(source, tmp_path_factory.mktemp("damaged") / "sae")
    snapshot = folder / (folder / "latest").read_text().split()[0]
    path = folder / "latest" if which == "latest" else snapshot / which
    data = bytearray(path.read_bytes())
    at = min(int(where * len(data)), len(data) - 1)
    if how == "flip":
        data[at] ^= 1 << bit
    elif how == "truncate":
        data = data[:at]
    elif how == "append":
        data += b"\x00"
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    try:
        loaded = load(folder)
    except CheckpointError as exc:
        assert str(folder) in str(exc)
        return
    # only a damaged pointer can still load: then it is the one complete snapshot, with the same tensors
    assert which == "latest", f"a damaged {which} loaded"
    for name, tensor in sae.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


FLAG_VALUES = st.sampled_from(["0", "1", "-5", "3", "7", "24576", "abc", "1e3", "nan", "", "switch", "flop"])


@settings(max_examples=600, **SETTINGS)
@given(command=st.sampled_from([["ledger"], ["paper", "--dry-run"]]),
       flags=st.lists(st.tuples(st.sampled_from(["--d-in", "--d-sae", "--k", "--n-experts", "--arch", "--regime",
                                                 "--flop-matched", "--width-matched", "--steps"]), FLAG_VALUES),
                      max_size=3))
def test_cli_arguments_run_or_exit_with_a_message(command, flags, capsys):
    argv = command + [part for pair in flags for part in pair]
    try:
        code = main(argv)
    except SystemExit as exc:
        err = capsys.readouterr().err
        message = str(exc.code) if not isinstance(exc.code, int) else err
        assert exc.code != 0 and ("error" in message), (argv, message)
        return
    assert code == 0
    out = capsys.readouterr().out
    if command[0] == "paper":
        json.loads(out)
    else:
        assert "TopK" in out


@pytest.fixture(scope="module")
def activation_file(tmp_path_factory):
    from safetensors.torch import save_file

    from switch_sae_mini.data.toy import ToyData

    path = tmp_path_factory.mktemp("acts") / "acts.safetensors"
    save_file({"activations": torch.cat(list(ToyData(d_in=16, n_features=64, seed=2).batches(128, 4)))}, path)
    return path


TRAIN_FLAGS = st.lists(st.sampled_from([
    ("--arch", "relu"), ("--arch", "switch"), ("--arch", "gated"), ("--d-sae", "64"), ("--d-sae", "30"),
    ("--d-sae", "0"), ("--k", "4"), ("--k", "0"), ("--k", "100"), ("--n-experts", "4"), ("--n-experts", "0"),
    ("--n-experts", "3"), ("--lb-coeff", "-1"), ("--lb-coeff", "nan"), ("--l1-coeff", "inf"), ("--lr", "0"),
    ("--lr", "1e-3"), ("--lr", "-1"), ("--steps", "0"), ("--steps", "-2"), ("--batch-size", "0"),
    ("--batch-size", "100000"), ("--eval-fraction", "1.5"), ("--eval-fraction", "0"), ("--gate", "heaviside"),
    ("--gate", "soft"), ("--keep-checkpoints", "0"), ("--checkpoint-every", "-1"), ("--seed", "-3"),
    ("--key", "nope"), ("--auxk-coeff", "x"),
]), max_size=4)


@settings(max_examples=150, **SETTINGS)
@given(flags=TRAIN_FLAGS)
def test_train_command_runs_or_exits_with_a_message(activation_file, flags, capsys):
    argv = ["train", "--activations", str(activation_file), "--steps", "2", "--batch-size", "64", "--d-sae", "32",
            "--k", "2", "--quiet"] + [part for pair in flags for part in pair]
    try:
        code = main(argv)
    except SystemExit as exc:
        message = capsys.readouterr().err if isinstance(exc.code, int) else str(exc.code)
        assert exc.code != 0 and "error" in message, (argv, message)
        return
    assert code == 0 and "held_out_metrics" in json.loads(capsys.readouterr().out)
