"""The README stays in step with the code and CI."""

import dataclasses
import re
from pathlib import Path

import train

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_documents_every_flag():
    table = README[README.index("## All flags") :]
    for field in dataclasses.fields(train.Config):
        assert f"`--{field.name}`" in table, field.name


def test_ci_runs_exactly_the_readme_test_command():
    section = README[README.index("## Tests") :]
    command = re.search(r"```sh\n(.+?)\n```", section, re.S).group(1).strip()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert f'"${{uv[@]}}" {command.removeprefix("uv ")}' in ci_lines
