"""The README stays in step with the code and CI."""

import dataclasses
import re
from pathlib import Path

import train

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_documents_every_flag():
    table = (ROOT / "docs" / "flags.md").read_text()
    for field in dataclasses.fields(train.Config):
        assert f"`--{field.name}`" in table, field.name


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
