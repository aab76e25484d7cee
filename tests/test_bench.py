"""The benchmark harness: FLOP count and one measurement on a tiny config."""

import dataclasses
import sys

import jax
import numpy as np
import pytest

import bench
import cli
import train
from tests.test_train import tiny_config


def test_update_flops_counts_every_pass():
    config = tiny_config(batch_size=2, actor_depth=4, critic_depth=8, repr_dim=3)
    d = train.Derived(obs_dim=5, goal_start=0, goal_end=2, action_dim=1, env_steps_per_training_step=1,
                      prefill_unrolls=1, training_steps_per_epoch=1, window=1, target_entropy=-0.5)  # fmt: skip
    w = 16
    actor = 2 * 2 * (7 * w + 4 * w * w + w * 2)  # [state|goal] -> mean and log-std
    sa = 2 * 2 * (6 * w + 8 * w * w + w * 3)  # [state|action] -> repr
    g = 2 * 2 * (2 * w + 8 * w * w + w * 3)  # goal -> repr
    assert bench.loss_flops(config, d) == {"actor": 3 * actor + 2 * sa, "critic": 3 * sa + 3 * g}
    assert bench.update_flops(config, d) == 3 * actor + 5 * sa + 3 * g


def test_measure_reports_positive_figures():
    result = bench.measure(tiny_config(), epochs=1)
    for key in ("compile_s", "physics_sps", "collect_sps", "sgd_steps_per_s", "train_sps", "update_tflops",
                "layer_matmul_tflops", "peak_matmul_tflops", "peak_rss_gib", "sample_ms", "critic_grad_ms",
                "actor_grad_ms", "critic_tflops", "actor_tflops"):  # fmt: skip
        assert np.isfinite(result[key]) and result[key] > 0, key
    assert np.isfinite(result["rest_ms"])
    assert result["critic_depth"] == 4 and result["device"] == "cpu"


def test_compile_only_reports_the_memory_plan_and_remat_shrinks_it():
    # Looped blocks (unroll_blocks=0), as at the depths remat is for; unrolled ones compile slowly.
    deep = dict(actor_depth=16, critic_depth=32, batch_size=16, unroll_blocks=0)
    plain = bench.measure(tiny_config(**deep), epochs=0, compile_only=True)
    remat = bench.measure(tiny_config(**deep, remat=True), epochs=0, compile_only=True)
    assert plain["compile_s"] > 0 and "train_sps" not in plain
    assert 0 < remat["temp_gib"] < plain["temp_gib"]


def test_scaling_table_reports_speedup_and_efficiency(capsys):
    results = [
        {"critic_depth": 4, "device_count": 1, "train_sps": 1000.0},
        {"critic_depth": 4, "device_count": 2, "train_sps": 1500.0},
        {"critic_depth": 4, "device_count": 4, "train_sps": 3600.0},
    ]
    bench.print_scaling(results)
    rows = capsys.readouterr().out.strip().splitlines()[2:]
    assert rows == [
        "| 4 | 1 | 1,000 | x1.00 | 100% |",
        "| 4 | 2 | 1,500 | x1.50 | 75% |",
        "| 4 | 4 | 3,600 | x3.60 | 90% |",
    ]


def test_seeds_table_compares_one_process_with_runs_in_turn(capsys):
    results = [
        {"critic_depth": 4, "num_seeds": 1, "train_sps": 1000.0},
        {"critic_depth": 4, "num_seeds": 4, "train_sps": 600.0},  # each seed's env steps/s
        {"critic_depth": 4, "num_seeds": 2, "train_sps": 900.0},
    ]
    bench.print_seeds(results)
    rows = capsys.readouterr().out.strip().splitlines()[2:]
    assert rows == ["| 4 | 1 | 1,000 | x1.00 |", "| 4 | 2 | 1,800 | x1.80 |", "| 4 | 4 | 2,400 | x2.40 |"]


def test_measure_times_several_seeds_in_one_process():
    result = bench.measure(tiny_config(num_seeds=2), epochs=1)
    assert result["num_seeds"] == 2 and result["train_sps"] > 0 and result["collect_sps"] > 0
    assert "sgd_steps_per_s" not in result and "physics_sps" not in result  # one seed's parts only


def test_matmul_tflops_counts_the_chain(monkeypatch):
    monkeypatch.setattr(bench, "timed", lambda fn, *args: (jax.block_until_ready(fn(*args)), 0.5))
    assert bench.matmul_tflops(8, 4, chain=3) == pytest.approx(2 * 8 * 4 * 4 * 3 / 0.5 / 1e12)


def test_breakdown_table_shows_each_part_and_its_share(capsys):
    result = {"critic_depth": 16, "batch_size": 256, "sgd_steps_per_s": 10.0, "sample_ms": 5.0,
              "critic_grad_ms": 50.0, "actor_grad_ms": 40.0, "rest_ms": 5.0, "critic_tflops": 0.0625,
              "actor_tflops": 0.05}  # fmt: skip
    bench.print_breakdown([result])
    row = capsys.readouterr().out.strip().splitlines()[-1]
    assert row == (
        "| 16 | 256 | 100.0 | 5.0 (5%) | 50.0 (50%), 0.062 TFLOP/s | 40.0 (40%), 0.050 TFLOP/s | 5.0 (5%) |"
    )


def test_table_has_one_row_per_result_and_no_comparison_column(capsys):
    # Figures from another machine or sitting are no comparison: the table holds this run's only.
    result = {"env_id": "ant", "critic_depth": 4, "device_count": 1, "train_sps": 2316.0,
              "sgd_steps_per_s": 29.2, "peak_rss_gib": 1.15}  # fmt: skip
    bench.print_table([result, {**result, "critic_depth": 16}])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and lines[1].count("---") == len(bench.COLUMNS)
    assert lines[2].startswith("| 4 | 1 |") and lines[3].startswith("| 16 | 1 |")
    assert "paper" not in "\n".join(lines)


def test_measure_reports_each_stage_and_can_skip_the_breakdown_and_floors():
    stages = []
    result = bench.measure(tiny_config(), epochs=1, breakdown=False, floors=False, repeats=1,
                           report=lambda partial: stages.append(dict(partial)))  # fmt: skip
    # Figures arrive stage by stage: compile first, then collection, the update, the epochs.
    assert "compile_s" in stages[0] and "collect_sps" not in stages[0]
    assert "collect_sps" in stages[1] and "sgd_steps_per_s" not in stages[1]
    assert stages[-1] == result
    for key in ("compile_s", "collect_sps", "sgd_steps_per_s", "train_sps", "update_tflops", "peak_rss_gib"):
        assert np.isfinite(result[key]) and result[key] > 0, key
    for key in ("critic_grad_ms", "physics_sps", "peak_matmul_tflops"):
        assert key not in result, key


FAKE_AUTHORS_TRAIN = '''
import os
import sys
# Their older XLA aborts on the flag that importing envs adds for the arm tasks.
assert "fusion_emitters" not in os.environ["XLA_FLAGS"] and "device_count=1" in os.environ["XLA_FLAGS"]
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
n = lambda k: int(args["--" + k])
steps = (n("total_env_steps") - n("min_replay_size") * n("num_envs")) // (
    n("num_epochs") * n("num_envs") * n("unroll_length"))
print("num_training_steps_per_epoch: 0")
print(f"num_training_steps_per_epoch: {steps}")
for epoch, sps in zip(range(n("num_epochs")), [100.0, 400.0, 500.0]):
    print(f"epoch {epoch} out of {n('num_epochs')} complete. metrics: {{'training/sps': {sps}, 'x': 1}}")
'''


def fake_authors_install(tmp_path):
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "python").symlink_to(sys.executable)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(FAKE_AUTHORS_TRAIN)
    return tmp_path


def test_side_by_side_with_the_authors_code_runs_both_and_prints_the_ratio(tmp_path, monkeypatch, capsys):
    # Their code derives its training steps per epoch from the budget; the budget bench gives it
    # must yield exactly ours, and their figure is the best epoch after the compiling one.
    install = fake_authors_install(tmp_path / "authors")
    monkeypatch.setenv(
        "XLA_FLAGS", "--xla_cpu_use_fusion_emitters=false --xla_force_host_platform_device_count=1"
    )
    calls = []

    def ours(config, args, devices, cpu=False):
        calls.append((config.critic_depth, cpu))
        return {"train_sps": 1000.0, "critic_depth": config.critic_depth, "device_count": 1}

    monkeypatch.setattr(bench, "measure_in_subprocess", ours)
    args = cli.parse(bench.Bench, ["--num_envs", "128", "--unroll_length", "62", "--min_replay_size", "1000",
                                   "--total_env_steps", "214272", "--num_epochs", "1", "--depths", "4", "16",
                                   "--epochs", "2", "--reference", str(install), "--json_out", "None"])  # fmt: skip
    config = train.Config(**{f.name: getattr(args, f.name) for f in dataclasses.fields(train.Config)})
    results = bench.side_by_side(config, args, bench.check_install(args.reference))
    assert calls == [(4, True), (16, True)]
    theirs = results[0]["authors_code"]
    assert theirs["epoch_sps"] == [100.0, 400.0, 500.0] and theirs["train_sps"] == 500.0
    assert theirs["ratio"] == pytest.approx(2.0)
    out = capsys.readouterr().out
    assert "| 4 | 1,000 | 500 | x2.00 |" in out and "| 16 | 1,000 | 500 | x2.00 |" in out
    assert "alternately in this sitting, on this machine" in out
    # A wrong step count in their log is refused rather than compared.
    with pytest.raises(ValueError, match="did 3 training steps per epoch, not 10"):
        bench.authors_sps("num_training_steps_per_epoch: 3\n", 10, 128 * 62)


def test_side_by_side_without_an_install_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match=r"^error: --reference .*nowhere: no .*venv/bin/python"):
        bench.main(["--reference", str(tmp_path / "nowhere")])
