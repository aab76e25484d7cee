"""Tests for the maze layouts and the ant / point-mass maze environments.

Cheap host-side checks cover every layout and every registered maze id. Physics
is compiled for two envs only (ant_u_maze and simple_u_maze), once each: one
program starts a batch of scenario rows (random play, agent near a goal, agent
pushed into walls) and rolls it T steps; the physics tests read that one
rollout, so the file compiles two rollouts in all.
"""

from __future__ import annotations

import dataclasses
import functools
import json

import jax
import jax.numpy as jp
import mujoco
import numpy as np
import pytest
from brax import base
from brax.io import html
from brax.io import json as brax_json
from mujoco.mjx._src.collision_driver import _numeric

import envs
from envs import ant_maze, ant_variants, maze, simple_maze

pytestmark = [
    pytest.mark.filterwarnings("ignore:Brax System, piplines:UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:brax"),
]

T = 300  # steps of the compiled rollout

ANT_IDS = sorted(i for i in envs.ENV_IDS if i.startswith("ant_") and "maze" in i and "ball" not in i)
SIMPLE_IDS = sorted(i for i in envs.ENV_IDS if i.startswith("simple_"))
BALL_IDS = sorted(i for i in envs.ENV_IDS if i.startswith("ant_ball_"))


@functools.cache
def _built(env_id: str):
    return envs.make(env_id)


# -- layout data (numbers from the spec's grids) ----------------------------------------

# name -> (rows, cols, R cell, number of G cells)
SHAPES = {
    "u_maze": (5, 5, (1, 1), 6),
    "u_maze_eval": (5, 5, (1, 1), 3),
    "u_maze_single_eval": (5, 5, (1, 1), 1),
    "u_maze_eval_1f2f3f": (5, 5, (1, 1), 3),
    "u_maze_eval_1f2f3f4f": (5, 5, (1, 1), 4),
    "u_maze_eval_1f2f3f4f5f": (5, 5, (1, 1), 5),
    "u_maze_eval_5f6f": (5, 5, (1, 1), 2),
    "u2_maze": (5, 6, (1, 1), 8),
    "u2_maze_eval": (5, 6, (1, 1), 4),
    "u3_maze": (5, 7, (1, 1), 10),
    "u3_maze_eval": (5, 7, (1, 1), 5),
    "u3_maze_single_eval": (5, 7, (1, 1), 1),
    "u4_maze": (7, 5, (2, 1), 10),
    "u4_maze_eval": (7, 5, (2, 1), 4),
    "u5_maze": (7, 8, (2, 1), 16),
    "u5_maze_eval": (7, 8, (2, 1), 8),
    "u5_maze_single_eval": (7, 8, (2, 1), 1),
    "u6_maze": (7, 7, (2, 1), 14),
    "u6_maze_eval": (7, 7, (2, 1), 7),
    "u7_maze": (7, 6, (2, 1), 12),
    "u7_maze_eval": (7, 6, (2, 1), 6),
    "big_maze": (8, 8, (1, 1), 25),
    "big_maze_eval": (8, 8, (1, 1), 9),
    "hardest_maze": (9, 12, (1, 1), 45),
}

GOAL_CELLS = {
    "u_maze": [(1, 2), (1, 3), (2, 3), (3, 1), (3, 2), (3, 3)],
    "u_maze_eval": [(3, 1), (3, 2), (3, 3)],
    "u_maze_eval_1f2f3f4f5f": [(1, 2), (1, 3), (2, 3), (3, 2), (3, 3)],
    "u_maze_eval_5f6f": [(3, 1), (3, 2)],
    "u4_maze": [(1, 1), (1, 2), (1, 3), (2, 3), (3, 3), (4, 1), (4, 3), (5, 1), (5, 2), (5, 3)],
    "u5_maze_eval": [(4, 1), (4, 6), (5, 1), (5, 2), (5, 3), (5, 4), (5, 5), (5, 6)],
    "big_maze_eval": [(1, 5), (1, 6), (2, 6), (5, 3), (5, 6), (6, 2), (6, 3), (6, 5), (6, 6)],
}

GEN_PATHS = {
    "u_maze": [(1, 1), (1, 2), (1, 3), (2, 3), (3, 3), (3, 2), (3, 1)],
    "u4_maze": [
        (2, 1), (1, 1), (1, 2), (1, 3), (2, 3), (3, 3), (4, 3), (5, 3), (5, 2), (5, 1), (4, 1),
    ],
}  # fmt: skip
GEN_PATH_LENGTHS = {"u_maze": 7, "u2_maze": 9, "u3_maze": 11, "u4_maze": 11, "u5_maze": 17}


def _train_name(name: str) -> str:
    return name.split("_eval")[0].split("_single")[0]


def test_every_layout_has_the_spec_shape_start_and_goal_count():
    assert set(maze.ANT_LAYOUTS) == set(SHAPES)
    for name, (rows, cols, start, n_goals) in SHAPES.items():
        layout = maze.ANT_LAYOUTS[name]
        maze.validate(layout)
        assert (len(layout), len(layout[0])) == (rows, cols), name
        assert maze.cells(layout, "R") == [start], name
        assert len(maze.cells(layout, "G")) == n_goals, name
        # Eval forms share their training layout's walls.
        assert maze.cells(layout, "#") == maze.cells(maze.ANT_LAYOUTS[_train_name(name)], "#")


def test_goal_cells_and_world_coordinates():
    for name, goal_cells in GOAL_CELLS.items():
        assert maze.cells(maze.ANT_LAYOUTS[name], "G") == goal_cells, name
    np.testing.assert_array_equal(maze.start_xy(maze.ANT_LAYOUTS["u_maze"], 4.0), [4.0, 4.0])
    np.testing.assert_array_equal(maze.start_xy(maze.ANT_LAYOUTS["u4_maze"], 4.0), [8.0, 4.0])
    np.testing.assert_array_equal(maze.start_xy(maze.JG_LAYOUTS["u_maze"], 2.0), [2.0, 2.0])
    np.testing.assert_array_equal(
        maze.goal_xys(maze.ANT_LAYOUTS["u_maze_eval"], 4.0), [[12, 4], [12, 8], [12, 12]]
    )
    # The JaxGCRL / humanoid big_maze_eval has one more goal, (2, 5).
    jg_goals = maze.cells(maze.JG_LAYOUTS["big_maze_eval"], "G")
    assert sorted(set(jg_goals) - set(GOAL_CELLS["big_maze_eval"])) == [(2, 5)]
    assert len(jg_goals) == 10


def test_training_layouts_make_every_free_cell_but_start_a_goal():
    for name in maze.ANT_LAYOUTS:
        if "eval" not in name:
            assert "." not in "".join(maze.ANT_LAYOUTS[name]), name


def test_wall_boxes_tile_the_wall_cells():
    layout = maze.ANT_LAYOUTS["u_maze"]
    centers, half = maze.wall_boxes(layout, 4.0)
    assert len(centers) == "".join(layout).count("#") == 18
    np.testing.assert_array_equal(centers[0], [0, 0, 1])  # cell (0, 0)
    assert [8.0, 4.0, 1.0] in centers.tolist()  # cell (2, 1), the U's inner wall
    np.testing.assert_array_equal(half, np.tile([2.0, 2.0, 1.0], (18, 1)))
    centers, half = maze.wall_boxes(layout, 2.0)  # humanoid scale: height 1.0
    assert [4.0, 2.0, 0.5] in centers.tolist()
    np.testing.assert_array_equal(half[0], [1.0, 1.0, 0.5])


def test_validate_rejects_malformed_layouts():
    for bad in [("###", "#R"), ("###", "#X#", "###"), ("###", "#R.", "###"), ()]:
        with pytest.raises(ValueError):
            maze.validate(bad)


def test_forward_paths_and_the_per_distance_eval_layouts():
    for name, length in GEN_PATH_LENGTHS.items():
        assert len(maze.forward_path(maze.GEN_LAYOUTS[name])) == length, name
    for name, path in GEN_PATHS.items():
        assert maze.forward_path(maze.GEN_LAYOUTS[name]) == path
    # u_maze_eval_<k>f... keep exactly the cells k steps from R along the corridor.
    path = GEN_PATHS["u_maze"]
    for name, ks in [
        ("u_maze_eval_1f2f3f", (1, 2, 3)),
        ("u_maze_eval_1f2f3f4f", (1, 2, 3, 4)),
        ("u_maze_eval_1f2f3f4f5f", (1, 2, 3, 4, 5)),
        ("u_maze_eval_5f6f", (5, 6)),
        ("u_maze_eval", (4, 5, 6)),
        ("u_maze_single_eval", (6,)),
    ]:
        assert set(maze.cells(maze.ANT_LAYOUTS[name], "G")) == {path[k] for k in ks}, name
    with pytest.raises(ValueError, match="corridor"):
        maze.forward_path(("#####", "#R#G#", "#####"))  # R is walled in
    with pytest.raises(ValueError, match="one R and one G"):
        maze.forward_path(maze.ANT_LAYOUTS["u_maze"])


def test_distance_pairs_weight_each_distance_equally():
    starts, goals, probs = maze.distance_pairs(maze.GEN_LAYOUTS["u_maze"], (1, 2, 3), 4.0)
    hops = _pair_distance(starts, goals)
    for k, n_pairs in [(1, 6), (2, 5), (3, 4)]:
        assert (hops == k).sum() == n_pairs
        np.testing.assert_allclose(probs[hops == k], 1 / (3 * n_pairs), rtol=1e-6)
    assert len(probs) == 15 and probs.sum() == pytest.approx(1.0)
    assert maze.parse_gen_config("1f2f3f") == (1, 2, 3)
    for bad in ("", "1f2", "f", "1g"):
        with pytest.raises(ValueError):
            maze.parse_gen_config(bad)
    with pytest.raises(ValueError):
        maze.distance_pairs(maze.GEN_LAYOUTS["u_maze"], (7,), 4.0)  # path has 7 cells


def _pair_distance(starts, goals) -> np.ndarray:
    """Distance along the u_maze corridor between pairs of cell centres."""
    index = {tuple(4.0 * np.array(c)): i for i, c in enumerate(GEN_PATHS["u_maze"])}
    return np.array([index[tuple(g)] - index[tuple(s)] for s, g in zip(starts, goals)])


def test_wall_pair_budget_covers_every_reachable_overlap():
    """`max_geom_pairs` only drops pairs that cannot touch (see maze.limit_contact_pairs).

    From any point of a free cell, count the wall blocks whose bounding sphere
    can overlap a robot geom's; the budget must cover all robot geoms at once.
    """
    env = _built("ant_hardest_maze")
    rbound = np.asarray(env.sys.geom_rbound)
    is_wall = np.asarray(env.sys.geom_type) == mujoco.mjtGeom.mjGEOM_BOX
    geom_r = rbound[~is_wall & (np.asarray(env.sys.geom_conaffinity) == 1)].max()
    reach = rbound[is_wall].max() + geom_r
    offsets = np.linspace(-2.0, 2.0, 9)  # across a whole cell, edges included
    for layout in maze.ANT_LAYOUTS.values():
        walls, _ = maze.wall_boxes(layout, 4.0)
        worst = 0
        for i, j in maze.cells(layout, "RG."):
            x, y = np.meshgrid(4 * i + offsets, 4 * j + offsets)
            # At the blocks' centre height, the worst case.
            points = np.stack([x.ravel(), y.ravel(), np.full(x.size, 1.0)], axis=1)
            centre_dist = np.linalg.norm(points[:, None] - walls[None], axis=-1)
            worst = max(worst, int((centre_dist < reach).sum(axis=1).max()))
        assert worst <= 3
    assert _numeric(env.sys, "max_geom_pairs") == ant_maze.MAX_WALL_PAIRS >= 5 * 3
    assert _numeric(_built("simple_hardest_maze").sys, "max_geom_pairs") >= 3


# -- every registered id ----------------------------------------------------------------


def test_every_maze_id_is_registered():
    assert set(ANT_IDS) >= {f"ant_{name}" for name in maze.ANT_LAYOUTS}
    assert "ant_u_maze_gen_1f2f3f" in ANT_IDS  # paper Fig. 6
    assert {"simple_u_maze", "simple_big_maze", "simple_hardest_maze"} <= set(SIMPLE_IDS)


@pytest.mark.parametrize("env_id", ANT_IDS + SIMPLE_IDS)
def test_every_maze_id_builds_with_the_spec_sizes(env_id):
    env = _built(env_id)
    is_ant = env_id.startswith("ant_")
    obs_size, obs_dim, act, q_size = (31, 29, 8, 17) if is_ant else (6, 4, 2, 4)
    assert (env.obs_dim, env.goal_start, env.goal_end) == (obs_dim, 0, 2)
    assert env.obs_dim + env.goal_dim == obs_size
    assert env.action_size == act
    assert env.sys.q_size() == q_size and env.sys.qd_size() == q_size - (1 if is_ant else 0)
    assert (env.success_radius, env.success_easy_radius) == (0.5, 2.0)
    assert float(env.dt) == pytest.approx(0.05)
    n_walls = int((np.asarray(env.sys.geom_type) == mujoco.mjtGeom.mjGEOM_BOX).sum())
    assert n_walls == "".join(env.layout).count("#")
    # Target slides span +-100, so far goal cells fit.
    np.testing.assert_array_equal(np.asarray(env.sys.jnt_range)[-2:], [[-100, 100]] * 2)


@pytest.mark.parametrize("env_id", ["ant_u5_maze_gen_1f2f3f", "simple_hardest_maze"])
def test_reset_shapes(env_id):
    """Stepping is shape-checked by the compiled rollouts (scan needs equal carries)."""
    env = _built(env_id)
    state = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
    assert state.obs.shape == (env.obs_dim + env.goal_dim,)
    assert set(state.metrics) >= {"dist", "success", "success_easy"}


def test_ant_maze_asset_lets_torso_legs_and_feet_touch_walls():
    env = _built("ant_u_maze")
    sys = env.sys
    conaffinity = np.asarray(sys.geom_conaffinity)
    body = np.asarray(sys.geom_bodyid)
    ant_geoms = conaffinity[(body >= 1) & (body <= 9)]
    # torso sphere + 4 upper-leg capsules + 4 feet; shins stay non-colliding.
    assert int(ant_geoms.sum()) == 9
    np.testing.assert_allclose(np.asarray(sys.init_q)[:2], [4.0, 4.0])


def test_unknown_layouts_are_rejected():
    with pytest.raises(ValueError, match="layout"):
        ant_maze.AntMaze(layout="nope")
    with pytest.raises(ValueError, match="layout"):
        ant_maze.AntMazeGeneralization(layout="big_maze")
    with pytest.raises(ValueError, match="layout"):
        simple_maze.SimpleMaze(layout="u2_maze")


# -- reset distributions (no physics compiled) ------------------------------------------


def _sample(env, n: int, seed: int = 0):
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    q, qd = jax.jit(jax.vmap(env._initial_q_qd))(keys)
    return np.asarray(q), np.asarray(qd)


@pytest.mark.parametrize("env_id", ["ant_u4_maze_eval", "simple_big_maze"])
def test_goals_are_uniform_goal_cells_and_start_is_the_start_cell(env_id):
    env = _built(env_id)
    q, qd = _sample(env, 800)
    goals = maze.goal_xys(env.layout, 4.0)
    index = np.argmin(np.linalg.norm(q[:, None, -2:] - goals[None], axis=-1), axis=1)
    np.testing.assert_allclose(q[:, -2:], goals[index], atol=1e-6)  # exact centres
    counts = np.bincount(index, minlength=len(goals))
    expected = 800 / len(goals)
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), counts
    np.testing.assert_array_equal(qd[:, -2:], 0.0)
    offset = q[:, :2] - maze.start_xy(env.layout, 4.0)
    if env_id.startswith("ant_"):  # the paper repo's +-0.1 reset noise around R
        assert np.abs(offset).max() <= 0.1 + 1e-6
        assert np.abs(offset).max() > 0.05
    else:  # point mass: exactly on R
        np.testing.assert_array_equal(offset, 0.0)


def test_generalization_pairs_are_short_forward_hops():
    env = _built("ant_u_maze_gen_1f2f3f")
    q, _ = _sample(env, 900, seed=1)
    path = 4.0 * np.array(GEN_PATHS["u_maze"], dtype=np.float32)
    start = np.argmin(np.linalg.norm(q[:, None, :2] - path[None], axis=-1), axis=1)
    goal = np.argmin(np.linalg.norm(q[:, None, -2:] - path[None], axis=-1), axis=1)
    np.testing.assert_allclose(q[:, :2], path[start], atol=1e-6)  # exact, no noise
    np.testing.assert_allclose(q[:, -2:], path[goal], atol=1e-6)
    hops = goal - start
    assert set(np.unique(hops)) == {1, 2, 3}
    np.testing.assert_allclose(np.bincount(hops)[1:] / 900, 1 / 3, atol=0.06)
    assert np.abs(q[:, 2] - 0.55).max() <= 0.1 + 1e-6  # the rest keeps the ant's noise


# -- physics: one compiled rollout per env ----------------------------------------------
# One batch per env, rows in three groups of four, all rolled T steps at once:
#   RANDOM  reset-distributed start and goal, uniform random actions;
#   SUCCESS target at (12, 8) (goal cell (3, 2)), agent at rest at target - offset
#           (all in free cells), zero actions -> (success, success_easy) after one step;
#   WALLS   agent driven from the R cell (4, 4) into the walls around it,
#           whose faces are x = 2 and 6 (cells (0, 1), (2, 1)) and y = 2 (cell (1, 0)).
#           The ant is launched at 8 m/s (it cannot be steered); the point mass is
#           pushed with full force for all T steps.
RANDOM, SUCCESS, WALLS = slice(0, 4), slice(4, 8), slice(8, 12)
B_SIM = 12
SUCCESS_TARGET = (12.0, 8.0)
SUCCESS_CASES = [((0.0, 0.0), 1, 1), ((0.3, 0.2), 1, 1), ((0.5, 1.0), 0, 1), ((0.0, 3.0), 0, 0)]
WALL_DIRECTIONS = np.array([[-1, 0], [1, 0], [0, -1], [-1, -1]], np.float32)


@dataclasses.dataclass
class Rollout:
    env: envs.GoalEnv
    obs0: np.ndarray  # [B] observation at the start
    obs: np.ndarray  # [T, B]
    done: np.ndarray  # [T, B]
    torso: np.ndarray  # [T, B, 3] world position of link 0
    metrics: dict[str, np.ndarray]  # [T, B]
    frames: base.State  # pipeline states of row 0, [T]


def _scenario(env) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Start q, qd [B_SIM] and actions [T, B_SIM] of the three row groups."""
    keys = jax.random.split(jax.random.PRNGKey(3), B_SIM)
    q, qd = (np.array(x) for x in jax.jit(jax.vmap(env._initial_q_qd))(keys))
    actions = np.zeros((T, B_SIM, env.action_size), np.float32)
    actions[:, RANDOM] = np.random.default_rng(0).uniform(-1, 1, actions[:, RANDOM].shape)
    qd[SUCCESS] = qd[WALLS] = 0.0
    q[SUCCESS, -2:] = SUCCESS_TARGET
    q[SUCCESS, :2] = np.subtract(SUCCESS_TARGET, [c[0] for c in SUCCESS_CASES])
    q[WALLS, :2] = [4.0, 4.0]
    if isinstance(env, ant_variants.AntBallMaze):
        # The ball takes the agent's place in the success rows; the wall rows
        # launch the ball from its cell (4, 12) at the walls x = 2 and y = 14,
        # then the torso from R at the walls x = 2 and y = 2.
        q[SUCCESS, 0:2] = env.start_xy
        q[SUCCESS, 15:17] = np.subtract(SUCCESS_TARGET, [c[0] for c in SUCCESS_CASES])
        qd[WALLS.start + 0, 14] = qd[WALLS.start + 2, 0] = qd[WALLS.start + 3, 1] = -8.0
        qd[WALLS.start + 1, 15] = 8.0
    elif env.action_size == 8:  # ant
        qd[WALLS, :2] = 8.0 * WALL_DIRECTIONS
    else:
        actions[:, WALLS] = WALL_DIRECTIONS
    return jp.asarray(q), jp.asarray(qd), jp.asarray(actions)


@functools.cache
def _rollout(env_id: str) -> Rollout:
    """Compiles and runs the scenario once per env.

    The start state is built from (q, qd) exactly as `GoalEnv.reset` builds it
    from `_initial_q_qd` (reset itself is not compiled: it would add a second
    physics init to the program); its pytree is checked against reset's.
    """
    env = _built(env_id)
    vstep = jax.vmap(env.step)
    template = jax.eval_shape(jax.vmap(env.reset), jax.random.split(jax.random.PRNGKey(0), B_SIM))

    @jax.jit
    def run(q, qd, actions):
        ps = jax.vmap(env.pipeline_init)(q, qd)
        obs = jax.vmap(env._get_obs)(ps)
        zero = jp.zeros(B_SIM)
        metrics = jax.tree.map(lambda x: jp.zeros(x.shape, x.dtype), template.metrics)
        start = template.__class__(ps, obs, zero, zero, metrics)
        assert jax.tree.structure(start) == jax.tree.structure(template)

        def body(s, a):
            s = vstep(s, a)
            row0 = jax.tree.map(lambda x: x[0], s.pipeline_state)
            return s, (s.obs, s.done, s.pipeline_state.x.pos[:, 0], s.metrics, row0)

        return obs, jax.lax.scan(body, start, actions)[1]

    obs0, (obs, done, torso, metrics, frames) = jax.tree.map(np.asarray, run(*_scenario(env)))
    return Rollout(env, obs0, obs, done, torso, metrics, frames)


@pytest.fixture(params=["ant_u_maze", "simple_u_maze"])
def rollout(request) -> Rollout:
    return _rollout(request.param)


@pytest.mark.parametrize("env_id", ["ant_u_maze", "simple_u_maze", "ant_ball_u_maze"])
def test_html_render_of_a_short_rollout(env_id):
    run = _rollout(env_id)
    frames = [jax.tree.map(lambda x, t=t: x[t], run.frames) for t in range(0, 100, 20)]
    page = html.render(run.env.sys, frames)
    shown = json.loads(brax_json.dumps(run.env.sys, frames))
    assert "<html" in page.lower() and len(shown["states"]["x"]) == len(frames) == 5
    np.testing.assert_allclose(shown["states"]["x"][-1]["pos"], run.frames.x.pos[80], atol=1e-5)


def test_random_rollout_is_finite_and_goal_fixed(rollout):
    env = rollout.env
    obs, obs0 = rollout.obs[:, RANDOM], rollout.obs0[RANDOM]
    assert np.all(np.isfinite(rollout.obs))
    assert all(np.all(np.isfinite(v)) for v in rollout.metrics.values())
    assert set(np.unique(rollout.done)) <= {0.0, 1.0}
    assert np.abs(obs[..., env.obs_dim :] - obs0[None, :, env.obs_dim :]).max() < 1e-5
    # Reset-distributed rows: goals on goal cells, start at R (+ the ant's noise),
    # and the agent moves.
    goals = maze.goal_xys(env.layout, 4.0)
    gaps = np.linalg.norm(obs0[:, None, env.obs_dim :] - goals[None], axis=-1)
    assert np.all(gaps.min(axis=1) < 1e-5)
    assert np.abs(obs0[:, :2] - [4.0, 4.0]).max() <= 0.1 + 1e-6
    assert np.abs(obs[-1, :, :2] - obs0[:, :2]).max() > 0.3
    dist = np.linalg.norm(rollout.obs[..., :2] - rollout.obs[..., env.obs_dim :], axis=-1)
    np.testing.assert_allclose(rollout.metrics["dist"], dist, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rollout.obs[..., :2], rollout.torso[..., :2], atol=1e-5)
    if env.action_size == 2:  # the point mass never terminates
        assert rollout.done.max() == 0.0


def test_success_fires_at_the_goal_only(rollout):
    metrics = {k: v[0, SUCCESS] for k, v in rollout.metrics.items()}  # after one step
    for i, (offset, success, success_easy) in enumerate(SUCCESS_CASES):
        assert metrics["success"][i] == success, (offset, metrics["dist"][i])
        assert metrics["success_easy"][i] == success_easy, (offset, metrics["dist"][i])


def test_walls_block(rollout):
    """The agent's centre stays a radius (0.25) off each wall face, give or take
    contact softness, after reaching it; without walls it would cross (x or y < 1)."""
    x, y = rollout.torso[:, WALLS, 0], rollout.torso[:, WALLS, 1]
    tol = 0.15
    assert 2.25 - tol < x[:, 0].min() < 2.6
    assert 5.4 < x[:, 1].max() < 5.75 + tol
    assert 2.25 - tol < y[:, 2].min() < 2.6
    assert x[:, 3].min() > 2.25 - tol and y[:, 3].min() > 2.25 - tol
    assert min(x[:, 3].min(), y[:, 3].min()) < 2.6


# -- ant soccer in a maze (ant_ball_<layout>) ------------------------------------------


def test_ant_ball_maze_layouts_and_ids():
    assert BALL_IDS == ["ant_ball_big_maze", "ant_ball_u_maze"]
    u, big = maze.BALL_LAYOUTS["u_maze"], maze.BALL_LAYOUTS["big_maze"]
    assert maze.cells(u, "G") == [(1, 2), (2, 3), (3, 1), (3, 2), (3, 3)]
    assert maze.cells(u, "B") == [(1, 3)] and maze.cells(big, "B") == [(3, 2), (3, 4)]
    assert len(maze.cells(big, "G")) == 20 and maze.cells(big, "R") == [(1, 1)]
    # Same walls as the ant grids of the same name.
    for name, grid in maze.BALL_LAYOUTS.items():
        assert maze.cells(grid, "#") == maze.cells(maze.ANT_LAYOUTS[name], "#")
    with pytest.raises(ValueError, match="layout"):
        ant_variants.AntBallMaze(layout="hardest_maze")


@pytest.mark.parametrize("env_id", BALL_IDS)
def test_ant_ball_maze_builds_with_the_ball_as_goal(env_id):
    env = _built(env_id)
    assert (env.obs_dim, env.goal_start, env.goal_end, env.action_size) == (31, 29, 31, 8)
    assert env.sys.q_size() == 19 and env.sys.qd_size() == 18
    assert (env.success_radius, env.success_easy_radius) == (0.5, 2.0)
    assert env.backend == "spring" and float(env.dt) == pytest.approx(0.05)
    assert env.sys.link_names[-2:] == ["object", "target"]
    n_walls = int((np.asarray(env.sys.geom_type) == mujoco.mjtGeom.mjGEOM_BOX).sum())
    assert n_walls == "".join(env.layout).count("#")
    np.testing.assert_array_equal(np.asarray(env.sys.jnt_range)[-4:], [[-100, 100]] * 4)
    state = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
    assert state.obs.shape == (33,)


def test_ant_ball_maze_reset_draws_cells_independently():
    env = _built("ant_ball_big_maze")
    q, qd = _sample(env, 2000)
    np.testing.assert_allclose(q[:, 0:2], 4.0, atol=1e-6)  # torso exactly on R
    goals, balls = maze.goal_xys(env.layout, 4.0), np.asarray(env.ball_candidates)
    goal_index = np.argmin(np.linalg.norm(q[:, None, 17:19] - goals[None], axis=-1), axis=1)
    ball_index = np.argmin(np.linalg.norm(q[:, None, 15:17] - balls[None], axis=-1), axis=1)
    np.testing.assert_allclose(q[:, 17:19], goals[goal_index], atol=1e-6)
    np.testing.assert_allclose(q[:, 15:17], balls[ball_index], atol=1e-6)
    assert len(np.unique(goal_index)) == 20
    # Independent draws: every goal cell is seen with both ball cells.
    pairs = np.zeros((20, 2), int)
    np.add.at(pairs, (goal_index, ball_index), 1)
    assert pairs.min() > 0, pairs
    assert not np.any(qd[:, 14:18])  # ball and target at rest


def test_ant_ball_maze_goal_is_the_ball_and_success_fires_there_only():
    run = _rollout("ant_ball_u_maze")
    obs0 = run.obs0
    np.testing.assert_allclose(
        obs0[SUCCESS, 29:31], np.subtract(SUCCESS_TARGET, [c[0] for c in SUCCESS_CASES])
    )
    first = {k: v[0, SUCCESS] for k, v in run.metrics.items()}  # after one step
    np.testing.assert_array_equal(first["success"], [c[1] for c in SUCCESS_CASES], err_msg=str(first["dist"]))
    np.testing.assert_array_equal(first["success_easy"], [c[2] for c in SUCCESS_CASES])
    dist = np.linalg.norm(run.obs[..., 29:31] - run.obs[..., 31:33], axis=-1)
    np.testing.assert_allclose(run.metrics["dist"], dist, rtol=1e-5, atol=1e-5)


def test_ant_ball_maze_random_rollout_is_finite():
    run = _rollout("ant_ball_u_maze")
    assert np.all(np.isfinite(run.obs)) and all(np.all(np.isfinite(v)) for v in run.metrics.values())
    assert np.abs(run.obs[..., 31:] - run.obs0[None, :, 31:]).max() < 1e-5  # the goal stays put
    z = run.torso[..., 2]
    np.testing.assert_array_equal(run.done, ((z < 0.2) | (z > 1.0)).astype(np.float32))
    assert np.abs(run.obs[-1, RANDOM, :2] - run.obs0[RANDOM, :2]).max() > 0.3  # the ant moves


def test_ant_ball_maze_walls_stop_ball_and_ant():
    run = _rollout("ant_ball_u_maze")
    ball = run.obs[:, WALLS, 29:31]
    torso = run.torso[:, WALLS, :2]
    tol = 0.15
    # Ball (r 0.5) launched at x = 2 and y = 14; torso (r 0.25) at x = 2 and y = 2.
    assert 2.5 - tol < ball[:, 0, 0].min() < 2.9
    assert 13.1 < ball[:, 1, 1].max() < 13.5 + tol
    assert 2.25 - tol < torso[:, 2, 0].min() < 2.6
    assert 2.25 - tol < torso[:, 3, 1].min() < 2.6
