"""Shared machinery of the goal-conditioned environments."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping

import jax
import mujoco
from brax import base
from brax.envs.base import PipelineEnv, State
from jax import numpy as jp

# MJX solver settings of brax's own ant and humanoid: Newton, 1 iteration, 4
# line-search iterations, Euler damping off.
BRAX_MJX_OPT: Mapping[str, Any] = {
    "opt.solver": mujoco.mjtSolver.mjSOL_NEWTON,
    "opt.disableflags": mujoco.mjtDisableBit.mjDSBL_EULERDAMP,
    "opt.iterations": 1,
    "opt.ls_iterations": 4,
}


@dataclasses.dataclass(frozen=True)
class Physics:
    """How an env runs on one backend: substeps per env step and system overrides."""

    n_frames: int
    timestep: float | None = None  # physics timestep; None keeps the XML's
    gear: float | tuple[float, ...] | None = None  # motor gears (one or per motor); None keeps the XML's
    opt: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # other fields, e.g. "opt.iterations"

    def apply(self, sys: base.System, timestep: float | None = None) -> base.System:
        """The system with these settings; `timestep` overrides this backend's."""
        timestep = self.timestep if timestep is None else timestep
        if timestep is not None:
            sys = sys.tree_replace({"opt.timestep": timestep})
        if self.opt:
            sys = sys.tree_replace(dict(self.opt))
        if self.gear is not None:
            old = sys.actuator.gear
            gear = jp.broadcast_to(jp.asarray(self.gear, old.dtype), old.shape)
            sys = sys.replace(actuator=sys.actuator.replace(gear=gear))
        return sys


def goal_metrics(
    achieved: jax.Array,
    goal: jax.Array,
    success_radius: float,
    success_easy_radius: float | None = None,
    success_hard_radius: float | None = None,
) -> dict[str, jax.Array]:
    """Per-step goal metrics read by the evaluator.

    `dist` is the Euclidean distance between the achieved goal and the
    commanded goal; `success` (and `success_easy` / `success_hard` when the
    env defines a looser / tighter radius) are 0/1 floats so that summing them
    over an episode counts the steps spent near the goal, which is the paper's
    score.
    """
    dist = jp.linalg.norm(achieved - goal)
    metrics = {"dist": dist, "success": (dist < success_radius).astype(dist.dtype)}
    if success_easy_radius is not None:
        metrics["success_easy"] = (dist < success_easy_radius).astype(dist.dtype)
    if success_hard_radius is not None:
        metrics["success_hard"] = (dist < success_hard_radius).astype(dist.dtype)
    return metrics


def out_of_range(value: jax.Array, low_high: tuple[float, float]) -> jax.Array:
    """1.0 where `value` leaves [low, high], else 0.0, in `value`'s dtype.

    Same dtype (and no weak type) as reset's `done`, so a jitted rollout is
    not retraced on its second call.
    """
    low, high = low_high
    return ((value < low) | (value > high)).astype(value.dtype)


class GoalEnv(PipelineEnv):
    """A brax pipeline env whose observation is `[state | commanded goal]`.

    Subclasses set the class attributes below and implement `_initial_q_qd`
    (reset distribution, including where the goal is placed) and `_get_obs`
    (the full observation). Everything else is shared:

    * physics: `backends` maps each accepted backend to its `Physics`
      (substeps, timestep, gears, solver fields); `backend=` picks one and
      `timestep=` overrides its timestep. Anything else raises. An env that
      configures its system itself leaves `backends` None.

    * `obs[:obs_dim]` is the state. The hindsight goal of a state `s` is
      `s[goal_start:goal_end]`, and the commanded goal `obs[obs_dim:]` lives in
      the same space, so `obs_dim + goal_dim` is the observation size.
    * metrics: `dist`, `success` and, when `success_easy_radius` /
      `success_hard_radius` are set, `success_easy` / `success_hard`, computed
      from the achieved goal `obs[goal_slice]` and the commanded goal.
      Subclasses may add keys in `_metrics` (e.g. ant's
      `distance_from_origin`). Reset emits the same keys as step, all zero,
      because brax's wrappers need an identical pytree structure. With
      `metrics_before_step`, `step` scores the state the action is applied to
      (the pusher family's convention) instead of the new one.
    * actions: `_ctrl` maps the policy's action to the motors (identity
      unless overridden); `_step_obs` may use that control (humanoid's
      actuator-force features).
    * reward: `-dist`. It is only logged (`eval/episode_reward`); contrastive
      RL never trains on it.
    * done: 0 unless `_done` is overridden (termination, e.g. a fallen ant).
    """

    obs_dim: int
    goal_start: int
    goal_end: int
    success_radius: float
    success_easy_radius: float | None = None
    success_hard_radius: float | None = None
    metrics_before_step: bool = False
    backends: ClassVar[Mapping[str, Physics] | None] = None

    def __init__(self, sys: base.System, backend: str, timestep: float | None = None, **kwargs):
        if not 0 <= self.goal_start < self.goal_end <= self.obs_dim:
            raise ValueError(
                f"{type(self).__name__}: goal slice [{self.goal_start}, "
                f"{self.goal_end}) must lie inside the state of size {self.obs_dim}"
            )
        if self.backends is not None:
            if backend not in self.backends:
                raise ValueError(
                    f"{type(self).__name__} backend must be one of {sorted(self.backends)}, got {backend!r}"
                )
            physics = self.backends[backend]
            sys = physics.apply(sys, timestep)
            kwargs.setdefault("n_frames", physics.n_frames)
        elif timestep is not None:
            sys = sys.tree_replace({"opt.timestep": timestep})
        super().__init__(sys=sys, backend=backend, **kwargs)

    @property
    def goal_slice(self) -> slice:
        return slice(self.goal_start, self.goal_end)

    @property
    def goal_dim(self) -> int:
        return self.goal_end - self.goal_start

    @property
    def observation_size(self) -> int:
        # brax's own runs a whole reset op by op (a minute for an arm scene on a CPU); the shape is enough.
        return jax.eval_shape(self.reset, jax.random.PRNGKey(0)).obs.shape[-1]

    # -- hooks for subclasses -------------------------------------------------

    def _initial_q_qd(self, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Samples the initial generalized positions/velocities, goal included."""
        raise NotImplementedError

    def _get_obs(self, pipeline_state: base.State) -> jax.Array:
        """Returns `[state (obs_dim) | commanded goal (goal_dim)]`."""
        raise NotImplementedError

    def _metrics(self, pipeline_state: base.State, obs: jax.Array) -> dict[str, jax.Array]:
        del pipeline_state
        return goal_metrics(
            obs[self.goal_slice],
            obs[self.obs_dim :],
            self.success_radius,
            self.success_easy_radius,
            self.success_hard_radius,
        )

    def _done(self, pipeline_state: base.State) -> jax.Array:
        del pipeline_state
        return jp.zeros(())

    def _ctrl(self, action: jax.Array) -> jax.Array:
        """Policy action -> the control the physics step receives."""
        return action

    def _step_obs(self, pipeline_state: base.State, ctrl: jax.Array) -> jax.Array:
        """Observation after a step that applied `ctrl`; `_get_obs` unless overridden."""
        del ctrl
        return self._get_obs(pipeline_state)

    # -- brax Env API ----------------------------------------------------------

    def reset(self, rng: jax.Array) -> State:
        q, qd = self._initial_q_qd(rng)
        pipeline_state = self.pipeline_init(q, qd)
        obs = self._get_obs(pipeline_state)
        # Zeros with exactly the structure step() emits; the unused metric
        # computation is dead code under jit.
        metrics = jax.tree.map(jp.zeros_like, self._metrics(pipeline_state, obs))
        zero = jp.zeros(())
        return State(pipeline_state, obs, zero, zero, metrics)

    def step(self, state: State, action: jax.Array) -> State:
        ctrl = self._ctrl(action)
        pipeline_state = self.pipeline_step(state.pipeline_state, ctrl)
        obs = self._step_obs(pipeline_state, ctrl)
        if self.metrics_before_step:
            metrics = self._metrics(state.pipeline_state, state.obs)
        else:
            metrics = self._metrics(pipeline_state, obs)
        return state.replace(
            pipeline_state=pipeline_state,
            obs=obs,
            reward=-metrics["dist"],
            done=self._done(pipeline_state),
            # Keep keys a wrapper may have added to the metrics dict.
            metrics={**state.metrics, **metrics},
        )
