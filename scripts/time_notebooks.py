"""Execute notebooks and report each one's wall time (the README's notebook table comes from this).

    python scripts/time_notebooks.py --fast                 # FAST sizes, as `make test` runs them
    python scripts/time_notebooks.py 01_dense_sae 04_flop_matched   # default sizes, selected notebooks

Outputs are discarded; nothing in notebooks/ is modified.
"""

from __future__ import annotations

import argparse
import os
import platform
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
    args = parser.parse_args()
    os.environ["SSM_FAST"] = "1" if args.fast else "0"
    os.environ.setdefault("MPLBACKEND", "Agg")
    paths = [NOTEBOOKS / f"{n}.ipynb" for n in args.names] or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    print(f"mode={'FAST' if args.fast else 'default'}  {cpu}, {os.cpu_count()} cores, torch {torch.__version__}")
    total = 0.0
    for path in paths:
        seconds = run(path, args.timeout)
        total += seconds
        print(f"{path.stem:24s} {seconds / 60:6.2f} min", flush=True)
    print(f"{'total':24s} {total / 60:6.2f} min")


if __name__ == "__main__":
    main()
