"""Goal-conditioned two-link reacher."""

from __future__ import annotations

import jax
import numpy as np
from brax import base, math
from brax.io import mjcf
from jax import numpy as jp

from envs.assets import brax_asset_path
from envs.base import GoalEnv, Physics

# Env dt 0.02 on all; generalized keeps the XML's timestep 0.01 and gear 200.
_BACKENDS = {
    "spring": Physics(n_frames=4, timestep=0.005, gear=25.0),
    "positional": Physics(n_frames=4, timestep=0.005, gear=25.0),
    "generalized": Physics(n_frames=2),
}

# numpy, not jax: importing envs must not start a JAX backend (jax.distributed needs that).
_TIP_OFFSET = np.array([0.11, 0.0, 0.0], np.float32)  # fingertip in body1's frame
_BODY1, _TARGET = 1, 2  # brax links; the jointless fingertip is fused into body1


class Reacher(GoalEnv):
    """Planar two-link arm that must put its fingertip on a target (`reacher`).

    Asset: brax's shipped `reacher.xml`, unmodified.

    Observation (13): cos(q0, q1), sin(q0, q1), fingertip world xyz [4:7],
    fingertip world linear velocity [7:10], target world xyz [10:13]. The
    state is the first 10 entries and the goal is the fingertip position, so
    the commanded goal (target xyz, z = 0.01 like the fingertip) is comparable
    with `state[4:7]`. Success: 3-D fingertip-target distance < 0.05. No
    termination; reward `-dist` (logged only).

    Reset: q = init_q + U(-0.1, 0.1), qd = U(-0.005, 0.005) on every entry;
    then the target is put at radius 0.2*U(0, 1) (not area-uniform), angle
    U(0, 2*pi), with zero velocity.

    Backends (`backend=`):

    * "spring" (default, the paper repo's choice): timestep 0.005, n_frames 4
      (env dt 0.02), motor gear 25. Fast and stable: on the 2-core dev CPU
      (128 vmapped envs, 62-step scan, random actions) 110k-190k env steps/s
      depending on machine load, and finite under 20k bang-bang steps x 256
      envs. Its soft joints let the arm and target sag a few mm below z 0.01,
      which is negligible next to the 0.05 success radius.
    * "positional": same settings as spring.
    * "generalized" (JaxGCRL's choice): the XML's timestep 0.01 and gear 200,
      n_frames 2 (env dt 0.02). 12k-18k env steps/s on the same CPU.

    `timestep=` overrides the physics timestep of any backend. The paper's
    brax 0.10.1 stack silently ran spring reacher at 0.01 (env dt 0.04)
    because it ignored `opt.timestep` there; `timestep=0.01` reproduces that.
    Reacher is not one of the paper's ten tasks, so the default keeps the
    intended 0.005.
    """

    obs_dim = 10
    goal_start = 4
    goal_end = 7
    success_radius = 0.05
    backends = _BACKENDS

    def __init__(self, backend: str = "spring", **kwargs):
        super().__init__(sys=mjcf.load(brax_asset_path("reacher.xml")), backend=backend, **kwargs)

    def _initial_q_qd(self, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
        rng_q, rng_qd, rng_r, rng_a = jax.random.split(rng, 4)
        q = self.sys.init_q + jax.random.uniform(rng_q, (self.sys.q_size(),), minval=-0.1, maxval=0.1)
        qd = jax.random.uniform(rng_qd, (self.sys.qd_size(),), minval=-0.005, maxval=0.005)
        radius = 0.2 * jax.random.uniform(rng_r)
        angle = 2 * jp.pi * jax.random.uniform(rng_a)
        target = radius * jp.array([jp.cos(angle), jp.sin(angle)])
        return q.at[2:].set(target), qd.at[2:].set(0.0)

    def _get_obs(self, pipeline_state: base.State) -> jax.Array:
        x, xd = pipeline_state.x, pipeline_state.xd
        angles = pipeline_state.q[:2]
        offset = math.rotate(_TIP_OFFSET, x.rot[_BODY1])
        tip_pos = x.pos[_BODY1] + offset
        # Velocity of the material point at the fingertip, rigidly attached to body1.
        tip_vel = xd.vel[_BODY1] + jp.cross(xd.ang[_BODY1], offset)
        return jp.concatenate([jp.cos(angles), jp.sin(angles), tip_pos, tip_vel, x.pos[_TARGET]])
