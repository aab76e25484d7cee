"""Wrappers that turn a GoalEnv into the batched, auto-resetting env that training collects from.

`wrap_for_training(env, episode_length, reset_mode)` is what train.py uses: brax's episode and
vmap wrappers, an auto-reset (replay: the env's first start and goal again, as the paper's code;
fresh: a new start and goal), and episode ids for the replay buffer.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from brax.envs.base import Wrapper
from brax.envs.wrappers import training as brax_wrappers

from envs.base import GoalEnv


class EpisodeIdWrapper(Wrapper):
    """Numbers the episodes of each env slot so the buffer can keep goals inside one.

    The id of an observation is the count of episode ends before it in that slot.
    """

    def reset(self, rng):
        state = self.env.reset(rng)
        return state.replace(info={**state.info, "episode_id": jnp.zeros(rng.shape[:-1], jnp.int32)})

    def step(self, state, action):
        episode_id = state.info["episode_id"]
        state = self.env.step(state, action)
        return state.replace(info={**state.info, "episode_id": episode_id + state.done.astype(jnp.int32)})


class FreshResetWrapper(Wrapper):
    """Auto-reset that draws a new start and goal whenever an episode ends.

    brax's AutoResetWrapper restores each env's first start and goal instead. The
    reset is computed only on steps where some env is done (one cond for the whole
    batch), and each env carries its own reset key, so the draws do not depend on
    how envs are split over devices.
    """

    def reset(self, rng):
        state = self.env.reset(rng)
        return state.replace(
            info={**state.info, "reset_key": jax.vmap(lambda k: jax.random.fold_in(k, 1))(rng)}
        )

    def step(self, state, action):
        steps = jnp.where(state.done, 0, state.info["steps"])
        state = state.replace(done=jnp.zeros_like(state.done), info={**state.info, "steps": steps})
        state = self.env.step(state, action)
        keys = jax.vmap(jax.random.split)(state.info["reset_key"])

        def fresh():
            new = self.env.reset(keys[:, 1])
            return new.pipeline_state, new.obs

        pipeline_state, obs = jax.lax.cond(
            jnp.any(state.done), fresh, lambda: (state.pipeline_state, state.obs)
        )

        def where_done(new, old):
            return jnp.where(state.done.reshape((-1,) + (1,) * (old.ndim - 1)) > 0, new, old)

        return state.replace(
            pipeline_state=jax.tree.map(where_done, pipeline_state, state.pipeline_state),
            obs=where_done(obs, state.obs),
            info={**state.info, "reset_key": keys[:, 0]},
        )


def wrap_for_training(env: GoalEnv, episode_length: int, reset_mode: str = "replay"):
    if reset_mode == "replay":
        return EpisodeIdWrapper(brax_wrappers.wrap(env, episode_length=episode_length))
    episodes = brax_wrappers.EpisodeWrapper(brax_wrappers.VmapWrapper(env), episode_length, action_repeat=1)
    return EpisodeIdWrapper(FreshResetWrapper(episodes))


def wrap_for_evaluation(env: GoalEnv, episode_length: int):
    """One episode per env from a fresh reset; EvalWrapper sums each metric while the episode runs."""
    return brax_wrappers.EvalWrapper(brax_wrappers.wrap(env, episode_length=episode_length))
