"""Goal-conditioned pusher family: a 7-DoF arm pushes objects onto goals.

Ids: `pusher_easy`, `pusher_hard`, `pusher_reacher` (brax's shipped
`pusher.xml`, unmodified) and `pusher2` (two objects, two goals; XML derived
from `pusher.xml` by `pusher2_tree`).

Shared choices (spec section 4):

* Positions are link centre-of-mass world positions; the "arm tip" is the COM
  of `r_wrist_flex_link` (the real tips are fused into the roll link).
* Actions are passed to the motors unscaled: a [-1, 1] policy uses half of
  the +-2 ctrlrange, as in JaxGCRL.
* Metrics and reward describe the state *before* this step's physics, as the
  reference computes them: the metrics of `step(state, a)` are those of
  `state.obs`, so the first step of an episode scores the reset state.
* Reset: arm at the XML pose with velocities U(-0.005, 0.005), objects and
  goals at rest. Offsets are written into the y-then-x slide pairs, so the
  first number of a pair moves a body along world y. If an object's offset
  pair lies within 0.17 of its goal's, the object offset is rescaled by
  0.17 / distance (a push away from the goal, not an exact distance).
* No termination; reward `-dist` (logged only).

Backend: "generalized" only (JaxGCRL's): XML timestep 0.01, n_frames 5 (env
dt 0.05); `timestep=` overrides the physics timestep. On the shared 2-core dev
CPU (128 vmapped envs, 62-step scan, uniform random actions): pusher_easy /
pusher_hard ~1.4-1.6k, pusher_reacher ~1.6k, pusher2 ~1.0k env steps/s, and
~35-65 s to compile reset + rollout depending on load. brax's own generalized
pusher runs ~1.6k on the same setup, so the cost is the pipeline (11 dofs,
capsule contacts), not these envs. mjx is not offered: its pusher rollout had
not compiled after 10 minutes on that CPU.
"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET

import jax
from brax import base
from jax import numpy as jp

from envs.assets import load_brax_asset_tree, tree_to_system
from envs.base import GoalEnv, Physics

# The XML's timestep 0.01. mjx is not offered: on the dev CPU its pusher step
# had not compiled after 10 min.
_BACKENDS = {"generalized": Physics(n_frames=5)}

_N_ARM = 7
_TIP_LINK = "r_wrist_flex_link"
_MIN_OFFSET_DISTANCE = 0.17


def pusher2_tree() -> ET.ElementTree:
    """`pusher.xml` with two objects and two goals, all placed at the origin.

    The object and goal bodies are copied twice (names suffixed 1 and 2,
    named joints and geoms too) and their horizontal position zeroed, keeping z (objects
    -0.275, goals -0.323), so slide offsets are world coordinates. Body order,
    hence link and q order: object1, goal1, object2, goal2.
    """
    tree = load_brax_asset_tree("pusher.xml")
    worldbody = tree.getroot().find("worldbody")
    originals = {name: worldbody.find(f"body[@name='{name}']") for name in ("object", "goal")}
    for body in originals.values():
        worldbody.remove(body)
    for index in (1, 2):
        for name, body in originals.items():
            clone = copy.deepcopy(body)
            clone.set("name", f"{name}{index}")
            z = clone.get("pos").split()[2]
            clone.set("pos", f"0 0 {z}")
            for element in clone.iter():
                if element is not clone and element.get("name"):
                    element.set("name", f"{element.get('name')}{index}")
            worldbody.append(clone)
    return tree


def _keep_apart(obj: jax.Array, goal: jax.Array) -> jax.Array:
    """The reference's minimum-distance rule on an (object, goal) offset pair."""
    gap = jp.linalg.norm(obj - goal)
    return obj * jp.where(gap < _MIN_OFFSET_DISTANCE, _MIN_OFFSET_DISTANCE / gap, 1.0)


def _uniform_pair(rng: jax.Array, first: tuple[float, float], second: tuple[float, float]):
    """Offsets (y-slide, x-slide) drawn from the two given ranges."""
    low = jp.array([first[0], second[0]])
    high = jp.array([first[1], second[1]])
    return jax.random.uniform(rng, (2,), minval=low, maxval=high)


class _PusherBase(GoalEnv):
    """Loading, backends, reset velocities, COM positions, pre-step metrics."""

    backends = _BACKENDS
    # Score the state the action is applied to (see module docstring).
    metrics_before_step = True

    def __init__(self, backend: str = "generalized", **kwargs):
        super().__init__(sys=tree_to_system(self._tree()), backend=backend, **kwargs)
        self._tip = self.sys.link_names.index(_TIP_LINK)

    def _tree(self) -> ET.ElementTree:
        return load_brax_asset_tree("pusher.xml")

    def _com_positions(self, pipeline_state: base.State) -> jax.Array:
        com_offset = base.Transform.create(pos=self.sys.link.inertia.transform.pos)
        return pipeline_state.x.vmap().do(com_offset).pos

    def _initial_q_qd(self, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
        rng_qd, rng_bodies = jax.random.split(rng)
        q = self.sys.init_q.at[_N_ARM:].set(self._body_offsets(rng_bodies))
        qd = jax.random.uniform(rng_qd, (self.sys.qd_size(),), minval=-0.005, maxval=0.005)
        return q, qd.at[_N_ARM:].set(0.0)

    def _body_offsets(self, rng: jax.Array) -> jax.Array:
        """Slide coordinates of the objects and goals, in q order."""
        raise NotImplementedError


class Pusher(_PusherBase):
    """Push the object onto the goal (`pusher_easy`, and `pusher_hard` below).

    Observation (23): arm joint angles [0:7] | arm-tip COM [7:10] | object
    COM [10:13] | arm joint velocities [13:20] | goal COM [20:23]. State =
    first 20, goal slice [10, 13) = object position. Success: 3-D object-goal
    distance < 0.1, success_hard < 0.05. The goal body sits 0.048 below the
    object, so the distance never drops below ~0.048 and success_hard needs
    the object within ~0.014 horizontally.

    Reset offsets (y, x): object (U(-0.3, 0), U(-0.2, 0.2)); goal, easy:
    (U(-0.55, -0.25), U(-0.2, 0.2)). Bodies start at (0.45, -0.05) in world
    xy, so the goal lies 0.2-0.55 along -y from there.
    """

    obs_dim = 20
    goal_start = 10
    goal_end = 13
    success_radius = 0.1
    success_hard_radius = 0.05
    object_ranges = ((-0.3, 0.0), (-0.2, 0.2))
    goal_ranges = ((-0.55, -0.25), (-0.2, 0.2))

    def _body_offsets(self, rng: jax.Array) -> jax.Array:
        rng_obj, rng_goal = jax.random.split(rng)
        obj = _uniform_pair(rng_obj, *self.object_ranges)
        goal = _uniform_pair(rng_goal, *self.goal_ranges)
        return jp.concatenate([_keep_apart(obj, goal), goal])

    def _get_obs(self, pipeline_state: base.State) -> jax.Array:
        com = self._com_positions(pipeline_state)
        return jp.concatenate(
            [
                pipeline_state.q[:_N_ARM],
                com[self._tip],
                com[_N_ARM],  # object
                pipeline_state.qd[:_N_ARM],
                com[_N_ARM + 1],  # goal
            ]
        )


class PusherHard(Pusher):
    """`pusher_hard`: as `pusher_easy` with goal offsets (U(-0.65, 0.35), U(-0.55, 0.45))."""

    goal_ranges = ((-0.65, 0.35), (-0.55, 0.45))


class PusherReacher(Pusher):
    """Bring the arm tip to the goal; the object is parked away (`pusher_reacher`).

    Observation (20): arm joint angles [0:7] | arm joint velocities [7:14] |
    arm-tip COM [14:17] | goal COM [17:20]. State = first 17, goal slice
    [14, 17) = tip position. Success: tip-goal distance < 0.1,
    success_hard < 0.05. Object offsets fixed at (1, 1) (then the 0.17 rule,
    which never triggers there), goal offsets as `pusher_easy`.
    """

    obs_dim = 17
    goal_start = 14
    goal_end = 17

    def _body_offsets(self, rng: jax.Array) -> jax.Array:
        goal = _uniform_pair(rng, *self.goal_ranges)
        return jp.concatenate([_keep_apart(jp.ones(2), goal), goal])

    def _get_obs(self, pipeline_state: base.State) -> jax.Array:
        com = self._com_positions(pipeline_state)
        return jp.concatenate(
            [
                pipeline_state.q[:_N_ARM],
                pipeline_state.qd[:_N_ARM],
                com[self._tip],
                com[_N_ARM + 1],  # goal
            ]
        )


class Pusher2(_PusherBase):
    """Push two objects onto their two goals (`pusher2`).

    Asset: `pusher2_tree()`; links 7 arm, object1, goal1, object2, goal2;
    q = 7 arm + 4 x (y, x) slides = 15.

    Observation (29): arm joint angles [0:7] | tip COM [7:10] | object1 COM,
    object2 COM [10:16] | arm joint velocities [16:23] | goal1, goal2 COM
    [23:29]. State = first 23, 6-d goal slice [10, 16).

    Metrics: `success` = both object-goal distances < 0.1; `success_easy` =
    how many objects are within 0.1 (0, 1 or 2, so its episode sum counts
    object-steps); `dist` = norm of the 6-d achieved-minus-goal vector (the
    goal-space distance, = sqrt(d1^2 + d2^2)).

    Reset offsets (y, x): object1 (U(-0.35, -0.05), U(0.25, 0.45)); object2
    (U(-0.35, -0.05), U(0.45, 0.65)); goal1 (u, U(-0.15, 0.375)); goal2
    (u, U(0.375, 0.9)) with the *same* u ~ U(-0.7, 0.3) for both goals, as
    the reference draws them (one key): the goals sit side by side along x
    and never overlap. 0.17 rule per object/goal pair.
    """

    obs_dim = 23
    goal_start = 10
    goal_end = 16
    success_radius = 0.1

    def _tree(self) -> ET.ElementTree:
        return pusher2_tree()

    def _body_offsets(self, rng: jax.Array) -> jax.Array:
        rng_o1, rng_o2, rng_gy, rng_g1, rng_g2 = jax.random.split(rng, 5)
        obj1 = _uniform_pair(rng_o1, (-0.35, -0.05), (0.25, 0.45))
        obj2 = _uniform_pair(rng_o2, (-0.35, -0.05), (0.45, 0.65))
        goal_y = jax.random.uniform(rng_gy, minval=-0.7, maxval=0.3)
        goal1 = jp.array([goal_y, jax.random.uniform(rng_g1, minval=-0.15, maxval=0.375)])
        goal2 = jp.array([goal_y, jax.random.uniform(rng_g2, minval=0.375, maxval=0.9)])
        return jp.concatenate([_keep_apart(obj1, goal1), goal1, _keep_apart(obj2, goal2), goal2])

    def _get_obs(self, pipeline_state: base.State) -> jax.Array:
        com = self._com_positions(pipeline_state)
        obj1, goal1, obj2, goal2 = (com[_N_ARM + i] for i in range(4))
        return jp.concatenate(
            [
                pipeline_state.q[:_N_ARM],
                com[self._tip],
                obj1,
                obj2,
                pipeline_state.qd[:_N_ARM],
                goal1,
                goal2,
            ]
        )

    def _metrics(self, pipeline_state: base.State, obs: jax.Array) -> dict[str, jax.Array]:
        del pipeline_state
        achieved, goal = obs[self.goal_slice], obs[self.obs_dim :]
        pair_dists = jp.linalg.norm((achieved - goal).reshape(2, 3), axis=1)
        near = (pair_dists < self.success_radius).astype(pair_dists.dtype)
        return {
            "dist": jp.linalg.norm(achieved - goal),
            "success": jp.prod(near),
            "success_easy": jp.sum(near),
        }
