"""The benchmark harness: FLOP count and one measurement on a tiny config."""

import jax
import numpy as np
import pytest

import bench
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
