"""The README and docs/ stay in step with the code and CI."""

import dataclasses
import re
import sys
from pathlib import Path

import train

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_flags_page_is_generated_from_the_code():
    # docs/flags.md is what scripts/flags_table.py writes from the scripts' dataclasses.
    sys.path.insert(0, str(ROOT / "scripts"))
    import flags_table

    text = flags_table.render()
    assert (ROOT / "docs" / "flags.md").read_text() == text, (
        "docs/flags.md is out of date: run uv run python scripts/flags_table.py"
    )
    for field in dataclasses.fields(train.Config):
        assert f"| `--{field.name}` |" in text, field.name


def test_flags_table_changes_with_the_config():
    # The check can fail: a changed default or help text changes the table.
    sys.path.insert(0, str(ROOT / "scripts"))
    import flags_table

    @dataclasses.dataclass
    class Changed(train.Config):
        # --- extra
        new_flag: int = 3
        """A flag the committed table does not have."""

    assert "| `--new_flag` | `3` | A flag the committed table does not have. |" in flags_table.table(Changed)
    assert "| `--new_flag`" not in (ROOT / "docs" / "flags.md").read_text()


def test_ci_runs_exactly_the_readme_test_command():
    section = README[README.index("## Tests") :]
    command = re.search(r"```sh\n(.+?)\n```", section, re.S).group(1).strip()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert f'"${{uv[@]}}" {command.removeprefix("uv ")}' in ci_lines


def local_imports(path: Path) -> set[str]:
    """The repository's own top-level modules that a file imports (at any depth of its code)."""
    import ast

    local = {p.stem for p in ROOT.glob("*.py")} | {"envs"}
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & local


def test_no_module_imports_one_that_imports_it_back():
    # README: "No module imports one that imports it back". envs/ counts as one module.
    graph = {p.stem: local_imports(p) - {p.stem} for p in ROOT.glob("*.py")}
    graph["envs"] = set().union(*(local_imports(p) for p in (ROOT / "envs").glob("*.py"))) - {"envs"}
    assert {"train", "runs", "checks", "evaluation"} <= graph.keys()
    assert "runs" in graph["train"] and "checks" in graph["train"]

    def reaches(start: str, target: str, seen: set) -> bool:
        nexts = graph.get(start, ())
        return any(n == target or (n not in seen and reaches(n, target, seen | {n})) for n in nexts)

    cycles = sorted(m for m in graph if reaches(m, m, set()))
    assert not cycles, f"modules on an import cycle: {cycles}"


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def without_code(text: str) -> str:
    """Markdown text with its fenced code blocks and inline code removed."""
    for _, block in code_blocks(text):
        text = text.replace(block, "", 1)
    return re.sub(r"`[^`\n]*`", "", text)


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for a markdown file's headings."""
    slugs = set()
    for heading in re.findall(r"^#{1,6} (.+)$", without_code(path.read_text()), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", "")).replace(" ", "-")
        slugs.add(slug)
    return slugs


def links(path: Path) -> list[str]:
    return [
        target
        for target in re.findall(r"\]\(([^)\s]+)\)", without_code(path.read_text()))
        if not re.match(r"[a-z]+:", target)
    ]


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in links(path):
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        if not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and (resolved.suffix != ".md" or anchor not in anchors(resolved)):
            broken.append(f"{target} (no such heading)")
    return broken


def test_relative_links_resolve():
    assert len(DOCS) > 5 and sum(len(links(p)) for p in DOCS) > 10
    broken = {p.relative_to(ROOT).as_posix(): broken_links(p) for p in DOCS}
    assert not {k: v for k, v in broken.items() if v}


def test_link_check_can_fail(tmp_path):
    (tmp_path / "a.md").write_text("# Real heading\n\n[ok](#real-heading) [gone](b.md) [bad](a.md#nope)\n")
    assert broken_links(tmp_path / "a.md") == ["b.md (no such file)", "a.md#nope (no such heading)"]


# Placeholders the docs' commands use, with a value each parses with.
SHELL_VALUES = {"$FORM": "exact", "$SEED": "0", "$DEPTH": "4"}


def code_blocks(text: str) -> list[tuple[str, str]]:
    """The fenced code blocks of a markdown text: (language, body)."""
    blocks, lang, body = [], None, []
    for line in text.splitlines():
        if line.lstrip().startswith("```"):  # fences may be indented (inside a list item)
            if lang is None:
                lang, body = line.strip()[3:], []
            else:
                blocks.append((lang, "\n".join(body) + "\n"))
                lang = None
        elif lang is not None:
            body.append(line)
    return blocks


def doc_commands() -> list[tuple[str, str, list[str]]]:
    """Every `uv run [--extra X] <script>.py ...` command in the docs' code blocks:
    (where, script, its arguments)."""
    import shlex

    found = []
    for path in DOCS:
        for lang, block in code_blocks(path.read_text()):
            if lang not in ("", "sh", "bash"):
                continue
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #", 1)[0].strip()
                match = re.match(r"(?:\w+=\S+ )*uv run (?:--extra \S+ )?(\w+)\.py\b(.*)", line)
                if match:
                    for name, value in SHELL_VALUES.items():
                        line = line.replace(name, value)
                    args = shlex.split(line)[shlex.split(line).index(f"{match.group(1)}.py") + 1 :]
                    found.append((path.relative_to(ROOT).as_posix(), match.group(1), args))
    return found


def parser_of(script: str):
    """The dataclass a script's command line parses into (a script of its own: its Config)."""
    import importlib

    import bench
    import evaluation
    import plot
    import report

    known = {
        "train": train.Config,
        "bench": bench.Bench,
        "evaluation": evaluation.EvalArgs,
        "plot": plot.PlotArgs,
        "report": report.ReportArgs,
    }
    return known[script] if script in known else importlib.import_module(script).Config


def test_every_command_in_the_docs_parses():
    import cli

    commands = doc_commands()
    scripts = {script for _, script, _ in commands}
    assert {"train", "bench", "evaluation", "plot", "report"} <= scripts, scripts
    for where, script, args in commands:
        assert not any("$" in a for a in args), (where, args)
        cli.parse(parser_of(script), args)  # a bad flag exits with its one-line error


def test_command_check_can_fail(capsys):
    import cli
    import pytest

    with pytest.raises(SystemExit):
        cli.parse(parser_of("train"), ["--critic_depht", "4"])
    assert "--critic_depht" in capsys.readouterr().err
