"""Checkpoints of every env: the full training state of each registered id survives a save and a
restore, and a run of each env family stops, resumes and ends with the numbers of a run that was
never stopped.

What differs between envs, for a checkpoint, is the structure of the state it carries: the env
state's pytree (brax generalized/positional states, the MJX state of arm_* and ant_push with its
zero-size arrays), its shapes and dtypes. These tests therefore take each env's state structure
from `jax.eval_shape` of the real `train.init` and fill it with synthetic values: no physics is
compiled, which keeps 64 ids and 10 families within seconds each on a CPU. The real training
epoch's exact resume (physics, networks, optimizer) is tested on reacher in tests/test_resume.py;
the real code path around it (train.train, runs.Run: checkpoint, stop signal, restore, metrics)
is the one these runs go through.
"""

from __future__ import annotations

import functools
import json
import math
import signal
import zlib
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
import runs
import train
from tests.test_resume import TIMING
from tests.test_train import tiny_config

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


def checksum(tree) -> float:
    return float(sum(np.asarray(x, np.float64).sum() * (i + 1) for i, x in enumerate(jax.tree.leaves(tree))))


def structure(tree) -> float:
    """A number that changes when any leaf's shape or dtype does, zero-size leaves included."""
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    text = repr([(jax.tree_util.keystr(path), x.shape, str(x.dtype)) for path, x in leaves])
    return float(zlib.crc32(text.encode()))


def advance(state):
    """A stand-in for a training epoch, on the host (nothing to compile): every leaf changes, by
    amounts drawn from the state's own RNG key."""
    leaves, treedef = jax.tree.flatten(jax.device_get(state))
    rng = np.random.default_rng(np.asarray(state[0].key).tolist())
    new = []
    for x in map(np.asarray, leaves):
        if x.dtype == np.bool_:
            new.append(x ^ (rng.random(x.shape) < 0.5))
        elif np.issubdtype(x.dtype, np.integer):
            new.append(x + rng.integers(0, 3, x.shape).astype(x.dtype))
        else:
            new.append((x * 0.5 + rng.normal(size=x.shape)).astype(x.dtype))
    return treedef.unflatten(new)


class StandIns:
    """train.build for these runs: a Trainer with the config's real env and sizes whose init,
    prefill, training epoch and evaluation are cheap stand-ins over the real state structure.
    The epoch's metrics are checksums of the whole state, so any leaf that a resume restores
    wrongly changes every later record. One Trainer per env id, shared by its runs.
    `stop_in_epoch` n delivers SIGUSR1 to the run's handler during the n-th epoch call."""

    def __init__(self):
        self.trainers, self.stop_in_epoch = {}, None
        self.calls = 0
        self.stop: runs.StopSignals | None = None

    def __call__(self, config, report=None):
        if config.env_id not in self.trainers:
            setup, env, shapes = setup_and_shapes(config.env_id)

            def init(key):
                return synthetic(shapes, seed=int(jax.random.randint(key, (), 0, 1000)))

            self.trainers[config.env_id] = train.Trainer(
                config, setup.derived, env, env, setup.nets,
                init=init,
                prefill=lambda *state: advance(state),
                training_epoch=self.epoch,
                evaluate=lambda actor, critic, key: {
                    "eval/episode_success": checksum((actor, critic, key)),
                    "eval/episode_success_any": 0.5,
                    "eval/episode_dist": 1.0,
                    "eval/avg_episode_length": 1.0,
                },
                training_step=None, update=None, policy=None, value=None,
            )  # fmt: skip
        return self.trainers[config.env_id]

    def epoch(self, ts, env_state, buf):
        self.calls += 1
        if self.calls == self.stop_in_epoch:
            self.stop._handle(signal.SIGUSR1, None)  # as the signal handler does, mid-epoch
        ts, env_state, buf = advance((ts, env_state, buf))
        metrics = {
            "critic_loss": checksum(env_state),
            "actor_loss": checksum(buf),
            "alpha": checksum(ts),
            "structure": structure((ts, env_state, buf)),
        }
        return ts, env_state, buf, metrics


def records(run_dir) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


@pytest.fixture(scope="module")
def stand_ins():
    mp = pytest.MonkeyPatch()
    build = StandIns()
    mp.setattr(train, "build", build)
    yield build
    mp.undo()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_stops_on_a_signal_and_resumes_exactly(family, tmp_path, stand_ins):
    env_id = FAMILIES[family]
    settings = dict(num_epochs=3, total_env_steps=160 + 3 * 20, checkpoint=True, checkpoint_every=1000)
    whole = small_config(tmp_path, env_id, run_dir=str(tmp_path / "whole"), **settings)
    train.train(whole)
    expected = records(tmp_path / "whole")
    assert [r["epoch"] for r in expected] == [1, 2, 3]
    assert len({r["training/critic_loss"] for r in expected}) == 3  # the env state changes

    config = small_config(tmp_path, env_id, run_dir=str(tmp_path / "run"), **settings)
    stand_ins.stop, stand_ins.calls, stand_ins.stop_in_epoch = runs.StopSignals(), 0, 1
    with pytest.raises(runs.Preempted, match=r"SIGUSR1: stopped after epoch 1; checkpoint .*epoch_1"):
        train.train(config, stand_ins.stop)
    assert runs.latest_checkpoint(tmp_path / "run") == 1
    stand_ins.stop_in_epoch = None
    train.train(config)  # the requeued job: same command, same run directory
    assert records(tmp_path / "run") == expected
