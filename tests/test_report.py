"""report.py on run directories written here, with numbers chosen so the table is known."""

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

import report
import runs
import sac
import td3
import train

ROOT = Path(__file__).resolve().parents[1]


def make_run(root: Path, name: str, successes, script=train, **overrides) -> Path:
    """A run folder with the config.json that `script` (train, sac or td3) writes and one eval
    record per given success."""
    run = root / name
    run.mkdir(parents=True)
    config = runs.described(script.Config(**overrides))
    config.setdefault("run_dir", str(run))
    (run / "config.json").write_text(json.dumps(config, indent=2))
    lines = [
        json.dumps({"epoch": i + 1, "training/envsteps": 1000 * (i + 1), report.METRIC: s, "other": 0.5})
        for i, s in enumerate(successes)
    ]
    (run / "metrics.jsonl").write_text("".join(line + "\n" for line in lines))
    return run


def run_report(capsys, *argv) -> tuple[str, str]:
    report.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return captured.out, captured.err


def refused(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        report.main([str(a) for a in argv])
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def table_rows(out: str) -> list[list[str]]:
    """The markdown table's data rows as lists of stripped cells."""
    lines = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| task")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


COLUMNS = "task env depth episode_length env_steps seeds evals ours paper ratio config".split()


def cells(row: list[str]) -> dict[str, str]:
    return dict(zip(COLUMNS, row, strict=True))


def three_seeds(root: Path, **overrides) -> list[Path]:
    # Last-five means 300, 330, 360 (the first three epochs, far off, must be dropped):
    # mean 330, sample std 30.
    runs = []
    for seed, shift in enumerate([0, 30, 60]):
        tail = [x + shift for x in (100, 200, 300, 400, 500)]
        runs.append(make_run(root, f"s{seed}", [900, 900, 900, *tail], seed=seed, **overrides))
    return runs


def test_mean_and_std_over_seeds_of_last_five_means(tmp_path, capsys):
    runs = three_seeds(tmp_path, env_id="ant_big_maze", critic_depth=64, actor_depth=64, num_epochs=8)
    out, err = run_report(capsys, *runs, "--json", tmp_path / "t.json")
    (row,) = table_rows(out)
    row = cells(row)
    assert row["task"] == "Ant Big Maze" and row["depth"] == "64" and row["episode_length"] == "1000"
    assert row["seeds"] == "3" and row["evals"] == "8"
    assert row["ours"] == "330.0 ± 30.0"
    # The paper's Table 1: Ant Big Maze at depth 64 is 441 ± 25.
    assert row["paper"] == "441 ± 25"
    assert row["ratio"] == f"{330 / 441:.2f}"
    (rec,) = json.loads((tmp_path / "t.json").read_text())
    assert rec["mean"] == pytest.approx(330.0)
    assert rec["std"] == pytest.approx(30.0)
    assert rec["ratio"] == pytest.approx(330 / 441)
    assert sorted(r["score"] for r in rec["runs"]) == pytest.approx([300.0, 330.0, 360.0])
    assert err == ""


def test_bookkeeping_differences_pool_into_one_row(tmp_path, capsys):
    base = dict(env_id="humanoid", critic_depth=4, actor_depth=4, num_epochs=5)
    make_run(tmp_path, "a", [10] * 5, seed=0, exp_name="depth4", wandb_group="humanoid_depth4", **base)
    make_run(
        tmp_path, "b", [20] * 5, seed=1, exp_name="crl", track=False, checkpoint_every=3,
        capture_vis=False, vis_length=10, num_render=3, compilation_cache_dir="/tmp/cache",
        run_root="elsewhere", distributed="off", wandb_mode="disabled", **base,
    )  # fmt: skip
    make_run(tmp_path, "c", [30] * 5, seed=2, resume="runs/x", checkpoint=False, checkpoint_keep=1, **base)
    out, _ = run_report(capsys, tmp_path / "a", tmp_path / "b", tmp_path / "c")
    (row,) = table_rows(out)
    row = cells(row)
    assert row["seeds"] == "3" and row["ours"] == "20.0 ± 10.0" and row["config"] == ""
    # Humanoid at depth 4 in the paper: 12.6 ± 1.3.
    assert row["paper"] == "12.6 ± 1.3" and row["ratio"] == f"{20 / 12.6:.2f}"


def test_a_real_config_difference_separates_rows(tmp_path, capsys):
    base = dict(env_id="ant_u4_maze", critic_depth=4, actor_depth=4, num_epochs=5)
    make_run(tmp_path, "a", [10] * 5, seed=0, batch_size=256, **base)
    make_run(tmp_path, "b", [30] * 5, seed=1, batch_size=256, **base)
    make_run(tmp_path, "c", [100] * 5, seed=0, **base)
    out, _ = run_report(capsys, tmp_path / "a", tmp_path / "b", tmp_path / "c")
    rows = sorted((cells(r) for r in table_rows(out)), key=lambda r: r["config"])
    assert [r["config"] for r in rows] == ["batch_size=256", "batch_size=512"]
    assert [r["seeds"] for r in rows] == ["2", "1"]
    assert rows[0]["ours"] == "20.0 ± 14.1"
    assert rows[1]["ours"] == "100.0"  # one seed: no std
    assert "std is blank for a single seed" in out


def test_each_algorithm_is_its_own_row_and_only_crl_has_the_papers_cell(tmp_path, capsys):
    base = dict(env_id="ant_big_maze", critic_depth=64, actor_depth=64, num_epochs=5)
    make_run(tmp_path, "crl", [400] * 5, **base)
    make_run(tmp_path, "sac0", [10] * 5, script=sac, seed=0, **base)
    make_run(tmp_path, "sac1", [30] * 5, script=sac, seed=1, exp_name="mine", **base)
    make_run(tmp_path, "sac_tau", [50] * 5, script=sac, tau=0.01, **base)
    make_run(tmp_path, "td3", [5] * 5, script=td3, **base)
    old = make_run(tmp_path, "old_crl", [200] * 5, seed=1, **base)  # saved before runs named it
    saved = json.loads((old / "config.json").read_text())
    del saved["algorithm"]
    (old / "config.json").write_text(json.dumps(saved))
    out, _ = run_report(capsys, *sorted(tmp_path.iterdir()))
    rows = {r["config"]: r for r in map(cells, table_rows(out))}
    # Fields only one algorithm has (tau, energy_fn, policy_delay, ...) are not variants.
    assert set(rows) == {"algorithm=crl", "algorithm=sac, tau=0.005", "algorithm=sac, tau=0.01", "algorithm=td3"}
    assert rows["algorithm=crl"]["seeds"] == "2" and rows["algorithm=crl"]["ours"] == "300.0 ± 141.4"
    assert rows["algorithm=crl"]["paper"] == "441 ± 25"  # Table 1 is CRL's
    assert rows["algorithm=sac, tau=0.005"]["ours"] == "20.0 ± 14.1" and rows["algorithm=sac, tau=0.005"]["paper"] == "—"
    assert rows["algorithm=td3"]["paper"] == "—" and rows["algorithm=td3"]["ratio"] == "—"


def test_depths_without_a_paper_cell(tmp_path, capsys):
    base = dict(env_id="humanoid_u_maze", num_epochs=5)
    make_run(tmp_path, "d16", [5] * 5, critic_depth=16, actor_depth=16, **base)
    make_run(tmp_path, "mixed", [5] * 5, critic_depth=64, actor_depth=32, **base)
    make_run(tmp_path, "d64", [80] * 5, critic_depth=64, actor_depth=64, **base)
    make_run(tmp_path, "other_eval", [80] * 5, eval_env_id="humanoid_u_maze_eval", **base)
    make_run(tmp_path, "notpaper", [80] * 5, env_id="reacher", num_epochs=5)
    out, _ = run_report(capsys, *sorted(tmp_path.iterdir()))
    rows = {(r["env"], r["depth"]): r for r in map(cells, table_rows(out))}
    assert rows["humanoid_u_maze", "16"]["paper"] == "—"
    assert rows["humanoid_u_maze", "critic 64 / actor 32"]["paper"] == "—"
    assert rows["humanoid_u_maze", "64"]["paper"] == "159 ± 33"
    assert rows["humanoid_u_maze", "64"]["ratio"] == f"{80 / 159:.2f}"
    assert rows["humanoid_u_maze (eval humanoid_u_maze_eval)", "4"]["paper"] == "—"
    assert rows["reacher", "4"]["paper"] == "—" and rows["reacher", "4"]["task"] == "reacher"


def test_mixed_episode_lengths_for_one_env_are_refused(tmp_path, capsys):
    make_run(tmp_path, "a", [10] * 5, env_id="ant", num_epochs=5)
    make_run(tmp_path, "b", [10] * 5, env_id="ant", num_epochs=5, episode_length=500, critic_depth=64)
    err = refused(capsys, tmp_path / "a", tmp_path / "b")
    assert err.startswith("error: ant: ") and "episode_length" in err
    assert "500 steps" in err and "1000 steps" in err
    # Other envs with their own length are fine side by side.
    make_run(tmp_path, "c", [10] * 5, env_id="reacher", num_epochs=5, episode_length=500)
    out, _ = run_report(capsys, tmp_path / "a", tmp_path / "c")
    assert {cells(r)["episode_length"] for r in table_rows(out)} == {"1000", "500"}


def test_short_and_unfinished_runs_are_flagged(tmp_path, capsys):
    base = dict(env_id="ant_hardest_maze", num_epochs=10)
    short = make_run(tmp_path, "short", [100, 200, 400], seed=0, **base)
    full = make_run(tmp_path, "full", [0] * 5 + [100] * 5, seed=1, **base)
    out, _ = run_report(capsys, short, full, "--csv", tmp_path / "t.csv")
    row = cells(table_rows(out)[0])
    assert row["evals"] == "3 *" and row["seeds"] == "2 †"
    # The short run scores the mean of the three it has (700 / 3).
    assert row["ours"].startswith(f"{(700 / 3 + 100) / 2:.1f} ± ")
    assert f"{short} (3)" in out and f"{full} (" not in out.split("\\*")[1].split("†")[0]
    assert f"{short} (epoch 3 of 10)" in out
    (rec,) = csv.DictReader((tmp_path / "t.csv").open())
    assert rec["min_evals"] == "3"


def test_empty_and_configless_folders_are_skipped_with_a_warning(tmp_path, capsys):
    good = make_run(tmp_path, "good", [10] * 5, num_epochs=5)
    empty = tmp_path / "empty"
    empty.mkdir()
    no_evals = make_run(tmp_path, "no_evals", [], num_epochs=5)
    started = make_run(tmp_path, "started", [], num_epochs=5)
    (started / "metrics.jsonl").unlink()
    out, err = run_report(capsys, good, empty, no_evals, started)
    assert len(table_rows(out)) == 1 and cells(table_rows(out)[0])["seeds"] == "1"
    warnings = err.splitlines()
    assert warnings == [
        f"warning: skipped (no config.json): {empty}",
        f"warning: skipped (no evaluation yet): {no_evals}, {started}",
    ]
    err = refused(capsys, empty, no_evals)
    assert "error: none of the given folders holds a run" in err and "runs/*" not in err
    assert "pass the run folders themselves, e.g. runs/*" in refused(capsys, tmp_path)


def test_a_record_being_written_is_ignored_but_damage_is_an_error(tmp_path, capsys):
    run = make_run(tmp_path, "r", [10] * 5, num_epochs=6)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 6, "eval/episode_su')
    out, err = run_report(capsys, run)
    assert cells(table_rows(out)[0])["ours"] == "10.0"
    assert "ignoring the unfinished last line" in err
    (run / "metrics.jsonl").write_text('{"epoch": 1, "eval/episode_success": 3}\nnot json\n')
    err = refused(capsys, run)
    assert err.startswith(f"error: {run / 'metrics.jsonl'}, line 2: not valid JSON")


def test_bad_input_is_a_clear_error_with_status_2(tmp_path, capsys):
    assert "no such file or directory" in refused(capsys, tmp_path / "missing")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    assert refused(capsys, broken).startswith(f"error: {broken / 'config.json'}: not valid JSON")
    (broken / "config.json").write_text(json.dumps({"seed": 0}))
    assert "no env_id, critic_depth, actor_depth, episode_length" in refused(capsys, broken)
    # The real command line: no traceback, status 2.
    proc = subprocess.run(
        [sys.executable, str(ROOT / "report.py"), str(broken)], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_csv_and_json_outputs(tmp_path, capsys):
    runs = three_seeds(tmp_path, env_id="arm_push_easy", num_epochs=8)
    run_report(capsys, *runs, "--csv", tmp_path / "out/t.csv", "--json", tmp_path / "out/t.json")
    (rec,) = csv.DictReader((tmp_path / "out/t.csv").open())
    assert rec["env_id"] == "arm_push_easy" and rec["critic_depth"] == "4" and rec["seeds"] == "3"
    assert float(rec["mean"]) == pytest.approx(330) and float(rec["std"]) == pytest.approx(30)
    assert float(rec["paper_mean"]) == 308 and float(rec["ratio"]) == pytest.approx(330 / 308)
    assert rec["run_paths"].split() == [str(r) for r in runs]
    (js,) = json.loads((tmp_path / "out/t.json").read_text())
    assert js["paper_pm"] == 33 and js["episode_length"] == 1000 and len(js["runs"]) == 3


def test_plot_is_written(tmp_path, capsys):
    runs = []
    for depth, level in [(4, 50), (16, 200), (64, 400)]:
        for seed in range(2):
            runs.append(
                make_run(tmp_path, f"d{depth}s{seed}", [level + 20 * seed] * 5, seed=seed,
                         env_id="ant_big_maze", critic_depth=depth, actor_depth=depth, num_epochs=5)
            )  # fmt: skip
    runs.append(make_run(tmp_path, "reacher", [700] * 5, env_id="reacher", num_epochs=5))
    out_png = tmp_path / "plots" / "depth.png"
    run_report(capsys, *runs, "--plot", out_png)
    data = out_png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_paper_numbers_are_consistent_and_name_real_envs():
    import envs

    data = json.loads(report.PAPER_FILE.read_text())
    assert {"paper", "table", "columns", "units"} <= set(data["source"])
    tasks = data["tasks"]
    assert len(tasks) == 10
    for t in tasks:
        assert t["env_id"] in envs.ENV_IDS, t
        # The paper's improvement column is D = 64 over D = 4 of the rounded cells it prints,
        # so a mistyped cell shows up as a ratio far from it.
        assert t["depth_64"]["mean"] / t["depth_4"]["mean"] == pytest.approx(t["improvement"], rel=0.1), t


def test_every_run_management_field_of_train_is_ignored():
    # A run-management flag added to train.Config later would otherwise split seeds apart.
    names = runs.run_management_fields(train.Config)
    assert {"run_dir", "wandb_group", "checkpoint_every"} <= names
    assert names <= report.IGNORED, names - report.IGNORED
    assert report.IGNORED <= {f.name for f in dataclasses.fields(train.Config)}
