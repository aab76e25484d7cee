"""scripts/reference/side_by_side.py: the shared schedule, reading the authors' log, the report.

tests/data/reference/authors_train_log.txt holds the schedule and epoch lines that the authors'
train.py printed in a 2-epoch ant run on its own install (8 envs, so its losses were NaN), as
`side_by_side.py run` captures them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import train

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts" / "reference"))
import side_by_side as sbs  # noqa: E402

AUTHORS_LOG = ROOT / "tests" / "data" / "reference" / "authors_train_log.txt"


def config(**kw) -> dict:
    c = {"env_id": "ant", "num_envs": 128, "unroll_length": 62, "batch_size": 256, "critic_network_width": 256,
         "actor_network_width": 256, "critic_depth": 4, "actor_depth": 4, "num_sgd_batches_per_training_step": 64,
         "num_epochs": 10, "num_eval_envs": 32, "min_replay_size": 1000, "max_replay_size": 10000,
         "episode_length": 1000, "train_steps_per_epoch": 30}
    return {**c, **kw}


@pytest.mark.parametrize("kw", [{}, {"num_envs": 8, "unroll_length": 10, "min_replay_size": 20, "num_epochs": 2,
                                      "train_steps_per_epoch": 2}, {"num_envs": 512, "train_steps_per_epoch": 1}])
def test_total_gives_both_programs_the_same_training_steps(kw):
    c = config(**kw)
    total = sbs.total_env_steps(c)
    ours = train.schedule(train.Config(env_id="ant", total_env_steps=total, **{
        k: c[k] for k in ("num_envs", "unroll_length", "num_epochs", "min_replay_size", "max_replay_size",
                          "episode_length")}))
    assert ours.training_steps_per_epoch == c["train_steps_per_epoch"]
    # The authors' derivation (../shared/reference/README.md): (total - min_replay * envs) // (epochs * envs * unroll).
    theirs = (total - c["min_replay_size"] * c["num_envs"]) // (c["num_epochs"] * c["num_envs"] * c["unroll_length"])
    assert theirs == c["train_steps_per_epoch"]


def test_reads_the_authors_log():
    rows = sbs.their_metrics(AUTHORS_LOG)
    assert len(rows) == 2
    assert rows[0]["eval/episode_success"] == 0.0 and rows[0]["training/envsteps"] == 320.0
    assert math.isnan(rows[0]["eval/episode_dist"]) and rows[1]["eval/avg_episode_length"] == 50.0
    assert rows[1]["training/envsteps"] == 480.0
    assert sbs.training_steps_logged(AUTHORS_LOG, "theirs") == 2  # its last word, not the flag's 0


def write_run(out: Path, c: dict, code: str, seed: int, success: list[float], dist: list[float]):
    if code == "ours":
        d = out / f"ours_s{seed}"
        d.mkdir(parents=True)
        d.joinpath("metrics.jsonl").write_text("".join(
            json.dumps({"epoch": e + 1, "eval/episode_success": s, "eval/episode_dist": di}) + "\n"
            for e, (s, di) in enumerate(zip(success, dist))))
        log = f"run | ant | {c['num_epochs']} epochs x {c['train_steps_per_epoch']} training steps x 7936 env steps\n"
    else:
        log = f"num_training_steps_per_epoch: 0\nnum_training_steps_per_epoch: {c['train_steps_per_epoch']}\n" + "".join(
            f"epoch {e} out of {c['num_epochs']} complete. metrics: {{'eval/episode_success': Array({s}, dtype=float32),"
            f" 'eval/episode_dist': Array({di}, dtype=float32)}}\n" for e, (s, di) in enumerate(zip(success, dist)))
    (out / f"{code}_s{seed}.log").write_text(log)


def test_report_table_welch_and_wall_ratio(tmp_path):
    c = config(num_epochs=3, train_steps_per_epoch=2)
    curves = {("ours", 0): [0, 5, 40], ("ours", 1): [1, 9, 60], ("theirs", 0): [0, 2, 10], ("theirs", 1): [0, 3, 14]}
    runs = []
    for (code, seed), success in curves.items():
        write_run(tmp_path, c, code, seed, success, [9.0 - s / 10 for s in success])
        runs.append({"code": code, "seed": seed, "wall_s": 100.0 if code == "ours" else 250.0, "command": ""})
    (tmp_path / "runs.json").write_text(json.dumps({"config": c, "runs": runs}))
    args = type("A", (), {"out": tmp_path, "plot": str(tmp_path / "p.png"), "json": str(tmp_path / "s.json")})()
    summary = sbs.report(args)
    assert summary["epochs"][3]["ours_success"] == pytest.approx((50.0, float(np.std([40, 60], ddof=1))))
    assert summary["epochs"][2]["theirs_dist"][0] == pytest.approx(9.0 - 2.5 / 10)
    assert summary["welch_p_last_epoch"]["success"] == pytest.approx(
        stats.ttest_ind([40, 60], [10, 14], equal_var=False).pvalue)
    assert summary["wall_ratio_theirs_over_ours"] == pytest.approx(2.5)
    assert (tmp_path / "p.png").stat().st_size > 0 and json.loads((tmp_path / "s.json").read_text())["epochs"]


def test_report_refuses_a_run_with_another_schedule(tmp_path):
    c = config(num_epochs=2, train_steps_per_epoch=2)
    write_run(tmp_path, c, "ours", 0, [0, 1], [9, 8])
    write_run(tmp_path, {**c, "train_steps_per_epoch": 3}, "theirs", 0, [0, 1], [9, 8])
    runs = [{"code": k, "seed": 0, "wall_s": 1.0, "command": ""} for k in ("ours", "theirs")]
    (tmp_path / "runs.json").write_text(json.dumps({"config": c, "runs": runs}))
    args = type("A", (), {"out": tmp_path, "plot": None, "json": None})()
    with pytest.raises(SystemExit, match="3 training steps per epoch, not 2"):
        sbs.report(args)


def test_report_names_a_metric_one_side_does_not_log(tmp_path):
    c = config(num_epochs=2, train_steps_per_epoch=2)
    for code in ("ours", "theirs"):
        write_run(tmp_path, c, code, 0, [0, 1], [9, 8])
    runs = [{"code": k, "seed": 0, "wall_s": 1.0, "command": ""} for k in ("ours", "theirs")]
    (tmp_path / "runs.json").write_text(json.dumps({"config": c, "runs": runs}))
    args = type("A", (), {"out": tmp_path, "plot": None, "json": None, "metrics": ["eval/episode_success_easy"]})()
    with pytest.raises(SystemExit, match="ours seed 0 does not log eval/episode_success_easy .*eval/episode_dist"):
        sbs.report(args)


def test_cores_runs_both_codes_at_once_each_pinned_to_its_core(tmp_path, monkeypatch):
    """`run --cores A B`: each code's seeds run in turn on its own core, both codes at the same
    time; runs.json records each run's core. Stand-in programs print the cores they may use, and
    each waits (60 s at most) until the other code's run of the same seed has started: a sequential
    runner would make the first one give up."""
    probe = ("import os, sys, time; me, other = sys.argv[1:]; open(me, 'w').close(); t = time.time(); "
             "[time.sleep(0.05) for _ in range(1200) if not os.path.exists(other)]; "
             "print(sorted(os.sched_getaffinity(0)), os.path.exists(other), time.time() - t)")
    flag = lambda code, seed: str(tmp_path / f"started_{code}{seed}")  # noqa: E731
    monkeypatch.setattr(sbs, "ours_cmd", lambda c, seed, d: [sys.executable, "-c", probe, flag("ours", seed),
                                                                 flag("theirs", seed)])
    monkeypatch.setattr(sbs, "theirs_cmd", lambda c, seed, ref: [sys.executable, "-c", probe, flag("theirs", seed),
                                                                     flag("ours", seed)])
    (tmp_path / "src").mkdir()
    args = argparse.Namespace(ref=tmp_path, out=tmp_path / "out", seeds=[0, 1], cores=[0, 1],
                              **config(num_epochs=2, train_steps_per_epoch=2))
    sbs.run(args)
    record = json.loads((tmp_path / "out" / "runs.json").read_text())
    assert sorted((r["code"], r["seed"], r["core"]) for r in record["runs"]) == [
        ("ours", 0, 0), ("ours", 1, 0), ("theirs", 0, 1), ("theirs", 1, 1)]
    for code, core in (("ours", 0), ("theirs", 1)):
        for seed in (0, 1):
            cores, saw_other, _ = (tmp_path / "out" / f"{code}_s{seed}.log").read_text().rsplit(" ", 2)
            assert (cores, saw_other) == (f"[{core}]", "True"), (code, seed)
    # A second call finds every run done and starts nothing.
    (tmp_path / "out" / "ours_s0.log").unlink()
    sbs.run(args)
    assert len(json.loads((tmp_path / "out" / "runs.json").read_text())["runs"]) == 4
    assert not (tmp_path / "out" / "ours_s0.log").exists()
