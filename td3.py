"""TD3+HER with deep residual networks: the paper's deterministic-policy baseline, in one file.

The paper (Wang et al. 2025, Fig. 3) scales the depth of TD3+HER's networks as it does CRL's and
finds no gain beyond about 4 layers. This file trains TD3 on the same goal-conditioned envs, residual
torso (train.py), evaluation protocol and run management, with the sparse reward "the next state
meets the goal" under hindsight relabelling (baselines.py holds what SAC and TD3 share).

Read top to bottom:
  1. config          baselines.Config (train.py's flags) + TD3's noise and delay flags
  2. networks        deterministic tanh actor and twin Q networks, each on train.Torso
  3. critic loss     TD target from target networks with target policy smoothing (clipped noise)
  4. actor loss      -Q_1(s, mu(s)), applied every policy_delay SGD steps
  5. SGD step        critic every step; actor and Polyak averaging of both targets when due
  6. update, epoch   sample hindsight goals, scan the SGD steps; collect + update per training step
  7. main            train.train with this build: epochs, evaluation, checkpoints, exact resume

    uv run td3.py --env_id reacher --num_envs 32 ...   (docs/baselines.md)
"""

from __future__ import annotations

import signal

if __name__ == "__main__":
    # A stop signal during the slow imports waits, pending, until runs.StopSignals handles it.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGUSR1, signal.SIGINT})

from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

import baselines
import contrastive
import runs
import train
from baselines import QNetwork, twin_q

# ===== 1. Config ==================================================================================


@dataclass
class Config(baselines.Config):
    """TD3+HER with deep residual actor and twin critics (the paper's TD3+HER baseline)."""

    # --- experiment
    algorithm: ClassVar[str] = "td3"  # recorded in config.json (runs.described), not a flag
    exp_name: str = "td3"
    """Name of the experiment; part of the run directory and wandb run name."""

    # --- target smoothing, delay and exploration (JaxGCRL's defaults)
    policy_delay: int = 2
    """SGD steps per actor update; the target networks move on the same steps."""
    policy_noise: float = 0.2
    """Std of the Gaussian noise added to the target actor's action in the TD target (smoothing)."""
    noise_clip: float = 0.5
    """That noise is clipped to [-noise_clip, noise_clip] before the action is clipped to [-1, 1]."""
    exploration_noise: float = 0.4
    """Std of the Gaussian noise added to the actor's action when collecting data."""


# ===== 2. Networks ================================================================================


class DeterministicActor(nn.Module):
    """mu(s, g) = tanh(Dense(torso([s | g]))): an action in [-1, 1]^A."""

    torso: train.Torso
    action_dim: int

    @nn.compact
    def __call__(self, obs):
        return jnp.tanh(nn.Dense(self.action_dim, kernel_init=train.dense_init)(self.torso(obs)))


class Networks(NamedTuple):
    actor: DeterministicActor
    q: QNetwork  # one Q(s, g, a); twin_q applies the two stacked parameter sets


def make_networks(config: Config, d: train.Derived) -> Networks:
    return Networks(DeterministicActor(train.make_torso(config, "actor"), d.action_dim),
                    QNetwork(train.make_torso(config, "critic")))  # fmt: skip


def smoothed_target_action(nets: Networks, target_actor_params, obs, key, policy_noise: float,
                           noise_clip: float) -> jax.Array:  # fmt: skip
    """a' = clip(mu'(s') + clip(N(0, policy_noise^2), -noise_clip, noise_clip), -1, 1)."""
    action = nets.actor.apply(target_actor_params, obs)
    noise = jnp.clip(policy_noise * jax.random.normal(key, action.shape), -noise_clip, noise_clip)
    return jnp.clip(action + noise, -1.0, 1.0)


# ===== 3. Critic loss: TD target from the target networks, target policy smoothing =================


def critic_loss(critic_params, target_critic_params, target_actor_params, nets: Networks,
                batch: baselines.Batch, key, c: Config):  # fmt: skip
    """0.5 E[(Q_i(s, a) - y)^2] over both critics, y = reward_scaling r + gamma min_i Q'_i(s', a'),
    a' the target actor's smoothed action."""
    next_action = smoothed_target_action(nets, target_actor_params, batch.next_obs, key, c.policy_noise,
                                         c.noise_clip)  # fmt: skip
    next_q = jnp.min(twin_q(nets.q, target_critic_params, batch.next_obs, next_action), axis=0)
    target = baselines.td_target(batch.reward, next_q, c.gamma, c.reward_scaling)
    q = twin_q(nets.q, critic_params, batch.obs, batch.action)
    return baselines.q_loss(q, target, batch.valid), jnp.mean(q, axis=0)


# ===== 4. Actor loss ===============================================================================


def actor_loss(actor_params, critic_params, nets: Networks, batch: baselines.Batch):
    """-E[Q_1(s, mu(s))]: the first critic alone scores the actor (TD3's deterministic policy gradient)."""
    q = twin_q(nets.q, critic_params, batch.obs, nets.actor.apply(actor_params, batch.obs))
    return -contrastive.masked_mean(q[0], batch.valid)


# ===== 5. One SGD step: the critic every step, the actor and both targets every policy_delay =======


@struct.dataclass
class TrainingState:
    actor_params: Any
    critic_params: Any  # the two Q networks, stacked
    target_actor_params: Any
    target_critic_params: Any
    actor_opt: Any
    critic_opt: Any
    sgd_steps: jax.Array  # () int32: SGD steps so far; the actor moves when it divides by policy_delay
    key: jax.Array


class Optimizers(NamedTuple):
    actor: optax.GradientTransformation
    critic: optax.GradientTransformation


def sgd_step(s: baselines.Setup, ts: TrainingState, buf, idx, key):
    c, nets = s.config, s.nets
    k_batch, k_critic = jax.random.split(key)
    batch = baselines.her_batch(c, s.derived, s.success, buf, idx, k_batch)

    (c_loss, q), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(
        ts.critic_params, ts.target_critic_params, ts.target_actor_params, nets, batch, k_critic, c
    )
    updates, critic_opt = s.optimizers.critic.update(c_grads, ts.critic_opt)
    critic_params = optax.apply_updates(ts.critic_params, updates)

    def delayed(_):
        """The actor's step against the just-updated critics, then both targets move tau."""
        a_loss, a_grads = jax.value_and_grad(actor_loss)(ts.actor_params, critic_params, nets, batch)
        updates, actor_opt = s.optimizers.actor.update(a_grads, ts.actor_opt)
        actor_params = optax.apply_updates(ts.actor_params, updates)
        targets = (baselines.polyak(ts.target_actor_params, actor_params, c.tau),
                   baselines.polyak(ts.target_critic_params, critic_params, c.tau))  # fmt: skip
        return a_loss, actor_params, actor_opt, *targets

    def skipped(_):
        return (actor_loss(ts.actor_params, critic_params, nets, batch), ts.actor_params, ts.actor_opt,
                ts.target_actor_params, ts.target_critic_params)  # fmt: skip

    due = ts.sgd_steps % c.policy_delay == 0
    a_loss, actor_params, actor_opt, target_actor, target_critic = jax.lax.cond(due, delayed, skipped, None)
    ts = ts.replace(
        actor_params=actor_params,
        critic_params=critic_params,
        target_actor_params=target_actor,
        target_critic_params=target_critic,
        actor_opt=actor_opt,
        critic_opt=critic_opt,
        sgd_steps=ts.sgd_steps + 1,
    )
    metrics = {
        "critic_loss": c_loss,
        "actor_loss": a_loss,
        "alpha": jnp.zeros(()),  # TD3 has no entropy bonus; the epoch's log line reads a temperature
        "q": contrastive.masked_mean(q, batch.valid),
        "reward": contrastive.masked_mean(batch.reward, batch.valid),
    }
    return ts, metrics


# ===== 6. Update (one training step's SGD) and the training step ==================================


def update(s: baselines.Setup, ts: TrainingState, buf):
    key, k_sample, k_sgd = jax.random.split(ts.key, 3)
    idx = baselines.sample_indices(s.config, s.derived, buf, k_sample)
    keys = jax.random.split(k_sgd, s.config.num_sgd_batches_per_training_step)
    ts, metrics = jax.lax.scan(lambda ts, xs: sgd_step(s, ts, buf, *xs), ts.replace(key=key), (idx, keys))
    return ts, jax.tree.map(jnp.mean, metrics)


def training_step(s: baselines.Setup, ts: TrainingState, env_state, buf):
    ts, env_state, buf = baselines.collect_and_store(s, ts, env_state, buf)
    ts, metrics = update(s, ts, buf)
    return ts, env_state, buf, {**metrics, **baselines.param_norms(ts)}


# ===== 7. Building and main ========================================================================


def init(s: baselines.Setup, key):
    """(TrainingState, env states, empty replay buffer) of a new run; targets = online networks."""
    k_actor, k_critic, k_env, k_train = jax.random.split(key, 4)
    d = s.derived
    obs_dim = d.obs_dim + d.goal_end - d.goal_start
    actor_params = s.nets.actor.init(k_actor, jnp.zeros((1, obs_dim)))
    critic_params = baselines.init_twin(s.nets.q, k_critic, obs_dim + d.action_dim)
    ts = TrainingState(
        actor_params=actor_params,
        critic_params=critic_params,
        target_actor_params=actor_params,
        target_critic_params=critic_params,
        actor_opt=s.optimizers.actor.init(actor_params),
        critic_opt=s.optimizers.critic.init(critic_params),
        sgd_steps=jnp.zeros((), jnp.int32),
        key=k_train,
    )
    return (ts, *baselines.init_env_and_buffer(s, k_env))


def explore(nets: Networks, noise: float, ts: TrainingState, obs, key):
    """mu(s, g) + N(0, noise^2), clipped to the action box."""
    action = nets.actor.apply(ts.actor_params, obs)
    return jnp.clip(action + noise * jax.random.normal(key, action.shape), -1.0, 1.0)


def make_setup(config: Config) -> tuple[baselines.Setup, Any]:
    env, derived, train_env, success = baselines.make_env_and_derived(config)
    for name, value in (("policy_delay", config.policy_delay),):
        if value < 1:
            raise runs.ConfigError(f"--{name} must be positive, got {value}")
    for name in ("policy_noise", "noise_clip", "exploration_noise"):
        if getattr(config, name) < 0:
            raise runs.ConfigError(f"--{name} must be >= 0, got {getattr(config, name)}")
    nets = make_networks(config, derived)
    optimizers = Optimizers(optax.adam(config.actor_lr), optax.adam(config.critic_lr))
    return baselines.Setup(config, derived, nets, optimizers, train_env, success,
                           partial(explore, nets, config.exploration_noise)), env  # fmt: skip


def build(config: Config, report=None) -> baselines.Trainer:
    s, env = make_setup(config)
    policy = lambda mode: lambda actor_params, critic_params, obs, key: s.nets.actor.apply(actor_params, obs)  # noqa: E731
    value = lambda critic_params, state, action, goal: jnp.min(  # noqa: E731
        twin_q(s.nets.q, critic_params, jnp.concatenate([state, goal], -1), action), axis=0)
    return baselines.jit_trainer(s, env, init, training_step, policy, value,
                                 ("actor_params", "critic_params"), report)  # fmt: skip


def train_run(config: Config, stop: Optional[runs.StopSignals] = None) -> dict | list[dict]:
    """Runs (or resumes) an experiment; returns the last epoch's metrics record (a list, one per seed,
    with --num_seeds > 1)."""
    return train.train(config, stop, make_trainer=build)


def parse_config(args: Optional[list[str]] = None) -> Config:
    return baselines.parse_config(Config, args)


def main(args: Optional[list[str]] = None) -> None:
    runs.main(partial(parse_config, args), train_run)


if __name__ == "__main__":
    main()
