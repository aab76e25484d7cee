"""Learning curves of finished (or running) runs, seeds pooled.

Reads each run directory's metrics.jsonl (one record per epoch) and config.json.
Runs whose configs agree on everything but the seed (and bookkeeping such as the
run directory, wandb or checkpoint settings) form one curve: the mean over seeds,
with a band from the lowest to the highest seed.

    uv run plot.py runs/ant_big_maze__crl__s* --label_by critic_depth --out depth.png
    uv run plot.py runs/a runs/b --metric eval/episode_success_any --x training/walltime

Curves are labelled by `--label_by` fields, or else by the config fields that
differ between curves. Runs of different --episode_length go on separate panels
(side by side, one per length), since per-episode scores such as
eval/episode_success are sums over the episode and do not compare across lengths.
Run folders that have a config.json but no finished epoch yet (a run killed or
still compiling) are skipped with one warning.
"""

from __future__ import annotations

import json
import math
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import tyro

import cli

# Config fields that never change what a run learns: runs differing only in these (and the
# seed) are seeds of one configuration. job.slurm gives every seed its own --run_dir (and
# --resume, wandb group, ...), so each of these must be listed or the seeds would not pool.
# It holds all of runs.RunSettings' fields (tests/test_plot.py checks), kept as a copy so
# that plotting does not import train (and JAX).
BOOKKEEPING = frozenset(
    {
        "seed", "exp_name", "run_dir", "run_root", "resume", "distributed", "track",
        "wandb_project_name", "wandb_entity", "wandb_mode", "wandb_group", "wandb_dir",
        "compilation_cache_dir", "checkpoint", "checkpoint_every", "checkpoint_keep", "save_buffer",
        "capture_vis", "vis_length", "num_render",
        # Same computation, other speed/memory trade-off (gradient checkpointing, unrolled loops).
        "remat", "unroll_blocks",
    }
)  # fmt: skip

# Config field whose values get one panel each: per-episode sums do not compare across it.
PANEL_BY = "episode_length"
# Legend label lines are wrapped at this many characters, so the legend stays narrow.
LABEL_WIDTH = 36


@dataclass
class PlotArgs:
    """Plot learning curves of runs; seeds of one configuration become a mean and a min-max band."""

    runs: tyro.conf.Positional[list[str]]
    """Run directories (each with metrics.jsonl and config.json)."""
    metric: str = "eval/episode_success"
    """Metric on the y axis (a key of metrics.jsonl)."""
    x: str = "training/envsteps"
    """Metric on the x axis."""
    out: str = "curves.png"
    """Output image (the format follows the suffix: png, pdf, svg)."""
    label_by: list[str] = field(default_factory=list)
    """Config fields that name a curve; empty = the fields that differ between curves."""
    title: Optional[str] = None
    """Figure title; None = the env ids and the metric."""


@dataclass
class Run:
    path: Path
    config: dict
    records: list[dict]


def read_run(path: str | Path) -> Run:
    """A run directory's config and metric records (none yet: an empty list).

    FileNotFoundError names a directory that is no run folder at all (neither metrics.jsonl
    nor config.json). A last line cut short (the run was killed while writing it) is dropped.
    """
    path = Path(path)
    metrics = path / "metrics.jsonl"
    config_file = path / "config.json"
    if not metrics.is_file() and not config_file.is_file():
        raise FileNotFoundError(
            f"{path}: no metrics.jsonl here; pass run directories (runs/<env>__<exp>__s<seed>__<time>/)"
        )
    lines = [line for line in metrics.read_text().splitlines() if line.strip()] if metrics.is_file() else []
    records = []
    for n, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if n < len(lines):
                raise ValueError(f"{metrics}: line {n} is not JSON: {line[:80]!r}") from None
    config = json.loads(config_file.read_text()) if config_file.is_file() else {"run": path.name}
    if config_file.is_file():
        config.setdefault("algorithm", "crl")  # runs saved before config.json named it are train.py's
    return Run(path, config, records)


def read_runs(paths: list[str]) -> list[Run]:
    """The runs that have at least one epoch recorded; the others are named in one warning line."""
    if not paths:
        raise FileNotFoundError("no run directories given; usage: plot.py runs/a runs/b ...")
    runs = [read_run(path) for path in paths]
    unstarted = [run for run in runs if not run.records]
    if unstarted:
        names = ", ".join(str(run.path) for run in unstarted)
        print(f"warning: skipping {len(unstarted)} run(s) with no epoch recorded yet: {names}", file=sys.stderr)
    runs = [run for run in runs if run.records]
    if not runs:
        raise FileNotFoundError("none of the given runs has an epoch in its metrics.jsonl yet")
    return runs


def group_key(config: dict) -> tuple:
    return tuple(sorted((k, json.dumps(v)) for k, v in config.items() if k not in BOOKKEEPING))


def group_runs(runs: list[Run]) -> list[list[Run]]:
    """Runs with the same config apart from the seed and bookkeeping, in first-seen order."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(group_key(run.config), []).append(run)
    return list(groups.values())


def series(run: Run, x: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    rows = [(r[x], r[metric]) for r in run.records if x in r and metric in r]
    if not rows:
        keys = sorted({k for r in run.records for k in r})
        raise KeyError(f"{run.path}: no record has both {x!r} and {metric!r}; keys: {', '.join(keys)}")
    xs, ys = np.asarray(rows, np.float64).T
    return xs, ys


def pool_seeds(
    group: list[Run], x: str, metric: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, mean, min, max) over the group's runs, on the x values of the shortest run
    (the others interpolated onto them), so a run still in progress cuts the curve short."""
    curves = [series(run, x, metric) for run in group]
    grid = min((xs for xs, _ in curves), key=lambda xs: xs[-1])
    ys = np.stack([np.interp(grid, xs, ys) for xs, ys in curves])
    return grid, ys.mean(0), ys.min(0), ys.max(0)


def short(value) -> str:
    """A config value as a legend shows it: floats without trailing noise."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def differing_fields(groups: list[list[Run]], ignore: frozenset = frozenset()) -> list[str]:
    """Config fields (not bookkeeping, not `ignore`) whose values differ between the groups.
    Only fields every group's config has: the algorithms (crl, sac, td3) each have flags the
    others lack, and `algorithm` itself tells them apart."""
    configs = [g[0].config for g in groups]
    return [
        k
        for k in sorted(set.intersection(*(set(c) for c in configs)) - BOOKKEEPING - ignore)
        if len({json.dumps(c.get(k)) for c in configs}) > 1
    ]


def labels(groups: list[list[Run]], label_by: list[str], ignore: frozenset = frozenset()) -> list[str]:
    """One legend label per group: `--label_by` fields, or else only the fields that differ
    between the groups, as `name=value` parts wrapped onto lines of LABEL_WIDTH characters."""
    configs = [g[0].config for g in groups]
    fields = label_by or differing_fields(groups, ignore)
    if not fields:
        return [str(c.get("env_id", g[0].path.name)) for c, g in zip(configs, groups)]
    return [
        "\n".join(textwrap.wrap(", ".join(f"{k}={short(c.get(k))}" for k in fields), LABEL_WIDTH))
        for c in configs
    ]


def panels(groups: list[list[Run]]) -> list[tuple[Optional[str], list[int]]]:
    """(panel title, indices of its groups): one panel per --episode_length when runs differ
    in it (title 'episode_length=N'), else a single panel without a title of its own."""
    values = sorted({json.dumps(g[0].config.get(PANEL_BY)) for g in groups})
    if len(values) == 1:
        return [(None, list(range(len(groups))))]
    return [
        (f"{PANEL_BY}={json.loads(v)}", [i for i, g in enumerate(groups) if json.dumps(g[0].config.get(PANEL_BY)) == v])
        for v in values
    ]


def plot(args: PlotArgs) -> Path:
    from matplotlib.figure import Figure

    groups = group_runs(read_runs(args.runs))
    layout = panels(groups)
    # Each panel titles its episode length, so the legend need not repeat it.
    names = labels(groups, args.label_by, frozenset({PANEL_BY}) if len(layout) > 1 else frozenset())
    # Constrained layout makes room for a legend outside the axes, so it is never cut off;
    # one panel keeps the 8 x 5 inch figure, each further one adds 4 inches of width.
    fig = Figure(figsize=(4 + 4 * len(layout), 5), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(layout), squeeze=False, sharey=False)[0]
    handles = []
    for ax, (panel_title, members) in zip(axes, layout):
        for i in members:
            group = groups[i]
            xs, mean, low, high = pool_seeds(group, args.x, args.metric)
            n = len(group)
            # Colours by group index, not per axes, so a colour means one configuration in
            # every panel; past ten groups the line style changes instead.
            (line,) = ax.plot(
                xs, mean, color=f"C{i % 10}", linestyle=["-", "--", ":", "-."][i // 10 % 4],
                label=f"{names[i]} ({n} seed{'s' if n > 1 else ''})",
            )  # fmt: skip
            handles.append(line)
            if n > 1:
                ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2, lw=0)
        if panel_title:
            ax.set_title(panel_title, fontsize=10)
        ax.set_xlabel(args.x)
        ax.set_ylabel(args.metric)
        if args.x == "training/envsteps" and max(ax.get_xlim()) >= 1e6:
            ax.ticklabel_format(axis="x", style="sci", scilimits=(6, 6))
        ax.grid(alpha=0.3)
    envs = sorted({str(g[0].config.get("env_id", "?")) for g in groups})
    fig.suptitle(args.title or f"{', '.join(envs)}: {args.metric}")
    lines = sum(h.get_label().count("\n") + 1 for h in handles)
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, ncol=max(1, math.ceil(lines / 28)))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def main(args: Optional[list[str]] = None) -> Path:
    opts = cli.parse(PlotArgs, args)
    try:
        out = plot(opts)
    except (FileNotFoundError, KeyError, ValueError) as e:
        sys.exit(f"error: {e.args[0]}")
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
