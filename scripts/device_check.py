"""One command for a bare GPU machine (no package registry): tests, benchmark and a short training run, with
JSON and a Markdown table written to $OUT. Entry point: scripts/device_check.sh (see its header for usage).

    python scripts/device_check.py --prepare            # on a CPU machine with PyPI: wheels into device_wheels/
    python scripts/device_check.py                      # on the GPU machine: everything, within about 5 minutes
    python scripts/device_check.py --device cpu --quick # the CPU mode CI runs, so the script cannot rot

The package runs from this source tree (no build, no install). Missing dependencies are installed from
device_wheels/ only, with --no-deps, into a private folder (.device_site/) put first on PYTHONPATH: nothing on the
machine's own Python changes. transformer-lens is not brought in (its `datasets` import alone needs pyarrow and
pandas, over 60 MB of wheels): the bundled model is read with transformers alone (data/hf_reading.py, which
tests/test_hf_reading.py holds equal to HookReader on the bridge).
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ROOT / "device_wheels"
SITE = ROOT / ".device_site"
BUDGET_MB = 50
# (distribution, version): what the check needs beyond the GPU machine's own torch, transformers, safetensors,
# numpy, tqdm, pytest, jaxtyping, matplotlib and scikit-learn. The package itself needs none of them here (it
# imports transformer-lens, einops and ipywidgets only where it uses them); sparsify's SparseCoder, the peer, needs
# them all. Pure-Python wheels except psutil (accelerate imports it). Without them the peer row is skipped.
REQUIREMENTS = [("einops", "0.8.2"), ("natsort", "8.4.0"), ("docstring-parser", "0.18.0"),
                ("simple-parsing", "0.1.9"), ("psutil", "7.1.3"), ("accelerate", "1.16.0"),
                ("eai-sparsify", "1.3.3")]


def log(message: str) -> None:
    print(f"[device_check {time.strftime('%H:%M:%S')}] {message}", flush=True)


def prepare(python_version: str) -> None:
    """Download every wheel in REQUIREMENTS for the GPU machine (CPython `python_version`, x86-64 Linux)."""
    WHEELS.mkdir(exist_ok=True)
    specs = [f"{dist}=={ver}" for dist, ver in REQUIREMENTS]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(WHEELS),
           "--python-version", python_version, "--implementation", "cp", "--platform", "manylinux2014_x86_64",
           "--platform", "manylinux_2_28_x86_64", "--platform", "any", *specs]
    log(" ".join(cmd))
    subprocess.run(cmd, check=True)
    total = sum(p.stat().st_size for p in WHEELS.glob("*.whl")) / 2 ** 20
    for wheel in sorted(WHEELS.glob("*.whl")):
        log(f"  {wheel.name}  {wheel.stat().st_size / 2 ** 20:.2f} MB")
    log(f"{WHEELS}: {total:.1f} MB in all (budget {BUDGET_MB} MB); copy the folder with the checkout")
    if total > BUDGET_MB:
        raise SystemExit(f"error: {WHEELS} holds {total:.1f} MB, over the {BUDGET_MB} MB budget")


def install_missing() -> dict[str, str]:
    """Install from device_wheels/ what this Python lacks; returns {distribution: what happened}."""
    metadata_paths = [str(SITE)] + sys.path  # what an earlier run installed counts as present
    done = {}
    for dist, version in REQUIREMENTS:
        found = list(metadata.distributions(name=dist, path=metadata_paths))
        if found and (dist != "eai-sparsify" or found[0].version == version):
            done[dist] = f"present ({found[0].version})"
            continue
        wheels = sorted(WHEELS.glob(f"{dist.replace('-', '_')}-{version}-*.whl"))
        if not wheels:
            done[dist] = f"missing: no wheel in {WHEELS} (run scripts/device_check.sh --prepare where PyPI is)"
            continue
        cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--disable-pip-version-check",
               "-q", "--target", str(SITE), str(wheels[0])]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        done[dist] = "installed from device_wheels/" if proc.returncode == 0 else f"install failed: {proc.stderr[-300:]}"
    return done


def child_env() -> dict[str, str]:
    """The package from this source tree and .device_site/, first on the path; no network for the hub."""
    path = os.pathsep.join([str(ROOT), str(SITE), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg",
            "PYTHONWARNINGS": "ignore"}


def run_step(name: str, cmd: list[str], timeout: int, out: Path) -> dict:
    """Run one part as a child process with a time limit; its output goes to $OUT/<name>.log."""
    log(f"{name}: {' '.join(cmd)} (limit {timeout} s)")
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=child_env(), cwd=ROOT)
        rc, text = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as err:
        rc, text = 124, f"{err.stdout or ''}{err.stderr or ''}\n(timed out after {timeout} s)"
        text = text if isinstance(text, str) else text.decode(errors="replace")
    (out / f"{name}.log").write_text(text)
    seconds = time.perf_counter() - start
    log(f"{name}: exit {rc} in {seconds:.0f} s" + ("" if rc == 0 else "\n" + text[-3000:]))
    return {"name": name, "command": " ".join(cmd), "returncode": rc, "seconds": round(seconds, 1),
            "tail": text[-1500:]}


def peer_python(device: str) -> tuple[str | None, str]:
    """The interpreter that runs sparsify: this one on a GPU machine (from device_wheels/), .venv-peers on CPU."""
    here = subprocess.run([sys.executable, "-c", "import importlib.util as u; print(bool(u.find_spec('sparsify')))"],
                          capture_output=True, text=True, env=child_env())
    if here.stdout.strip() == "True":
        return sys.executable, "this interpreter"
    peers = ROOT / ".venv-peers" / "bin" / "python"
    if device == "cpu" and peers.exists():
        return str(peers), ".venv-peers (make bench-peers)"
    return None, ("sparsify is not importable here and no wheel was installed; on CPU, `make bench-peers` builds "
                  ".venv-peers" if device == "cpu" else "sparsify is not importable here: run --prepare and copy "
                  "device_wheels/ with the checkout")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prepare", action="store_true", help="download the wheels into device_wheels/ and stop")
    parser.add_argument("--python-version", default="3.12", help="--prepare: the GPU machine's Python")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--quick", action="store_true", help="small sizes (the CPU mode CI runs)")
    args = parser.parse_args()
    if args.prepare:
        prepare(args.python_version)
        return
    out = Path(os.environ.get("OUT") or ROOT / "outputs" / "device_check")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    report: dict = {"device": args.device, "quick": args.quick, "python": sys.version.split()[0],
                    "installs": install_missing(), "steps": []}
    py = sys.executable
    gpu_tests = ["tests/test_device.py", "tests/test_gpu_paths.py"]  # the files with `gpu` marks
    report["steps"].append(run_step("gpu_tests", [py, "-m", "pytest", "-q", "-rs", "-m", "gpu", "-p",
                                                  "no:cacheprovider", *gpu_tests], 90, out))
    peers, peer_source = peer_python(args.device)
    report["peer_source"] = peer_source
    shape = ["--shape", "bundled", "--steps", "2", "--warmup", "1"] if args.quick else ["--shape", "gpt2"]
    bench = [py, "-m", "switch_sae_mini", "bench", "--quick", "--device", args.device, *shape,
             "--json", str(out / "bench.json")] + (["--peers", peers] if peers else [])
    report["steps"].append(run_step("bench", bench, 150, out))
    train = [py, str(ROOT / "scripts" / "device_train.py"), "--device", args.device, "--json",
             str(out / "train.json")] + (["--quick"] if args.quick else [])
    report["steps"].append(run_step("train", train, 90, out))
    report["seconds"] = round(time.perf_counter() - start, 1)
    for name in ("bench", "train"):
        path = out / f"{name}.json"
        report[name] = json.loads(path.read_text()) if path.exists() else None
    (out / "device_check.json").write_text(json.dumps(report, indent=1) + "\n")
    from device_report import markdown  # scripts/device_report.py, beside this file

    (out / "device_check.md").write_text(markdown(report))
    log(f"wrote {out / 'device_check.json'} and {out / 'device_check.md'} in {report['seconds']:.0f} s")
    failed = [s["name"] for s in report["steps"] if s["returncode"] != 0]
    if failed:
        raise SystemExit(f"error: failed: {', '.join(failed)} (logs in {out})")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
