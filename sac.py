"""SAC+HER with deep residual networks: the paper's soft actor-critic baseline, in one file.

The paper (Wang et al. 2025, Fig. 3) scales the depth of SAC's networks as it does CRL's and finds
that SAC saturates beyond about 4 layers. This file trains SAC on the same goal-conditioned envs,
residual torso (train.py), evaluation protocol and run management, with the sparse reward "the next
state meets the goal" under hindsight relabelling (baselines.py holds what SAC and TD3 share).

Read top to bottom:
  1. config          baselines.Config (train.py's flags) + SAC's entropy flags
  2. networks        tanh-Gaussian actor (train.Actor) and twin Q networks, each on train.Torso
  3. critic loss     soft TD target from the target critics: r + gamma (min_i Q'_i(s', a') - alpha log pi(a'))
  4. actor loss      alpha log pi(a) - min_i Q_i(s, a); temperature loss (train.alpha_loss)
  5. SGD step        critic, actor, alpha from one HER batch, then Polyak averaging of the target critics
  6. update, epoch   sample hindsight goals, scan the SGD steps; collect + update per training step
  7. main            train.train with this build: epochs, evaluation, checkpoints, exact resume

    uv run sac.py --env_id reacher --num_envs 32 ...   (docs/baselines.md)
"""

from __future__ import annotations

import signal

if __name__ == "__main__":
    # A stop signal during the slow imports waits, pending, until runs.StopSignals handles it.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGUSR1, signal.SIGINT})

from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, Literal, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax
from flax import struct

import baselines
import contrastive
import runs
import train
from baselines import QNetwork, twin_q
from runs import Bool

# ===== 1. Config ==================================================================================


@dataclass
class Config(baselines.Config):
    """SAC+HER with deep residual actor and twin critics (the paper's SAC baseline)."""

    # --- experiment
    algorithm: ClassVar[str] = "sac"  # recorded in config.json (runs.described), not a flag
    exp_name: str = "sac"
    """Name of the experiment; part of the run directory and wandb run name."""

    # --- entropy and action selection
    alpha_lr: float = 3e-4
    """Entropy temperature learning rate (Adam)."""
    entropy_param: float = 0.5
    """Target entropy = -entropy_param * action_dim (brax's SAC: 0.5)."""
    disable_entropy: Bool = False
    """Drop the entropy term: alpha = 0 and no temperature update."""
    log_prob_correction: Literal["exact", "authors"] = "exact"
    """tanh change of variables in log pi(a): exact = 2 (log 2 - u - softplus(-2u)); authors =
    log(1 - tanh(u)^2 + 1e-6), which stops penalising saturated actions."""
    eval_actor: int = 0
    """Actor for evaluation: 0 deterministic tanh(mean), 1 stochastic."""


# ===== 2. Networks ================================================================================


class Networks(NamedTuple):
    actor: train.Actor  # pi(a | s, g): tanh-Gaussian
    q: QNetwork  # one Q(s, g, a); twin_q applies the two stacked parameter sets
    log_prob_correction: str


def make_networks(config: Config, d: train.Derived) -> Networks:
    return Networks(train.Actor(train.make_torso(config, "actor"), d.action_dim),
                    QNetwork(train.make_torso(config, "critic")), config.log_prob_correction)  # fmt: skip


def sample_action(nets: Networks, actor_params, obs, key) -> tuple[jax.Array, jax.Array]:
    """a ~ pi(. | s, g) and log pi(a)."""
    mean, log_std = nets.actor.apply(actor_params, obs)
    return train.tanh_gaussian_sample(key, mean, log_std, nets.log_prob_correction)


# ===== 3. Critic loss: soft TD target from the target critics =====================================


def critic_loss(critic_params, target_critic_params, actor_params, alpha, nets: Networks,
                batch: baselines.Batch, key, gamma: float, reward_scaling: float):  # fmt: skip
    """0.5 E[(Q_i(s, a) - y)^2] over both critics, y = reward_scaling r + gamma (min_i Q'_i(s', a')
    - alpha log pi(a' | s')) with a' ~ pi(s'): the target critics score the current actor's action."""
    next_action, next_log_prob = sample_action(nets, actor_params, batch.next_obs, key)
    next_q = jnp.min(twin_q(nets.q, target_critic_params, batch.next_obs, next_action), axis=0)
    target = baselines.td_target(batch.reward, next_q - alpha * next_log_prob, gamma, reward_scaling)
    q = twin_q(nets.q, critic_params, batch.obs, batch.action)
    return baselines.q_loss(q, target, batch.valid), jnp.mean(q, axis=0)


# ===== 4. Actor and temperature losses ============================================================


def actor_loss(actor_params, critic_params, alpha, nets: Networks, batch: baselines.Batch, key):
    """E[alpha log pi(a | s) - min_i Q_i(s, a)], a ~ pi(s): the reparameterised sample carries the
    gradient through the critics into the actor."""
    action, log_prob = sample_action(nets, actor_params, batch.obs, key)
    q = jnp.min(twin_q(nets.q, critic_params, batch.obs, action), axis=0)
    return contrastive.masked_mean(alpha * log_prob - q, batch.valid), log_prob


# train.alpha_loss: moves alpha so that the policy's entropy -log pi tracks the target entropy.


# ===== 5. One SGD step =============================================================================


@struct.dataclass
class TrainingState:
    actor_params: Any
    critic_params: Any  # the two Q networks, stacked
    log_alpha: jax.Array
    target_critic_params: Any
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any
    key: jax.Array


def sgd_step(s: baselines.Setup, ts: TrainingState, buf, idx, key):
    """Critic, actor and temperature from the same (old) parameters and batch, then the target critics
    move tau of the way to the new critics."""
    c, d, nets = s.config, s.derived, s.nets
    k_batch, k_critic, k_actor = jax.random.split(key, 3)
    batch = baselines.her_batch(c, d, s.success, buf, idx, k_batch)
    alpha = 0.0 if c.disable_entropy else jnp.exp(ts.log_alpha)

    (c_loss, q), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(
        ts.critic_params, ts.target_critic_params, ts.actor_params, alpha, nets, batch, k_critic, c.gamma,
        c.reward_scaling,
    )
    (a_loss, log_prob), a_grads = jax.value_and_grad(actor_loss, has_aux=True)(
        ts.actor_params, ts.critic_params, alpha, nets, batch, k_actor
    )
    if c.disable_entropy:
        al_loss, log_alpha, alpha_opt = jnp.zeros(()), ts.log_alpha, ts.alpha_opt
    else:
        al_loss, al_grad = jax.value_and_grad(train.alpha_loss)(ts.log_alpha, log_prob, d.target_entropy,
                                                                batch.valid)  # fmt: skip
        updates, alpha_opt = s.optimizers.alpha.update(al_grad, ts.alpha_opt)
        log_alpha = optax.apply_updates(ts.log_alpha, updates)

    updates, actor_opt = s.optimizers.actor.update(a_grads, ts.actor_opt)
    actor_params = optax.apply_updates(ts.actor_params, updates)
    updates, critic_opt = s.optimizers.critic.update(c_grads, ts.critic_opt)
    critic_params = optax.apply_updates(ts.critic_params, updates)

    ts = ts.replace(
        actor_params=actor_params,
        critic_params=critic_params,
        log_alpha=log_alpha,
        target_critic_params=baselines.polyak(ts.target_critic_params, critic_params, c.tau),
        actor_opt=actor_opt,
        critic_opt=critic_opt,
        alpha_opt=alpha_opt,
    )
    metrics = {
        "critic_loss": c_loss,
        "actor_loss": a_loss,
        "alpha_loss": al_loss,
        "alpha": alpha * jnp.ones(()),
        "entropy": -contrastive.masked_mean(log_prob, batch.valid),
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
    """(TrainingState, env states, empty replay buffer) of a new run; target critics = critics."""
    k_actor, k_critic, k_env, k_train = jax.random.split(key, 4)
    d = s.derived
    obs_dim = d.obs_dim + d.goal_end - d.goal_start
    actor_params = s.nets.actor.init(k_actor, jnp.zeros((1, obs_dim)))
    critic_params = baselines.init_twin(s.nets.q, k_critic, obs_dim + d.action_dim)
    log_alpha = jnp.zeros((), jnp.float32)
    ts = TrainingState(
        actor_params=actor_params,
        critic_params=critic_params,
        log_alpha=log_alpha,
        target_critic_params=critic_params,
        actor_opt=s.optimizers.actor.init(actor_params),
        critic_opt=s.optimizers.critic.init(critic_params),
        alpha_opt=s.optimizers.alpha.init(log_alpha),
        key=k_train,
    )
    return (ts, *baselines.init_env_and_buffer(s, k_env))


def make_policy(nets: Networks, mode: int):
    """policy(actor_params, critic_params, obs, key): 0 deterministic tanh(mean), 1 a sample."""

    def policy(actor_params, critic_params, obs, key):
        if mode == 0:
            return jnp.tanh(nets.actor.apply(actor_params, obs)[0])
        return sample_action(nets, actor_params, obs, key)[0]

    return policy


def make_setup(config: Config) -> tuple[baselines.Setup, Any]:
    env, derived, train_env, success = baselines.make_env_and_derived(config, config.entropy_param)
    if config.eval_actor not in (0, 1):
        raise runs.ConfigError(f"--eval_actor must be 0 (deterministic) or 1 (stochastic), got {config.eval_actor}")
    nets = make_networks(config, derived)
    optimizers = train.Optimizers(*(optax.adam(lr) for lr in (config.actor_lr, config.critic_lr, config.alpha_lr)))
    explore = lambda ts, obs, key: sample_action(nets, ts.actor_params, obs, key)[0]  # noqa: E731
    return baselines.Setup(config, derived, nets, optimizers, train_env, success, explore), env


def build(config: Config, report=None) -> baselines.Trainer:
    s, env = make_setup(config)
    value = lambda critic_params, state, action, goal: jnp.min(  # noqa: E731
        twin_q(s.nets.q, critic_params, jnp.concatenate([state, goal], -1), action), axis=0)
    return baselines.jit_trainer(s, env, init, training_step, partial(make_policy, s.nets), value,
                                 train.PARAMS_FIELDS, report)  # fmt: skip


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
