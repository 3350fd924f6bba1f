"""Execute notebooks and report each one's wall time (the README's notebook table comes from this).

    python scripts/time_notebooks.py --fast                 # FAST sizes, as `make test` runs them
    python scripts/time_notebooks.py 01_dense_sae 04_flop_matched   # default sizes, selected notebooks
    python scripts/time_notebooks.py --cold          # the whole series in order, from an empty course cache

The course cache (data/shared_cache.py) is shared by the chapters: with --cold it starts empty in a temporary folder,
so the series time includes every harvest and training a first run pays; --alone gives each notebook its own
empty cache (its time on its own, as a student who starts there sees it). Outputs are discarded; nothing in
notebooks/ is modified.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import nbformat
import torch
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run(path: Path, timeout: int) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
                   ).execute()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="notebook stems (default: all)")
    parser.add_argument("--fast", action="store_true", help="set SSM_FAST=1 (CI sizes)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--cold", action="store_true", help="start from an empty course cache (shared in order)")
    parser.add_argument("--alone", action="store_true", help="an empty course cache for each notebook")
    args = parser.parse_args()
    scratch = tempfile.TemporaryDirectory(prefix="course-cache-") if args.cold or args.alone else None
    if args.cold:
        os.environ["SWITCH_SAE_MINI_CACHE"] = scratch.name
    os.environ["SSM_FAST"] = "1" if args.fast else "0"
    os.environ.setdefault("MPLBACKEND", "Agg")
    paths = [NOTEBOOKS / f"{n}.ipynb" for n in args.names] or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    cache = "cold, shared in order" if args.cold else "one empty cache per notebook" if args.alone else \
        os.environ.get("SWITCH_SAE_MINI_CACHE", "~/.cache/switch_sae_mini (as found)")
    print(f"mode={'FAST' if args.fast else 'default'}  cache: {cache}  {cpu}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}")
    total = 0.0
    for i, path in enumerate(paths):
        if args.alone:
            os.environ["SWITCH_SAE_MINI_CACHE"] = os.path.join(scratch.name, str(i))
        seconds = run(path, args.timeout)
        if args.alone:  # 0.8 GB of activations per notebook at default sizes
            shutil.rmtree(os.environ["SWITCH_SAE_MINI_CACHE"], ignore_errors=True)
        total += seconds
        print(f"{path.stem:24s} {seconds / 60:6.2f} min", flush=True)
    print(f"{'total':24s} {total / 60:6.2f} min")


if __name__ == "__main__":
    main()
