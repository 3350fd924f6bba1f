"""Command-line flags derived from the config dataclasses, so a flag and its field cannot drift apart.

Each flag takes its type, choices, default and help text from the field of ``SAEConfig`` / ``TrainConfig`` it
mirrors (the help is the field's docstring). A subcommand may override a default (the demo's width, say);
``--help`` shows the value in effect.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import typing
from functools import cache
from typing import Any

# Flags whose name differs from the field's (everything else is --field-name).
FLAG_NAMES = {"n_steps": "--steps"}


@cache
def field_docs(cls: type) -> dict[str, str]:
    """{field: docstring} from the string literal that follows each field in the class body."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, following in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _argument_type(annotation: Any) -> dict[str, Any]:
    """argparse keywords for a field annotation: Literal -> choices, bool -> --x/--no-x, X | None -> X."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return {"choices": list(args), "type": type(args[0])}
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    if args and type(None) in args:  # X | None
        (inner,) = [a for a in args if a is not type(None)]
        return _argument_type(inner)
    return {"type": annotation}


def add_config_flags(parser: argparse.ArgumentParser, cls: type, names: typing.Iterable[str], *,
                     defaults: dict[str, Any] | None = None, choices: dict[str, list] | None = None,
                     group: str | None = None) -> None:
    """Add one flag per named field of dataclass `cls` (dest = the field name)."""
    defaults, choices = defaults or {}, choices or {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    target = parser.add_argument_group(group) if group else parser
    for name in names:
        if name not in fields:
            raise KeyError(f"{cls.__name__} has no field {name!r}")
        kwargs = _argument_type(hints[name])
        if name in choices:
            kwargs["choices"] = choices[name]
        default = defaults.get(name, fields[name].default)
        help_text = docs.get(name, "").replace("%", "%%")
        target.add_argument(FLAG_NAMES.get(name, "--" + name.replace("_", "-")), dest=name, default=default,
                            help=f"{help_text} (default: %(default)s)", **kwargs)


def config_from_args(cls: type, args: argparse.Namespace, **overrides: Any):
    """Build `cls` from the parsed flags that mirror its fields, plus `overrides` (validated on construction)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    return cls(**{**values, **overrides})
