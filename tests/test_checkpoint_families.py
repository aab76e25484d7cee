"""Checkpoints of every env: the full training state of each registered id survives a save and a
restore, and a real run of each env family stops on a signal, resumes and ends with the numbers
of a run that was never stopped.

What differs between envs, for a checkpoint, is the structure of the state it carries: the env
state's pytree (brax generalized/positional states, the MJX state of arm_* and ant_push with its
zero-size arrays), its shapes and dtypes. The round trip of every id therefore takes the state
structure from `jax.eval_shape` of the real `train.init` and fills it with synthetic values, leaf
for leaf distinct (no physics compiled: 64 ids in seconds each). One id per family then trains
for real (below).
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
import runs
import train
from tests.test_resume import TIMING
from tests.test_train import PLUMBING_XLA_FLAGS, ROOT, tiny_config

pytestmark = [
    pytest.mark.filterwarnings("ignore:Brax System, piplines:UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

# Every registered id and the parametrised form of the arm family (cube noise).
ALL_IDS = (*envs.ENV_IDS, "arm_grasp_0.1")

# One id per env family; ant_push and the arm carry MJX states with zero-size arrays.
FAMILIES = {
    "ant": "ant",
    "ant maze": "ant_u_maze",
    "ant ball/push": "ant_push",
    "humanoid": "humanoid",
    "humanoid maze": "humanoid_u_maze",
    "arm": "arm_push_easy",
    "pusher": "pusher_easy",
    "cheetah": "cheetah",
    "reacher": "reacher",
    "simple maze": "simple_u_maze",
}


def small_config(tmp_path, env_id, **overrides) -> train.Config:
    return tiny_config(tmp_path, env_id=env_id, num_envs=2, num_eval_envs=2, max_replay_size=30,
                       min_replay_size=20, batch_size=8, **overrides)  # fmt: skip


def synthetic(shapes, seed: int):
    """Arrays of the given shapes and dtypes whose values differ from leaf to leaf and seed to
    seed, so that a leaf restored into the wrong place, or not at all, changes a comparison."""
    leaves, treedef = jax.tree.flatten(shapes)
    out = []
    for i, s in enumerate(leaves):
        v = np.arange(math.prod(s.shape), dtype=np.int64) * 7 + 31 * i + seed
        if s.dtype == np.bool_:
            v = v % 2 == 1
        elif np.issubdtype(s.dtype, np.integer):
            v = v % 97
        else:
            v = v / 13.0 + 0.25
        out.append(jnp.asarray(v.reshape(s.shape).astype(s.dtype)))
    return treedef.unflatten(out)


def meta(config, epoch: int) -> dict:
    return dict(epoch=epoch, env_steps=0, wandb_id=None, has_buffer=True, config=config.__dict__)


def assert_same_tree(got, want, what: str) -> None:
    got_paths, got_def = jax.tree_util.tree_flatten_with_path(got)
    want_paths, want_def = jax.tree_util.tree_flatten_with_path(want)
    assert got_def == want_def, what
    for (path, a), (_, b) in zip(got_paths, want_paths):
        name = f"{what}{jax.tree_util.keystr(path)}"
        assert (a.shape, a.dtype) == (b.shape, b.dtype), name
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)


@functools.lru_cache(maxsize=None)
def setup_and_shapes(env_id: str):
    """(train.Setup, env, shapes of train.init's (TrainingState, env_state, buffer)) of a small
    config: tracing an env's reset is the costly part (several seconds for an MJX arm on a CPU)."""
    setup, env = train.make_setup(small_config(None, env_id))
    return setup, env, jax.eval_shape(partial(train.init, setup), jax.random.PRNGKey(0))


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_every_env_id_round_trips_its_full_training_state(env_id, tmp_path):
    config = small_config(tmp_path, env_id)
    setup, env, shapes = setup_and_shapes(env_id)
    # What `train.py --env_id X` builds before compiling (train.build's make_setup and the traced
    # init that sets its shardings), for every id.
    assert setup.derived.obs_dim == env.obs_dim
    assert (setup.derived.goal_start, setup.derived.goal_end) == (env.goal_start, env.goal_end)
    params, train_state = train.checkpoint_items(*synthetic(shapes, seed=1))
    empty = [x for x in jax.tree.leaves(train_state["env_state"]) if x.size == 0]
    # The MJX pipelines (arm_*, ant_push) hold zero-size arrays, which orbax cannot write.
    assert bool(empty) == (env_id.startswith("arm_") or env_id == "ant_push"), len(empty)

    manager = runs.checkpoint_manager(tmp_path, keep=1)
    runs.save_checkpoint(manager, params, train_state, meta(config, epoch=1))
    template = train.checkpoint_items(*synthetic(shapes, seed=2))
    got_params, got_state = runs.restore_checkpoint(tmp_path, 1, *template)
    assert_same_tree(got_params, params, f"{env_id} params")
    assert_same_tree(got_state, train_state, f"{env_id} train_state")


# -- a run of each family: stop after epoch 1, resume, compare with an unstopped run -----------
#
# Real physics, networks and optimizer. Each family runs in its own process, so that the stop is a
# real SIGUSR1 to that process: an uninterrupted 2-epoch run, then the same config in a new run
# directory, stopped by the signal during epoch 1 and started again. All three runs share one
# trainer, so each program is compiled once per family. XLA at opt level 0 even when the session
# runs at the default level (tests/test_train.PLUMBING_XLA_FLAGS): whether resume is exact does not
# depend on it, since both sides run the same programs.

# small_config's sizes: 2 envs, prefill 20 steps each, then 1 training step of 2 x 5 env steps per epoch.
FAMILY_SETTINGS = dict(num_epochs=2, total_env_steps=40 + 2 * 10, unroll_length=5, checkpoint=True,
                       checkpoint_every=1000)  # fmt: skip
FAMILY_TIMEOUT_S = 600


def records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def family_runs(env_id: str, out: Path) -> None:
    """The subprocess: the three runs of one family; metrics land in out/whole and out/run."""
    real_build, trainers, stop_in_epoch, calls = train.build, [], [None], [0]

    def build(config, report=None):
        if not trainers:
            trainers.append(real_build(config))
        trainer = trainers[0]

        def training_epoch(*state):
            calls[0] += 1
            if calls[0] == stop_in_epoch[0]:
                os.kill(os.getpid(), signal.SIGUSR1)  # lands while the epoch's programs run
            return train.training_epoch(trainer.training_step, trainer.derived.training_steps_per_epoch, *state,
                                        report=report)  # fmt: skip

        return trainer._replace(training_epoch=training_epoch)

    train.build = build
    train.train(small_config(out, env_id, run_dir=str(out / "whole"), **FAMILY_SETTINGS))
    config = small_config(out, env_id, run_dir=str(out / "run"), **FAMILY_SETTINGS)
    stop_in_epoch[0] = calls[0] + 1
    try:
        with runs.StopSignals() as stop:  # the handlers train.py's command line installs
            train.train(config, stop)
    except runs.Preempted as e:
        (out / "preempted.txt").write_text(str(e))
    (out / "checkpoint_after_stop.txt").write_text(str(runs.latest_checkpoint(out / "run")))
    stop_in_epoch[0] = None
    train.train(config)  # the requeued job: same command, same run directory
    (out / "compiled_once.txt").write_text(str(len(trainers)))


# reacher's real stop and resume is tests/test_resume.py's: train.py's command line stopped by
# SIGUSR1 and resumed with --resume, against an uninterrupted run.
@pytest.mark.parametrize("family", sorted(set(FAMILIES) - {"reacher"}))
def test_each_family_stops_on_a_signal_and_resumes_exactly(family, tmp_path):
    env_id = FAMILIES[family]
    env = {**os.environ, "XLA_FLAGS": PLUMBING_XLA_FLAGS}
    argv = [sys.executable, "-m", "tests.test_checkpoint_families", env_id, str(tmp_path)]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=FAMILY_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-4000:]
    expected = records(tmp_path / "whole")
    assert [r["epoch"] for r in expected] == [1, 2]
    for r in expected:  # real training: finite losses that change from epoch to epoch
        assert all(math.isfinite(r[k]) for k in ("training/critic_loss", "training/actor_loss", "eval/episode_dist"))
    assert expected[0]["training/critic_loss"] != expected[1]["training/critic_loss"]
    assert re.fullmatch(r"SIGUSR1: stopped after epoch 1; checkpoint .*epoch_1", (tmp_path / "preempted.txt").read_text())
    assert (tmp_path / "checkpoint_after_stop.txt").read_text() == "1"
    assert re.search(r"resuming \S+/run from epoch 1 ", done.stderr), done.stderr[-4000:]
    assert records(tmp_path / "run") == expected
    assert (tmp_path / "compiled_once.txt").read_text() == "1"


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.WARNING, force=True)  # as train.py's command line logs
    runs.log.setLevel(logging.INFO)
    family_runs(sys.argv[1], Path(sys.argv[2]))
