"""`bench` runs end to end at a tiny setting and its JSON agrees with its table (tests time nothing: speed claims
come from running `bench` itself, README "Speed")."""

from __future__ import annotations

import json

import pytest
import torch

from switch_sae_mini.cli import main


def test_bench_writes_table_and_json(tmp_path, capsys):
    out = tmp_path / "nested" / "bench.json"
    main(["bench", "--shape", "bundled", "--quick", "--steps", "1", "--warmup", "0", "--only", "E=8",
          "--json", str(out)])
    printed = capsys.readouterr().out
    assert "### bundled: d_in 128, d_sae 4096, k 32, batch 4096" in printed
    assert "peers: skipped" in printed  # no --peers: said, not silent
    doc = json.loads(out.read_text())
    assert doc["device"] == "cpu" and doc["precision"] == "fp32" and doc["torch"] == torch.__version__
    (table,) = doc["tables"]
    names = [v["name"] for v in table["variants"]]
    assert names == ["TopK (ours)", "Switch width-matched E=8"]  # --only keeps the reference row TopK (ours)
    topk = table["variants"][0]
    assert topk["speedup_vs_topk"] == 1.0
    for variant in table["variants"]:
        assert variant["ms_per_step"] > 0 and variant["peak_mib"] > 0
        assert set(variant["phases_ms"]) == {"forward", "backward", "optimizer"}
        assert variant["speedup_vs_topk"] == pytest.approx(topk["ms_per_step"] / variant["ms_per_step"])
        assert f"| {variant['name']} |" in printed
    assert table["topk_fraction_of_bound"] == pytest.approx(table["lower_bound_ms"] / topk["ms_per_step"])
    assert f"reaches {table['topk_fraction_of_bound']:.2f} of the encoder-matmul lower bound" in printed


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given when there is no GPU")
def test_bench_cuda_without_gpu_says_what_to_do(capsys):
    with pytest.raises(SystemExit, match="no CUDA GPU.*--device auto"):
        main(["bench", "--device", "cuda", "--quick", "--steps", "1"])
    from switch_sae_mini.bench.train_step import resolve_device

    assert resolve_device("auto") == torch.device("cpu")


def test_bench_rejects_bad_step_counts():
    with pytest.raises(SystemExit, match="--steps must be >= 1"):
        main(["bench", "--steps", "0"])
