"""The Markdown page of scripts/device_check.py: what ran where, the tests, the benchmark tables and the
training run (the README's GPU table is copied from it)."""

from __future__ import annotations


def _bench_rows(bench: dict) -> list[str]:
    lines = [f"Machine: {bench['machine']}; {bench['precision']}; torch {bench['torch']}.", ""]
    for table in bench["tables"]:
        lines += [f"### {table['shape']}: d_in {table['d_in']}, d_sae {table['d_sae']}, k {table['k']}, "
                  f"batch {table['batch']}", "",
                  "| variant | ms/step (fwd / bwd / opt) | speed-up vs TopK (ours) | peak MiB |", "|---|---|---|---|"]
        for v in table["variants"]:
            p = v["phases_ms"]
            lines.append(f"| {v['name']} | {v['ms_per_step']:.1f} ({p['forward']:.1f} / {p['backward']:.1f} / "
                         f"{p['optimizer']:.1f}) | {v['speedup_vs_topk']:.2f}x | {v['peak_mib']:,.0f} |")
        for peer in table["peers"]:
            lines.append(f"| peer: {peer['name']} | {peer['ms_per_step']:.1f} | "
                         f"TopK (ours) is {peer['topk_speedup_over_peer']:.2f}x this | |")
        lines += ["", f"Encoder matmul alone: {table['lower_bound_ms']:.1f} ms; TopK (ours) reaches "
                      f"{table['topk_fraction_of_bound']:.2f} of it.", ""]
    return lines


def markdown(report: dict) -> str:
    lines = [f"# Device check ({report['device']}{', quick' if report['quick'] else ''})", "",
             f"Python {report['python']}; {report['seconds']:.0f} s in all. Peer interpreter: "
             f"{report['peer_source']}.", "", "| part | exit | seconds |", "|---|---|---|"]
    lines += [f"| {s['name']} | {s['returncode']} | {s['seconds']:.0f} |" for s in report["steps"]]
    lines += ["", "Dependencies: " + "; ".join(f"{k} {v}" for k, v in report["installs"].items()), ""]
    tests = next(s for s in report["steps"] if s["name"] == "gpu_tests")
    last = [line for line in tests["tail"].splitlines() if line.strip()]
    lines += [f"GPU tests (`pytest -m gpu`): {last[-1] if last else 'no output'}", ""]
    if report.get("bench"):
        lines += ["## Training-step benchmark", ""] + _bench_rows(report["bench"])
    if report.get("train"):
        t = report["train"]
        precision = "fp32 (no autocast on CPU)" if t["precision"] == "float32" else f"{t['precision']} autocast"
        lines += ["## Training on bundled-model activations", "",
                  f"{t['tokens']:,} activations of {t['hook']} harvested on {t['device']} in {t['harvest_s']:.1f} s; "
                  f"{precision}.", "", "| SAE | steps | ms/step | FVU (first log -> last) | L0 | dead |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['name']} | {r['steps']} | {r['ms_per_step']:.1f} | {r['first_fvu']:.3f} -> {r['fvu']:.3f} | "
                  f"{r['l0']:.1f} | {r['dead_fraction']:.3f} |" for r in t["runs"]]
    return "\n".join(lines) + "\n"
