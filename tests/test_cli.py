"""One command-line dialect across train.py, evaluation.py, bench.py, plot.py and report.py (cli.py):
the same --help layout, booleans that take a value, one-line errors. In-process, no training."""

import dataclasses
import re
import sys
import typing

import pytest

import bench
import cli
import evaluation
import plot
import report
import train

# script -> (its arguments dataclass, the function its command line calls, a required positional)
SCRIPTS = {
    "train.py": (train.Config, train.parse_config, []),
    "evaluation.py": (evaluation.EvalArgs, evaluation.parse, ["runs/x"]),
    "bench.py": (bench.Bench, bench.main, []),
    "plot.py": (plot.PlotArgs, plot.main, ["runs/x"]),
    "report.py": (report.ReportArgs, report.main, ["runs/x"]),
}


def bool_fields(cls) -> list[str]:
    hints = typing.get_type_hints(cls)
    return [f.name for f in dataclasses.fields(cls) if hints[f.name] is bool]


def help_text(script: str, capsys, monkeypatch) -> str:
    cls, entry, _ = SCRIPTS[script]
    monkeypatch.setattr(sys, "argv", [script])
    with pytest.raises(SystemExit) as exit_info:
        entry(["--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_has_the_same_layout_in_every_script(script, capsys, monkeypatch):
    cls, _, positional = SCRIPTS[script]
    lines = help_text(script, capsys, monkeypatch).rstrip("\n").splitlines()
    assert lines[0].startswith(f"usage: {script} ") and "[--flag VALUE ...]" in lines[0]
    assert lines[1] == "" and lines[2] == cls.__doc__.strip().splitlines()[0]
    # Groups: a heading "name:" with its flags indented under it (an epilog may follow).
    headings = [
        line for i, line in enumerate(lines[3:-1], 3) if line[:1].strip() and lines[i + 1].startswith("  --")
    ]
    assert headings and all(h.endswith(":") for h in headings), headings
    # Every flag once, as "  --name KIND", its help indented by six spaces under it.
    flags = cli.help_flags("\n".join(lines))
    named = [f.name for f in dataclasses.fields(cls)]
    assert sorted(flags) == sorted(n for n in named if n.upper() not in lines[0]), script
    for i, line in enumerate(lines):
        if line.startswith("  --"):
            block = []
            for following in lines[i + 1 :]:
                if not following.startswith("      "):
                    break
                block.append(following.strip())
            assert "(default: " in " ".join(block), line
    for name in bool_fields(cls):
        assert f"  --{name} {{True,False}}" in lines, name
    if positional:
        assert "positional arguments:" in lines


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_bad_flag_gives_one_line(script, capsys, monkeypatch):
    cls, entry, positional = SCRIPTS[script]
    monkeypatch.setattr(sys, "argv", [script])
    with pytest.raises(SystemExit) as exit_info:
        entry([*positional, "--no_such_flag", "3"])
    assert exit_info.value.code == cli.USAGE_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "--no_such_flag" in err[0], err
    assert err[0].endswith(f"(see {script} --help)")


@pytest.mark.parametrize("script", SCRIPTS)
def test_booleans_take_true_and_false(script):
    cls, _, positional = SCRIPTS[script]
    names = bool_fields(cls)
    assert bool(names) == (script in ("train.py", "evaluation.py", "bench.py"))
    for name in names:
        for value, expected in (("False", False), ("True", True), ("0", False), ("1", True)):
            assert getattr(cli.parse(cls, [*positional, f"--{name}", value]), name) is expected


def test_a_bad_boolean_value_gives_one_line(capsys):
    with pytest.raises(SystemExit):
        cli.parse(evaluation.EvalArgs, ["runs/x", "--video", "maybe"])
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: Error parsing --video: expected True/False (or 1/0), got 'maybe' (see "
        f"{sys.argv[0].rsplit('/', 1)[-1]} --help)"
    )


def test_the_papers_track_false_and_the_older_bare_forms():
    assert train.parse_config(["--track", "False", "--save_buffer", "0"]).track is False
    args = cli.parse(evaluation.EvalArgs, ["runs/x", "--no_evaluate", "--heatmap", "--html", "--seed", "3"])
    assert (args.evaluate, args.heatmap, args.html, args.video, args.seed) == (False, True, True, False, 3)
    assert cli.parse(bench.Bench, ["--compile_only"]).compile_only is True
    assert cli.parse(bench.Bench, ["--compile-only=True", "--critic-depth", "8"]).critic_depth == 8


def test_bench_takes_every_train_flag():
    args = cli.parse(bench.Bench, ["--env_id", "reacher", "--depths", "4", "16", "--epochs", "1"])
    assert (args.env_id, args.depths, args.epochs) == ("reacher", (4, 16), 1)
    assert {f.name for f in dataclasses.fields(train.Config)} < {f.name for f in dataclasses.fields(bench.Bench)}


def test_one_line_of_a_tyro_box():
    box = " Value error \n ---------- \n  Error parsing --seed: bad   \n  value  \n  ----------\n  For full helptext, see x --help \n"
    assert cli._one_line(box) == "Error parsing --seed: bad value"
    assert re.fullmatch(r"\S.*\S", cli._one_line("no box at all\n"))
