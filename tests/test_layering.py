"""The package's layering: no import cycles, and each part imports only from the layers below it.

Imports are read with `ast` from every module, at top level and inside functions (an import hidden in a function
is still a dependency). The table below is the architecture of README "Architecture", bottom to top. A module may
import from its own part (e.g. saes/topk.py from saes/base.py) or from a lower tier, never from its own tier or
above. The last two tests show that the checker fails on an upward import and on a cycle.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "switch_sae_mini"
NAME = "switch_sae_mini"

TIERS = [
    {"errors", "paths"},          # paths: the user cache folder (course cache, compiled kernels)
    {"native"},                   # C kernels with torch fallbacks; only their build folder comes from paths
    {"config"},
    {"flops"},
    {"device", "paper"},
    {"data", "saes"},             # data -> activations; the SAEs and their metrics (independent of each other)
    {"training", "evaluation", "interop"},  # training uses saes; LM evaluation data and an SAE; formats an SAE
    {"analysis"},
    {"bench", "classroom"},
    {"cli"},
    {"__main__", "__init__"},     # the package's public face and `python -m`
]
TIER = {part: i for i, tier in enumerate(TIERS) for part in tier}
MAX_LINES = 300


def module_names(root: Path) -> dict[str, Path]:
    """{dotted module name: file} for every .py file under the package root."""
    names = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join([NAME, *parts])] = path
    return names


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """Package modules that `module` imports anywhere in its source (relative and absolute imports)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == NAME}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == NAME:
                target = node.module
            else:
                continue
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target)
    return {m for m in found if m in known and m != module}


def part_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def import_graph(root: Path) -> dict[str, set[str]]:
    names = module_names(root)
    return {m: imports_of(m, p, set(names)) for m, p in names.items()}


def layering_violations(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, targets in sorted(graph.items()):
        src = part_of(module)
        if src not in TIER:
            problems.append(f"{module}: part {src!r} is not in the layer table of tests/test_layering.py")
            continue
        for target in sorted(targets):
            dst = part_of(target)
            if dst != src and TIER.get(dst, len(TIERS)) >= TIER[src]:
                problems.append(f"{module} imports {target}: {src!r} (tier {TIER[src]}) may only import from "
                                f"lower tiers, and {dst!r} is tier {TIER.get(dst)}")
    return problems


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_every_import_goes_down_the_layers():
    problems = layering_violations(import_graph(PACKAGE))
    assert not problems, "\n".join(problems)


def test_no_import_cycles():
    cycle = find_cycle(import_graph(PACKAGE))
    assert cycle is None, " -> ".join(cycle)


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph(PACKAGE)
    assert "switch_sae_mini.training.distributed" in graph["switch_sae_mini.cli.distributed"]  # in-function import
    assert "switch_sae_mini.saes.kernels" in graph["switch_sae_mini.saes.topk"]


def test_no_module_is_longer_than_about_300_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules (one concept each): {long}"


def _copy_package(tmp_path: Path) -> Path:
    root = tmp_path / NAME
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("assets", "__pycache__"))
    return root


def test_an_upward_import_fails_the_check(tmp_path):
    root = _copy_package(tmp_path)
    base = root / "saes" / "base.py"
    base.write_text(base.read_text() + "\n\ndef _upward():\n    from ..training import train\n")
    problems = layering_violations(import_graph(root))
    assert problems and any("switch_sae_mini.saes.base imports switch_sae_mini.training" in p for p in problems)


def test_an_import_cycle_fails_the_check(tmp_path):
    root = _copy_package(tmp_path)
    base = root / "saes" / "base.py"
    base.write_text(base.read_text() + "\n\ndef _cycle():\n    from . import topk\n")
    cycle = find_cycle(import_graph(root))
    assert cycle is not None and "switch_sae_mini.saes.base" in cycle and "switch_sae_mini.saes.topk" in cycle
