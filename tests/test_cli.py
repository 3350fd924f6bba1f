import argparse
import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from switch_sae_mini import load
from switch_sae_mini.cli import build_parser, main
from switch_sae_mini.cli.flags import field_docs
from switch_sae_mini.config import SAEConfig, TrainConfig
from switch_sae_mini.data.toy import ToyData


@pytest.fixture
def acts():
    return torch.cat(list(ToyData(d_in=16, n_features=64, active=3, seed=1).batches(256, 8)))


def test_cli_trains_every_arch_from_safetensors_and_saves(tmp_path, acts, capsys):
    path = tmp_path / "acts.safetensors"
    save_file({"activations": acts}, path)
    for arch, extra in [("topk", []), ("switch", ["--n-experts", "4"]), ("relu", ["--l1-coeff", "0.5"])]:
        out = tmp_path / arch
        main(["train", "--activations", str(path), "--arch", arch, "--d-sae", "64", "--k", "4", "--steps", "60",
              "--batch-size", "128", "--lr", "3e-3", "--out", str(out), "--quiet", *extra])
        report = json.loads(capsys.readouterr().out)
        assert report["sae"]["arch"] == arch
        metrics = report["held_out_metrics"]
        assert 0 < metrics["fvu"] < 0.6 and metrics["n_tokens"] == int(0.05 * len(acts))
        assert load(out).cfg.arch == arch


def test_cli_reads_npy_and_refuses_pickles(tmp_path, acts, capsys):
    np.save(tmp_path / "acts.npy", acts.numpy())
    main(["train", "--activations", str(tmp_path / "acts.npy"), "--d-sae", "32", "--k", "2", "--steps", "3",
          "--batch-size", "64", "--quiet"])
    assert "held_out_metrics" in capsys.readouterr().out
    (tmp_path / "acts.pt").write_bytes(b"\x80\x04junk")
    with pytest.raises(SystemExit, match="pickled .pt files are not loaded"):
        main(["train", "--activations", str(tmp_path / "acts.pt")])


def test_cli_reports_config_errors_cleanly(tmp_path, acts):
    save_file({"activations": acts}, tmp_path / "a.safetensors")
    with pytest.raises(SystemExit, match="divisible by n_experts"):
        main(["train", "--activations", str(tmp_path / "a.safetensors"), "--arch", "switch", "--d-sae", "100",
              "--n-experts", "3", "--quiet"])
    with pytest.raises(SystemExit, match="does not exist"):
        main(["train", "--activations", str(tmp_path / "nope.safetensors")])


def test_cli_ledger_prints_the_paper_table(capsys):
    main(["ledger"])
    out = capsys.readouterr().out
    assert "TopK" in out and "FLOP-matched E=8" in out and "width-matched E=128" in out


def test_paper_preset_dry_run_prints_the_papers_configuration(capsys):
    main(["paper", "--arch", "switch", "--k", "32", "--n-experts", "16", "--dry-run"])
    report = json.loads(capsys.readouterr().out)
    assert report["data"]["model"] == "gpt2" and report["data"]["hook"] == "blocks.8.hook_resid_post"
    assert report["data"]["batch_size"] == 8192 and report["data"]["n_steps"] == 100_000
    assert report["sae"]["d_sae"] == 24576 and report["sae"]["n_experts"] == 16 and report["sae"]["lb_coeff"] == 3
    assert report["lr"] == pytest.approx(1.633e-4, rel=1e-3)
    assert report["forward_flops_per_token"]["encoder"] + report["forward_flops_per_token"]["router"] == 2383872


def test_paper_preset_stops_at_once_without_gpu_or_hub(capsys):
    with pytest.raises(SystemExit, match="needs a CUDA GPU.*Hugging Face hub.*Nothing was run"):
        main(["paper", "--arch", "topk", "--k", "64"])


def test_paper_grid_matches_the_published_runs():
    from switch_sae_mini.paper import paper_grid, paper_sae_config
    grid = paper_grid()
    assert len(grid) == 8 + 8 * 4 + 6 * 3  # TopK, width-matched, FLOP-matched (no k=48/96)
    assert grid["switch_fm8_k64"].d_sae == 196608 and grid["switch_wm128_k8"].d_expert == 192
    with pytest.raises(ValueError, match="regime"):
        paper_sae_config("switch", regime="both")


def _subparsers():
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_config_flags_are_derived_from_the_dataclasses():
    """Every flag that sets a config field carries the field's type, its docstring as help and, unless the
    subcommand documents its own default, the dataclass default: the two cannot drift."""
    own_defaults = {"demo": {"d_sae", "k", "n_experts", "dead_after_tokens", "n_steps", "lr"},
                    "distributed": {"arch", "n_experts", "n_steps"}, "ledger": {"d_in", "d_sae"},
                    "paper": {"n_experts", "n_steps"}, "bench-memory": {"arch", "n_experts"}}
    seen = 0
    for name, sub in _subparsers().items():
        for action in sub._actions:
            for cls in (SAEConfig, TrainConfig):
                fields = {f.name: f for f in dataclasses.fields(cls)}
                if action.dest not in fields:
                    continue
                seen += 1
                assert field_docs(cls)[action.dest].split(".")[0] in action.help, (name, action.dest)
                if action.dest not in own_defaults.get(name, ()):
                    assert action.default == fields[action.dest].default, (name, action.dest)
    assert seen > 20


def test_cli_train_flags_reach_the_config(tmp_path, acts, capsys):
    save_file({"activations": acts}, tmp_path / "a.safetensors")
    main(["train", "--activations", str(tmp_path / "a.safetensors"), "--arch", "switch", "--n-experts", "2",
          "--d-sae", "32", "--k", "2", "--gate", "heaviside", "--lb-coeff", "0.5", "--steps", "3",
          "--batch-size", "64", "--quiet"])
    sae = json.loads(capsys.readouterr().out)["sae"]
    assert (sae["gate"], sae["lb_coeff"], sae["n_experts"], sae["d_in"]) == ("heaviside", 0.5, 2, 16)
