"""The integrity report's static half: does an exercise's code use the package's own implementation of that
exercise, is it the reference solution verbatim, and does any edited cell use constructs that tamper with the
interpreter? (The dynamic half is the tripwire: exercises/tripwire.py, reported through each Answer.)

Names are resolved in the grader's own process, and only inside switch_sae_mini: `ssm.saes.route`,
`from switch_sae_mini.saes import route as r; r(...)`, `ssm.SwitchSAE(...)` all resolve to the objects listed in
exercises.REFERENCES, whatever the alias.
"""

from __future__ import annotations

import ast
import importlib

from ..exercises.tripwire import REFERENCES, _resolve

PACKAGE = "switch_sae_mini"
# Constructs an exercise never needs, which patch the interpreter or leave the kernel: flagged, never scored.
TAMPERING = {"__import__", "importlib", "sys.modules", "builtins", "__builtins__", "__code__", "__globals__",
             "os._exit", "sys.exit", "exit", "quit", "ctypes", "gc", "inspect", "setattr", "delattr", "exec", "eval",
             "compile", "signal", "threading", "subprocess", "os.fork", "os.kill", "os.system", "get_ipython",
             "globals"}


def _parse(source: str):
    try:
        return ast.parse(source)
    except SyntaxError:
        return None


def _dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def aliases(sources: list[str]) -> dict[str, str]:
    """{local name: dotted path inside switch_sae_mini} from the import statements of every code cell."""
    found: dict[str, str] = {}
    for tree in filter(None, map(_parse, sources)):
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == PACKAGE:
                        found[a.asname or a.name.split(".")[0]] = a.name if a.asname else PACKAGE
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == PACKAGE:
                for a in node.names:
                    found[a.asname or a.name] = f"{node.module}.{a.name}"
    found.setdefault(PACKAGE, PACKAGE)
    return found


def _object(path: str):
    """The object at a dotted path inside switch_sae_mini (importing only its own modules), or None."""
    parts = path.split(".")
    if parts[0] != PACKAGE:
        return None
    obj = importlib.import_module(PACKAGE)
    for depth, part in enumerate(parts[1:], start=2):
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        if part.startswith("_"):  # never import __main__ or private modules on a learner's say-so
            return None
        try:
            obj = importlib.import_module(".".join(parts[:depth]))
        except ImportError:
            return None
    return obj


def _reference_objects(exercise: str) -> dict[int, str]:
    found = {}
    for target in REFERENCES.get(exercise, ()):
        module, fn = _resolve(target)
        found[id(getattr(fn, "__func__", fn))] = target
        owner = target.split(":")[1].split(".")
        if len(owner) > 1:  # a method: its class counts (ssm.SwitchSAE(...)(x) runs SwitchSAE.forward)
            found[id(getattr(module, owner[0]))] = target
    return found


def package_use(exercise: str, source: str, all_sources: list[str]) -> list[str]:
    """The package implementations of `exercise` that its solution cell names (statically), as module:qualname."""
    tree = _parse(source)
    if tree is None:
        return []
    names, references, hits = aliases(all_sources), _reference_objects(exercise), []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            paths = [f"{module}.{a.name}" if module else a.name for a in node.names]
        elif isinstance(node, (ast.Attribute, ast.Name)):
            dotted = _dotted(node)
            root = (dotted or "").split(".")[0]
            paths = [names[root] + dotted[len(root):]] if root in names else []
        else:
            continue
        for path in paths:
            target = references.get(id(_object(path))) if path.split(".")[0] == PACKAGE else None
            if target and target not in hits:
                hits.append(target)
    return hits


def tampering(source: str) -> list[str]:
    """Tampering constructs a cell uses (names, attribute chains, imports, string names passed to getattr)."""
    tree = _parse(source)
    if tree is None:
        return []
    used = set()
    for node in ast.walk(tree):
        candidates = []
        if isinstance(node, ast.Import):
            candidates = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            candidates = [(node.module or "").split(".")[0]] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, (ast.Attribute, ast.Name)):
            dotted = _dotted(node) or ""
            candidates = [dotted, dotted.split(".")[-1] if isinstance(node, ast.Attribute) else dotted]
        used |= {c for c in candidates if c in TAMPERING}
    return sorted(used)


def same_code(a: str, b: str) -> bool:
    """Identical up to comments, blank lines and formatting (compared as syntax trees)."""
    ta, tb = _parse(a), _parse(b)
    return ta is not None and tb is not None and ast.dump(ta) == ast.dump(tb)
