"""scripts/device_check.sh in its CPU mode (`--device cpu --quick`), as CI runs it so that the GPU check cannot rot:
every part runs, the JSON and the Markdown agree, and the peer row comes from .venv-peers or is skipped with a
reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_device_check_cpu_mode(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "device_check.sh"), "--device", "cpu", "--quick"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "device_check.json").read_text())
    assert [s["name"] for s in report["steps"]] == ["gpu_tests", "bench", "train"]
    assert all(s["returncode"] == 0 for s in report["steps"])
    assert "skipped" in report["steps"][0]["tail"]  # -m gpu ran (and skipped: no CUDA here), not "no tests ran"
    (table,) = report["bench"]["tables"]
    assert table["shape"] == "bundled" and report["bench"]["device"] == "cpu"
    assert {"TopK (ours)", "Switch width-matched E=32"} <= {v["name"] for v in table["variants"]}
    peers = [p["name"] for p in table["peers"]]
    if (ROOT / ".venv-peers" / "bin" / "python").exists():
        assert any(name.startswith("sparsify") for name in peers), report["peer_source"]
    else:
        assert peers == [] and "make bench-peers" in report["peer_source"]
    runs = {r["name"]: r for r in report["train"]["runs"]}
    assert set(runs) == {"Switch E=8", "TopK"}
    for run in runs.values():
        assert run["fvu"] < run["first_fvu"] and run["l0"] == pytest.approx(32)
    page = (tmp_path / "device_check.md").read_text()
    assert f"{runs['Switch E=8']['fvu']:.3f}" in page and "| TopK (ours) |" in page
    assert report["peer_source"] in page
