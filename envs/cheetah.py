"""Goal-conditioned half cheetah: run to x = 5 and stay there."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import jax
from brax import base
from jax import numpy as jp

from envs.assets import add_target_body, load_brax_asset_tree, tree_to_system
from envs.base import GoalEnv, Physics

# Spring/positional use brax's own cheetah settings (timestep, substeps,
# gears); the others the XML's 0.01 and gears. All give an env dt of 0.05.
_SOFT = Physics(n_frames=16, timestep=0.003125, gear=(120.0, 90.0, 60.0, 120.0, 100.0, 100.0))
_BACKENDS = {
    "spring": _SOFT,
    "mjx": Physics(n_frames=5),
    "generalized": Physics(n_frames=5),
    "positional": _SOFT,
}

_N_BODY = 9  # rootx, rootz, rooty + 6 hinges; the target's slide follows
GOAL_X = 5.0


def cheetah_tree(target_x_range: float = 20.0) -> ET.ElementTree:
    """brax's `half_cheetah.xml` plus a target on one x slide as the last body.

    The target (sphere r 0.9 at z 0.01, mass 1, no collisions) only needs x:
    the cheetah moves in the x-z plane and its goal is its root x. Its slide
    sets stiffness 0 explicitly: the file's joint default (8) would pull the
    target back to 0 on the generalized and mjx pipelines (spring ignores
    joint stiffness). brax's per-link `constraint_ang_damping` list gets an
    entry (1) for the new link.
    """
    tree = load_brax_asset_tree("half_cheetah.xml")
    damping = tree.getroot().find("custom/numeric[@name='constraint_ang_damping']")
    damping.set("data", damping.get("data").strip() + " 1")
    add_target_body(tree, target_x_range, axes="x", stiffness="0")
    return tree


class Cheetah(GoalEnv):
    """Planar half cheetah that must bring its root to x = 5 (`cheetah`).

    Asset: `cheetah_tree()`. q = rootx, rootz, rooty, 6 leg hinges (9) +
    target x (1); qd the same. Floor 40x40 (the shipped XML's).

    Observation (19): q without the target [0:9] | qd without the target
    [9:18] | target x [18] (its link's world x). State = first 18, goal slice
    [0, 1) = rootx. Success: |rootx - 5| < 0.5, success_easy < 2.0. No
    termination; reward `-dist` (logged only).

    Reset: q = init_q + U(-0.1, 0.1), qd = 0.1 * N(0, 1) on the cheetah's
    entries; the target is always at x = 5 with zero velocity (the task has a
    single goal).

    Backends (`backend=`; `timestep=` overrides the physics timestep), all
    with env dt 0.05. Measured on the shared 2-core dev CPU (128 vmapped envs,
    62-step scan, uniform random actions), compile = reset + rollout:

    * "spring" (default): timestep 0.003125, n_frames 16, gears 120, 90, 60,
      120, 100, 100 (brax's own cheetah settings). ~6.4k env steps/s, ~32 s
      to compile; finite over 1000 bang-bang steps x 128 envs.
    * "mjx" (JaxGCRL's choice): XML timestep 0.01, n_frames 5, XML solver
      settings (4 iterations), XML gears. ~1.9k env steps/s, ~57 s to compile.
    * "generalized": as mjx without the solver. ~2.1k env steps/s, ~67 s.
    * "positional": as spring.

    Spring is the default because it was 3x faster here and stable; note its
    gears differ from the XML's on the front shin and foot (100 vs 60, 30),
    so a spring cheetah is not the JaxGCRL one. `backend="mjx"` gives that.
    """

    obs_dim = 18
    goal_start = 0
    goal_end = 1
    success_radius = 0.5
    success_easy_radius = 2.0
    backends = _BACKENDS

    def __init__(self, backend: str = "spring", **kwargs):
        super().__init__(sys=tree_to_system(cheetah_tree()), backend=backend, **kwargs)

    def _initial_q_qd(self, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
        rng_q, rng_qd = jax.random.split(rng)
        q = self.sys.init_q + jax.random.uniform(rng_q, (self.sys.q_size(),), minval=-0.1, maxval=0.1)
        qd = 0.1 * jax.random.normal(rng_qd, (self.sys.qd_size(),))
        return q.at[-1].set(GOAL_X), qd.at[-1].set(0.0)

    def _get_obs(self, pipeline_state: base.State) -> jax.Array:
        return jp.concatenate(
            [
                pipeline_state.q[:_N_BODY],
                pipeline_state.qd[:_N_BODY],
                pipeline_state.x.pos[-1, :1],
            ]
        )
