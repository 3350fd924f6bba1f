"""The README "Speed" summary from several `bench --json` runs: the ratios the targets name, per run and their
median (each ratio is taken within one run, then the median over runs).

    for i in 1 2 3; do python -m switch_sae_mini bench --quick --peers .venv-peers/bin/python --json b$i.json; done
    python scripts/bench_summary.py b1.json b2.json b3.json
"""

from __future__ import annotations

import json
import statistics
import sys


def ratios(doc: dict) -> dict[str, tuple[float, str]]:
    """{ratio name: (value, note)} for the batch-4096 tables of one run."""
    out = {}
    for table in doc["tables"]:
        if table["batch"] != 4096:
            continue
        by_name = {v["name"]: v for v in table["variants"]}
        topk = by_name["TopK (ours)"]
        shape = table["shape"]
        out[f"{shape}: TopK (ours) / encoder-matmul bound"] = (table["topk_fraction_of_bound"], "")
        for peer in table["peers"]:
            if peer["name"].startswith("sparsify"):
                out[f"{shape}: TopK (ours) speed-up over sparsify"] = (peer["topk_speedup_over_peer"], "")
        switches = {n: v["speedup_vs_topk"] for n, v in by_name.items()
                    if n.startswith("Switch width-matched") and "plain" not in n}
        if "Switch width-matched E=32" in switches:
            out[f"{shape}: Switch E=32 speed-up over TopK (ours)"] = (switches["Switch width-matched E=32"], "")
        if switches:
            best = max(switches, key=switches.get)
            out[f"{shape}: best Switch speed-up over TopK (ours)"] = (switches[best], f" ({best.split()[-1]})")
        out[f"{shape}: TopK (ours) ms/step"] = (topk["ms_per_step"], "")
    return out


def main(paths: list[str]) -> None:
    docs = [json.loads(open(p).read()) for p in paths]
    runs = [ratios(d) for d in docs]
    print(f"machine: {docs[0]['machine']}; {docs[0]['precision']}; torch {docs[0]['torch']}; {len(docs)} runs\n")
    print("| ratio | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " | median |")
    print("|---|" + "---|" * (len(runs) + 1))
    for name in runs[0]:
        values = [r.get(name) for r in runs]
        present = [v[0] for v in values if v is not None]
        cells = " | ".join("-" if v is None else f"{v[0]:.2f}{v[1]}" for v in values)
        print(f"| {name} | {cells} | {statistics.median(present):.2f} |")

if __name__ == "__main__":
    main(sys.argv[1:])
