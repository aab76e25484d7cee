"""Shared machinery of the goal-conditioned environments."""

from __future__ import annotations

import jax
from brax import base
from brax.envs.base import PipelineEnv, State
from jax import numpy as jp


def goal_metrics(
    achieved: jax.Array,
    goal: jax.Array,
    success_radius: float,
    success_easy_radius: float | None = None,
) -> dict[str, jax.Array]:
    """Per-step goal metrics read by the evaluator.

    `dist` is the Euclidean distance between the achieved goal and the
    commanded goal; `success` (and `success_easy` when the env defines a looser
    radius) are 0/1 floats so that summing them over an episode counts the
    steps spent near the goal, which is the paper's score.
    """
    dist = jp.linalg.norm(achieved - goal)
    metrics = {"dist": dist, "success": (dist < success_radius).astype(dist.dtype)}
    if success_easy_radius is not None:
        metrics["success_easy"] = (dist < success_easy_radius).astype(dist.dtype)
    return metrics


class GoalEnv(PipelineEnv):
    """A brax pipeline env whose observation is `[state | commanded goal]`.

    Subclasses set the class attributes below and implement `_initial_q_qd`
    (reset distribution, including where the goal is placed) and `_get_obs`
    (the full observation). Everything else is shared:

    * `obs[:obs_dim]` is the state. The hindsight goal of a state `s` is
      `s[goal_start:goal_end]`, and the commanded goal `obs[obs_dim:]` lives in
      the same space, so `obs_dim + goal_dim` is the observation size.
    * metrics: `dist`, `success` and, when `success_easy_radius` is set,
      `success_easy`, computed from the achieved goal `obs[goal_slice]` and the
      commanded goal. Subclasses may add keys in `_metrics` (e.g. ant's
      `distance_from_origin`). Reset emits the same keys as step, all zero,
      because brax's wrappers need an identical pytree structure.
    * reward: `-dist`. It is only logged (`eval/episode_reward`); contrastive
      RL never trains on it.
    * done: 0 unless `_done` is overridden (termination, e.g. a fallen ant).
    """

    obs_dim: int
    goal_start: int
    goal_end: int
    success_radius: float
    success_easy_radius: float | None = None

    def __init__(self, sys: base.System, backend: str, n_frames: int, **kwargs):
        if not 0 <= self.goal_start < self.goal_end <= self.obs_dim:
            raise ValueError(
                f"{type(self).__name__}: goal slice [{self.goal_start}, "
                f"{self.goal_end}) must lie inside the state of size {self.obs_dim}"
            )
        super().__init__(sys=sys, backend=backend, n_frames=n_frames, **kwargs)

    @property
    def goal_slice(self) -> slice:
        return slice(self.goal_start, self.goal_end)

    @property
    def goal_dim(self) -> int:
        return self.goal_end - self.goal_start

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
        )

    def _done(self, pipeline_state: base.State) -> jax.Array:
        del pipeline_state
        return jp.zeros(())

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
        pipeline_state = self.pipeline_step(state.pipeline_state, action)
        obs = self._get_obs(pipeline_state)
        metrics = self._metrics(pipeline_state, obs)
        return state.replace(
            pipeline_state=pipeline_state,
            obs=obs,
            reward=-metrics["dist"],
            done=self._done(pipeline_state),
            # Keep keys a wrapper may have added to the metrics dict.
            metrics={**state.metrics, **metrics},
        )
