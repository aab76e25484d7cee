"""--num_seeds: several seeds in one process, each a run of its own."""

import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

import checks
import runs
import train
from tests.test_resume import crash_at_epoch, records, tiny_run
from tests.test_train import ROOT, TINY, cli_args, tiny_config

SEEDS = (3, 4)


@pytest.fixture(scope="module")
def together(tmp_path_factory):
    """The per-seed records of one uninterrupted 2-seed run (4 epochs, a checkpoint after each)."""
    tmp = tmp_path_factory.mktemp("together")
    out = train.train(tiny_run(tmp, "run", seed=SEEDS[0], num_seeds=len(SEEDS)))
    assert [o["run_dir"] for o in out] == [str(tmp / "run" / f"s{s}") for s in SEEDS]
    return {s: records(tmp / "run" / f"s{s}") for s in SEEDS}, tmp / "run"


def test_each_seed_is_a_plain_run_of_its_seed(together, tmp_path):
    per_seed, run_dir = together
    for seed in SEEDS:
        seed_dir = run_dir / f"s{seed}"
        saved = json.loads((seed_dir / "config.json").read_text())
        assert (saved["seed"], saved["num_seeds"], saved["run_dir"]) == (seed, 1, str(seed_dir))
        assert [r["epoch"] for r in per_seed[seed]] == [1, 2, 3, 4]
        assert runs.latest_checkpoint(seed_dir) == 4

        train.train(tiny_run(tmp_path, f"alone{seed}", seed=seed))
        alone = records(tmp_path / f"alone{seed}")
        # The vmapped program is compiled with other fusions than a single run's, so the numbers agree to
        # float32 rounding, not bit for bit (docs/training.md); another seed's differ in the first digits.
        for mine, theirs in zip(per_seed[seed], alone, strict=True):
            assert mine.keys() == theirs.keys()
            for k in mine:
                assert mine[k] == pytest.approx(theirs[k], rel=1e-4, abs=1e-6), (seed, mine["epoch"], k)
        _, params = train.load_checkpoint(seed_dir)
        _, params_alone = train.load_checkpoint(tmp_path / f"alone{seed}")
        for a, b in zip(jax.tree.leaves(params["critic_params"]), jax.tree.leaves(params_alone["critic_params"])):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    first, second = (per_seed[s][-1] for s in SEEDS)
    assert first["training/critic_loss"] != pytest.approx(second["training/critic_loss"], rel=1e-3)


def test_a_stop_signal_checkpoints_every_seed_and_each_resumes_exactly(tmp_path, monkeypatch, together):
    per_seed, _ = together
    config = tiny_run(tmp_path, "run", seed=SEEDS[0], num_seeds=len(SEEDS), checkpoint_every=1000, track=True,
                      wandb_mode="offline")  # fmt: skip
    real_build = train.build

    def build(config, **kwargs):  # a real SIGUSR1 arrives during the second epoch
        trainer = real_build(config, **kwargs)
        calls = []

        def training_epoch(*args):
            calls.append(1)
            if len(calls) == 2:
                os.kill(os.getpid(), signal.SIGUSR1)
            return trainer.training_epoch(*args)

        return trainer._replace(training_epoch=training_epoch)

    monkeypatch.setattr(train, "build", build)
    with runs.StopSignals() as stop, pytest.raises(runs.Preempted, match="after epoch 2; checkpoint epoch_2 of each"):
        train.train(config, stop)
    for seed in SEEDS:
        assert runs.latest_checkpoint(tmp_path / "run" / f"s{seed}") == 2
        assert [r["epoch"] for r in records(tmp_path / "run" / f"s{seed}")] == [1, 2]

    monkeypatch.undo()
    train.train(config)  # the same command again: every seed resumes from its epoch 2
    ids = set()
    for seed in SEEDS:
        assert records(tmp_path / "run" / f"s{seed}") == per_seed[seed]
        # One wandb run per seed, continued by the second process.
        logs = list((tmp_path / "run" / f"s{seed}" / "wandb").glob("offline-run-*"))
        assert len(logs) == 2 and len({p.name.rsplit("-", 1)[-1] for p in logs}) == 1
        ids.add(logs[0].name.rsplit("-", 1)[-1])
    assert len(ids) == len(SEEDS)


def test_a_nan_in_one_seed_stops_that_seed_alone(tmp_path, monkeypatch, together):
    per_seed, _ = together

    def poison_second_seed(ts, env_state, buf):
        critic = jax.tree.map(lambda x: x, ts.critic_params)
        head = critic["g_encoder"]["params"]["Dense_0"]
        head["kernel"] = head["kernel"].at[1, 0, 0].set(np.inf)  # seed axis first
        return ts.replace(critic_params=critic), env_state, buf

    crash_at_epoch(monkeypatch, 3, corrupt=poison_second_seed)
    message = r"seed 4: non-finite .*critic_loss at epoch 3.*checkpoints/epoch_2.*The other seeds finished: .*/s3"
    with pytest.raises(FloatingPointError, match=message):
        train.train(tiny_run(tmp_path, "run", seed=SEEDS[0], num_seeds=len(SEEDS)))
    healthy, broken = (tmp_path / "run" / f"s{s}" for s in SEEDS)
    assert records(healthy) == per_seed[SEEDS[0]]  # trained on to the end, unaffected
    assert [r["epoch"] for r in records(broken)] == [1, 2]
    assert runs.latest_checkpoint(broken) == 2
    _, payload = train.load_checkpoint(broken)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(payload["critic_params"]))


def test_resume_flag_and_sweep_agents_are_refused_for_several_seeds(monkeypatch):
    with pytest.raises(runs.ConfigError, match="--resume takes one run's folder; .* same --run_dir"):
        checks.validate(tiny_config(num_seeds=2, resume="somewhere"), train.schedule)
    with pytest.raises(runs.ConfigError, match="--num_seeds must be positive"):
        checks.validate(tiny_config(num_seeds=0), train.schedule)
    monkeypatch.setenv("WANDB_SWEEP_ID", "abc123")
    with pytest.raises(runs.ConfigError, match="under a wandb sweep agent.*sweep over --seed"):
        checks.validate(tiny_config(num_seeds=2), train.schedule)
    checks.validate(tiny_config(num_seeds=1), train.schedule)


def test_the_command_line_trains_several_seeds_on_two_devices(tmp_path, together):
    """train.py's command line with --num_seeds on two (virtual CPU) devices: envs and buffers split
    across devices within each seed. The numbers match the one-device run up to reassociation."""
    per_seed, _ = together
    config = {**TINY, "num_epochs": 4, "total_env_steps": 160 + 4 * 2 * 40, "seed": SEEDS[0],
              "num_seeds": len(SEEDS), "run_dir": str(tmp_path / "run")}  # fmt: skip
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip()
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "train.py", *cli_args(config)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    for seed in SEEDS:
        assert f"seed {seed} | epoch 4/4" in proc.stderr
        for mine, one_device in zip(records(tmp_path / "run" / f"s{seed}"), per_seed[seed], strict=True):
            for k in mine:
                assert mine[k] == pytest.approx(one_device[k], rel=1e-4, abs=1e-6), (seed, mine["epoch"], k)
