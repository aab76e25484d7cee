"""The paper's Table 1 statistic from finished runs, beside the paper's own numbers.

Per run: the mean of `eval/episode_success` over its last five evaluations (the paper's
single-number score, Section 4.1). Per configuration: the mean and the sample standard
deviation of that score over seeds, with the paper's Table 1 value where the task and
depth (4 or 64) have one, and the ratio ours / paper.

    uv run report.py runs/*
    uv run report.py runs/* --csv table1.csv --json table1.json --plot depth.png

Runs form one row when their configs agree on everything but the seed and the
bookkeeping fields in IGNORED. The paper's numbers live in data/paper_table1.json,
which names their source.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import tyro

import cli

METRIC = "eval/episode_success"
LAST = 5  # the paper averages the last five epochs' evaluations
PAPER_DEPTHS = (4, 64)
PAPER_FILE = Path(__file__).resolve().parent / "data" / "paper_table1.json"

# Config fields that cannot change what a run learns or how it is scored, so runs that
# differ only in these (and the seed) are seeds of one configuration.
#
# exp_name and wandb_group are ignored too: they are labels. job.slurm sets them from the
# env and the depth (`depth64`, `ant_depth64`), which are compared as config fields in
# their own right, so keeping them would only split a depth's seeds started by job.slurm
# from the same configuration started by hand (exp_name `crl`). A real variant (say
# a different batch size) always shows up in a field that is compared.
#
# unroll_blocks and remat change how the program is laid out (unrolled or looped blocks,
# recomputed activations), not the function it computes; save_buffer only matters for a
# resumed run's refill and belongs with the checkpoint settings.
IGNORED = frozenset(
    {
        "seed", "run_dir", "run_root", "exp_name", "resume", "distributed", "track",
        "wandb_project_name", "wandb_entity", "wandb_mode", "wandb_group", "wandb_dir",
        "compilation_cache_dir", "checkpoint", "checkpoint_every", "checkpoint_keep",
        "save_buffer", "capture_vis", "vis_length", "num_render", "unroll_blocks", "remat",
    }
)  # fmt: skip
REQUIRED = ("env_id", "critic_depth", "actor_depth", "episode_length")


class ReportError(Exception):
    """Bad input: the message says what is wrong and where; main() exits with status 2."""


@dataclass
class ReportArgs:
    """Table 1 of the paper (success at depth 4 and 64) from run directories, seeds pooled."""

    runs: tyro.conf.Positional[list[str]]
    """Run directories, each with config.json and metrics.jsonl (e.g. runs/*)."""
    csv: Optional[str] = None
    """Also write the table as CSV here (one row per configuration)."""
    json: Optional[str] = None
    """Also write the table as JSON here, with each run's last-five mean."""
    plot: Optional[str] = None
    """Also draw success against depth per task (the paper's Fig. 1) into this image."""


@dataclass
class Run:
    path: Path
    config: dict
    successes: list[float]  # eval/episode_success by epoch
    last_epoch: int

    @property
    def score(self) -> float:
        return statistics.fmean(self.successes[-LAST:])

    @property
    def short(self) -> bool:
        return len(self.successes) < LAST

    @property
    def unfinished(self) -> bool:
        epochs = self.config.get("num_epochs")
        return isinstance(epochs, int) and self.last_epoch < epochs


@dataclass
class Row:
    runs: list[Run]
    config: dict  # the first run's config, less the ignored fields
    task: str
    variant: str = ""  # the compared fields in which this row differs from its task's others
    paper: Optional[dict] = None  # {"mean", "pm"} where the paper has this task and depth

    @property
    def env_id(self) -> str:
        return self.config["env_id"]

    @property
    def algorithm(self) -> str:
        """crl (train.py), sac or td3 (sac.py, td3.py)."""
        return self.config["algorithm"]

    @property
    def eval_env_id(self) -> str:
        return self.config.get("eval_env_id") or self.env_id

    @property
    def depths(self) -> tuple[int, int]:
        return self.config["critic_depth"], self.config["actor_depth"]

    @property
    def scores(self) -> list[float]:
        return [run.score for run in self.runs]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores)

    @property
    def std(self) -> Optional[float]:
        # n - 1: a handful of seeds is a sample of the seed distribution, not all of it.
        return statistics.stdev(self.scores) if len(self.runs) > 1 else None

    @property
    def ratio(self) -> Optional[float]:
        if self.paper is None or self.paper["mean"] == 0:
            return None
        return self.mean / self.paper["mean"]

    @property
    def evals(self) -> int:
        return min(len(run.successes) for run in self.runs)


# -- reading


def read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise ReportError(f"{path}: cannot read {what}: {e}") from None
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}: not valid JSON ({e})") from None


def read_successes(path: Path) -> tuple[list[float], int]:
    """(eval/episode_success by epoch, last epoch) of a metrics.jsonl; empty if none yet."""
    if not path.is_file():
        return [], 0
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ReportError(f"{path}: cannot read metrics: {e}") from None
    lines = text.splitlines()
    records = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            # A run that is writing its record right now leaves a last line without its
            # newline; anything else is damage worth looking at.
            if i == len(lines) and not text.endswith("\n"):
                print(f"warning: {path}: ignoring the unfinished last line", file=sys.stderr)
                continue
            raise ReportError(f"{path}, line {i}: not valid JSON ({e})") from None
        if not isinstance(record, dict) or not isinstance(record.get("epoch"), int):
            raise ReportError(f"{path}, line {i}: expected a JSON object with an integer 'epoch'")
        records.append(record)
    # By epoch, last record of an epoch winning: a resumed run rewrites its later epochs.
    by_epoch = {r["epoch"]: r for r in records}
    scored = [by_epoch[e] for e in sorted(by_epoch) if METRIC in by_epoch[e]]
    for r in scored:
        if not isinstance(r[METRIC], (int, float)) or isinstance(r[METRIC], bool):
            raise ReportError(f"{path}: epoch {r['epoch']}: {METRIC} is {r[METRIC]!r}, not a number")
    return [float(r[METRIC]) for r in scored], max(by_epoch, default=0)


def read_runs(paths: list[str]) -> list[Run]:
    """The usable runs among `paths`; folders without config.json or without any
    evaluation are skipped with one warning line each kind."""
    if not paths:
        raise ReportError("no run directories given; usage: report.py runs/*")
    runs, no_config, no_evals, seen = [], [], [], set()
    for name in paths:
        path = Path(name)
        if not path.exists():
            raise ReportError(f"{name}: no such file or directory")
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        if not (path / "config.json").is_file():
            no_config.append(name)
            continue
        config = read_json(path / "config.json", "config")
        if not isinstance(config, dict):
            raise ReportError(f"{path / 'config.json'}: expected a JSON object of config fields")
        missing = [k for k in REQUIRED if k not in config]
        if missing:
            raise ReportError(f"{path / 'config.json'}: no {', '.join(missing)}; is this a train.py run?")
        for k in ("critic_depth", "actor_depth", "episode_length"):
            if not isinstance(config[k], int) or isinstance(config[k], bool):
                raise ReportError(f"{path / 'config.json'}: {k} is {config[k]!r}, not an integer")
        config.setdefault("algorithm", "crl")  # runs saved before config.json named it are train.py's
        successes, last_epoch = read_successes(path / "metrics.jsonl")
        if not successes:
            no_evals.append(name)
            continue
        runs.append(Run(path, config, successes, last_epoch))
    if no_config:
        print(f"warning: skipped (no config.json): {', '.join(no_config)}", file=sys.stderr)
    if no_evals:
        print(f"warning: skipped (no evaluation yet): {', '.join(no_evals)}", file=sys.stderr)
    if not runs:
        hint = ""
        if any(path.is_dir() and any(path.glob("*/config.json")) for path in map(Path, no_config)):
            hint = " (pass the run folders themselves, e.g. runs/*, not the folder above them)"
        raise ReportError(f"none of the given folders holds a run with an evaluation{hint}")
    return runs


def load_paper(path: Path = PAPER_FILE) -> dict[str, dict]:
    """The paper's Table 1 by our env id."""
    data = read_json(path, "the paper's numbers")
    return {t["env_id"]: t for t in data["tasks"]}


# -- grouping


def compared(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in IGNORED}


def group_runs(runs: list[Run], paper: dict[str, dict]) -> list[Row]:
    groups: dict[str, list[Run]] = {}
    for run in runs:
        key = json.dumps(compared(run.config), sort_keys=True)
        groups.setdefault(key, []).append(run)
    rows = [Row(g, compared(g[0].config), "") for g in groups.values()]

    by_env: dict[str, list[Row]] = {}
    for row in rows:
        by_env.setdefault(row.env_id, []).append(row)
    for env_id, env_rows in by_env.items():
        lengths: dict[int, list[str]] = {}
        for row in env_rows:
            lengths.setdefault(row.config["episode_length"], []).extend(str(r.path) for r in row.runs)
        if len(lengths) > 1:
            # episode_success counts steps in the goal radius out of episode_length, so
            # numbers from different lengths are not on one scale.
            listed = "; ".join(f"{n} steps: {', '.join(p)}" for n, p in sorted(lengths.items()))
            raise ReportError(
                f"{env_id}: runs with different episode_length in one table ({listed}); "
                "success counts steps out of the episode length, so report them separately"
            )
        # Name a row by its algorithm where the task has several, then by the compared fields
        # (other than the depths, which have their own column) in which the task's rows of that
        # algorithm differ: each algorithm has flags the others lack, which are not variants.
        by_algorithm: dict[str, list[Row]] = {}
        for row in env_rows:
            by_algorithm.setdefault(row.algorithm, []).append(row)
        for algorithm, algorithm_rows in by_algorithm.items():
            varying = sorted(
                k
                for k in {k for row in algorithm_rows for k in row.config} - {"critic_depth", "actor_depth"}
                if len({json.dumps(row.config.get(k)) for row in algorithm_rows}) > 1
            )
            for row in algorithm_rows:
                named = [f"algorithm={algorithm}"] if len(by_algorithm) > 1 else []
                row.variant = ", ".join(named + [f"{k}={row.config.get(k)}" for k in varying])
        for row in env_rows:
            entry = paper.get(env_id)
            row.task = entry["task"] if entry else env_id
            critic, actor = row.depths
            # The paper's cells are CRL's, on the task's own evaluation over 1000-step episodes with
            # actor and critic at the same depth; anything else has no paper value.
            if (
                entry
                and row.algorithm == "crl"
                and critic == actor
                and critic in PAPER_DEPTHS
                and row.eval_env_id == env_id
                and row.config["episode_length"] == 1000
            ):
                row.paper = entry[f"depth_{critic}"]
        for row in env_rows:
            seeds: dict[object, list[str]] = {}
            for run in row.runs:
                seeds.setdefault(run.config.get("seed"), []).append(str(run.path))
            for seed, paths in seeds.items():
                if len(paths) > 1:
                    print(
                        f"warning: seed {seed} appears in {len(paths)} runs of one configuration "
                        f"({', '.join(paths)}); each is counted",
                        file=sys.stderr,
                    )

    order = {env_id: i for i, env_id in enumerate(paper)}
    rows.sort(key=lambda r: (order.get(r.env_id, len(order)), r.env_id, r.variant, r.depths))
    return rows


# -- output


def fmt(x: Optional[float]) -> str:
    if x is None:
        return ""
    if not math.isfinite(x):
        return str(x)
    return f"{x:.1f}" if abs(x) >= 1 else f"{x:.2f}"


def depth_label(row: Row) -> str:
    critic, actor = row.depths
    return str(critic) if critic == actor else f"critic {critic} / actor {actor}"


def steps_label(n) -> str:
    if not isinstance(n, (int, float)):
        return str(n)
    return f"{n / 1e6:g}M" if n >= 1e6 else f"{n:,}"


def markdown(rows: list[Row]) -> str:
    header = (
        "| task | env | depth | episode length | env steps | seeds | evals | ours (mean ± std) "
        "| paper (mean ± as printed) | ours / paper | config |"
    )
    out = [
        f"Table 1 statistic: {METRIC} (steps within the goal radius, out of the episode length), "
        f"mean of each run's last {LAST} evaluations; mean and std over seeds.",
        "",
        header,
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    short, unfinished = [], []
    for row in rows:
        env = row.env_id if row.eval_env_id == row.env_id else f"{row.env_id} (eval {row.eval_env_id})"
        seeds = str(len(row.runs))
        if any(run.unfinished for run in row.runs):
            seeds += " †"
            unfinished += [run for run in row.runs if run.unfinished]
        evals = str(row.evals)
        if row.evals < LAST:
            evals += " *"
            short += [run for run in row.runs if run.short]
        ours = fmt(row.mean) + (f" ± {fmt(row.std)}" if row.std is not None else "")
        paper = f"{row.paper['mean']:g} ± {row.paper['pm']:g}" if row.paper else "—"
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else "—"
        out.append(
            f"| {row.task} | {env} | {depth_label(row)} | {row.config['episode_length']} "
            f"| {steps_label(row.config.get('total_env_steps'))} | {seeds} | {evals} | {ours} "
            f"| {paper} | {ratio} | {row.variant} |"
        )
    if short:
        listed = ", ".join(f"{run.path} ({len(run.successes)})" for run in short)
        out += ["", f"\\* fewer than {LAST} evaluations, averaged over what there is: {listed}"]
    if unfinished:
        listed = ", ".join(
            f"{run.path} (epoch {run.last_epoch} of {run.config['num_epochs']})" for run in unfinished
        )
        out += ["", f"† still running or stopped early, scored on its last epochs so far: {listed}"]
    if any(row.std is None for row in rows):
        out += ["", "std is blank for a single seed."]
    return "\n".join(out)


def records(rows: list[Row]) -> list[dict]:
    return [
        {
            "task": row.task,
            "env_id": row.env_id,
            "eval_env_id": row.eval_env_id,
            "algorithm": row.algorithm,
            "critic_depth": row.depths[0],
            "actor_depth": row.depths[1],
            "episode_length": row.config["episode_length"],
            "total_env_steps": row.config.get("total_env_steps"),
            "config": row.variant,
            "seeds": len(row.runs),
            "min_evals": row.evals,
            "mean": row.mean,
            "std": row.std,
            "paper_mean": row.paper["mean"] if row.paper else None,
            "paper_pm": row.paper["pm"] if row.paper else None,
            "ratio": row.ratio,
            "runs": [
                {
                    "path": str(run.path),
                    "seed": run.config.get("seed"),
                    "evals": len(run.successes),
                    "last_epoch": run.last_epoch,
                    "score": run.score,
                }
                for run in row.runs
            ],
        }
        for row in rows
    ]


def to_csv(rows: list[Row]) -> str:
    table = records(rows)
    buf = io.StringIO()
    columns = [k for k in table[0] if k != "runs"] + ["run_paths"]
    writer = csv.DictWriter(buf, columns, lineterminator="\n")
    writer.writeheader()
    for rec in table:
        runs = rec.pop("runs")
        writer.writerow({**rec, "run_paths": " ".join(r["path"] for r in runs)})
    return buf.getvalue()


def write_text(path: str, text: str) -> None:
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    except OSError as e:
        raise ReportError(f"{path}: cannot write: {e}") from None


def plot(rows: list[Row], paper: dict[str, dict], out: str) -> None:
    """Success against depth per task, the paper's depth-4 and depth-64 cells marked."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    tasks: dict[str, list[Row]] = {}
    for row in rows:
        tasks.setdefault(row.env_id, []).append(row)
    ncols = min(3, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.4 * nrows), dpi=100)
    for i, (env_id, task_rows) in enumerate(tasks.items()):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        # One line per variant; a row whose actor depth differs from its critic's is
        # its own line, drawn at the critic depth.
        lines: dict[str, list[Row]] = {}
        for row in task_rows:
            critic, actor = row.depths
            label = ", ".join(filter(None, [row.variant, "" if critic == actor else f"actor {actor}"]))
            lines.setdefault(label, []).append(row)
        for label, line_rows in lines.items():
            line_rows.sort(key=lambda r: r.depths[0])
            xs = [r.depths[0] for r in line_rows]
            ys = [r.mean for r in line_rows]
            err = [r.std or 0.0 for r in line_rows]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=label or "ours")
        entry = paper.get(env_id)
        if entry and task_rows[0].eval_env_id == env_id and task_rows[0].config["episode_length"] == 1000:
            cells = [entry[f"depth_{d}"] for d in PAPER_DEPTHS]
            ax.errorbar(
                PAPER_DEPTHS, [c["mean"] for c in cells], yerr=[c["pm"] for c in cells],
                marker="*", markersize=11, linestyle="none", color="black", capsize=3,
                label="paper (Table 1)",
            )  # fmt: skip
        ax.set_xscale("log", base=2)
        depths = sorted({r.depths[0] for r in task_rows} | set(PAPER_DEPTHS if entry else ()))
        ax.set_xticks(depths, [str(d) for d in depths])
        ax.set_title(entry["task"] if entry else env_id)
        ax.set_xlabel("depth")
        ax.set_ylabel(f"success (steps of {task_rows[0].config['episode_length']})")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    try:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out)
    except (OSError, ValueError) as e:
        raise ReportError(f"{out}: cannot write the plot: {e}") from None


def report(args: ReportArgs) -> str:
    paper = load_paper()
    rows = group_runs(read_runs(args.runs), paper)
    if args.csv:
        write_text(args.csv, to_csv(rows))
    if args.json:
        write_text(args.json, json.dumps(records(rows), indent=2) + "\n")
    if args.plot:
        plot(rows, paper, args.plot)
    return markdown(rows)


def main(argv: Optional[list[str]] = None) -> str:
    args = cli.parse(ReportArgs, argv)
    try:
        text = report(args)
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(text)
    return text


if __name__ == "__main__":
    main()
