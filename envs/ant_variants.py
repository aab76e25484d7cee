"""Ant tasks beyond `ant`: random start, ant soccer (open floor and mazes) and ant push.

All share `Ant`'s robot, observation prefix (q_ant 15 | qd_ant 14), reset
noise, `distance_from_origin` metric and termination (torso z outside
[0.2, 1.0]); see `envs/ant.py`. Like `ant`, they take `backend=` and
`timestep=`.

Speed on the shared 2-core dev CPU (128 vmapped envs, 62-step scan, uniform
random actions): ant_random_start ~9-10k (spring, as `ant`), ant_ball ~6k
(spring; the ball adds contacts), ant_push ~0.85-0.9k env steps/s (mjx,
~55 s to compile). ant_ball and ant_push stayed finite over 1000 bang-bang
steps (128 and 64 envs).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import jax
from brax import base
from jax import numpy as jp

from envs import maze
from envs.ant import Q_ANT, QD_ANT, Ant
from envs.assets import (
    add_slide_joints,
    add_target_body,
    extend_init_qpos,
    load_brax_asset_tree,
    set_floor_size,
    set_geom_attributes,
    set_init_qpos,
)
from envs.base import BRAX_MJX_OPT, Physics


class AntRandomStart(Ant):
    """`ant` whose torso starts exactly 10 from the goal, anywhere (`ant_random_start`).

    After the target is sampled (radius `goal_distance`, default 10, around
    the origin), the torso xy is set to target + 10 * (cos b, sin b) with
    b ~ U(0, 2*pi), overwriting its reset noise. Everything else is `ant`.
    """

    start_distance = 10.0

    def _initial_q_qd(self, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
        rng, rng_start = jax.random.split(rng)
        q, qd = super()._initial_q_qd(rng)
        angle = 2 * jp.pi * jax.random.uniform(rng_start)
        offset = self.start_distance * jp.array([jp.cos(angle), jp.sin(angle)])
        return q.at[0:2].set(q[-2:] + offset), qd


class _AntWithObject(Ant):
    """An ant with one extra jointed body before the target (its own asset, `tree=`).

    The extra body (ball or block) is link -2; its world xy is appended to the
    state after q_ant and qd_ant.
    """

    def _get_obs(self, pipeline_state: base.State) -> jax.Array:
        return jp.concatenate(
            [
                pipeline_state.q[:Q_ANT],
                pipeline_state.qd[:QD_ANT],
                pipeline_state.x.pos[-2, :2],  # object
                pipeline_state.x.pos[-1, :2],  # target
            ]
        )


# -- ant soccer ------------------------------------------------------------------

_BALL_TOUCHING_GEOMS = (
    "torso_geom",
    "left_foot_geom",
    "right_foot_geom",
    "third_foot_geom",
    "fourth_foot_geom",
)


def ant_ball_tree(ball_xy_range: float = 100.0, target_xy_range: float = 20.0) -> ET.ElementTree:
    """brax's `ant.xml` plus a planar ball and the target (spec 5.4).

    Torso and feet get conaffinity 1 so the ball (contype 1) hits them. The
    ball body `object` starts at (0, 0, 0.5) on x/y slides (joint defaults:
    armature 1, limited; damping 0) with an invisible r 0.5 sphere of density
    1 and a visible colliding r 0.5 sphere of density 0.1. It slides, it does
    not roll.
    """
    tree = load_brax_asset_tree("ant.xml")
    root = tree.getroot()
    set_geom_attributes(tree, _BALL_TOUCHING_GEOMS, conaffinity="1")
    ball = ET.SubElement(root.find("worldbody"), "body", name="object", pos="0 0 0.5")
    add_slide_joints(ball, "ball", "xy", ball_xy_range, damping="0")
    # Invisible, non-colliding: it carries most of the ball's mass.
    ET.SubElement(ball, "geom", type="sphere", size="0.5", density="1", conaffinity="0", rgba="1 1 1 0")
    ET.SubElement(ball, "geom", name="ball", type="sphere", size="0.5", density="0.1", contype="1",
                  conaffinity="0", rgba="0.9 0.9 0.9 1")  # fmt: skip
    extend_init_qpos(tree, 2)
    add_target_body(tree, target_xy_range)
    return tree


class AntBall(_AntWithObject):
    """Ant soccer: push the ball onto the target (`ant_ball`).

    Asset: `ant_ball_tree()`; q = ant (15) + ball (2) + target (2).
    Observation (33): q_ant | qd_ant | ball xy [29:31] | target xy [31:33].
    State = first 31; goal slice **[29, 31) = ball xy** (the intended one;
    the paper repo's [28, 30) is off by one, spec 14.1). Success: ball-target
    xy distance < 0.5, success_easy < 2.0. Ant termination rule.

    Reset: ant noise as `ant`; target at `goal_distance` (default 5) from the
    origin at angle a ~ U(0, 2*pi); ball at 0.2 * target + (cos b, sin b)
    with b ~ U(0, 2*pi). Deliberate fix: both references use sin(a), the
    target's angle, for the offset's y, which ties the ball's y offset to the
    goal direction; here the offset is a proper random unit vector.

    Ball slides have range +-100 (JaxGCRL's; the paper repo's +-10.3 acts as
    an invisible wall). Backends as `ant` (default spring, env dt 0.05).
    """

    obs_dim = 31
    goal_start = 29
    goal_end = 31

    def __init__(self, goal_distance: float = 5.0, tree: ET.ElementTree | None = None, **kwargs):
        tree = ant_ball_tree() if tree is None else tree
        super().__init__(goal_distance=goal_distance, tree=tree, **kwargs)

    def _sample_ball(self, rng: jax.Array, target: jax.Array) -> jax.Array:
        angle = 2 * jp.pi * jax.random.uniform(rng)
        return 0.2 * target + jp.array([jp.cos(angle), jp.sin(angle)])

    def _initial_q_qd(self, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
        rng, rng_ball = jax.random.split(rng)
        q, qd = super()._initial_q_qd(rng)
        q = q.at[Q_ANT : Q_ANT + 2].set(self._sample_ball(rng_ball, q[-2:]))
        return q, qd.at[QD_ANT : QD_ANT + 2].set(0.0)


# -- ant soccer in a maze ------------------------------------------------------------

BALL_MAZE_CELL_SIZE = 4.0
# Wall pairs MJX collides per geom-type group: the largest is sphere-box (torso,
# 4 feet, ball), each near at most 3 wall blocks at once (`maze.limit_contact_pairs`).
BALL_MAZE_MAX_WALL_PAIRS = 18


def ant_ball_maze_tree(
    layout: maze.Layout, start_xy, cell_size: float = BALL_MAZE_CELL_SIZE
) -> ET.ElementTree:
    """`ant_ball_tree` with ball and target slides of +-100, floor 100 x 100, the
    torso xy of `init_qpos` at `start_xy`, and one wall box per `#` (`envs.maze`).

    As in JaxGCRL's asset, the torso, the feet and the ball touch the walls;
    the upper legs do not (unlike the ant mazes').
    """
    tree = ant_ball_tree(ball_xy_range=100.0, target_xy_range=100.0)
    set_floor_size(tree, 100.0)
    set_init_qpos(tree, 0, start_xy)
    maze.add_walls(tree, layout, cell_size)
    maze.limit_contact_pairs(tree, BALL_MAZE_MAX_WALL_PAIRS)
    return tree


class AntBallMaze(maze.MazeTask, AntBall):
    """Ant soccer between maze walls (`ant_ball_u_maze`, `ant_ball_big_maze`; JaxGCRL's task).

    Asset: `ant_ball_maze_tree`; layouts `maze.BALL_LAYOUTS` (JaxGCRL's grids,
    cell size 4.0, walls 2.0 high), where `B` marks the ball's start cells.
    Observation (33), goal slice **[29, 31) = ball xy**, success (ball-target
    < 0.5, success_easy < 2.0), termination and backends (default spring,
    0.005 x 10) as `ant_ball`.

    Reset: the ant's noise on every q entry, then the torso xy exactly on the
    R cell centre; target = centre of a uniformly drawn G cell; ball = centre
    of a uniformly drawn B cell, at rest.

    Deliberate deviations from JaxGCRL (spec 5.5, 14.1): its goal indices
    [28, 29] are off by one (the last hinge velocity and the ball x); here the
    goal is the ball xy, matching the appended target. It draws the goal cell
    and the ball cell with one shared key, so the two choices are coupled;
    here they are independent draws. No `_eval` layouts: the spec's ant-ball
    maze data has none.
    """

    def __init__(self, layout: str = "u_maze", **kwargs):
        grid = maze.pick_layout(maze.BALL_LAYOUTS, layout, "ant-ball")
        self._set_layout(layout, grid, BALL_MAZE_CELL_SIZE)
        self._ball_xys = jp.asarray(maze.cell_centers(grid, maze.BALL, BALL_MAZE_CELL_SIZE))
        super().__init__(tree=ant_ball_maze_tree(grid, self.start_xy), **kwargs)

    @property
    def ball_candidates(self) -> jax.Array:
        """World xy of every cell the ball can start on, [n, 2]."""
        return self._ball_xys

    def _sample_ball(self, rng: jax.Array, target: jax.Array) -> jax.Array:
        del target
        return self._ball_xys[jax.random.randint(rng, (), 0, self._ball_xys.shape[0])]

    def _initial_q_qd(self, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
        q, qd = super()._initial_q_qd(rng)
        return q.at[0:2].set(self.start_xy), qd


def ball_maze_registry() -> dict:
    """Env id -> constructor for every ant-ball maze."""
    return maze.registry("ant_ball", AntBallMaze, maze.BALL_LAYOUTS)


# -- ant push ---------------------------------------------------------------------

# name -> (centre x, centre y, half-size x, half-size y); all 4 high (spec 5.6).
_PUSH_WALLS = {
    "A": (-4, 20, 8, 8),
    "B": (8, 24, 4, 4),
    "C": (20, 20, 8, 8),
    "D": (-8, 4, 4, 8),
    "E": (24, 8, 4, 4),
    "F": (20, -4, 8, 8),
    "G": (0, -8, 12, 4),
}

# mjx only: JaxGCRL reports the other pipelines unstable on this scene.
_PUSH_BACKENDS = {
    "mjx": Physics(n_frames=5, opt={**BRAX_MJX_OPT, "opt.iterations": 4, "opt.ls_iterations": 8}),
}


def ant_push_tree() -> ET.ElementTree:
    """brax's `ant.xml` turned into the ant-push scene (spec 5.6).

    Geom default density 40 and solimp (0.995, 0.995, 0.01); torso contype 1;
    the torso starts at z 0.75; seven static walls (contype 0, conaffinity 1,
    4 high); a very light (mass 2e-4) movable 7.2 x 7.2 x 3.6 block centred at
    (8, 8) on three unlimited slides (x, y, z); then the target (+-20).
    """
    tree = load_brax_asset_tree("ant.xml")
    root = tree.getroot()
    default_geom = root.find("default/geom")
    default_geom.set("density", "40")
    default_geom.set("solimp", "0.995 0.995 0.01")
    set_geom_attributes(tree, ["torso_geom"], contype="1")
    set_init_qpos(tree, 2, [0.75])

    worldbody = root.find("worldbody")
    for name, (x, y, half_x, half_y) in _PUSH_WALLS.items():
        ET.SubElement(
            worldbody,
            "geom",
            name=f"wall_{name}",
            type="box",
            pos=f"{x} {y} 2",
            size=f"{half_x} {half_y} 2",
            contype="0",
            conaffinity="1",
            rgba="0.7 0.5 0.3 1",
        )
    block = ET.SubElement(worldbody, "body", name="block", pos="8 8 2")
    add_slide_joints(block, "block", "xyz", limited="false", armature="0", damping="0")
    ET.SubElement(block, "geom", name="block", type="box", size="3.6 3.6 1.8", mass="0.0002", contype="1",
                  conaffinity="1", rgba="0.9 0.1 0.1 1")  # fmt: skip
    extend_init_qpos(tree, 3)
    add_target_body(tree, 20.0)
    return tree


class AntPush(_AntWithObject):
    """Ant that must push a block aside to reach a target behind it (`ant_push`).

    Asset: `ant_push_tree()`; q = ant (15) + block (3) + target (2).
    Observation (33): q_ant | qd_ant | block xy [29:31] | target xy [31:33].
    State = first 31, goal slice [0, 2) = torso xy. Success: torso-target xy
    distance < 0.5, success_easy < 2.0. Ant termination rule.

    Reset: ant noise as `ant` (around (0, 0, 0.75)); target = a random
    ordering of (16, 8) plus U(0, 2) on each coordinate, i.e. in
    [16, 18) x [8, 10) or [8, 10) x [16, 18); both cells are reachable only
    by pushing the block out of (8, 8).

    Backend: "mjx" only (both references; JaxGCRL notes the others are
    unstable here): XML timestep 0.01, n_frames 5 (env dt 0.05), Newton,
    4 iterations, 8 line-search iterations, Euler damping off.
    """

    obs_dim = 31
    goal_start = 0
    goal_end = 2

    backends = _PUSH_BACKENDS

    def __init__(self, backend: str = "mjx", **kwargs):
        super().__init__(backend=backend, tree=ant_push_tree(), **kwargs)

    def _sample_goal(self, rng: jax.Array) -> jax.Array:
        rng_order, rng_jitter = jax.random.split(rng)
        corner = jax.random.permutation(rng_order, jp.array([16.0, 8.0]))
        return corner + jax.random.uniform(rng_jitter, (2,), minval=0.0, maxval=2.0)
