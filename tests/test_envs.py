"""Tests for the goal-conditioned environments in `envs/`.

Each env is compiled once (cached harness): a vmapped reset and a scanned,
vmapped step over a fixed batch of B envs and T steps. Every test reuses those
compiled functions so the file stays fast on a small CPU.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Callable

import jax
import jax.numpy as jp
import numpy as np
import pytest
from brax.io import html
from brax.io import json as brax_json

import envs
from envs.reacher import Reacher

pytestmark = [
    pytest.mark.filterwarnings("ignore:Brax System, piplines:UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:brax"),
]

B = 8  # envs per batch
T = 100  # steps per compiled rollout

# env id -> (observation size, obs_dim, goal_start, goal_end, action size), from the spec.
EXPECTED_LAYOUT = {
    "reacher": (13, 10, 4, 7, 2),
    "ant": (31, 29, 0, 2, 8),
}


@dataclasses.dataclass
class Harness:
    env_id: str
    env: envs.GoalEnv
    reset: Callable  # keys [B] -> State[B]
    # (State[B], actions [T, B, A]) -> (State[B], (obs, done, reward, metrics) [T, B],
    # pipeline states of env 0 [T])
    rollout: Callable
    init: Callable  # (q [B], qd [B]) -> pipeline state [B]

    def reset_batch(self, seed: int = 0):
        return self.reset(jax.random.split(jax.random.PRNGKey(seed), B))

    def zero_actions(self):
        return jp.zeros((T, B, self.env.action_size))

    def random_actions(self, seed: int):
        shape = (T, B, self.env.action_size)
        return jax.random.uniform(jax.random.PRNGKey(seed), shape, minval=-1.0, maxval=1.0)

    def with_q(self, state, q, qd=None):
        """The same batch of states, physically re-initialised at q (and qd, default 0)."""
        qd = jp.zeros_like(state.pipeline_state.qd) if qd is None else qd
        return state.replace(pipeline_state=self.init(q, qd))


@functools.cache
def _harness(env_id: str) -> Harness:
    env = envs.make(env_id)
    vstep = jax.vmap(env.step)

    @jax.jit
    def rollout(state, actions):
        def body(s, a):
            s = vstep(s, a)
            env0 = jax.tree.map(lambda x: x[0], s.pipeline_state)
            return s, (s.obs, s.done, s.reward, s.metrics, env0)

        return jax.lax.scan(body, state, actions)

    return Harness(
        env_id=env_id,
        env=env,
        reset=jax.jit(jax.vmap(env.reset)),
        rollout=rollout,
        init=jax.jit(jax.vmap(env.pipeline_init)),
    )


# The other families have their own test files (test_mazes.py, test_arm.py, ...).
@pytest.fixture(params=sorted(EXPECTED_LAYOUT))
def harness(request) -> Harness:
    return _harness(request.param)


def test_every_spec_env_is_registered():
    assert set(EXPECTED_LAYOUT) <= set(envs.ENV_IDS)
    assert list(envs.ENV_IDS) == sorted(envs.ENV_IDS)


def test_layout_and_shapes(harness):
    env = harness.env
    obs_size, obs_dim, goal_start, goal_end, act_size = EXPECTED_LAYOUT[harness.env_id]
    assert (env.obs_dim, env.goal_start, env.goal_end) == (obs_dim, goal_start, goal_end)
    assert env.goal_slice == slice(goal_start, goal_end)
    assert env.goal_dim == goal_end - goal_start
    assert env.obs_dim + env.goal_dim == obs_size
    assert env.action_size == act_size

    state = harness.reset_batch()
    assert state.obs.shape == (B, obs_size)
    assert state.reward.shape == state.done.shape == (B,)
    final, (obs, done, reward, metrics, _) = harness.rollout(state, harness.zero_actions())
    assert final.obs.shape == (B, obs_size)
    assert obs.shape == (T, B, obs_size)
    assert done.shape == reward.shape == (T, B)


def test_reset_and_step_states_have_identical_types(harness):
    """Same pytree, shapes, dtypes and weak types, or scan/jit would retrace or fail."""
    state = harness.reset_batch()
    stepped, _ = harness.rollout(state, harness.zero_actions())

    def describe(tree):
        return jax.tree.map(lambda x: (x.shape, x.dtype, x.weak_type), tree)

    assert jax.tree.structure(state) == jax.tree.structure(stepped)
    assert describe(state) == describe(stepped)
    expected_keys = {"dist", "success"}
    if harness.env.success_easy_radius is not None:
        expected_keys.add("success_easy")
    if harness.env_id == "ant":
        expected_keys.add("distance_from_origin")
    assert set(state.metrics) == expected_keys
    for value in state.metrics.values():
        np.testing.assert_array_equal(value, 0.0)


def test_commanded_goal_lives_in_goal_space(harness):
    env = harness.env
    obs = np.asarray(harness.reset_batch().obs)
    achieved, goal = obs[:, env.goal_slice], obs[:, env.obs_dim :]
    assert achieved.shape == goal.shape
    if harness.env_id == "reacher":
        # Fingertip and target both start on the z = 0.01 plane, the target
        # inside the 0.2 disk the arm (reach 0.21) can cover.
        np.testing.assert_allclose(achieved[:, 2], 0.01, atol=1e-6)
        np.testing.assert_allclose(goal[:, 2], 0.01, atol=1e-6)
        assert np.all(np.linalg.norm(goal[:, :2], axis=1) <= 0.2 + 1e-6)
        assert np.all(np.linalg.norm(achieved[:, :2], axis=1) <= 0.21 + 1e-4)
    else:
        np.testing.assert_allclose(np.linalg.norm(goal, axis=1), 10.0, rtol=1e-5)
        assert np.all(np.abs(achieved) <= 0.1 + 1e-6)  # torso xy: reset noise only


def test_random_rollout_is_finite_and_goal_stays_put(harness):
    env = harness.env
    state = harness.reset_batch()
    goal0 = np.asarray(state.obs[:, env.obs_dim :])
    for chunk in range(3):  # 3 x T steps, continuing (no auto-reset)
        state, (obs, done, reward, metrics, _) = harness.rollout(state, harness.random_actions(chunk))
        obs, done = np.asarray(obs), np.asarray(done)
        assert np.all(np.isfinite(obs))
        assert np.all(np.isfinite(np.asarray(reward)))
        assert all(np.all(np.isfinite(np.asarray(v))) for v in metrics.values())
        assert set(np.unique(done)) <= {0.0, 1.0}
        goal = obs[..., env.obs_dim :]
        # The goal's horizontal part never moves; reacher's spring target may
        # sag a few mm in z, far below the 0.05 success radius.
        drift = np.abs(goal - goal0)
        assert drift[..., :2].max() < 1e-5
        assert drift.max() < 0.01


def test_metrics_and_reward_follow_the_observation(harness):
    env = harness.env
    _, (obs, _, reward, metrics, _) = harness.rollout(harness.reset_batch(), harness.random_actions(7))
    obs = np.asarray(obs)
    dist = np.linalg.norm(obs[..., env.goal_slice] - obs[..., env.obs_dim :], axis=-1)
    np.testing.assert_allclose(metrics["dist"], dist, rtol=1e-5, atol=1e-6)
    success = (dist < env.success_radius).astype(np.float32)
    np.testing.assert_array_equal(metrics["success"], success)
    np.testing.assert_allclose(reward, -dist, rtol=1e-5, atol=1e-6)
    if "distance_from_origin" in metrics:  # ant: state[0:3] is the torso position
        np.testing.assert_allclose(
            metrics["distance_from_origin"], np.linalg.norm(obs[..., :3], axis=-1), rtol=1e-5
        )


def _place_goal_relative_to_achieved(env_id: str, state, offsets: np.ndarray):
    """q where goal = achieved + offset (per batch row), using the reset state."""
    q = state.pipeline_state.q
    if env_id == "reacher":
        tip_xy = state.obs[:, 4:6]  # target slides move it in world xy
        return q.at[:, 2:4].set(tip_xy + offsets)
    # ant: move the torso next to the target instead.
    return q.at[:, 0:2].set(q[:, -2:] - offsets)


# env id -> [(goal - achieved offset in xy, success, success_easy or None)].
# Reacher offsets keep the target inside its +-0.27 slide range (tip starts near x 0.21).
SUCCESS_CASES = {
    "reacher": [((0.0, 0.0), 1.0, None), ((0.02, -0.02), 1.0, None), ((-0.1, 0.05), 0.0, None)],
    "ant": [
        ((0.0, 0.0), 1.0, 1.0),
        ((0.25, 0.2), 1.0, 1.0),
        ((1.0, 0.5), 0.0, 1.0),
        ((3.0, 0.0), 0.0, 0.0),
    ],
}


def test_agent_at_goal_succeeds_and_far_agent_does_not(harness):
    env, env_id = harness.env, harness.env_id
    cases = SUCCESS_CASES[env_id]
    offsets = np.zeros((B, 2), np.float32)
    offsets[: len(cases)] = [c[0] for c in cases]
    state = harness.reset_batch()
    q = _place_goal_relative_to_achieved(env_id, state, jp.asarray(offsets))
    _, (_, _, _, metrics, _) = harness.rollout(harness.with_q(state, q), harness.zero_actions())
    first = {k: np.asarray(v[0]) for k, v in metrics.items()}  # after one step
    for i, (offset, success, success_easy) in enumerate(cases):
        assert first["success"][i] == success, (offset, first["dist"][i])
        assert (first["dist"][i] < env.success_radius) == bool(success)
        if success_easy is not None:
            assert first["success_easy"][i] == success_easy, (offset, first["dist"][i])
        if offset == (0.0, 0.0):
            assert first["dist"][i] < 0.2 * env.success_radius


def test_reset_randomness_and_determinism(harness):
    env = harness.env
    keys = jax.random.split(jax.random.PRNGKey(3), B)
    keys = keys.at[1].set(keys[0])
    obs = np.asarray(harness.reset(keys).obs)
    np.testing.assert_array_equal(obs[0], obs[1])
    goals = obs[1:, env.obs_dim :]  # rows 1..B-1 come from distinct keys
    pairwise = np.linalg.norm(goals[:, None] - goals[None], axis=-1)
    assert np.all(pairwise[~np.eye(B - 1, dtype=bool)] > 1e-4)
    # The start state is randomised too, not just the goal.
    assert np.all(np.abs(obs[2:, : env.obs_dim] - obs[0, : env.obs_dim]).max(axis=1) > 1e-4)


def test_html_render_of_a_short_rollout(harness):
    _, (*_, env0) = harness.rollout(harness.reset_batch(), harness.random_actions(2))
    frames = [jax.tree.map(lambda x, t=t: x[t], env0) for t in range(0, T, 20)]
    page = html.render(harness.env.sys, frames)
    shown = json.loads(brax_json.dumps(harness.env.sys, frames))
    assert "<html" in page.lower() and len(shown["states"]["x"]) == len(frames) == 5
    np.testing.assert_allclose(shown["states"]["x"][-1]["pos"], env0.x.pos[80], atol=1e-5)


def test_ant_terminates_when_torso_leaves_healthy_range():
    h = _harness("ant")
    z = np.full(B, 0.55, np.float32)  # the standing start height
    z[0], z[1] = 0.1, 1.6
    state = h.reset_batch()
    q = state.pipeline_state.q.at[:, 2].set(jp.asarray(z))
    _, (_, done, _, _, _) = h.rollout(h.with_q(state, q), h.zero_actions())
    np.testing.assert_array_equal(np.asarray(done[0]), (z != 0.55).astype(np.float32))


def test_reacher_fingertip_velocity_matches_its_motion():
    """obs[7:10] is the fingertip's velocity: compare with finite differences."""
    h = _harness("reacher")
    state = h.reset_batch()
    qd = jp.zeros_like(state.pipeline_state.qd)
    qd = qd.at[:, :2].set(jax.random.uniform(jax.random.PRNGKey(5), (B, 2), minval=-4, maxval=4))
    _, (obs, _, _, _, _) = h.rollout(h.with_q(state, state.pipeline_state.q, qd), h.zero_actions())
    obs = np.asarray(obs)[:30]  # while the arm still moves fast
    dt = float(h.env.dt)
    finite_diff = (obs[2:, :, 4:7] - obs[:-2, :, 4:7]) / (2 * dt)
    vel = obs[1:-1, :, 7:10]
    rel_err = np.linalg.norm(finite_diff - vel, axis=-1) / np.linalg.norm(vel, axis=-1)
    # Spring joints jitter, so single steps can be off; the typical step is ~1%.
    assert np.median(rel_err) < 0.05


def test_ant_goal_distance_option():
    env = envs.make("ant", goal_distance=3.0)
    q, qd = env._initial_q_qd(jax.random.PRNGKey(0))
    assert np.linalg.norm(q[-2:]) == pytest.approx(3.0, rel=1e-5)
    np.testing.assert_array_equal(qd[-2:], 0.0)


def test_unknown_env_id_lists_valid_ids():
    with pytest.raises(ValueError) as info:
        envs.make("foo")
    message = str(info.value)
    assert "'foo'" in message
    assert "valid ids: " + ", ".join(sorted(envs.ENV_IDS)) in message


def test_reacher_backend_and_timestep_options():
    spring = Reacher()
    assert spring.backend == "spring"
    assert float(spring.dt) == pytest.approx(0.005 * 4)
    np.testing.assert_allclose(spring.sys.actuator.gear, 25.0)

    generalized = Reacher(backend="generalized")
    assert generalized.backend == "generalized"
    assert float(generalized.sys.opt.timestep) == pytest.approx(0.01)
    assert float(generalized.dt) == pytest.approx(0.01 * 2)
    np.testing.assert_allclose(generalized.sys.actuator.gear, 200.0)

    # The paper stack's effective spring timestep (spec 12.3).
    assert float(Reacher(timestep=0.01).dt) == pytest.approx(0.01 * 4)
    assert float(Reacher(backend="generalized", timestep=0.005).dt) == pytest.approx(0.005 * 2)
    assert float(envs.make("reacher", timestep=0.01).dt) == pytest.approx(0.04)

    with pytest.raises(ValueError, match="backend"):
        Reacher(backend="nonsense")


def test_ant_timestep_override_changes_env_dt():
    assert envs.make("ant").dt == pytest.approx(0.05)
    assert envs.make("ant", timestep=0.01).dt == pytest.approx(0.1)


def test_benchmark_script_writes_its_table_as_json(tmp_path, capsys):
    from envs import benchmark

    path = tmp_path / "bench.json"
    argv = ["--env_ids", "simple_u_maze", "simple_u_maze_eval", "--num_envs", "4", "--unroll", "5"]
    out = benchmark.main([*argv, "--seconds", "0", "--json", str(path)])
    assert json.loads(path.read_text()) == out
    first, second = out["results"]
    assert first["env_id"] == "simple_u_maze" and first["backend"] == "spring"
    assert first["steps_per_s"] > 0 and first["compile_s"] > 0 and first["finite"]
    assert first["calls"] >= 1 and first["env_dt"] == pytest.approx(0.05)
    # Same walls and physics, other goal cells: reported with the first id's figures.
    assert second["same_as"] == "simple_u_maze" and second["steps_per_s"] == first["steps_per_s"]
    assert out["config"] == {"num_envs": 4, "unroll": 5, "seconds": 0.0}
    printed = capsys.readouterr().out
    assert printed.startswith(f"machine: {out['machine']['device_kind']}")
    assert "simple_u_maze_eval" in printed and "same physics as simple_u_maze" in printed
