"""Goal-conditioned ant: walk the torso to a target on a circle."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import jax
from brax import base
from jax import numpy as jp

from envs.assets import add_target_body, load_brax_asset_tree, tree_to_system
from envs.base import BRAX_MJX_OPT, GoalEnv, Physics, out_of_range

# All give an env dt of 0.05 (see the class docstring).
ANT_BACKENDS = {
    "spring": Physics(n_frames=10, timestep=0.005),
    "positional": Physics(n_frames=10, timestep=0.005, gear=200.0),
    "generalized": Physics(n_frames=5),
    "mjx": Physics(n_frames=5, opt=BRAX_MJX_OPT),
}

Q_ANT, QD_ANT = 15, 14  # free root (7 / 6) + 8 hinges
_TORSO = 0  # brax link index; the target is the last link


def ant_tree(target_xy_range: float = 20.0) -> ET.ElementTree:
    """brax's `ant.xml` with a target marker appended as the last body."""
    tree = load_brax_asset_tree("ant.xml")
    add_target_body(tree, target_xy_range)
    return tree


class Ant(GoalEnv):
    """Quadruped that must bring its torso to a target on the floor (`ant`).

    Asset: brax's shipped `ant.xml` plus a non-colliding target body (slide
    joints x, y with range +-20) appended as the last body, built in
    `ant_tree`. q = ant (15) + target (2); qd = ant (14) + target (2).

    Observation (31): q_ant (15) | qd_ant (14) | target xy, the latter read
    from the target link's world position. State = first 29 entries; the goal
    is the torso xy, `state[0:2]`. Success: xy distance < 0.5, success_easy:
    < 2.0. Also emits `distance_from_origin` (norm of the torso's 3-D
    position). Done = 1 when the torso z leaves [0.2, 1.0]. Reward `-dist`
    (logged only; the paper repo logs forward velocity instead).

    Reset: q = init_q + U(-0.1, 0.1) on every entry (quaternion included, not
    renormalised, as in the reference), qd = 0.1 * N(0, 1) on every dof; then
    the target is put at `goal_distance` (default 10) from the origin at angle
    U(0, 2*pi), with zero velocity.

    Backends (`backend=`, table `ANT_BACKENDS`), all with env dt 0.05:

    * "spring" (default, both reference repos): timestep 0.005, n_frames 10.
      On the 2-core dev CPU (128 vmapped envs, 62-step scan, random actions)
      11k-19k env steps/s depending on load, 10-20% below brax's own ant:
      the target is a jointed link the physics steps too.
    * "positional": as spring, motor gear forced to 200 (brax's choice).
    * "generalized": the XML's timestep 0.01, n_frames 5.
    * "mjx": XML timestep, n_frames 5, Newton solver, 1 iteration, 4 line
      search iterations, Euler damping off (brax's ant settings).

    Under uniform random actions the generalized and mjx ants leave the
    healthy z range after ~25 steps (median) and spring ones rarely do; brax's
    own ant behaves the same. Generalized can turn non-finite if stepped for
    hundreds of steps past termination without a reset (brax's ant too).
    ~6k (generalized), ~12k (mjx), ~3k (positional) env steps/s on the dev CPU.
    """

    obs_dim = 29
    goal_start = 0
    goal_end = 2
    success_radius = 0.5
    success_easy_radius = 2.0
    healthy_z_range = (0.2, 1.0)
    backends = ANT_BACKENDS

    def __init__(
        self,
        backend: str = "spring",
        goal_distance: float = 10.0,
        timestep: float | None = None,
        tree: ET.ElementTree | None = None,
        **kwargs,
    ):
        """`tree=` replaces the asset (mazes and ant variants build their own)."""
        sys = tree_to_system(ant_tree() if tree is None else tree)
        super().__init__(sys=sys, backend=backend, timestep=timestep, **kwargs)
        self.goal_distance = goal_distance

    def _sample_goal(self, rng: jax.Array) -> jax.Array:
        angle = 2 * jp.pi * jax.random.uniform(rng)
        return self.goal_distance * jp.array([jp.cos(angle), jp.sin(angle)])

    def _initial_q_qd(self, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
        rng_q, rng_qd, rng_goal = jax.random.split(rng, 3)
        q = self.sys.init_q + jax.random.uniform(rng_q, (self.sys.q_size(),), minval=-0.1, maxval=0.1)
        qd = 0.1 * jax.random.normal(rng_qd, (self.sys.qd_size(),))
        q = q.at[-2:].set(self._sample_goal(rng_goal))
        return q, qd.at[-2:].set(0.0)

    def _get_obs(self, pipeline_state: base.State) -> jax.Array:
        return jp.concatenate(
            [
                pipeline_state.q[:Q_ANT],
                pipeline_state.qd[:QD_ANT],
                pipeline_state.x.pos[-1, :2],
            ]
        )

    def _metrics(self, pipeline_state: base.State, obs: jax.Array) -> dict[str, jax.Array]:
        metrics = super()._metrics(pipeline_state, obs)
        metrics["distance_from_origin"] = jp.linalg.norm(pipeline_state.x.pos[_TORSO])
        return metrics

    def _done(self, pipeline_state: base.State) -> jax.Array:
        return out_of_range(pipeline_state.x.pos[_TORSO, 2], self.healthy_z_range)
