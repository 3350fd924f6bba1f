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


def test_bench_summary_takes_the_median_of_runs(tmp_path):
    """scripts/bench_summary.py (README "Speed"): each ratio per run, then the median over runs."""
    import subprocess
    import sys
    from pathlib import Path

    def run_doc(bound_fraction, e8_speedup):
        variants = [{"name": "TopK (ours)", "ms_per_step": 60.0, "speedup_vs_topk": 1.0},
                    {"name": "Switch width-matched E=8", "ms_per_step": 30.0, "speedup_vs_topk": e8_speedup}]
        return {"machine": "test CPU", "precision": "fp32", "torch": "x", "tables": [
            {"shape": "bundled", "batch": 4096, "topk_fraction_of_bound": bound_fraction, "variants": variants,
             "peers": [{"name": "sparsify 1.3.3 SparseCoder TopK", "topk_speedup_over_peer": 2.0}]}]}

    paths = []
    for i, (fraction, speedup) in enumerate([(0.5, 2.0), (0.4, 3.0), (0.7, 1.0)]):
        paths.append(tmp_path / f"b{i}.json")
        paths[-1].write_text(json.dumps(run_doc(fraction, speedup)))
    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_summary.py"
    out = subprocess.run([sys.executable, str(script), *map(str, paths)], capture_output=True, text=True,
                         check=True).stdout
    assert "| bundled: TopK (ours) / encoder-matmul bound | 0.50 | 0.40 | 0.70 | 0.50 |" in out
    assert "| bundled: best Switch speed-up over TopK (ours) | 2.00 (E=8) | 3.00 (E=8) | 1.00 (E=8) | 2.00 |" in out
    assert "| bundled: TopK (ours) speed-up over sparsify | 2.00 | 2.00 | 2.00 | 2.00 |" in out


def test_convergence_script_prints_one_table_per_chapter():
    """scripts/convergence.py (the step counts' evidence in the notebooks' headers) at a tiny size."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "convergence.py"
    out = subprocess.run([sys.executable, str(script), "--steps", "4", "8", "--only", "02", "04",
                          "--n-tokens", "20000"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "chapter 02" in out.stdout and "chapter 04" in out.stdout and "chapter 01" not in out.stdout
    assert "| TopK k=16 |" in out.stdout and "| FLOP-matched E=8 |" in out.stdout
    assert "order by FVU at 8 steps:" in out.stdout
