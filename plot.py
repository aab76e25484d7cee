"""Learning curves of finished (or running) runs, seeds pooled.

Reads each run directory's metrics.jsonl (one record per epoch) and config.json.
Runs whose configs agree on everything but the seed (and bookkeeping such as
wandb or checkpoint settings) form one curve: the mean over seeds, with a band
from the lowest to the highest seed.

    uv run plot.py runs/ant_big_maze__crl__s* --label_by critic_depth --out depth.png
    uv run plot.py runs/a runs/b --metric eval/episode_success_any --x training/walltime

Curves are labelled by `--label_by` fields, or else by the config fields that
differ between curves.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import tyro

# Config fields that never change what a run learns: runs differing only in these
# (and the seed) are seeds of one configuration.
BOOKKEEPING = frozenset(
    {
        "seed", "exp_name", "run_root", "track", "wandb_project_name", "wandb_entity", "wandb_mode",
        "wandb_group", "wandb_dir", "compilation_cache_dir", "checkpoint", "checkpoint_every",
        "checkpoint_keep", "save_buffer", "capture_vis", "vis_length", "num_render",
    }
)  # fmt: skip


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
    """A run directory's config and metric records; FileNotFoundError names what is missing."""
    path = Path(path)
    metrics = path / "metrics.jsonl"
    if not metrics.is_file():
        raise FileNotFoundError(
            f"{path}: no metrics.jsonl here; pass run directories (runs/<env>__<exp>__s<seed>__<time>/)"
        )
    records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    config_file = path / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {"run": path.name}
    return Run(path, config, records)


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


def labels(groups: list[list[Run]], label_by: list[str]) -> list[str]:
    configs = [g[0].config for g in groups]
    fields = label_by or [
        k
        for k in sorted({k for c in configs for k in c} - BOOKKEEPING)
        if len({json.dumps(c.get(k)) for c in configs}) > 1
    ]
    if not fields:
        return [str(c.get("env_id", g[0].path.name)) for c, g in zip(configs, groups)]
    return [", ".join(f"{k}={c.get(k)}" for k in fields) for c in configs]


def plot(args: PlotArgs) -> Path:
    from matplotlib.figure import Figure

    if not args.runs:
        raise FileNotFoundError("no run directories given; usage: plot.py runs/a runs/b ...")
    groups = group_runs([read_run(path) for path in args.runs])
    fig = Figure(figsize=(8, 5), dpi=100)
    ax = fig.add_subplot()
    for group, label in zip(groups, labels(groups, args.label_by)):
        xs, mean, low, high = pool_seeds(group, args.x, args.metric)
        n = len(group)
        (line,) = ax.plot(xs, mean, label=f"{label} ({n} seed{'s' if n > 1 else ''})")
        if n > 1:
            ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2, lw=0)
    envs = sorted({str(g[0].config.get("env_id", "?")) for g in groups})
    ax.set_title(args.title or f"{', '.join(envs)}: {args.metric}")
    ax.set_xlabel(args.x)
    ax.set_ylabel(args.metric)
    if args.x == "training/envsteps" and max(ax.get_xlim()) >= 1e6:
        ax.ticklabel_format(axis="x", style="sci", scilimits=(6, 6))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=max(1, math.ceil(len(groups) / 12)))
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def main(args: Optional[list[str]] = None) -> Path:
    cli = tyro.cli(PlotArgs, args=args, use_underscores=True)
    try:
        out = plot(cli)
    except (FileNotFoundError, KeyError) as e:
        sys.exit(f"error: {e.args[0]}")
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
