"""Evaluation: full episodes from fresh resets with a fixed policy.

Follows the paper's protocol: num_eval_envs envs, each reset with a new key
(new start and goal), unrolled for exactly one episode. Per env, brax's
EvalWrapper sums each per-step metric while the episode is still active
(an env that terminates early stops counting). Reported, as means over envs:

    eval/episode_success      steps spent within the success radius (the paper's score)
    eval/episode_success_any  fraction of envs that reached the goal at least once
    eval/episode_<metric>     episode sums of the env's other metrics (dist, reward, ...)
    eval/avg_episode_length   steps before the episode ended

Command line: evaluate a saved checkpoint (a file or a run directory, whose
latest checkpoint is used):

    uv run evaluation.py runs/<run>/ --num_eval_envs 256 --eval_actor 0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import tyro
from brax.envs.wrappers import training as brax_wrappers


def make_evaluator(env, policy: Callable, *, num_envs: int, episode_length: int) -> Callable:
    """Returns a jitted evaluate(actor_params, critic_params, key) -> metrics dict.

    `policy(actor_params, critic_params, obs, key) -> action` acts on a batch of
    observations.
    """
    eval_env = brax_wrappers.EvalWrapper(brax_wrappers.wrap(env, episode_length=episode_length))

    @jax.jit
    def evaluate(actor_params, critic_params, key):
        k_reset, k_act = jax.random.split(key)
        state = eval_env.reset(jax.random.split(k_reset, num_envs))

        def step(state, key):
            action = policy(actor_params, critic_params, state.obs, key)
            return eval_env.step(state, action), None

        state, _ = jax.lax.scan(step, state, jax.random.split(k_act, episode_length))
        totals = state.info["eval_metrics"].episode_metrics
        metrics = {f"eval/episode_{name}": jnp.mean(value) for name, value in totals.items()}
        metrics["eval/episode_success_any"] = jnp.mean(totals["success"] > 0)
        metrics["eval/avg_episode_length"] = jnp.mean(state.info["eval_metrics"].episode_steps)
        return metrics

    return evaluate


@dataclass
class EvalArgs:
    """Evaluate a saved checkpoint with the paper's protocol."""

    checkpoint: tyro.conf.Positional[str]
    """Checkpoint file (ckpt_*.msgpack) or a run directory (its latest checkpoint)."""
    num_eval_envs: Optional[int] = None
    """Episodes to evaluate; None = the run's num_eval_envs."""
    eval_actor: Optional[int] = None
    """0 deterministic, 1 stochastic, K >= 2 best of K by critic; None = the run's setting."""
    eval_env_id: Optional[str] = None
    """Evaluate on another env of the same family; None = the run's eval env."""
    seed: int = 0
    """Seed for the evaluation resets and actions."""


def main(args: Optional[list[str]] = None) -> dict:
    import dataclasses
    import json

    import train  # imported here: train.py imports this module

    cli = tyro.cli(EvalArgs, args=args, use_underscores=True)
    config, payload = train.load_checkpoint(cli.checkpoint)
    overrides = {
        k: v
        for k, v in dict(
            num_eval_envs=cli.num_eval_envs, eval_actor=cli.eval_actor, eval_env_id=cli.eval_env_id
        ).items()
        if v is not None
    }
    config = dataclasses.replace(config, **overrides)
    trainer = train.build(config)
    metrics = trainer.evaluate(
        payload["actor_params"], payload["critic_params"], jax.random.PRNGKey(cli.seed)
    )
    metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
    print(json.dumps({"checkpoint_epoch": int(payload["epoch"]), **metrics}, indent=2))
    return metrics


if __name__ == "__main__":
    main()
