"""Train with our code and the authors' on the same config and seeds, one run at a time, and compare.

    # runs (ours, then theirs, alternating which goes first per seed), wall time of each:
    uv run python scripts/reference/side_by_side.py run --ref $REF --out sbs/arm_reach --env_id arm_reach
    # the table (eval success per epoch, mean and spread over seeds, Welch p at the end, wall times)
    # and one plot of both:
    uv run python scripts/reference/side_by_side.py report sbs/arm_reach --plot side_by_side_arm_reach.png

`$REF` is an install of the authors' code made as docs/parity.md (Reproducing) describes: `$REF/src`
their checkout, `$REF/venv` its venv. Both programs get the same flags: env, envs, unroll length,
batch size, widths and depths, SGD batches per training step, epochs, training steps per epoch,
evaluation envs, replay sizes, seed. Their code has no flag for training steps per epoch; it derives
them from the total, so the total is set to prefill + epochs x steps x envs x unroll for both, and
each side's log is checked for that count.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SHARED = ("env_id", "num_envs", "unroll_length", "batch_size", "critic_network_width", "actor_network_width",
          "critic_depth", "actor_depth", "num_sgd_batches_per_training_step", "num_epochs", "num_eval_envs",
          "min_replay_size", "max_replay_size", "episode_length")
DEFAULT_METRICS = ["eval/episode_success", "eval/episode_dist"]
EPOCH_LINE = re.compile(r"epoch (\d+) out of (\d+) complete\. metrics: (.*)$")
METRIC = re.compile(r"'([^']+)': (?:Array\(|np\.float\d+\()?(-?(?:nan|inf|[0-9.]+(?:e[-+]?\d+)?))")


def total_env_steps(c: dict) -> int:
    per_step = c["num_envs"] * c["unroll_length"]
    prefill_unrolls = math.ceil(c["min_replay_size"] / c["unroll_length"])
    return prefill_unrolls * per_step + c["num_epochs"] * c["train_steps_per_epoch"] * per_step


def ours_cmd(c: dict, seed: int, run_dir: Path) -> list[str]:
    flags = [f"--{k}={c[k]}" for k in SHARED]
    return ["uv", "run", "--project", str(ROOT), "python", str(ROOT / "train.py"), *flags,
            f"--total_env_steps={total_env_steps(c)}", f"--seed={seed}", f"--run_dir={run_dir}",
            "--track=False", "--capture_vis=False", "--checkpoint=False"]


def theirs_cmd(c: dict, seed: int, ref: Path) -> list[str]:
    flags = [f"--{k}={c[k]}" for k in SHARED]
    return [str(ref / "venv" / "bin" / "python"), "train.py", *flags, f"--total_env_steps={total_env_steps(c)}",
            f"--seed={seed}", "--no-track", "--no-capture-vis", "--no-checkpoint"]


def run(a) -> None:
    c = {k: getattr(a, k) for k in (*SHARED, "train_steps_per_epoch")}
    a.out.mkdir(parents=True, exist_ok=True)
    record_path = a.out / "runs.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {"config": c, "runs": []}
    if record["config"] != c:
        sys.exit(f"{a.out} holds runs of another config ({record_path}); use a new --out")
    done = {(r["code"], r["seed"]) for r in record["runs"]}
    lock = threading.Lock()

    def one(code: str, seed: int, core: int | None) -> None:
        log = a.out / f"{code}_s{seed}.log"
        if code == "ours":
            cmd, cwd = ours_cmd(c, seed, a.out / f"ours_s{seed}"), ROOT
        else:
            cmd, cwd = theirs_cmd(c, seed, a.ref), a.ref / "src"
        on = "" if core is None else f" on core {core}"
        print(f"{time.strftime('%H:%M:%S')} {code} seed {seed}{on}: {shlex.join(cmd)}", flush=True)
        pin = None if core is None else (lambda: os.sched_setaffinity(0, {core}))
        t0 = time.time()
        with open(log, "w") as f:
            rc = subprocess.call(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, preexec_fn=pin,
                                 env={**os.environ, "JAX_PLATFORMS": "cpu"})
        wall = time.time() - t0
        print(f"{time.strftime('%H:%M:%S')} {code} seed {seed}: exit {rc}, {wall:.0f} s", flush=True)
        if rc != 0:
            raise RuntimeError(f"{code} seed {seed} failed (exit {rc}); see {log}")
        with lock:
            record["runs"].append({"code": code, "seed": seed, "wall_s": wall, "core": core,
                                   "command": shlex.join(cmd)})
            record_path.write_text(json.dumps(record, indent=1) + "\n")

    if a.cores is None:  # one run at a time; neither code always runs first
        queue = [(code, seed) for i, seed in enumerate(a.seeds)
                 for code in (("ours", "theirs") if i % 2 == 0 else ("theirs", "ours"))]
        try:
            for code, seed in queue:
                if (code, seed) not in done:
                    one(code, seed, None)
        except RuntimeError as e:
            sys.exit(str(e))
        return
    # Each code runs its seeds in turn on its own core, both codes at once.
    failures = []

    def lane(code: str, core: int) -> None:
        try:
            for seed in a.seeds:
                if (code, seed) not in done:
                    one(code, seed, core)
        except RuntimeError as e:
            failures.append(str(e))

    lanes = [threading.Thread(target=lane, args=(code, core)) for code, core in zip(("ours", "theirs"), a.cores)]
    for t in lanes:
        t.start()
    for t in lanes:
        t.join()
    if failures:
        sys.exit("; ".join(failures))


def their_metrics(log: Path) -> list[dict]:
    """Per epoch, the metrics dict their train.py prints (values are jax arrays in its repr)."""
    out = []
    for line in log.read_text().splitlines():
        m = EPOCH_LINE.search(line)
        if m:
            out.append({k: float(v) for k, v in METRIC.findall(m.group(3))})
    return out


def training_steps_logged(log: Path, code: str) -> int | None:
    """Training steps per epoch as the program itself reports them in its log."""
    pattern = r"x (\d+) training steps x" if code == "ours" else r"num_training_steps_per_epoch: (\d+)"
    found = [int(m) for m in re.findall(pattern, log.read_text())]
    return found[-1] if found else None


def our_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def curves(out: Path, key: str) -> dict[str, dict[int, np.ndarray]]:
    record = json.loads((out / "runs.json").read_text())
    cur: dict[str, dict[int, np.ndarray]] = {"ours": {}, "theirs": {}}
    for r in record["runs"]:
        seed = r["seed"]
        rows = our_metrics(out / f"ours_s{seed}") if r["code"] == "ours" else their_metrics(out / f"theirs_s{seed}.log")
        if any(key not in row for row in rows):
            logged = sorted(k for k in rows[0] if k.startswith("eval/"))
            sys.exit(f"{r['code']} seed {seed} does not log {key} in every epoch; it logs {', '.join(logged)}")
        cur[r["code"]][seed] = np.array([row[key] for row in rows])
    return cur


def short(key: str) -> str:
    return key.removeprefix("eval/episode_")


def report(a) -> dict:
    from scipy import stats

    record = json.loads((a.out / "runs.json").read_text())
    c = record["config"]
    metrics = list(getattr(a, "metrics", None) or DEFAULT_METRICS)
    cur = {key: curves(a.out, key) for key in metrics}
    wall = {code: [r["wall_s"] for r in record["runs"] if r["code"] == code] for code in ("ours", "theirs")}
    for code, by_seed in cur[metrics[0]].items():
        for seed, v in by_seed.items():
            if len(v) != c["num_epochs"]:
                sys.exit(f"{code} seed {seed}: {len(v)} epochs logged, expected {c['num_epochs']}")
            steps = training_steps_logged(a.out / f"{code}_s{seed}.log", code)
            if steps != c["train_steps_per_epoch"]:
                sys.exit(f"{code} seed {seed} ran {steps} training steps per epoch, not {c['train_steps_per_epoch']}")
    summary = {"config": c, "metrics": metrics, "total_env_steps": total_env_steps(c), "epochs": {},
               "wall_s": wall, "welch_p_last_epoch": {}}  # fmt: skip
    seeds = {code: len(v) for code, v in cur[metrics[0]].items()}
    print(f"{c['env_id']}: {seeds['ours']} seeds ours, {seeds['theirs']} theirs; mean ± std over seeds; episodes "
          f"of {c['episode_length']} steps")
    columns = [f"{code} {short(key)}" for key in metrics for code in ("ours", "theirs")]
    print("\n| epoch | env steps | " + " | ".join(columns) + " |\n|---|---|" + "---|" * len(columns))
    per_epoch = c["train_steps_per_epoch"] * c["num_envs"] * c["unroll_length"]
    prefill = total_env_steps(c) - c["num_epochs"] * per_epoch
    fmt = lambda m: f"{m[0]:.3g} ± {m[1]:.2g}"  # noqa: E731
    for e in range(c["num_epochs"]):
        row = {}
        for key in metrics:
            for code in ("ours", "theirs"):
                v = np.array([s[e] for s in cur[key][code].values()])
                row[f"{code}_{short(key)}"] = (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0)
        summary["epochs"][e + 1] = row
        print(f"| {e + 1} | {prefill + (e + 1) * per_epoch:,} | " + " | ".join(fmt(m) for m in row.values()) + " |")
    print()
    for key in metrics:
        last = {code: np.array([s[-1] for s in cur[key][code].values()]) for code in ("ours", "theirs")}
        if min(map(len, last.values())) > 1 and (last["ours"].std() > 0 or last["theirs"].std() > 0):
            p = float(stats.ttest_ind(last["ours"], last["theirs"], equal_var=False).pvalue)
        else:
            p = float("nan")
        summary["welch_p_last_epoch"][short(key)] = p
        print(f"last epoch {short(key)}: ours {last['ours'].mean():.3g}, theirs {last['theirs'].mean():.3g}, "
              f"Welch p {p:.2f}")
    ratio = np.median(wall["theirs"]) / np.median(wall["ours"]) if wall["ours"] and wall["theirs"] else float("nan")
    summary["wall_ratio_theirs_over_ours"] = float(ratio)
    print(f"wall time per run (median): ours {np.median(wall['ours']):.0f} s, theirs {np.median(wall['theirs']):.0f} s,"
          f" ratio {ratio:.2f}")
    if a.plot:
        plot(a.plot, c, cur, prefill, per_epoch)
    if a.json:
        Path(a.json).write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def plot(path, c, cur: dict, prefill: int, per_epoch: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cur), figsize=(5 * len(cur), 3.6), squeeze=False)
    steps = prefill + per_epoch * np.arange(1, c["num_epochs"] + 1)
    for ax, (key, by_code) in zip(axes[0], cur.items()):
        for code, color in (("ours", "tab:blue"), ("theirs", "tab:orange")):
            v = np.stack(list(by_code[code].values()))
            name = "this project" if code == "ours" else "authors' code"
            ax.plot(steps, v.mean(0), color=color, label=f"{name} ({len(v)} seeds)")
            ax.fill_between(steps, v.min(0), v.max(0), color=color, alpha=0.2)
        ax.set_xlabel("env steps")
        ax.set_ylabel(f"eval {short(key)} per episode")
    axes[0][0].legend()
    fig.suptitle(f"{c['env_id']}, depth {c['critic_depth']}, width {c['critic_network_width']}: mean, min-max band")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--ref", type=Path, required=True, help="the authors' install ($REF/src, $REF/venv)")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--cores", type=int, nargs=2, metavar=("OURS", "THEIRS"),
                   help="run both codes at once, each pinned to one CPU core and running its seeds in turn "
                        "(default: one run at a time, on all cores)")
    defaults = {"env_id": "ant", "num_envs": 128, "unroll_length": 62, "batch_size": 256, "critic_network_width": 256,
                "actor_network_width": 256, "critic_depth": 4, "actor_depth": 4,
                "num_sgd_batches_per_training_step": 32, "num_epochs": 10, "num_eval_envs": 32,
                "min_replay_size": 1000, "max_replay_size": 10000, "episode_length": 1000, "train_steps_per_epoch": 20}
    for k, v in defaults.items():
        r.add_argument(f"--{k}", type=type(v), default=v)
    rep = sub.add_parser("report")
    rep.add_argument("out", type=Path)
    rep.add_argument("--plot", help="PNG of both codes' curves")
    rep.add_argument("--json", help="the table as JSON")
    rep.add_argument("--metrics", nargs="+", default=DEFAULT_METRICS,
                     help="evaluation metrics to compare (the arm tasks log no distance: eval/episode_success_easy)")
    a = p.parse_args()
    run(a) if a.cmd == "run" else report(a)


if __name__ == "__main__":
    main()
