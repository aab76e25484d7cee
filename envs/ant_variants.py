"""Ant tasks beyond `ant`: random start, ant soccer and ant push.

All share `Ant`'s robot, observation prefix (q_ant 15 | qd_ant 14), reset
noise, `distance_from_origin` metric and termination (torso z outside
[0.2, 1.0]); see `envs/ant.py`. Like `ant`, they take `backend=` but not
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
import mujoco
from brax import base
from jax import numpy as jp

from envs.ant import _BACKEND_SETTINGS as _ANT_BACKENDS
from envs.ant import Ant, ant_tree
from envs.assets import add_target_body, extend_init_qpos, load_brax_asset_tree, tree_to_system
from envs.base import GoalEnv

_Q_ANT, _QD_ANT = 15, 14


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
    """An ant built from its own asset, with one extra jointed body before the target.

    The extra body (ball or block) is link -2; its world xy is appended to the
    state after q_ant and qd_ant.
    """

    def __init__(
        self,
        tree: ET.ElementTree,
        backend: str,
        goal_distance: float | None = None,
        **kwargs,
    ):
        sys = self._configure(tree_to_system(tree), backend)
        kwargs.setdefault("n_frames", _ANT_BACKENDS[backend][1])
        # Ant.__init__ would build the plain ant asset; this one has its own.
        GoalEnv.__init__(self, sys=sys, backend=backend, **kwargs)
        self.goal_distance = goal_distance

    def _get_obs(self, pipeline_state: base.State) -> jax.Array:
        return jp.concatenate(
            [
                pipeline_state.q[:_Q_ANT],
                pipeline_state.qd[:_QD_ANT],
                pipeline_state.x.pos[-2, :2],  # object
                pipeline_state.x.pos[-1, :2],  # target
            ]
        )


# -- ant soccer ------------------------------------------------------------------


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
    for geom in root.iter("geom"):
        if geom.get("name") == "torso_geom" or geom.get("name", "").endswith("_foot_geom"):
            geom.set("conaffinity", "1")
    ball = ET.SubElement(root.find("worldbody"), "body", name="object", pos="0 0 0.5")
    for axis_name, axis in (("x", "1 0 0"), ("y", "0 1 0")):
        ET.SubElement(
            ball,
            "joint",
            name=f"ball_{axis_name}",
            type="slide",
            axis=axis,
            pos="0 0 0",
            range=f"{-ball_xy_range} {ball_xy_range}",
            damping="0",
        )
    # Invisible, non-colliding: it carries most of the ball's mass.
    ET.SubElement(
        ball, "geom", type="sphere", size="0.5", density="1", conaffinity="0", rgba="1 1 1 0"
    )
    ET.SubElement(
        ball,
        "geom",
        name="ball",
        type="sphere",
        size="0.5",
        density="0.1",
        contype="1",
        conaffinity="0",
        rgba="0.9 0.9 0.9 1",
    )
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

    def __init__(self, backend: str = "spring", goal_distance: float = 5.0, **kwargs):
        super().__init__(ant_ball_tree(), backend, goal_distance, **kwargs)

    def _initial_q_qd(self, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
        rng, rng_ball = jax.random.split(rng)
        q, qd = super()._initial_q_qd(rng)
        angle = 2 * jp.pi * jax.random.uniform(rng_ball)
        ball = 0.2 * q[-2:] + jp.array([jp.cos(angle), jp.sin(angle)])
        q = q.at[_Q_ANT : _Q_ANT + 2].set(ball)
        return q, qd.at[_QD_ANT : _QD_ANT + 2].set(0.0)


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
_PUSH_MJX = {
    "opt.solver": mujoco.mjtSolver.mjSOL_NEWTON,
    "opt.disableflags": mujoco.mjtDisableBit.mjDSBL_EULERDAMP,
    "opt.iterations": 4,
    "opt.ls_iterations": 8,
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
    root.find(".//geom[@name='torso_geom']").set("contype", "1")
    init_qpos = root.find("custom/numeric[@name='init_qpos']")
    values = init_qpos.get("data").split()
    values[2] = "0.75"
    init_qpos.set("data", " ".join(values))

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
    for axis_name, axis in (("x", "1 0 0"), ("y", "0 1 0"), ("z", "0 0 1")):
        ET.SubElement(
            block,
            "joint",
            name=f"block_{axis_name}",
            type="slide",
            axis=axis,
            pos="0 0 0",
            limited="false",
            armature="0",
            damping="0",
        )
    ET.SubElement(
        block,
        "geom",
        name="block",
        type="box",
        size="3.6 3.6 1.8",
        mass="0.0002",
        contype="1",
        conaffinity="1",
        rgba="0.9 0.1 0.1 1",
    )
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

    def __init__(self, backend: str = "mjx", **kwargs):
        if backend != "mjx":
            raise ValueError(f"ant_push backend must be 'mjx', got {backend!r}")
        super().__init__(ant_push_tree(), backend, **kwargs)

    @staticmethod
    def _configure(sys: base.System, backend: str) -> base.System:
        del backend
        return sys.tree_replace(_PUSH_MJX)

    def _sample_goal(self, rng: jax.Array) -> jax.Array:
        rng_order, rng_jitter = jax.random.split(rng)
        corner = jax.random.permutation(rng_order, jp.array([16.0, 8.0]))
        return corner + jax.random.uniform(rng_jitter, (2,), minval=0.0, maxval=2.0)
