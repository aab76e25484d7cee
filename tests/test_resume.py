"""Long runs: full-state checkpoints, exact resume, stop signals, NaN guard, config mismatch."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import runs
import train
from tests.test_train import ROOT, TINY, cli_args, tiny_config

# Keys that measure time, not the computation; everything else must match exactly.
TIMING = ("training/sps", "training/walltime", "training/epoch_time", "eval/epoch_eval_time", "eval/sps")


def tiny_run(tmp_path, name, **overrides) -> train.Config:
    settings = dict(num_epochs=4, total_env_steps=160 + 4 * 2 * 40, checkpoint_every=1, checkpoint_keep=2)
    return tiny_config(tmp_path, run_dir=str(tmp_path / name), checkpoint=True, **{**settings, **overrides})


def records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


class Crash(Exception):
    pass


def crash_at_epoch(monkeypatch, n: int, corrupt=None):
    """Makes train.build return a trainer whose n-th training epoch crashes, or, given `corrupt`,
    runs on the state that `corrupt` makes of its inputs."""
    real_build = train.build

    def build(config, **kwargs):
        trainer = real_build(config, **kwargs)
        calls = {"n": 0}

        def training_epoch(*args):
            calls["n"] += 1
            if calls["n"] == n:
                if corrupt is None:
                    raise Crash(f"simulated crash in epoch call {n}")
                return trainer.training_epoch(*corrupt(*args))
            return trainer.training_epoch(*args)

        return trainer._replace(training_epoch=training_epoch)

    monkeypatch.setattr(train, "build", build)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("whole")
    train.train(tiny_run(tmp, "run"))
    return records(tmp / "run")


def test_a_crashed_run_resumes_to_the_same_numbers(tmp_path, monkeypatch, uninterrupted):
    config = tiny_run(tmp_path, "run")
    crash_at_epoch(monkeypatch, 3)  # epochs 1 and 2 are checkpointed, epoch 3 dies
    with pytest.raises(Crash):
        train.train(config)
    run_dir = tmp_path / "run"
    assert [r["epoch"] for r in records(run_dir)] == [1, 2]
    assert runs.latest_checkpoint(run_dir) == 2

    monkeypatch.undo()
    out = train.train(config)  # same command again: resumes from epoch 2
    assert out["epoch"] == 4
    assert records(run_dir) == uninterrupted
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["epoch_3", "epoch_4"]


def test_resume_without_the_buffer_refills_it_and_carries_on(tmp_path, monkeypatch):
    config = tiny_run(tmp_path, "run", save_buffer=False)
    crash_at_epoch(monkeypatch, 2)
    with pytest.raises(Crash):
        train.train(config)
    monkeypatch.undo()
    out = train.train(config)
    assert [r["epoch"] for r in records(tmp_path / "run")] == [1, 2, 3, 4]
    # The refill collects the 160 prefill steps again, uncounted: the schedule is unchanged.
    assert out["training/envsteps"] == 160 + 4 * 80


def test_resume_refuses_a_different_config_naming_the_fields(tmp_path, monkeypatch):
    crash_at_epoch(monkeypatch, 2)
    with pytest.raises(Crash):
        train.train(tiny_run(tmp_path, "run"))
    monkeypatch.undo()
    changed = tiny_run(tmp_path, "run", critic_depth=8, gamma=0.9, track=True, checkpoint_keep=5)
    with pytest.raises(runs.RunDirError, match=r"\(gamma: 0.99 -> 0.9; critic_depth: 4 -> 8\)") as err:
        train.train(changed)
    assert "track" not in str(err.value)  # run-management flags may change


def test_resume_flag_uses_the_saved_config_and_rejects_contradicting_flags(tmp_path, monkeypatch):
    crash_at_epoch(monkeypatch, 2)
    with pytest.raises(Crash):
        train.train(tiny_run(tmp_path, "run", seed=5))
    run_dir = str(tmp_path / "run")
    config = train.parse_config(["--resume", run_dir, "--track", "True"])
    assert config.seed == 5 and config.num_epochs == 4 and config.track is True
    assert config.resume == run_dir
    with pytest.raises(runs.RunDirError, match="no checkpoint"):
        train.parse_config(["--resume", str(tmp_path / "nowhere")])
    monkeypatch.undo()
    with pytest.raises(runs.RunDirError, match="seed: 5 -> 6"):
        train.train(train.parse_config(["--resume", run_dir, "--seed", "6"]))


def test_nan_guard_names_the_loss_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    def poison(ts, env_state, buf):  # one inf weight, as an exploding update would leave
        critic = jax.tree.map(lambda x: x, ts.critic_params)  # fresh dicts, safe to edit
        head = critic["g_encoder"]["params"]["Dense_0"]
        head["kernel"] = head["kernel"].at[0, 0].set(np.inf)
        return ts.replace(critic_params=critic), env_state, buf

    crash_at_epoch(monkeypatch, 3, corrupt=poison)
    run_dir = tmp_path / "run"
    message = (
        r"non-finite .*critic_loss at epoch 3 \(also non-finite: .*critic_param_norm.*\).*checkpoints/epoch_2"
    )
    with pytest.raises(FloatingPointError, match=message):
        train.train(tiny_run(tmp_path, "run"))
    assert runs.latest_checkpoint(run_dir) == 2
    _, payload = train.load_checkpoint(run_dir)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(payload["critic_params"]))


def test_half_written_checkpoints_are_ignored(tmp_path, monkeypatch):
    crash_at_epoch(monkeypatch, 2)
    with pytest.raises(Crash):
        train.train(tiny_run(tmp_path, "run"))
    # What a crash during a save leaves behind: orbax's temporary folder, never renamed.
    (tmp_path / "run" / "checkpoints" / "epoch_2.orbax-checkpoint-tmp-1234").mkdir()
    assert runs.latest_checkpoint(tmp_path / "run") == 1
    assert train.load_checkpoint(tmp_path / "run")[1]["epoch"] == 1


def test_sigusr1_checkpoints_the_epoch_and_exits_for_requeue(tmp_path):
    """A real signal to a real run: exit status 75, a checkpoint of the last finished epoch,
    and `--resume` finishes the run with the numbers of an uninterrupted one."""
    config = {
        **TINY,
        "num_epochs": 40,
        "total_env_steps": 160 + 40 * 2 * 40,
        "checkpoint": True,
        "checkpoint_every": 1000,  # only the signal and the end write checkpoints
        "run_dir": str(tmp_path / "run"),
        "track": True,
        "wandb_mode": "offline",
    }
    env = {**os.environ, "WANDB_SILENT": "true"}
    cmd = [sys.executable, "train.py", *cli_args(config)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "epoch 1/40 " in line:
            proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=300) == runs.EXIT_REQUEUE, "".join(seen[-30:])
    run_dir = tmp_path / "run"
    stopped_at = records(run_dir)[-1]["epoch"]
    assert 1 <= stopped_at < 40
    assert runs.latest_checkpoint(run_dir) == stopped_at
    assert any("SIGUSR1 received" in line for line in seen)

    resumed = subprocess.run(
        [sys.executable, "train.py", "--resume", str(run_dir), "--num_epochs", "40"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [r["epoch"] for r in records(run_dir)] == list(range(1, 41))
    # Both processes wrote to one wandb run.
    ids = {p.name.rsplit("-", 1)[-1] for p in (run_dir / "wandb").glob("offline-run-*")}
    assert len(ids) == 1 and len(list((run_dir / "wandb").glob("offline-run-*"))) == 2

    whole = {**config, "run_dir": str(tmp_path / "whole"), "track": False, "checkpoint": False}
    train.train(tiny_config(tmp_path, **whole))
    assert records(run_dir) == records(tmp_path / "whole")


# Run as `python -c`: train.py's command line, whose save of epoch 2 meets a leaf that orbax cannot
# write (a stand-in for a full disk or a lost mount).
UNSAVABLE_EPOCH_2 = """
import sys
import runs
import train

real = runs.save_checkpoint


def save_checkpoint(manager, params, train_state, meta):
    if meta["epoch"] == 2:
        train_state = {**train_state, "unsavable": object()}
    return real(manager, params, train_state, meta)


runs.save_checkpoint = save_checkpoint
train.main(sys.argv[1:])
"""


def test_a_failed_save_stops_with_one_line_and_keeps_the_last_checkpoint(tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    settings = dict(num_epochs=4, total_env_steps=160 + 4 * 2 * 40, checkpoint_every=1, checkpoint_keep=1)
    config = {**TINY, **settings, "checkpoint": True, "run_dir": str(run_dir)}
    failed = subprocess.run(
        [sys.executable, "-c", UNSAVABLE_EPOCH_2, *cli_args(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert failed.returncode == 1, failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr, failed.stderr[-3000:]
    last = failed.stderr.strip().splitlines()[-1]
    checkpoints = (run_dir / "checkpoints").absolute()
    assert last.startswith(f"error: could not write checkpoint {checkpoints}/epoch_2: "), last
    assert last.endswith(f"Last good checkpoint (intact): {run_dir / 'checkpoints' / 'epoch_1'}; the same "
                         "command resumes from it"), last  # fmt: skip
    # With checkpoint_keep 1, epoch 1 is still there: nothing is pruned for a save that failed,
    # and the half-written folder is gone.
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["epoch_1"]
    assert [r["epoch"] for r in records(run_dir)] == [1, 2]

    out = train.train(tiny_config(tmp_path, **config))  # the same command again resumes from epoch 1
    assert out["epoch"] == 4
    assert records(run_dir) == uninterrupted
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["epoch_4"]
