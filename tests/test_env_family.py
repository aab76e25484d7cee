"""Tests for humanoid (+ mazes), the pusher family, cheetah and the ant variants.

Compile budget. A brax physics program costs 15-25 s to compile on the 2-core
dev CPU (more when it is loaded), so physics is compiled for four envs only,
one program each: `humanoid`, `pusher_easy`, `cheetah`, `ant_ball`. That
program resets a batch of B scenario rows (below), rolls them T steps and
returns everything; every physics test reads that one run.

The other ids share one of those pipelines or differ from `ant` (covered by
`tests/test_envs.py`) only in their reset or observation, and are checked
without physics: `jax.eval_shape` (tracing only) for shapes, their reset
distribution (`_initial_q_qd`), and their observation and metrics on states
built by `brax.kinematics.forward` (exact link positions, cheap to compile).

Scenario rows of a compiled run: 0 and 1 share a key and actions
(determinism); 0-3 take uniform random actions; 4-7 start from an edited
reset (`Scenario.edit`, e.g. agent or object put at the goal) and take zero
actions.
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
from brax import base, kinematics
from brax.io import html
from brax.io import json as brax_json

import envs
from envs import humanoid, maze, pusher

pytestmark = [
    pytest.mark.filterwarnings("ignore:Brax System, piplines:UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:brax"),
]

B = 8
T = 100
EDITED = slice(4, 8)

# env id -> (observation size, obs_dim, goal_start, goal_end, action size), from the spec.
EXPECTED_LAYOUT = {
    "humanoid": (271, 268, 0, 3, 17),
    **{f"humanoid_{name}": (271, 268, 0, 3, 17) for name in humanoid.MAZE_LAYOUTS},
    "pusher_easy": (23, 20, 10, 13, 7),
    "pusher_hard": (23, 20, 10, 13, 7),
    "pusher_reacher": (20, 17, 14, 17, 7),
    "pusher2": (29, 23, 10, 16, 7),
    "cheetah": (19, 18, 0, 1, 6),
    "ant_random_start": (31, 29, 0, 2, 8),
    "ant_ball": (33, 31, 29, 31, 8),
    "ant_push": (33, 31, 0, 2, 8),
}


@dataclasses.dataclass(frozen=True)
class Scenario:
    """How rows 4-7 of a compiled run start, and what step 0 must report for them."""

    # (q, qd, params) -> (q, qd): applied to the sampled reset of edited rows.
    edit: Callable
    params: tuple  # one tuple per edited row
    success: tuple  # expected `success` at step 0, per edited row
    success_easy: tuple | None = None


SCENARIOS = {
    # Torso xy = target xy + (dx, dy), torso z = z. Goal z is 1.25, so at
    # z 1.4 the distances are 0.15, 0.34, 0.62; row 7 floats too high.
    "humanoid": Scenario(
        edit=lambda q, qd, p: (q.at[0:2].set(q[24:26] + p[0:2]).at[2].set(p[2]), qd),
        params=((0.0, 0.0, 1.4), (0.3, 0.0, 1.4), (0.6, 0.0, 1.4), (0.0, 0.0, 2.5)),
        success=(1, 1, 0, 0),
        success_easy=(1, 1, 1, 1),
    ),
    # Object slides = goal slides + (dy, dx), object slide velocity (vy, vx).
    # The goal sits 0.048 below the object: distances 0.048, 0.077, 0.21, 0.58.
    # Row 4's object moves off the goal during the first step.
    "pusher_easy": Scenario(
        edit=lambda q, qd, p: (q.at[7:9].set(q[9:11] + p[0:2]), qd.at[7:9].set(p[2:4])),
        params=(
            (0.0, 0.0, 1.0, 0.0),
            (0.06, 0.0, 0.0, 0.0),
            (0.2, 0.0, 0.0, 0.0),
            (0.5, 0.3, 0.0, 0.0),
        ),
        success=(1, 1, 0, 0),
    ),
    # rootx = 5 + dx.
    "cheetah": Scenario(
        edit=lambda q, qd, p: (q.at[0].set(q[-1] + p[0]), qd),
        params=((0.0,), (0.3,), (1.0,), (3.0,)),
        success=(1, 1, 0, 0),
        success_easy=(1, 1, 1, 0),
    ),
    # Ball slides = target + (dx, dy).
    "ant_ball": Scenario(
        edit=lambda q, qd, p: (q.at[15:17].set(q[17:19] + p[0:2]), qd),
        params=((0.0, 0.0), (0.3, 0.2), (1.0, 0.5), (3.0, 0.0)),
        success=(1, 1, 0, 0),
        success_easy=(1, 1, 1, 0),
    ),
}


@dataclasses.dataclass
class Run:
    env_id: str
    env: envs.GoalEnv
    actions: np.ndarray  # [T, B, A]
    reset: base.State  # State[B] (numpy leaves)
    final: base.State
    obs: np.ndarray  # [T, B, obs]
    done: np.ndarray  # [T, B]
    reward: np.ndarray
    metrics: dict  # [T, B] each
    frames: base.State  # pipeline states of row 0, [T]


def _edited_reset(env: envs.GoalEnv, edit: Callable) -> Callable:
    """`env.reset(key)` whose sampled (q, qd) go through `edit` when `params[0]` is 1.

    The edit is hooked in as an instance attribute that shadows
    `_initial_q_qd` only while `reset` is traced, so the real reset code runs
    (one pipeline init per program instead of two).
    """
    sample = env._initial_q_qd

    def reset(key, params):
        def initial_q_qd(rng):
            q, qd = sample(rng)
            q_edit, qd_edit = edit(q, qd, params[1:])
            use = params[0] > 0
            return jp.where(use, q_edit, q), jp.where(use, qd_edit, qd)

        env._initial_q_qd = initial_q_qd
        try:
            return env.reset(key)
        finally:
            del env._initial_q_qd

    return reset


@functools.cache
def _run(env_id: str) -> Run:
    env = envs.make(env_id)
    scenario = SCENARIOS[env_id]
    reset = _edited_reset(env, scenario.edit)
    vstep = jax.vmap(env.step)

    @jax.jit
    def program(keys, params, actions):
        state = jax.vmap(reset)(keys, params)

        def body(s, a):
            s = vstep(s, a)
            row0 = jax.tree.map(lambda x: x[0], s.pipeline_state)
            return s, (s.obs, s.done, s.reward, s.metrics, row0)

        final, trajectory = jax.lax.scan(body, state, actions)
        return state, final, trajectory

    keys = jax.random.split(jax.random.PRNGKey(0), B)
    keys = keys.at[1].set(keys[0])
    width = 1 + len(scenario.params[0])
    params = np.zeros((B, width), np.float32)
    params[EDITED, 0] = 1.0
    params[EDITED, 1:] = scenario.params
    actions = jax.random.uniform(jax.random.PRNGKey(1), (T, B, env.action_size), minval=-1.0, maxval=1.0)
    actions = actions.at[:, 1].set(actions[:, 0]).at[:, EDITED].set(0.0)
    out = jax.device_get(program(keys, jp.asarray(params), actions))
    state, final, (obs, done, reward, metrics, frames) = out
    return Run(env_id, env, np.asarray(actions), state, final, obs, done, reward, metrics, frames)


@pytest.fixture(params=sorted(SCENARIOS))
def run(request) -> Run:
    return _run(request.param)


@functools.cache
def _make(env_id: str) -> envs.GoalEnv:
    return envs.make(env_id)


def _kinematic_state(sys, q: jax.Array, qd: jax.Array) -> base.State:
    """A pipeline-like state with exact link transforms for (q, qd), no physics."""
    x, xd = kinematics.forward(sys, q, qd)
    return base.State(q=q, qd=qd, x=x, xd=xd, contact=None)


@functools.cache
def _observer(env: envs.GoalEnv) -> Callable:
    def one(q, qd):
        state = _kinematic_state(env.sys, q, qd)
        obs = env._get_obs(state)
        return obs, env._metrics(state, obs)

    return jax.jit(jax.vmap(one))


def _observe(env: envs.GoalEnv, q):
    """(obs, metrics) of a batch of kinematic states at rest, as reset would report them."""
    qd = jp.zeros((q.shape[0], env.sys.qd_size()))
    return jax.device_get(_observer(env)(jp.asarray(q), qd))


def _sample_resets(env: envs.GoalEnv, n: int = 512, seed: int = 3):
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    q, qd = jax.jit(jax.vmap(env._initial_q_qd))(keys)
    return np.asarray(q), np.asarray(qd)


# -- registry and layouts ------------------------------------------------------------


def test_every_family_id_is_registered():
    assert set(EXPECTED_LAYOUT) <= set(envs.ENV_IDS)


# Ids whose `step` is traced or compiled elsewhere here: humanoid mazes differ
# only in their walls (humanoid_u_maze traces it), the others inherit the step
# of a compiled env and differ in reset (or, pusher_reacher, in observation,
# checked on kinematic states below).
_RESET_ONLY = {f"humanoid_{name}" for name in humanoid.MAZE_LAYOUTS} - {"humanoid_u_maze"}
_RESET_ONLY |= {"pusher_hard", "pusher_reacher", "ant_random_start"}


@pytest.mark.parametrize("env_id", sorted(set(EXPECTED_LAYOUT) - set(SCENARIOS)))
def test_layout_by_tracing(env_id):
    env = _make(env_id)
    obs_size, obs_dim, goal_start, goal_end, act_size = EXPECTED_LAYOUT[env_id]
    assert (env.obs_dim, env.goal_start, env.goal_end) == (obs_dim, goal_start, goal_end)
    assert env.goal_slice == slice(goal_start, goal_end)
    assert env.action_size == act_size
    state = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
    assert state.obs.shape == (obs_size,)
    if env_id in _RESET_ONLY:
        return
    stepped = jax.eval_shape(env.step, state, jp.zeros(act_size))

    def describe(tree):
        return jax.tree.map(lambda x: (x.shape, x.dtype, x.weak_type), tree)

    assert jax.tree.structure(state) == jax.tree.structure(stepped)
    assert describe(state) == describe(stepped)
    assert {"dist", "success"} <= set(stepped.metrics)


# -- compiled runs: generic properties -----------------------------------------------


def test_run_layout_and_types(run):
    env = run.env
    obs_size, obs_dim, goal_start, goal_end, act_size = EXPECTED_LAYOUT[run.env_id]
    assert (env.obs_dim, env.goal_start, env.goal_end, env.action_size) == (
        obs_dim,
        goal_start,
        goal_end,
        act_size,
    )
    assert run.reset.obs.shape == (B, obs_size)
    assert run.obs.shape == (T, B, obs_size)

    def describe(tree):
        return jax.tree.map(lambda x: (np.shape(x), np.asarray(x).dtype), tree)

    assert jax.tree.structure(run.reset) == jax.tree.structure(run.final)
    assert describe(run.reset) == describe(run.final)
    for value in run.reset.metrics.values():
        np.testing.assert_array_equal(value, 0.0)


def test_random_rollout_is_finite_and_goal_stays_put(run):
    env = run.env
    assert np.isfinite(run.reset.obs).all() and np.isfinite(run.obs).all()
    assert np.isfinite(run.reward).all()
    assert all(np.isfinite(v).all() for v in run.metrics.values())
    assert set(np.unique(run.done)) <= {0.0, 1.0}
    goal0 = run.reset.obs[:, env.obs_dim :]
    drift = np.abs(run.obs[..., env.obs_dim :] - goal0)
    assert drift.max() < 1e-4
    # Random actions do move the agent.
    state = run.obs[:, 2:4, : env.obs_dim]
    assert np.abs(state - run.reset.obs[2:4, : env.obs_dim]).max() > 0.05


def test_reset_determinism_and_randomness(run):
    env = run.env
    obs = run.reset.obs
    np.testing.assert_array_equal(obs[0], obs[1])
    np.testing.assert_array_equal(run.obs[:, 0], run.obs[:, 1])  # same actions, same rollout
    distinct = obs[1:4]
    goals, states = distinct[:, env.obs_dim :], distinct[:, : env.obs_dim]

    def pairwise(x):
        return np.abs(x[:, None] - x[None]).max(axis=-1)[~np.eye(len(x), dtype=bool)]

    if env.goal_dim == 1:  # cheetah: one fixed goal
        np.testing.assert_allclose(goals, 5.0, atol=1e-6)
        assert np.all(pairwise(states) > 1e-4)
    else:
        assert np.all(pairwise(goals) > 1e-4)


def test_metrics_and_reward_follow_the_observation(run):
    env = run.env
    # Pusher scores the state an action is applied to: observation t-1.
    pre_step = isinstance(env, pusher.Pusher)
    obs = np.concatenate([run.reset.obs[None], run.obs[:-1]]) if pre_step else run.obs
    dist = np.linalg.norm(obs[..., env.goal_slice] - obs[..., env.obs_dim :], axis=-1)
    np.testing.assert_allclose(run.metrics["dist"], dist, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(run.metrics["success"], dist < env.success_radius)
    if env.success_easy_radius is not None:
        np.testing.assert_array_equal(run.metrics["success_easy"], dist < env.success_easy_radius)
    np.testing.assert_allclose(run.reward, -run.metrics["dist"], rtol=1e-5, atol=1e-6)


def test_success_at_goal_and_not_far(run):
    scenario = SCENARIOS[run.env_id]
    first = {k: v[0, EDITED] for k, v in run.metrics.items()}
    np.testing.assert_array_equal(first["success"], scenario.success, err_msg=str(first["dist"]))
    if scenario.success_easy is not None:
        np.testing.assert_array_equal(first["success_easy"], scenario.success_easy)


def test_html_render_of_a_short_rollout(run):
    frames = [jax.tree.map(lambda x, t=t: x[t], run.frames) for t in range(0, T, 20)]
    page = html.render(run.env.sys, frames)
    shown = json.loads(brax_json.dumps(run.env.sys, frames))
    assert "<html" in page.lower() and len(shown["states"]["x"]) == len(frames) == 5
    np.testing.assert_allclose(shown["states"]["x"][-1]["pos"], run.frames.x.pos[80], atol=1e-5)


# -- compiled runs: env-specific -----------------------------------------------------


def test_pusher_metrics_describe_the_pre_step_state():
    run = _run("pusher_easy")
    env = run.env
    # Row 4: the object starts on the goal moving at 1 m/s along y.
    reset_dist = np.linalg.norm(run.reset.obs[4, 10:13] - run.reset.obs[4, 20:23])
    after_dist = np.linalg.norm(run.obs[0, 4, 10:13] - run.obs[0, 4, 20:23])
    assert reset_dist == pytest.approx(0.048, abs=1e-3)
    assert after_dist > env.success_hard_radius + 0.005  # moved off during step 0
    assert run.metrics["dist"][0, 4] == pytest.approx(reset_dist, rel=1e-5)
    assert run.metrics["success_hard"][0, 4] == 1.0  # describes the reset state
    assert run.metrics["success_hard"][1, 4] == 0.0
    np.testing.assert_array_equal(run.metrics["success_hard"][0, EDITED], (1, 0, 0, 0))
    assert not np.any(run.done)


def test_pusher_observation_layout():
    run = _run("pusher_easy")
    obs, q = run.reset.obs, run.reset.pipeline_state.q
    np.testing.assert_allclose(obs[:, 0:7], q[:, 0:7], atol=1e-6)
    np.testing.assert_allclose(obs[:, 13:20], run.reset.pipeline_state.qd[:, 0:7], atol=1e-6)
    # Slides are y then x; bodies start at (0.45, -0.05); object z -0.275, goal z -0.323.
    expected_object = np.column_stack([0.45 + q[:, 8], -0.05 + q[:, 7], np.full(B, -0.275)])
    expected_goal = np.column_stack([0.45 + q[:, 10], -0.05 + q[:, 9], np.full(B, -0.323)])
    np.testing.assert_allclose(obs[:, 10:13], expected_object, atol=1e-5)
    np.testing.assert_allclose(obs[:, 20:23], expected_goal, atol=1e-5)
    # Actions reach the motors unscaled: the arm moves under random torques.
    assert np.abs(run.obs[-1, 2, 0:7] - obs[2, 0:7]).max() > 0.1


def test_humanoid_terminates_outside_healthy_height():
    run = _run("humanoid")
    z = run.obs[..., 2]
    np.testing.assert_array_equal(run.done, ((z < 1.0) | (z > 2.0)).astype(np.float32))
    assert run.done[0, 7] == 1.0 and not run.done[0, 4]  # torso raised to 2.5 vs standing
    assert run.done[:, 0:4].any(axis=0).all()  # random play falls within T steps
    assert z[:, 0:4].min() < 1.0


def test_humanoid_actions_are_rescaled_to_ctrlrange_and_geared():
    run = _run("humanoid")
    env = run.env
    qd_id = np.asarray(env.sys.actuator.qd_id)
    forces = run.obs[..., 243:268]
    np.testing.assert_array_equal(run.reset.obs[:, 243:268], 0.0)
    gears = np.array([350.0] * 11 + [100.0] * 6)
    expected = gears * 0.4 * run.actions  # [-1, 1] -> [-0.4, 0.4], times the spring gears
    np.testing.assert_allclose(forces[..., qd_id], expected, rtol=1e-5, atol=1e-4)
    assert np.abs(forces[..., 0:6]).max() == 0.0  # the free joint has no motor


def test_humanoid_goal_and_state_layout():
    run = _run("humanoid")
    obs = run.reset.obs
    q = run.reset.pipeline_state.q
    np.testing.assert_allclose(obs[:, 0:26], q, atol=1e-6)
    np.testing.assert_allclose(obs[:, 268:270], q[:, 24:26], atol=1e-5)
    np.testing.assert_allclose(obs[:, 270], humanoid.TARGET_Z)
    distance = np.linalg.norm(obs[0:4, 268:270], axis=-1)
    assert np.all((distance >= 1.0) & (distance <= 5.0))
    np.testing.assert_allclose(obs[0:4, 0:3], np.tile([0.0, 0.0, 1.4], (4, 1)), atol=1e-6)
    assert "distance_from_origin" in run.metrics


def test_cheetah_target_stays_at_five():
    run = _run("cheetah")
    np.testing.assert_allclose(run.obs[..., 18], 5.0, atol=1e-5)
    assert not np.any(run.done)


def test_ant_ball_goal_is_the_ball():
    run = _run("ant_ball")
    obs, q = run.reset.obs, run.reset.pipeline_state.q
    np.testing.assert_allclose(obs[:, 29:31], q[:, 15:17], atol=1e-5)  # ball link xy
    np.testing.assert_allclose(obs[:, 31:33], q[:, 17:19], atol=1e-5)  # target link xy
    z = run.obs[..., 2]  # torso height: the ant's termination rule
    np.testing.assert_array_equal(run.done, ((z < 0.2) | (z > 1.0)).astype(np.float32))


# -- reset distributions (no physics) ------------------------------------------------


def test_humanoid_reset_distribution_and_timesteps():
    env = _make("humanoid")
    q, qd = _sample_resets(env)
    distance = np.linalg.norm(q[:, 24:26], axis=-1)
    assert distance.min() >= 1.0 and distance.max() <= 5.0
    assert distance.min() < 1.1 and distance.max() > 4.9
    np.testing.assert_array_equal(q[:, :24], np.tile(np.asarray(env.sys.init_q[:24]), (len(q), 1)))
    assert not np.any(qd)
    assert float(env.sys.opt.timestep) == pytest.approx(0.003)  # paper Table 1 (spec 12.3)
    assert float(env.dt) == pytest.approx(0.03)
    assert float(envs.make("humanoid", timestep=0.0015).dt) == pytest.approx(0.015)
    np.testing.assert_allclose(env.sys.actuator.gear, [350.0] * 11 + [100.0] * 6)
    with pytest.raises(ValueError, match="backend"):
        envs.make("humanoid", backend="nonsense")


@pytest.mark.parametrize("layout", humanoid.MAZE_LAYOUTS)
def test_humanoid_maze_reset_and_walls(layout):
    env = _make(f"humanoid_{layout}")
    grid = maze.JG_LAYOUTS[layout]
    q, _ = _sample_resets(env, n=1024)
    np.testing.assert_allclose(q[:, 0:2], 2.0, atol=1e-6)  # R cell (1, 1), cell size 2
    goals = {tuple(g) for g in maze.goal_xys(grid, 2.0).tolist()}
    assert {tuple(g) for g in q[:, 24:26].tolist()} == goals  # every G cell, nothing else
    assert float(env.dt) == pytest.approx(0.015)
    mj = env.sys.mj_model
    boxes = [i for i in range(mj.ngeom) if mj.geom_type[i] == 6]  # mjGEOM_BOX
    assert len(boxes) == "".join(grid).count("#")
    np.testing.assert_allclose(mj.geom_size[boxes[0]], [1.0, 1.0, 0.5])


def test_humanoid_tree_changes():
    root = humanoid.humanoid_tree(target_xy_range=7.0, floor_size=33.0).getroot()
    assert root.find("default/geom").get("contype") == "1"
    assert root.find("worldbody/geom[@name='floor']").get("size").startswith("33.0 33.0")
    target = root.findall("worldbody/body")[-1]
    assert target.get("name") == "target" and target.get("pos") == "0 0 1.25"
    assert target.find("joint").get("range") == "-7.0 7.0"


def test_pusher_reset_distributions():
    for env_id, goal_box in (
        ("pusher_easy", ((-0.55, -0.25), (-0.2, 0.2))),
        ("pusher_hard", ((-0.65, 0.35), (-0.55, 0.45))),
    ):
        q, qd = _sample_resets(_make(env_id), n=1024)
        goal = q[:, 9:11]
        for axis, (low, high) in enumerate(goal_box):
            assert goal[:, axis].min() >= low - 1e-6 and goal[:, axis].max() <= high + 1e-6
            assert goal[:, axis].min() < low + 0.05 and goal[:, axis].max() > high - 0.05
        # Objects come from their box, except those the 0.17 rule scaled
        # outwards (a factor > 1 keeps the sign of the y offset).
        obj = q[:, 7:9]
        inside = (obj[:, 0] >= -0.3) & (obj[:, 0] <= 0.0) & (np.abs(obj[:, 1]) <= 0.2)
        assert inside.mean() > 0.5 and np.all(obj[:, 0] <= 0.0)
        np.testing.assert_array_equal(q[:, :7], 0.0)
        assert np.abs(qd[:, :7]).max() <= 0.005 and not np.any(qd[:, 7:])


def test_pusher_minimum_distance_rule():
    near = pusher._keep_apart(jp.array([-0.1, 0.0]), jp.array([-0.2, 0.0]))
    np.testing.assert_allclose(near, [-0.17, 0.0], atol=1e-6)  # scaled by 0.17 / 0.1
    far = pusher._keep_apart(jp.array([-0.1, 0.1]), jp.array([-0.5, 0.0]))
    np.testing.assert_allclose(far, [-0.1, 0.1], atol=1e-7)


def test_pusher_reacher_observation_and_success():
    env = _make("pusher_reacher")
    # Tilt the shoulder-lift joint so the tip sweeps through the goal plane's
    # height (z -0.323), then put the goal under the best angle's tip.
    angles = np.linspace(-0.5, 1.39, 64, dtype=np.float32)
    q = np.zeros((64, 11), np.float32)
    q[:, 1] = angles
    obs, _ = _observe(env, q)
    best = np.argmin(np.abs(obs[:, 16] + 0.323))
    tip = obs[best, 14:17]
    q = np.repeat(q[best : best + 1], 64, axis=0)  # same batch shape: no recompile
    for row, offset in enumerate((0.0, 0.07, 0.3)):
        q[row, 9:11] = (tip[1] + 0.05 + offset, tip[0] - 0.45)  # goal slides (y, x)
    obs, metrics = _observe(env, q)
    obs, metrics = obs[:3], {k: v[:3] for k, v in metrics.items()}
    np.testing.assert_allclose(obs[:, 14:17], np.tile(tip, (3, 1)), atol=1e-5)
    np.testing.assert_allclose(obs[:, 0:7], q[:3, 0:7])
    np.testing.assert_allclose(obs[:, 17], tip[0], atol=1e-5)
    np.testing.assert_array_equal(metrics["success"], [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(metrics["success_hard"], [1.0, 0.0, 0.0])
    q_reset, _ = _sample_resets(env)
    np.testing.assert_allclose(q_reset[:, 7:9], 1.0)  # object parked


def test_pusher2_layout_metrics_and_reset():
    env = _make("pusher2")
    assert env.sys.link_names[7:] == ["object1", "goal1", "object2", "goal2"]
    q, _ = _sample_resets(env)
    np.testing.assert_array_equal(q[:, 9], q[:, 13])  # the goals share their y offset
    assert q[:, 10].max() <= 0.375 <= q[:, 14].min()
    # Rows: both objects on their goals, only object 1, neither (0.3 off in y).
    edited = q[:3].copy()
    away = np.array([0.3, 0.0], np.float32)
    edited[:, 7:9] = edited[:, 9:11] + away * np.array([[0], [0], [1]])
    edited[:, 11:13] = edited[:, 13:15] + away * np.array([[0], [1], [1]])
    obs, metrics = _observe(env, edited)
    # World xyz of each body = (x slide, y slide, body z); slides are y then x.
    layout = {10: (7, -0.275), 13: (11, -0.275), 23: (9, -0.323), 26: (13, -0.323)}
    for start, (y_slide, z) in layout.items():
        expected = np.column_stack([edited[:, y_slide + 1], edited[:, y_slide], np.full(3, z)])
        np.testing.assert_allclose(obs[:, start : start + 3], expected, atol=1e-5)
    np.testing.assert_array_equal(metrics["success"], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(metrics["success_easy"], [2.0, 1.0, 0.0])
    goal_space_dist = np.linalg.norm(obs[:, 10:16] - obs[:, 23:29], axis=-1)
    np.testing.assert_allclose(metrics["dist"], goal_space_dist, rtol=1e-5)


def test_ant_random_start_reset():
    q, qd = _sample_resets(_make("ant_random_start"))
    target = q[:, 15:17]
    np.testing.assert_allclose(np.linalg.norm(target, axis=-1), 10.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(q[:, 0:2] - target, axis=-1), 10.0, rtol=1e-5)
    assert np.abs(q[:, 0:2]).max() > 15.0  # the start is not near the origin


def test_ant_ball_reset_offset_is_a_random_unit_vector():
    q, qd = _sample_resets(_make("ant_ball"), n=1024)
    target = q[:, 17:19]
    np.testing.assert_allclose(np.linalg.norm(target, axis=-1), 5.0, rtol=1e-5)
    offset = q[:, 15:17] - 0.2 * target
    np.testing.assert_allclose(np.linalg.norm(offset, axis=-1), 1.0, rtol=1e-4)
    # The reference reused the target angle for the offset's y (correlation 1).
    sin_target = target[:, 1] / 5.0
    assert abs(np.corrcoef(offset[:, 1], sin_target)[0, 1]) < 0.15
    assert not np.any(qd[:, 14:16])


def test_ant_push_scene_reset_and_metrics():
    env = _make("ant_push")
    assert env.backend == "mjx" and float(env.dt) == pytest.approx(0.05)
    assert env.sys.q_size() == 20 and env.sys.link_names[-2:] == ["block", "target"]
    mj = env.sys.mj_model
    assert (int(env.sys.opt.iterations), int(env.sys.opt.ls_iterations)) == (4, 8)
    walls = [mj.geom(i).name for i in range(mj.ngeom) if mj.geom(i).name.startswith("wall_")]
    assert len(walls) == 7
    assert mj.body("block").mass[0] == pytest.approx(0.0002)
    q, _ = _sample_resets(env)
    target = q[:, 18:20]
    first_is_16 = target[:, 0] >= 16.0
    assert 0.3 < first_is_16.mean() < 0.7  # both orders occur
    corner = np.where(first_is_16[:, None], [16.0, 8.0], [8.0, 16.0])
    assert np.all((target >= corner) & (target < corner + 2.0))
    # Torso on the target (success), 1.0 away (success_easy only).
    q = q[:2].copy()
    q[0, 0:2] = q[0, 18:20]
    q[1, 0:2] = q[1, 18:20] + [1.0, 0.0]
    obs, metrics = _observe(env, q)
    np.testing.assert_allclose(obs[:, 29:31], 8.0 + q[:, 15:17], atol=1e-5)  # block xy
    np.testing.assert_array_equal(metrics["success"], [1.0, 0.0])
    np.testing.assert_array_equal(metrics["success_easy"], [1.0, 1.0])
    with pytest.raises(ValueError, match="mjx"):
        envs.make("ant_push", backend="spring")


def test_cheetah_backends():
    env = _run("cheetah").env
    assert env.backend == "spring" and float(env.dt) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="backend"):
        envs.make("cheetah", backend="nonsense")
    with pytest.raises(ValueError, match="backend"):
        envs.make("pusher_easy", backend="spring")
