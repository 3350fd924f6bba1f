"""Every `python -m switch_sae_mini ...` / `torchrun ... -m switch_sae_mini ...` command written in the README,
docs/ and the Makefile names a real subcommand and only flags that subcommand accepts (parsed, not run; the
commands themselves are exercised by tests/test_cli.py, test_grade.py, test_distributed.py and CI)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from switch_sae_mini.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "Makefile", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"-m switch_sae_mini(?=\s)(.*)")


def _drop_make_expansions(text: str) -> str:
    """Remove Makefile $(...) expansions (nested parentheses included)."""
    out, depth, i = [], 0, 0
    while i < len(text):
        if text.startswith("$(", i):
            depth, i = depth + 1, i + 2
            continue
        if depth and text[i] == "(":
            depth += 1
        elif depth and text[i] == ")":
            depth -= 1
        elif not depth:
            out.append(text[i])
        i += 1
    return "".join(out)


def documented_commands() -> list[tuple[str, list[str]]]:
    found = []
    for path in DOCS:
        text = path.read_text().replace("\\\n", " ")  # join continued lines
        for line in text.splitlines():
            for match in COMMAND.finditer(line):
                rest = match.group(1).split("#")[0].split("`")[0].split(";")[0].split(" > ")[0]
                args = shlex.split(_drop_make_expansions(rest))
                if args and args[0] != "<subcommand>":
                    found.append((f"{path.name}: {line.strip()[:100]}", args))
    return found


COMMANDS = documented_commands()


def test_the_docs_hold_commands():
    subcommands = {args[0] for _, args in COMMANDS}
    assert {"train", "ledger", "demo", "paper", "grade", "assignments", "bench", "distributed"} <= subcommands


@pytest.mark.parametrize("where,args", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_documented_command_parses(where, args):
    parser = build_parser()
    try:
        parser.parse_args(args)
    except SystemExit as exc:  # --help exits 0; a wrong flag exits 2
        assert exc.code == 0, f"{where}: `{' '.join(args)}` does not parse"
