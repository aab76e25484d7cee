"""Point-mass mazes (`simple_<layout>`): a sphere sliding in the plane between maze walls."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import jax
from brax import base
from jax import numpy as jp

from envs import maze
from envs.assets import add_slide_joints, add_target_body, tree_to_system
from envs.base import GoalEnv, Physics

CELL_SIZE = 4.0
SLIDE_RANGE = 100.0
_HEIGHT = 0.75  # sphere centre; radius 0.25, so it floats 0.5 above the floor
_GEAR = 5.0

# Env dt 0.05 on both.
_BACKENDS = {
    "spring": Physics(n_frames=10, timestep=0.005),
    "generalized": Physics(n_frames=5),  # the XML's 0.01
}

# brax spring parameters, as in brax's ant.xml: the point mass comes from the
# same family of hand-written files.
_BRAX_CUSTOM = {
    "constraint_limit_stiffness": "1000",
    "constraint_stiffness": "4000",
    "constraint_ang_damping": "10",
    "constraint_vel_damping": "20",
    "joint_scale_pos": "0.5",
    "joint_scale_ang": "0.2",
    "ang_damping": "0.0",
    "spring_mass_scale": "1",
    "spring_inertia_scale": "1",
    "solver_maxls": "15",
}

LAYOUTS = ("u_maze", "u_maze_eval", "big_maze", "big_maze_eval", "hardest_maze")


def point_mass_tree(layout: maze.Layout, start_xy, cell_size: float = CELL_SIZE) -> ET.ElementTree:
    """MJCF of the point mass (two slides, two motors), target and walls, built in code.

    Body "torso" at z 0.75 with slides x, y (range +-100, armature 1, no
    damping) and a sphere r 0.25 (contype = conaffinity = 1, density 5); one
    motor per slide, gear 5, no control range. Floor 100 x 100, XML timestep
    0.01. `init_qpos` holds the start cell so `sys.init_q` is a valid start.
    """
    root = ET.Element("mujoco", model="simple_maze")
    ET.SubElement(root, "compiler", angle="degree", coordinate="local", inertiafromgeom="true")
    ET.SubElement(root, "option", timestep="0.01")
    custom = ET.SubElement(root, "custom")
    ET.SubElement(custom, "numeric", name="init_qpos", data=" ".join(f"{v:g}" for v in start_xy))
    for name, value in _BRAX_CUSTOM.items():
        ET.SubElement(custom, "numeric", name=name, data=value)
    default = ET.SubElement(root, "default")
    ET.SubElement(default, "joint", armature="1", damping="0", limited="true")
    ET.SubElement(
        default, "geom", contype="0", conaffinity="0", condim="3", density="5.0",
        friction="1 0.5 0.5",
    )  # fmt: skip
    worldbody = ET.SubElement(root, "worldbody")
    ET.SubElement(
        worldbody, "geom", name="floor", type="plane", pos="0 0 0", size="100 100 100",
        conaffinity="1", rgba="0.5 0.5 0.5 1",
    )  # fmt: skip
    torso = ET.SubElement(worldbody, "body", name="torso", pos=f"0 0 {_HEIGHT}")
    add_slide_joints(torso, "slide", "xy", SLIDE_RANGE)
    ET.SubElement(
        torso, "geom", name="torso_geom", type="sphere", size="0.25", contype="1",
        conaffinity="1", rgba="0.8 0.4 0.2 1",
    )  # fmt: skip
    actuator = ET.SubElement(root, "actuator")
    for axis_name in ("x", "y"):
        ET.SubElement(actuator, "motor", joint=f"slide_{axis_name}", gear=f"{_GEAR:g}")
    tree = ET.ElementTree(root)
    add_target_body(tree, SLIDE_RANGE)
    maze.add_walls(tree, layout, cell_size)
    # One sphere touches at most 3 wall blocks at once (a corner).
    maze.limit_contact_pairs(tree, 4)
    return tree


class SimpleMaze(maze.MazeTask, GoalEnv):
    """Point mass that must reach a goal cell of a maze (`simple_<layout>`, JaxGCRL's task).

    Asset: `point_mass_tree` (no file). q = point xy (2) + target xy (2).
    Layouts: `maze.JG_LAYOUTS` (u_maze, u_maze_eval, big_maze, big_maze_eval,
    hardest_maze), cell size 4.0, wall height 2.0.

    Observation (6): point xy | point xy velocity | target xy. State = first
    4 entries, goal = point xy [0, 2). Success: distance < 0.5, success_easy
    < 2.0. Never terminates (the point cannot fall). Reward `-dist` (logged
    only).

    Reset: the point is put exactly on the R cell centre (the U(-0.1, 0.1) q
    noise of the reference is entirely overwritten, so it is not drawn) with
    velocity 0.1 * N(0, 1) per axis; the target is the centre of a uniformly
    drawn G cell, at rest.

    Backends: "spring" (default, timestep 0.005 x 10) and "generalized"
    (XML 0.01 x 5); env dt 0.05 in both. `timestep=` overrides
    the physics timestep. Actions are passed to the motors unscaled (the
    policy's tanh keeps them in [-1, 1]).

    Choices where the spec is silent: brax's spring parameters are the ant's
    (`_BRAX_CUSTOM`); MJX collides only the 4 nearest wall blocks (exact: one
    sphere can touch at most 3, `maze.limit_contact_pairs`). Spring, 128 envs,
    62-step scan, random actions, 2-core dev CPU: ~18k env steps/s lightly
    loaded, ~14k under heavy load.
    """

    obs_dim = 4
    goal_start = 0
    goal_end = 2
    success_radius = 0.5
    success_easy_radius = 2.0
    backends = _BACKENDS

    def __init__(self, layout: str = "u_maze", backend: str = "spring", **kwargs):
        self._set_layout(layout, maze.pick_layout(maze.JG_LAYOUTS, layout, "simple"), CELL_SIZE)
        sys = tree_to_system(point_mass_tree(self.layout, self.start_xy))
        super().__init__(sys=sys, backend=backend, **kwargs)

    def _initial_q_qd(self, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
        rng_qd, rng_goal = jax.random.split(rng)
        q = jp.concatenate([jp.asarray(self.start_xy), self._sample_goal(rng_goal)])
        qd = jp.concatenate([0.1 * jax.random.normal(rng_qd, (2,)), jp.zeros(2)])
        return q, qd

    def _get_obs(self, pipeline_state: base.State) -> jax.Array:
        return jp.concatenate([pipeline_state.q[:2], pipeline_state.qd[:2], pipeline_state.x.pos[-1, :2]])


def registry() -> dict:
    """Env id -> constructor for every point-mass maze."""
    return maze.registry("simple", SimpleMaze, LAYOUTS)


__all__ = ["SimpleMaze", "point_mass_tree", "registry"]
