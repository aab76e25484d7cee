"""Write docs/flags.md, the flags of every script, from the scripts' own dataclasses.

    uv run python scripts/flags_table.py           # rewrite docs/flags.md
    uv run python scripts/flags_table.py --check   # exit 1 if docs/flags.md differs from the code

The tables hold what `--help` prints (cli.flag_groups): names, defaults, help text, grouped under
the same headings. tests/test_docs.py fails when the committed file drifts from the code.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bench  # noqa: E402
import cli  # noqa: E402
import evaluation  # noqa: E402
import plot  # noqa: E402
import report  # noqa: E402
import runs  # noqa: E402
import train  # noqa: E402

OUT = ROOT / "docs" / "flags.md"

INTRO = """\
# All flags

Every script takes its flags in one form: `--name VALUE` or `--name=VALUE`, dashes or underscores
alike; booleans take a value, `--track False`, `--save_buffer 0` (True/False, 1/0, yes/no), as in
the paper's commands and wandb sweeps (a bare `--flag` also means True, `--no_flag` False).
`uv run <script>.py --help` prints the flags below under the same headings; a bad flag or value
ends with one line, `error: ... (see <script> --help)`, and status 2.

This page is generated from the code (`uv run python scripts/flags_table.py`); a test fails when
it drifts.
"""

TRAIN_NOTE = """\
`uv run train.py --help` ends with the list of env ids (`uv run python -m envs` prints it too). The
flags marked *run management* (the fields `train.Config` inherits from `runs.RunSettings`) manage
the run and may be given differently on resume; all others define the experiment.
"""


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(config_cls: type, only: set[str] | None = None, marked: frozenset[str] = frozenset()) -> str:
    rows = ["| flag | default | meaning |", "|---|---|---|"]
    for heading, flags in cli.flag_groups(config_cls).items():
        flags = [f for f in flags if only is None or f.name in only]
        if not flags:
            continue
        rows.append(f"| **{heading}** | | |")
        for f in flags:
            name = f.name.upper() if f.positional else f"--{f.name}"
            mark = " *run management*" if f.name in marked else ""
            rows.append(f"| `{name}` | `{cell(f.default)}` | {cell(f.doc)}{mark} |")
    return "\n".join(rows) + "\n"


def render() -> str:
    bench_own = {f.name for f in bench.dataclasses.fields(bench.Bench)} - {
        f.name for f in bench.dataclasses.fields(train.Config)
    }
    sections = [
        INTRO,
        "## train.py\n",
        TRAIN_NOTE,
        table(train.Config, marked=runs.run_management_fields(train.Config)),
        "## evaluation.py\n",
        f"{evaluation.EvalArgs.__doc__.strip()}\n",
        table(evaluation.EvalArgs),
        "## bench.py\n",
        "Every train.py flag, and these:\n",
        table(bench.Bench, only=bench_own),
        "## plot.py\n",
        f"{plot.PlotArgs.__doc__.strip()}\n",
        table(plot.PlotArgs),
        "## report.py\n",
        f"{report.ReportArgs.__doc__.strip()}\n",
        table(report.ReportArgs),
    ]
    return "\n".join(sections)


def main(argv: list[str]) -> int:
    text = render()
    if argv == ["--check"]:
        if OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is out of date: run uv run python scripts/flags_table.py")
            return 1
        return 0
    if argv:
        print("usage: uv run python scripts/flags_table.py [--check]", file=sys.stderr)
        return 2
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
