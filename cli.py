"""The command-line dialect that train.py, evaluation.py, bench.py, plot.py and report.py share.

Every script describes its flags as one flat dataclass (fields with docstrings, grouped by
`# --- <group>` comments) and parses it with `parse`:

- flags are `--name VALUE` or `--name=VALUE`, dashes or underscores alike;
- booleans take a value, `--track False`, `--save_buffer 0` (True/False, 1/0, yes/no), so the
  paper's commands and wandb sweeps, which pass values, parse unchanged; a bare `--flag` means
  True and `--no_flag` False;
- `--help` prints the flags under their group headings with their defaults (`grouped_help`);
- a bad flag or value ends with one line, `error: ... (see <script> --help)`, and status 2.

This module imports neither JAX nor any module of the project, so plot.py and report.py stay
light.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import inspect
import io
import re
import sys
import textwrap
import typing
from pathlib import Path
from typing import Annotated, Any, Optional

import tyro
from tyro.constructors import PrimitiveConstructorSpec

USAGE_ERROR = 2  # argparse's status for a command line it cannot parse


def _parse_bool(args: list[str]) -> bool:
    value = args[0].lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    raise ValueError(f"expected True/False (or 1/0), got {args[0]!r}")


# Boolean options take a value (`--track False`, `--save_buffer 0`) so that the
# paper's scripts and wandb sweeps, which pass values, parse unchanged.
Bool = Annotated[
    bool,
    PrimitiveConstructorSpec(
        nargs=1,
        metavar="{True,False}",
        instance_from_str=_parse_bool,
        is_instance=lambda x: isinstance(x, bool),
        str_from_instance=lambda b: [str(b)],
    ),
    tyro.conf.FlagConversionOff,
]


def _bool_fields(config_cls: type) -> set[str]:
    hints = typing.get_type_hints(config_cls)
    return {f.name for f in dataclasses.fields(config_cls) if hints[f.name] is bool}


def _normalise(argv: list[str], bools: set[str]) -> list[str]:
    """A bare boolean flag becomes `--flag True`, `--no_flag` becomes `--flag False`."""
    out = []
    for i, arg in enumerate(argv):
        name = arg[2:].replace("-", "_") if arg.startswith("--") and "=" not in arg else None
        following = argv[i + 1] if i + 1 < len(argv) else None
        if name in bools and (following is None or following.startswith("--")):
            out += [arg, "True"]
        elif name and name.startswith("no_") and name[3:] in bools:
            out += [f"--{name[3:]}", "False"]
        else:
            out.append(arg)
    return out


def _one_line(text: str) -> str:
    """The message of tyro's error box: the lines between its first two rules, joined."""
    lines = [line.strip() for line in text.splitlines()]
    rules = [i for i, line in enumerate(lines) if line and set(line) <= set("-─━═")]
    body = lines[rules[0] + 1 : rules[1]] if len(rules) >= 2 else lines
    if len(rules) == 1:
        body = lines[rules[0] + 1 :]
    return " ".join(" ".join(line for line in body if line and "--help" not in line).split())


def parse(config_cls: type, args: Optional[list[str]] = None, epilog: str = "", default: Any = None):
    """The command line (sys.argv[1:] unless `args`) as a `config_cls`, in this project's dialect."""
    argv = sys.argv[1:] if args is None else [str(a) for a in args]
    prog = Path(sys.argv[0]).name
    if "-h" in argv or "--help" in argv:
        print(grouped_help(config_cls, prog, epilog))
        sys.exit(0)
    argv = _normalise(argv, _bool_fields(config_cls))
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(captured):
            return tyro.cli(config_cls, args=argv, default=default, use_underscores=True)
    except SystemExit as e:
        if e.code in (0, None):
            raise
        print(f"error: {_one_line(captured.getvalue())} (see {prog} --help)", file=sys.stderr)
        raise SystemExit(USAGE_ERROR) from None


# =============================================================================
# --help, grouped by the config's "# --- <group>" comments
# =============================================================================


def _kind(annotation: str, hint: Any) -> tuple[str, bool]:
    """The metavar of a field's annotation, and whether it is positional."""
    positional = "Positional[" in annotation
    if positional:
        annotation = annotation[annotation.index("Positional[") + len("Positional[") : -1]
    base = typing.get_origin(hint)
    if typing.get_origin(hint) is typing.Union:  # Optional[X]
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        base = typing.get_origin(hint)
    if base is typing.Literal:
        return "{" + ",".join(map(str, typing.get_args(hint))) + "}", positional
    if annotation.split(".")[-1] == "Bool" or hint is bool:
        return "{True,False}", positional
    if base in (list, tuple):
        item = typing.get_args(hint)[0].__name__.upper()
        return f"{item} [{item} ...]", positional
    return getattr(hint, "__name__", str(hint)).upper(), positional


@dataclasses.dataclass
class Flag:
    name: str
    kind: str  # the metavar: INT, STR, {True,False}, {a,b}, INT [INT ...]
    default: str  # as --help prints it; "(required)" for a required positional
    doc: str
    positional: bool


def flag_groups(config_cls: type) -> dict[str, list[Flag]]:
    """A flat config dataclass's fields under the headings of the `# --- <group>` comments in its
    source, the class's own fields first, then those it inherits (e.g. RunSettings); positional
    fields under "positional arguments", first."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    hints = typing.get_type_hints(config_cls)
    groups: dict[str, list[Flag]] = {}
    for cls in (c for c in config_cls.__mro__ if dataclasses.is_dataclass(c)):
        source = textwrap.dedent(inspect.getsource(cls))
        lines = source.splitlines()
        body = ast.parse(source).body[0].body
        for i, node in enumerate(body):
            if not isinstance(node, ast.AnnAssign):
                continue
            name = node.target.id
            if name not in fields:  # a ClassVar: an attribute of the config, not a flag
                continue
            heading = next(
                (
                    lines[n].strip()[6:]
                    for n in range(node.lineno - 1, -1, -1)
                    if lines[n].strip().startswith("# ---")
                ),
                "options",
            )
            doc = body[i + 1].value.value if i + 1 < len(body) and isinstance(body[i + 1], ast.Expr) else ""
            kind, positional = _kind(ast.unparse(node.annotation), hints[name])
            field = fields[name]
            value = field.default
            if value is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
                value = field.default_factory()
            if isinstance(value, (list, tuple)):
                default = " ".join(map(str, value)) or "none"
            else:
                default = "(required)" if value is dataclasses.MISSING else str(value)
            heading = "positional arguments" if positional else heading
            flag = Flag(name, kind, default, " ".join(doc.split()), positional)
            groups.setdefault(heading, []).append(flag)
    if "positional arguments" in groups:
        groups = {"positional arguments": groups.pop("positional arguments"), **groups}
    return groups


def grouped_help(config_cls: type, prog: str, epilog: str = "") -> str:
    """The --help text of a flat config dataclass, its flags grouped as `flag_groups` groups them
    (tyro prints one ungrouped box)."""
    groups = flag_groups(config_cls)
    usage = [prog]
    for flag in groups.get("positional arguments", []):
        name = flag.name.upper()
        usage.append(f"{name} [{name} ...]" if flag.kind.endswith("...]") else name)
    usage.append("[--flag VALUE ...]   (also --flag=VALUE, and dashes for underscores)")
    doc = (config_cls.__doc__ or "").strip().splitlines()[0]
    out = [f"usage: {' '.join(usage)}", "", doc]
    for heading, flags in groups.items():
        out += ["", f"{heading}:"]
        for flag in flags:
            default = flag.default if flag.default == "(required)" else f"(default: {flag.default})"
            indent = " " * 6
            wrapped = textwrap.wrap(f"{flag.doc} {default}", 100, initial_indent=indent, subsequent_indent=indent)
            head = f"  {flag.name.upper()}" if flag.positional else f"  --{flag.name} {flag.kind}"
            out += [head, *wrapped]
    return "\n".join(out + ["", epilog] if epilog else out)


_FLAG = re.compile(r"^  --(\w+) ")


def help_flags(text: str) -> list[str]:
    """The flag names a grouped_help text lists, in order (for tests and the flags table)."""
    return [m.group(1) for m in map(_FLAG.match, text.splitlines()) if m]
