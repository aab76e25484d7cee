"""Contrastive RL (CRL) with very deep residual networks, in one file.

Implements "1000 Layer Networks for Self-Supervised RL" (Wang et al., NeurIPS 2025):
an actor and a contrastive critic built from residual blocks of
Dense -> LayerNorm -> Swish, trained online on goal-conditioned Brax tasks with
no reward, only hindsight goals taken from the agent's own future states.

Reading order follows the paper: config, networks, losses, data collection,
update, epoch loop, logging/checkpoints, main.

    uv run train.py --env_id reacher --num_envs 64 ...   (see README.md)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import tyro
from brax.envs.base import Wrapper
from brax.envs.wrappers import training as brax_wrappers
from flax import struct
from tyro.constructors import PrimitiveConstructorSpec

import buffer as replay
import envs
import evaluation

log = logging.getLogger("crl")


# =============================================================================
# Config
# =============================================================================


def _parse_bool(args: list[str]) -> bool:
    value = args[0].lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    raise ValueError(f"expected True/False (or 1/0), got {args[0]!r}")


# Boolean options take a value (`--track False`, `--save_buffer 0`) so that the
# paper's scripts and wandb sweeps, which pass values, parse unchanged.
Bool = Annotated[
    bool,
    PrimitiveConstructorSpec(
        nargs=1,
        metavar="{True,False}",
        instance_from_str=_parse_bool,
        is_instance=lambda x: isinstance(x, bool),
        str_from_instance=lambda b: [str(b)],
    ),
    tyro.conf.FlagConversionOff,
]


@dataclass
class Config:
    """Contrastive RL with deep residual actor and critic. Defaults: the paper's Table 2."""

    # --- experiment
    exp_name: str = "crl"
    """Name of the experiment; part of the run directory and wandb run name."""
    seed: int = 0
    """Random seed; the same seed and config give the same numbers on CPU."""
    run_root: str = "runs"
    """Directory under which each run gets its own folder (config, metrics, checkpoints)."""
    run_dir: Optional[str] = None
    """This run's folder; None = a new one under run_root named env__exp_name__seed__time. A folder
    that already holds a checkpoint is resumed, so a requeued job passes the same --run_dir."""
    resume: Optional[str] = None
    """Run folder to continue from its latest checkpoint, with its saved config; flags given next to
    it must agree with that config (run-management flags such as logging may change)."""
    distributed: Literal["auto", "on", "off"] = "auto"
    """Multi-process (multi-node) JAX: auto = initialise jax.distributed when SLURM started more
    than one task; on = always (SLURM, or JAX_COORDINATOR_ADDRESS etc. set); off = never."""

    # --- environment
    env_id: str = "ant"
    """Training environment id (see envs.ENV_IDS)."""
    eval_env_id: Optional[str] = None
    """Evaluation environment id; None means the same as env_id."""
    env_backend: Optional[str] = None
    """Override the env's physics pipeline (spring, generalized, positional, mjx); None keeps its default."""
    env_timestep: Optional[float] = None
    """Override the env's physics timestep in seconds; None keeps its default."""
    episode_length: int = 1000
    """Steps per episode, in training and evaluation."""
    reset_mode: Literal["replay", "fresh"] = "replay"
    """What a training env does when its episode ends. replay: restore that env's first start and
    goal (brax's AutoResetWrapper, the paper's code), so training only ever sees num_envs goals.
    fresh: draw a new start and goal."""
    num_envs: int = 512
    """Parallel training environments."""
    num_eval_envs: int = 128
    """Parallel evaluation environments (one episode each per evaluation)."""

    # --- schedule
    total_env_steps: int = 100_000_000
    """Total environment steps, including the replay-buffer prefill."""
    num_epochs: int = 100
    """Epochs; one evaluation, log line and metrics record after each."""
    unroll_length: int = 62
    """Steps each env takes per training step (with 512 envs and 800 SGD steps: UTD 1:40)."""

    # --- replay buffer
    max_replay_size: int = 10_000
    """Buffer capacity in time steps per env (FIFO)."""
    min_replay_size: int = 1_000
    """Time steps per env collected before the first update."""

    # --- update
    batch_size: int = 512
    """Transitions per SGD step; also the number of InfoNCE negatives."""
    num_sgd_batches_per_training_step: int = 800
    """SGD steps per training step (800 x 512 samples per 512 x 62 env steps: UTD 1:40)."""
    gamma: float = 0.99
    """Discount: hindsight goal k steps ahead is drawn with P(k) proportional to gamma^(k-1)."""
    actor_lr: float = 3e-4
    """Actor learning rate (Adam)."""
    critic_lr: float = 3e-4
    """Critic learning rate (Adam)."""
    alpha_lr: float = 3e-4
    """Entropy temperature learning rate (Adam)."""
    logsumexp_penalty_coeff: float = 0.1
    """Weight of the logsumexp^2 penalty that keeps the InfoNCE logits normalised."""

    # --- networks
    repr_dim: int = 64
    """Representation size of phi(s, a) and psi(g)."""
    critic_network_width: int = 256
    """Hidden width of both critic encoders."""
    critic_depth: int = 4
    """Dense layers in the critic's residual blocks (4N); the paper scales this to 1024."""
    critic_skip_connections: int = 4
    """Dense layers per critic residual block; 0 = plain MLP without skips."""
    actor_network_width: int = 256
    """Hidden width of the actor."""
    actor_depth: int = 4
    """Dense layers in the actor's residual blocks."""
    actor_skip_connections: int = 4
    """Dense layers per actor residual block; 0 = plain MLP without skips."""
    use_relu: Bool = False
    """Use ReLU instead of Swish activations."""
    unroll_blocks: int = 16
    """Torsos with at most this many residual blocks (depth / skip) are unrolled into straight-line
    code: on CPU, 1.1-1.3x more SGD steps/s at depths 16-64, since XLA can lay out and fuse across
    blocks, but compile time grows with depth. Deeper torsos run their blocks as a loop, so compile
    time stays flat. 0 = always loop. Parameters are stacked either way (checkpoints do not depend
    on it)."""
    remat: Bool = False
    """Recompute residual blocks in the backward pass (gradient checkpointing): activation memory
    stops growing with depth, for about one more forward pass of compute."""
    matmul_dtype: Literal["float32", "bfloat16"] = "float32"
    """Dtype of the hidden layers' matmuls; parameters, LayerNorm, representations and InfoNCE
    logits stay float32. bfloat16 is for GPUs/TPUs (slow on most CPUs)."""

    # --- entropy and action selection
    entropy_param: float = 0.5
    """Target entropy = -entropy_param * action_dim."""
    disable_entropy: Bool = False
    """Drop the entropy term: alpha = 0 and no temperature update."""
    expl_actor: int = 1
    """Actor for data collection: 0 deterministic, 1 stochastic, K >= 2 best of K samples by critic."""
    eval_actor: int = 0
    """Actor for evaluation: 0 deterministic, 1 stochastic, K >= 2 best of K samples by critic."""

    # --- logging
    track: Bool = True
    """Log to wandb (offline unless wandb_mode says otherwise)."""
    wandb_project_name: str = "deep-crl"
    """wandb project."""
    wandb_entity: Optional[str] = None
    """wandb entity (team or user); None uses your wandb default."""
    wandb_mode: Literal["offline", "online", "disabled"] = "offline"
    """offline never touches the network (sync later with `wandb sync`); online streams."""
    wandb_group: Optional[str] = None
    """wandb group, e.g. to gather seeds of one configuration."""
    wandb_dir: Optional[str] = None
    """Where wandb writes its files; None = the run directory."""

    compilation_cache_dir: Optional[str] = None
    """Persistent XLA compilation cache; a later run of the same config (or a requeued job)
    loads its compiled programs instead of compiling again. None = no cache."""

    # --- checkpoints and artefacts
    checkpoint: Bool = True
    """Save the full training state every checkpoint_every epochs, at the end, and when SLURM
    warns of preemption (SIGUSR1/SIGTERM)."""
    checkpoint_every: int = 10
    """Epochs between checkpoints."""
    checkpoint_keep: int = 3
    """Checkpoints kept on disk; older ones are deleted only after a newer one is complete."""
    save_buffer: Bool = True
    """Include the replay buffer in checkpoints, so that a resumed run continues exactly. Off
    (`--save_buffer 0`, as in the paper's scripts) keeps checkpoints small (the buffer holds
    num_envs x max_replay_size transitions); a resumed run then refills its buffer first."""
    capture_vis: Bool = True
    """After training, save HTML and MP4 renders of the evaluation policy and, on mazes, the critic's
    value map (qvalue_heatmap.png) in the run directory (evaluation.visualize)."""
    vis_length: int = 1000
    """Steps per rendered rollout."""
    num_render: int = 1
    """Rollouts (different goals) rendered when capture_vis is on."""


class ConfigError(ValueError):
    """A configuration that cannot run; the message says what to change."""


@dataclass(frozen=True)
class Derived:
    """Quantities computed from the config and the env, never set by hand."""

    obs_dim: int
    goal_start: int
    goal_end: int
    action_dim: int
    env_steps_per_training_step: int
    prefill_unrolls: int
    training_steps_per_epoch: int
    window: int  # consecutive steps per env from which goals are drawn
    target_entropy: float

    @property
    def prefill_env_steps(self) -> int:
        return self.prefill_unrolls * self.env_steps_per_training_step


def validate(config: Config) -> None:
    """Checks the config before anything is built or compiled; raises ConfigError."""
    positive = [
        "episode_length", "num_envs", "num_eval_envs", "total_env_steps", "num_epochs",
        "unroll_length", "max_replay_size", "min_replay_size", "batch_size",
        "num_sgd_batches_per_training_step", "repr_dim", "critic_network_width",
        "actor_network_width", "critic_depth", "actor_depth", "checkpoint_every",
        "checkpoint_keep", "vis_length",
    ]  # fmt: skip
    for name in positive:
        if getattr(config, name) <= 0:
            raise ConfigError(f"--{name} must be positive, got {getattr(config, name)}")
    for name in ["actor_lr", "critic_lr", "alpha_lr"]:
        if not getattr(config, name) > 0:
            raise ConfigError(f"--{name} must be positive, got {getattr(config, name)}")
    for name in ["expl_actor", "eval_actor", "num_render", "logsumexp_penalty_coeff", "unroll_blocks"]:
        if getattr(config, name) < 0:
            raise ConfigError(f"--{name} must be >= 0, got {getattr(config, name)}")
    if not 0.0 < config.gamma < 1.0:
        raise ConfigError(f"--gamma must lie in (0, 1), got {config.gamma}")
    for net in ["actor", "critic"]:
        depth = getattr(config, f"{net}_depth")
        block = getattr(config, f"{net}_skip_connections")
        if block < 0:
            raise ConfigError(f"--{net}_skip_connections must be >= 0, got {block}")
        if block and depth % block:
            raise ConfigError(
                f"--{net}_depth {depth} is not a multiple of the residual block size "
                f"{block} (--{net}_skip_connections): depth counts the Dense layers in "
                f"the residual blocks; use e.g. {max(block, depth - depth % block)} "
                f"or {depth - depth % block + block}"
            )
    if config.min_replay_size > config.max_replay_size:
        raise ConfigError(
            f"--min_replay_size {config.min_replay_size} exceeds --max_replay_size {config.max_replay_size}"
        )
    if config.unroll_length > config.max_replay_size:
        raise ConfigError(
            f"--unroll_length {config.unroll_length} exceeds --max_replay_size "
            f"{config.max_replay_size}: one unroll must fit in the buffer"
        )
    devices = jax.device_count()
    for name in ("num_envs", "batch_size"):
        if getattr(config, name) % devices:
            raise ConfigError(
                f"--{name} {getattr(config, name)} does not divide evenly over the {devices} "
                f"devices that share the work; use a multiple of {devices}"
            )
    for env_id in (config.env_id, config.eval_env_id or config.env_id):
        try:
            envs.check_id(env_id)
        except ValueError as e:
            raise ConfigError(str(e)) from None

    prefill_unrolls, training_steps, window = schedule(config)
    steps_per_unroll = config.num_envs * config.unroll_length
    if training_steps < 1:
        prefill = prefill_unrolls * steps_per_unroll
        need = prefill + config.num_epochs * steps_per_unroll
        raise ConfigError(
            f"--total_env_steps {config.total_env_steps:,} leaves no training step per "
            f"epoch after the {prefill:,}-step prefill; raise it to at least "
            f"{need:,}, or lower --num_epochs / --num_envs / --unroll_length"
        )
    sampled = config.num_envs * window
    needed = config.batch_size * config.num_sgd_batches_per_training_step
    if needed > sampled:
        raise ConfigError(
            f"--batch_size {config.batch_size} x --num_sgd_batches_per_training_step "
            f"{config.num_sgd_batches_per_training_step} = {needed:,} transitions, but one "
            f"training step samples only num_envs x min(episode_length, prefilled steps) = "
            f"{config.num_envs} x {window} = {sampled:,}; lower the batch size or SGD "
            f"steps, or raise --num_envs / --episode_length / --min_replay_size"
        )


def schedule(config: Config) -> tuple[int, int, int]:
    """(prefill unrolls, training steps per epoch, goal-sampling window) of a config."""
    prefill_unrolls = math.ceil(config.min_replay_size / config.unroll_length)
    steps_per_unroll = config.num_envs * config.unroll_length
    training_steps = (config.total_env_steps - prefill_unrolls * steps_per_unroll) // (
        config.num_epochs * steps_per_unroll
    )
    stored_after_prefill = min(prefill_unrolls * config.unroll_length, config.max_replay_size)
    window = min(config.episode_length, stored_after_prefill)
    return prefill_unrolls, training_steps, window


def derive(config: Config, env: envs.GoalEnv) -> Derived:
    prefill_unrolls, training_steps, window = schedule(config)
    return Derived(
        obs_dim=env.obs_dim,
        goal_start=env.goal_start,
        goal_end=env.goal_end,
        action_dim=env.action_size,
        env_steps_per_training_step=config.num_envs * config.unroll_length,
        prefill_unrolls=prefill_unrolls,
        training_steps_per_epoch=training_steps,
        window=window,
        target_entropy=-config.entropy_param * env.action_size,
    )


def make_env(env_id: str, config: Config) -> envs.GoalEnv:
    overrides = {}
    if config.env_backend is not None:
        overrides["backend"] = config.env_backend
    if config.env_timestep is not None:
        overrides["timestep"] = config.env_timestep
    try:
        return envs.make(env_id, **overrides)
    except (ValueError, TypeError) as e:  # unknown id, backend or option
        raise ConfigError(str(e)) from None


# =============================================================================
# Networks (paper Fig. 2)
# =============================================================================

# Uniform variance-scaling init with scale 1/3 (PyTorch's Linear default).
dense_init = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class DenseNormAct(nn.Module):
    width: int
    activation: Callable[[jax.Array], jax.Array]
    dtype: Any = jnp.float32  # matmul dtype; parameters and LayerNorm stay float32

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(self.width, kernel_init=dense_init, dtype=self.dtype)(x)
        return self.activation(nn.LayerNorm(dtype=jnp.float32)(x))


class ResidualBlock(nn.Module):
    """h -> h + F(h), F = `layers` x (Dense -> LayerNorm -> act); the skip joins after
    the block's last activation. Without `residual` it is a plain stack (Fig. 9 ablation)."""

    width: int
    layers: int
    activation: Callable[[jax.Array], jax.Array]
    residual: bool
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, h, _):
        x = h
        for _ in range(self.layers):
            x = DenseNormAct(self.width, self.activation, self.dtype)(x)
        return (h + x if self.residual else x), None


class Torso(nn.Module):
    """Input layer, then depth / block_size residual blocks.

    The blocks share one traced body under `nn.scan` (parameters stacked on a
    leading axis), so compile time does not grow with depth. Up to
    `unroll_blocks` blocks, the scan is unrolled (same parameters, faster code,
    longer compile). With `remat`, a
    block's activations are recomputed in the backward pass instead of stored,
    so activation memory no longer grows with depth.
    """

    width: int
    depth: int
    skip_connections: int
    activation: Callable[[jax.Array], jax.Array]
    remat: bool = False
    dtype: Any = jnp.float32
    unroll_blocks: int = 0

    @nn.compact
    def __call__(self, x):
        h = DenseNormAct(self.width, self.activation, self.dtype)(x)
        layers = self.skip_connections or 1
        num_blocks = self.depth // layers
        block = nn.remat(ResidualBlock, prevent_cse=False) if self.remat else ResidualBlock
        blocks = nn.scan(
            block,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            length=num_blocks,
            # In a loop, XLA:CPU reads each block's saved activations through a dynamic
            # slice of a fixed layout and runs the weight-gradient matmul on a slow path.
            unroll=num_blocks if num_blocks <= self.unroll_blocks else 1,
        )
        residual = self.skip_connections > 0
        h, _ = blocks(self.width, layers, self.activation, residual, self.dtype, name="blocks")(h, None)
        return h


class Encoder(nn.Module):
    """phi(s, a) (sa_encoder) or psi(g) (g_encoder): torso + linear map to repr_dim (float32)."""

    torso: Torso
    repr_dim: int

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.repr_dim, kernel_init=dense_init)(self.torso(x))


class Actor(nn.Module):
    """pi(a | s, g): torso + Gaussian heads; log-std squashed into [LOG_STD_MIN, LOG_STD_MAX]."""

    torso: Torso
    action_dim: int

    @nn.compact
    def __call__(self, state_goal):
        h = self.torso(state_goal)
        mean = nn.Dense(self.action_dim, kernel_init=dense_init)(h)
        log_std = jnp.tanh(nn.Dense(self.action_dim, kernel_init=dense_init)(h))
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1.0)
        return mean, log_std


class Networks(NamedTuple):
    actor: Actor
    sa_encoder: Encoder
    g_encoder: Encoder


def make_networks(config: Config, derived: Derived) -> Networks:
    activation = nn.relu if config.use_relu else nn.swish
    dtype = jnp.dtype(config.matmul_dtype)

    def torso(net: str) -> Torso:
        return Torso(
            getattr(config, f"{net}_network_width"),
            getattr(config, f"{net}_depth"),
            getattr(config, f"{net}_skip_connections"),
            activation,
            config.remat,
            dtype,
            config.unroll_blocks,
        )

    return Networks(
        actor=Actor(torso("actor"), derived.action_dim),
        sa_encoder=Encoder(torso("critic"), config.repr_dim),
        g_encoder=Encoder(torso("critic"), config.repr_dim),
    )


def init_params(nets: Networks, key: jax.Array, derived: Derived) -> tuple[Any, Any]:
    k_actor, k_sa, k_g = jax.random.split(key, 3)
    goal_dim = derived.goal_end - derived.goal_start
    actor_params = nets.actor.init(k_actor, jnp.zeros((1, derived.obs_dim + goal_dim)))
    critic_params = {
        "sa_encoder": nets.sa_encoder.init(k_sa, jnp.zeros((1, derived.obs_dim + derived.action_dim))),
        "g_encoder": nets.g_encoder.init(k_g, jnp.zeros((1, goal_dim))),
    }
    return actor_params, critic_params


# =============================================================================
# Critic: energy, InfoNCE, logsumexp penalty
# =============================================================================


def safe_sqrt(x: jax.Array) -> jax.Array:
    """sqrt with gradient 0 (not inf/NaN) at x = 0."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def matched_energy(phi: jax.Array, psi: jax.Array) -> jax.Array:
    """-||phi_i - psi_i||_2 for matched rows only: [B]."""
    return -safe_sqrt(jnp.sum((phi - psi) ** 2, axis=-1))


def l2_energy(phi: jax.Array, psi: jax.Array) -> jax.Array:
    """Critic logits f(s_i, a_i, g_j) = -||phi_i - psi_j||_2 for all pairs of a batch: [B, B].

    The sign matters: the paper writes the plain norm, but a larger logit must
    mean "g is more likely reached", so the logit is the negative distance.
    """
    # ||phi_i - psi_j||^2 = |phi_i|^2 + |psi_j|^2 - 2 phi_i . psi_j: one B x B matmul instead of a
    # B x B x repr_dim difference tensor and its backward (49x faster at batch 512 on a CPU, and
    # no 4 GiB intermediate at batch 4096). HIGHEST keeps TF32 GPUs from losing precision; the
    # clip removes rounding below zero.
    cross = jnp.matmul(phi, psi.T, precision=jax.lax.Precision.HIGHEST)
    squared = jnp.sum(phi**2, axis=-1)[:, None] + jnp.sum(psi**2, axis=-1)[None, :] - 2.0 * cross
    energy = -safe_sqrt(jnp.maximum(squared, 0.0))
    # The positives are the pairs the critic pulls together, where that sum cancels worst:
    # take them from the differences directly.
    return jnp.where(jnp.eye(phi.shape[0], dtype=bool), matched_energy(phi, psi)[:, None], energy)


def masked_mean(x: jax.Array, valid: jax.Array) -> jax.Array:
    w = valid.astype(x.dtype)
    return jnp.sum(x * w) / jnp.maximum(jnp.sum(w), 1.0)


def infonce_loss(logits: jax.Array, valid: jax.Array, logsumexp_penalty: float):
    """InfoNCE with positives on the diagonal, plus logsumexp_penalty * logsumexp^2.

    Row i contrasts its own future goal (column i) against the other goals of
    the batch. Rows without a valid goal (`valid` False) are left out of the mean.
    """
    lse = jax.nn.logsumexp(logits, axis=1)
    positive = jnp.diagonal(logits)
    loss = masked_mean(lse - positive + logsumexp_penalty * lse**2, valid)
    metrics = {
        "categorical_accuracy": masked_mean(jnp.argmax(logits, axis=1) == jnp.arange(logits.shape[0]), valid),
        "logits_pos": masked_mean(positive, valid),
        "logits_neg": jnp.mean(logits),
        "logsumexp": masked_mean(lse, valid),
    }
    return loss, metrics


def critic_loss(critic_params, nets: Networks, state, action, goal, valid, logsumexp_penalty):
    """InfoNCE loss and metrics; psi(g) comes back too, for the actor loss to reuse."""
    phi = nets.sa_encoder.apply(critic_params["sa_encoder"], jnp.concatenate([state, action], -1))
    psi = nets.g_encoder.apply(critic_params["g_encoder"], goal)
    loss, metrics = infonce_loss(l2_energy(phi, psi), valid, logsumexp_penalty)
    return loss, (metrics, psi)


def critic_value(critic_params, nets: Networks, state, action, goal=None, psi=None) -> jax.Array:
    """f(s, a, g) = -||phi(s, a) - psi(g)|| for matched rows: [B]. Pass psi when it is known."""
    phi = nets.sa_encoder.apply(critic_params["sa_encoder"], jnp.concatenate([state, action], -1))
    if psi is None:
        psi = nets.g_encoder.apply(critic_params["g_encoder"], goal)
    return matched_energy(phi, psi)


# =============================================================================
# Actor: tanh-Gaussian policy, entropy temperature
# =============================================================================


def tanh_gaussian_sample(key, mean, log_std) -> tuple[jax.Array, jax.Array]:
    """a = tanh(u), u ~ N(mean, std); log pi(a) includes the tanh log-det correction."""
    u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
    return jnp.tanh(u), tanh_gaussian_log_prob(u, mean, log_std)


def tanh_gaussian_log_prob(u, mean, log_std) -> jax.Array:
    gaussian = -0.5 * ((u - mean) / jnp.exp(log_std)) ** 2 - log_std - 0.5 * jnp.log(2 * jnp.pi)
    # log(1 - tanh(u)^2), written so it stays finite for large |u|.
    log_det = 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))
    return jnp.sum(gaussian - log_det, axis=-1)


def actor_loss(actor_params, critic_params, alpha, nets: Networks, state, goal, psi, valid, key):
    """Maximise f(s, pi(s, g), g) - alpha * log pi: the critic scores the actor's own action.

    psi = psi(g) from the critic loss's forward pass: the same critic parameters and goals,
    so it is not computed twice."""
    mean, log_std = nets.actor.apply(actor_params, jnp.concatenate([state, goal], -1))
    action, log_prob = tanh_gaussian_sample(key, mean, log_std)
    q = critic_value(critic_params, nets, state, action, psi=jax.lax.stop_gradient(psi))
    loss = masked_mean(alpha * log_prob - q, valid)
    return loss, log_prob


def alpha_loss(log_alpha, log_prob, target_entropy, valid):
    """Moves alpha so that the policy entropy -log pi tracks target_entropy."""
    return masked_mean(jnp.exp(log_alpha) * jax.lax.stop_gradient(-log_prob - target_entropy), valid)


def make_policy(nets: Networks, obs_dim: int, mode: int):
    """Returns policy(actor_params, critic_params, obs, key) -> action for one actor mode.

    0: deterministic tanh(mean); 1: a sample; K >= 2: the best of K samples by critic value.
    """

    def policy(actor_params, critic_params, obs, key):
        mean, log_std = nets.actor.apply(actor_params, obs)
        if mode == 0:
            return jnp.tanh(mean)
        if mode == 1:
            return tanh_gaussian_sample(key, mean, log_std)[0]
        keys = jax.random.split(key, mode)
        candidates = jax.vmap(lambda k: tanh_gaussian_sample(k, mean, log_std)[0])(keys)  # [K, B, A]
        state, goal = obs[:, :obs_dim], obs[:, obs_dim:]
        scores = jax.vmap(lambda a: critic_value(critic_params, nets, state, a, goal))(candidates)
        best = jnp.argmax(scores, axis=0)  # [B]
        return jnp.take_along_axis(candidates, best[None, :, None], axis=0)[0]

    return policy


# =============================================================================
# Training state, data collection, update
# =============================================================================


class DataParallel(NamedTuple):
    """Data parallelism over all devices: one mesh axis, "data".

    Envs, the buffer's env axis and each SGD batch are split across devices;
    parameters and optimizer states are replicated. The code stays written for
    one global batch: these constraints tell XLA how to split it, and XLA adds
    the collectives (gathering goal encodings for the InfoNCE logits, averaging
    gradients). Random draws do not depend on the split, so 1 and N devices
    compute the same numbers up to floating-point reassociation.
    """

    mesh: jax.sharding.Mesh

    def _constrain(self, tree, spec):
        sharding = jax.sharding.NamedSharding(self.mesh, spec)
        return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, sharding), tree)

    def envs(self, tree):
        """Arrays whose leading axis is the env (or batch) axis."""
        return self._constrain(tree, jax.sharding.PartitionSpec("data"))

    def buffer(self, buf: replay.ReplayBuffer) -> replay.ReplayBuffer:
        by_env = jax.sharding.PartitionSpec(None, "data")
        return buf.replace(
            state=self._constrain(buf.state, by_env),
            action=self._constrain(buf.action, by_env),
            episode=self._constrain(buf.episode, by_env),
        )

    def batches(self, tree):
        """[num_batches, batch_size, ...] arrays: split the batch axis."""
        return self._constrain(tree, jax.sharding.PartitionSpec(None, "data"))


@struct.dataclass
class TrainingState:
    actor_params: Any
    critic_params: Any
    log_alpha: jax.Array
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any
    key: jax.Array


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


def wrap_for_training(env: envs.GoalEnv, episode_length: int, reset_mode: str = "replay"):
    if reset_mode == "replay":
        return EpisodeIdWrapper(brax_wrappers.wrap(env, episode_length=episode_length))
    episodes = brax_wrappers.EpisodeWrapper(brax_wrappers.VmapWrapper(env), episode_length, action_repeat=1)
    return EpisodeIdWrapper(FreshResetWrapper(episodes))


class Optimizers(NamedTuple):
    actor: optax.GradientTransformation
    critic: optax.GradientTransformation
    alpha: optax.GradientTransformation


class Trainer(NamedTuple):
    """Everything a run needs, built once from the config. The jitted functions
    are pure: (state, ...) -> (state, ...)."""

    config: Config
    derived: Derived
    env: envs.GoalEnv
    eval_env: envs.GoalEnv
    nets: Networks
    init: Callable  # key -> (TrainingState, env_state, ReplayBuffer)
    prefill: Callable  # (ts, env_state, buffer) -> same
    training_epoch: Callable  # (ts, env_state, buffer) -> same + metrics
    evaluate: Callable  # (actor_params, critic_params, key) -> metrics
    update: Callable  # (ts, buffer) -> (ts, metrics): one training step's SGD alone (benchmarks)
    policy: Callable  # actor mode -> policy(actor_params, critic_params, obs, key) -> action
    value: Callable  # (critic_params, state, action, goal) -> f(s, a, g) for matched rows [B]


def build(config: Config) -> Trainer:
    validate(config)
    env = make_env(config.env_id, config)
    eval_env = make_env(config.eval_env_id or config.env_id, config)
    derived = derive(config, env)
    if (eval_env.obs_dim, eval_env.goal_slice) != (env.obs_dim, env.goal_slice):
        raise ConfigError(
            f"--eval_env_id {config.eval_env_id} has obs_dim/goal slice "
            f"{eval_env.obs_dim}/{eval_env.goal_slice}, but {config.env_id} has "
            f"{env.obs_dim}/{env.goal_slice}; pick an eval env of the same family"
        )
    nets = make_networks(config, derived)
    train_env = wrap_for_training(env, config.episode_length, config.reset_mode)
    optimizers = Optimizers(
        optax.adam(config.actor_lr), optax.adam(config.critic_lr), optax.adam(config.alpha_lr)
    )
    explore = make_policy(nets, derived.obs_dim, config.expl_actor)
    mesh = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    shard = DataParallel(mesh)
    d, c = derived, config

    def init(key):
        k_params, k_env, k_train = jax.random.split(key, 3)
        actor_params, critic_params = init_params(nets, k_params, d)
        log_alpha = jnp.zeros((), jnp.float32)
        ts = TrainingState(
            actor_params=actor_params,
            critic_params=critic_params,
            log_alpha=log_alpha,
            actor_opt=optimizers.actor.init(actor_params),
            critic_opt=optimizers.critic.init(critic_params),
            alpha_opt=optimizers.alpha.init(log_alpha),
            key=k_train,
        )
        env_state = shard.envs(train_env.reset(jax.random.split(k_env, c.num_envs)))
        buf = shard.buffer(replay.init(c.max_replay_size, c.num_envs, d.obs_dim, d.action_dim))
        return ts, env_state, buf

    # --- data collection: unroll_length steps of all envs with the exploration actor
    def collect(ts: TrainingState, env_state, key):
        def env_step(env_state, key):
            obs, episode_id = env_state.obs, env_state.info["episode_id"]
            action = explore(ts.actor_params, ts.critic_params, obs, key)
            return shard.envs(train_env.step(env_state, action)), (obs[:, : d.obs_dim], action, episode_id)

        return jax.lax.scan(env_step, env_state, jax.random.split(key, c.unroll_length))

    def collect_and_store(ts, env_state, buf):
        key, k_collect = jax.random.split(ts.key)
        env_state, (state, action, episode) = collect(ts, env_state, k_collect)
        return ts.replace(key=key), env_state, shard.buffer(replay.insert(buf, state, action, episode))

    @partial(jax.jit, donate_argnums=(0, 1, 2))
    def prefill(ts, env_state, buf):
        def body(carry, _):
            return collect_and_store(*carry), None

        (ts, env_state, buf), _ = jax.lax.scan(body, (ts, env_state, buf), length=d.prefill_unrolls)
        return ts, env_state, buf

    # --- one SGD step: actor, temperature and critic, all from the same (old) parameters
    def sgd_step(ts: TrainingState, buf, idx: replay.SampleIndices, key):
        state, action, goal = shard.envs(replay.gather(buf, idx, d.goal_start, d.goal_end))
        alpha = 0.0 if c.disable_entropy else jnp.exp(ts.log_alpha)

        # The critic's gradients first: its forward pass yields psi(g) for the actor loss.
        (c_loss, (c_metrics, psi)), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(
            ts.critic_params, nets, state, action, goal, idx.valid, c.logsumexp_penalty_coeff
        )
        (a_loss, log_prob), a_grads = jax.value_and_grad(actor_loss, has_aux=True)(
            ts.actor_params, ts.critic_params, alpha, nets, state, goal, psi, idx.valid, key
        )
        updates, actor_opt = optimizers.actor.update(a_grads, ts.actor_opt)
        actor_params = optax.apply_updates(ts.actor_params, updates)

        if c.disable_entropy:
            al_loss, log_alpha, alpha_opt = jnp.zeros(()), ts.log_alpha, ts.alpha_opt
        else:
            al_loss, al_grad = jax.value_and_grad(alpha_loss)(
                ts.log_alpha, log_prob, d.target_entropy, idx.valid
            )
            updates, alpha_opt = optimizers.alpha.update(al_grad, ts.alpha_opt)
            log_alpha = optax.apply_updates(ts.log_alpha, updates)

        updates, critic_opt = optimizers.critic.update(c_grads, ts.critic_opt)
        critic_params = optax.apply_updates(ts.critic_params, updates)

        ts = ts.replace(
            actor_params=actor_params,
            critic_params=critic_params,
            log_alpha=log_alpha,
            actor_opt=actor_opt,
            critic_opt=critic_opt,
            alpha_opt=alpha_opt,
        )
        metrics = {
            "critic_loss": c_loss,
            "actor_loss": a_loss,
            "alpha_loss": al_loss,
            "alpha": alpha * jnp.ones(()),
            "entropy": -masked_mean(log_prob, idx.valid),
            **c_metrics,
        }
        return ts, metrics

    # --- the update of one training step: sample goals, scan the SGD steps
    def update(ts: TrainingState, buf):
        key, k_sample, k_sgd = jax.random.split(ts.key, 3)
        idx = shard.batches(
            replay.sample_indices(
                buf,
                k_sample,
                window=d.window,
                gamma=c.gamma,
                num_batches=c.num_sgd_batches_per_training_step,
                batch_size=c.batch_size,
            )
        )
        sgd_keys = jax.random.split(k_sgd, c.num_sgd_batches_per_training_step)
        ts, metrics = jax.lax.scan(
            lambda ts, xs: sgd_step(ts, buf, *xs), ts.replace(key=key), (idx, sgd_keys)
        )
        return ts, jax.tree.map(jnp.mean, metrics)

    # --- one training step: collect and store an unroll, then update
    def training_step(carry, _):
        ts, env_state, buf = collect_and_store(*carry)
        ts, metrics = update(ts, buf)
        return (ts, env_state, buf), metrics

    @partial(jax.jit, donate_argnums=(0, 1, 2))
    def training_epoch(ts, env_state, buf):
        (ts, env_state, buf), metrics = jax.lax.scan(
            training_step, (ts, env_state, buf), length=d.training_steps_per_epoch
        )
        # The norms make the NaN guard see broken parameters even when the losses look fine.
        norms = {
            "actor_param_norm": optax.tree.norm(ts.actor_params),
            "critic_param_norm": optax.tree.norm(ts.critic_params),
        }
        return ts, env_state, buf, {**jax.tree.map(jnp.mean, metrics), **norms}

    evaluator = evaluation.make_evaluator(
        eval_env,
        make_policy(nets, d.obs_dim, c.eval_actor),
        num_envs=c.num_eval_envs,
        episode_length=c.episode_length,
    )
    return Trainer(
        c, d, env, eval_env, nets, jax.jit(init), prefill, training_epoch, evaluator, jax.jit(update),
        policy=partial(make_policy, nets, d.obs_dim),
        value=lambda critic_params, state, action, goal: critic_value(critic_params, nets, state, action, goal),
    )


# =============================================================================
# Run directory, metrics, checkpoints
# =============================================================================


class RunDirError(ConfigError):
    """A run directory that cannot be started or resumed as asked."""


# Flags that manage a run rather than define the experiment: they may differ on resume.
RUN_MANAGEMENT_FIELDS = frozenset(
    {
        "resume", "run_dir", "run_root", "distributed", "track", "wandb_project_name",
        "wandb_entity", "wandb_mode", "wandb_group", "wandb_dir", "compilation_cache_dir",
        "checkpoint", "checkpoint_every", "checkpoint_keep", "capture_vis", "vis_length", "num_render",
    }
)  # fmt: skip


def config_mismatch(saved: Config, given: Config) -> list[str]:
    """The experiment-defining fields in which two configs differ, as 'name: saved -> given'."""
    return [
        f"{f.name}: {getattr(saved, f.name)!r} -> {getattr(given, f.name)!r}"
        for f in dataclasses.fields(Config)
        if f.name not in RUN_MANAGEMENT_FIELDS and getattr(saved, f.name) != getattr(given, f.name)
    ]


def open_run_dir(config: Config) -> Path:
    """This run's directory: the one to resume, the one asked for, or a new timestamped one."""
    if config.resume:
        run_dir = Path(config.resume)
        if latest_checkpoint(run_dir) is None:
            raise RunDirError(f"--resume {run_dir}: no checkpoint there to resume from")
        return run_dir
    if config.run_dir:
        run_dir = Path(config.run_dir)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = base = (
            Path(config.run_root) / f"{config.env_id}__{config.exp_name}__s{config.seed}__{stamp}"
        )
        n = 1
        while run_dir.exists():  # two runs started in the same second
            run_dir, n = Path(f"{base}-{n}"), n + 1
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    if latest_checkpoint(run_dir) is None and jax.process_index() == 0:
        (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    return run_dir


# -- checkpoints: orbax, one folder per epoch (checkpoints/epoch_<n>) holding
#    params (all evaluation needs), train (optimizer states, RNG key, env states,
#    replay buffer) and meta (epoch, env steps, wandb id, config). Orbax writes a
#    folder under a temporary name and renames it when complete, and prunes old
#    ones only after that, so a crash never leaves a half checkpoint behind.


def checkpoint_manager(run_dir: Path, keep: Optional[int] = None) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        create=keep is not None,
        step_prefix="epoch",
        enable_async_checkpointing=False,
    )
    return ocp.CheckpointManager((run_dir / "checkpoints").absolute(), options=options)


def latest_checkpoint(run_dir: Path) -> Optional[int]:
    """The newest complete checkpoint's epoch in run_dir, or None."""
    if not (run_dir / "checkpoints").is_dir():
        return None
    return checkpoint_manager(run_dir).latest_step()


def _params_item(ts: TrainingState) -> dict:
    return {"actor_params": ts.actor_params, "critic_params": ts.critic_params, "log_alpha": ts.log_alpha}


def _train_item(ts: TrainingState, env_state, buf: Optional[replay.ReplayBuffer]) -> dict:
    item = {"actor_opt": ts.actor_opt, "critic_opt": ts.critic_opt, "alpha_opt": ts.alpha_opt}
    item |= {"key": ts.key, "env_state": env_state}
    return item if buf is None else {**item, "buffer": buf}


def save_checkpoint(
    manager, config: Config, ts, env_state, buf, epoch: int, env_steps: int, wandb_id
) -> Path:
    meta = {
        "epoch": epoch,
        "env_steps": env_steps,
        "wandb_id": wandb_id,
        "has_buffer": config.save_buffer,
        "config": dataclasses.asdict(config),
    }
    manager.save(
        epoch,
        args=ocp.args.Composite(
            params=ocp.args.StandardSave(_params_item(ts)),
            train=ocp.args.StandardSave(_train_item(ts, env_state, buf if config.save_buffer else None)),
            meta=ocp.args.JsonSave(meta),
        ),
        force=True,
    )
    manager.wait_until_finished()
    return Path(manager.directory) / f"epoch_{epoch}"


def checkpoint_meta(run_dir: Path, epoch: Optional[int] = None) -> dict:
    """The meta record (epoch, env_steps, wandb_id, has_buffer, config) of a run's latest
    (or given) checkpoint."""
    latest = latest_checkpoint(run_dir)
    manager = checkpoint_manager(run_dir) if latest is not None else None
    epoch = latest if epoch is None else epoch
    if manager is None or epoch not in manager.all_steps():
        raise FileNotFoundError(f"no checkpoint under {run_dir} (expected {run_dir}/checkpoints/epoch_<n>)")
    return manager.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta


def restore_checkpoint(run_dir: Path, meta: dict, ts: TrainingState, env_state, buf):
    """Restores the checkpoint of `meta` into arrays shaped and sharded like the given ones.

    Returns (ts, env_state, buf or None when the checkpoint has no buffer).
    """
    target = _train_item(ts, env_state, buf if meta["has_buffer"] else None)
    restored = checkpoint_manager(run_dir).restore(
        meta["epoch"],
        args=ocp.args.Composite(
            params=ocp.args.StandardRestore(_params_item(ts)), train=ocp.args.StandardRestore(target)
        ),
    )
    t = restored.train
    ts = TrainingState(
        **restored.params, **{k: t[k] for k in ("actor_opt", "critic_opt", "alpha_opt", "key")}
    )
    return ts, t["env_state"], t.get("buffer")


def load_checkpoint(path: str | Path) -> tuple[Config, dict]:
    """(config, payload) of a checkpoint: a run directory (its latest one) or a checkpoints/epoch_<n>
    folder. The payload holds actor_params, critic_params, log_alpha, epoch and env_steps; only
    the parameters are read, never the replay buffer."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    run_dir, epoch = path, None
    if path.name.startswith("epoch_") and path.parent.name == "checkpoints":
        run_dir, epoch = path.parent.parent, int(path.name.removeprefix("epoch_"))
    meta = checkpoint_meta(run_dir, epoch)
    params = (
        checkpoint_manager(run_dir)
        .restore(meta["epoch"], args=ocp.args.Composite(params=ocp.args.StandardRestore()))
        .params
    )
    return Config(**meta["config"]), {**params, "epoch": meta["epoch"], "env_steps": meta["env_steps"]}


class MetricsLog:
    """metrics.jsonl in the run directory, plus wandb when tracking.

    A resumed run first drops the records of epochs after its checkpoint (they
    will be run again) and continues the same wandb run.
    """

    def __init__(self, run_dir: Path, config: Config, start_epoch: int, wandb_id: Optional[str]):
        # In a multi-process run only process 0 writes.
        self.path = run_dir / "metrics.jsonl" if jax.process_index() == 0 else None
        if self.path is not None and self.path.exists():
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if json.loads(line)["epoch"] <= start_epoch
            ]
            atomic_write(self.path, "".join(line + "\n" for line in kept).encode())
        self.wandb = start_wandb(config, run_dir, wandb_id) if config.track and self.path else None

    @property
    def wandb_id(self) -> Optional[str]:
        return None if self.wandb is None else self.wandb.id

    def write(self, record: dict) -> None:
        if self.path is None:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.wandb is not None:
            self.wandb.log(record, step=record["training/envsteps"])

    def close(self) -> None:
        if self.wandb is not None:
            self.wandb.finish()


def atomic_write(path: Path, data: bytes) -> None:
    """Write-then-rename: a crash leaves either the old file or the new one, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def start_wandb(config: Config, run_dir: Path, wandb_id: Optional[str]):
    """wandb must never stop training: failures are logged and the run goes on without it."""
    try:
        import wandb

        return wandb.init(
            project=config.wandb_project_name,
            entity=config.wandb_entity,
            group=config.wandb_group,
            name=run_dir.name,
            id=wandb_id,
            resume="allow" if wandb_id else None,
            mode=config.wandb_mode,
            dir=config.wandb_dir or str(run_dir),
            config=dataclasses.asdict(config),
        )
    except Exception as e:  # noqa: BLE001 -- any wandb failure must not end the run
        log.warning("wandb disabled for this run: %s", e)
        return None


# =============================================================================
# Main loop
# =============================================================================


def check_finite(metrics: dict, epoch: int, last_checkpoint: Optional[Path]) -> None:
    bad = [k for k, v in metrics.items() if not np.isfinite(v)]
    if bad:
        losses = [k for k in bad if k.endswith("loss")] or bad
        others = (
            f" (also non-finite: {', '.join(k for k in bad if k not in losses)})" if bad != losses else ""
        )
        raise FloatingPointError(
            f"non-finite {', '.join(losses)} at epoch {epoch}{others}; stopping. Last good checkpoint "
            f"(intact): {last_checkpoint or 'none saved yet'}"
        )


# sysexits.h EX_TEMPFAIL: "try again later". job.slurm requeues the job on this status.
EXIT_REQUEUE = 75


class Preempted(Exception):
    """Raised after the checkpoint that a stop signal asked for is on disk."""


class StopSignals:
    """SIGTERM / SIGUSR1 (SLURM's warning before preemption or the time limit) only set a flag:
    the epoch in flight finishes, a checkpoint is written, and the run exits with EXIT_REQUEUE."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.received: Optional[str] = None
        self._previous = {}

    def _handle(self, signum, _frame):
        self.received = signal.Signals(signum).name
        log.warning("%s received: checkpointing at the end of this epoch, then exiting", self.received)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def format_eta(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    h, m = divmod(minutes, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def use_compilation_cache(directory: str) -> None:
    jax.config.update("jax_compilation_cache_dir", directory)
    # Cache every program that took over a second to compile: the epoch, prefill, evaluation.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def start_or_resume(trainer: Trainer, run_dir: Path, key):
    """Initial state of the epoch loop: (ts, env_state, buf, epoch, env_steps, wandb_id)."""
    if latest_checkpoint(run_dir) is None:
        ts, env_state, buf = trainer.prefill(*trainer.init(key))
        return ts, env_state, buf, 0, trainer.derived.prefill_env_steps, None
    meta = checkpoint_meta(run_dir)
    if differing := config_mismatch(Config(**meta["config"]), trainer.config):
        raise RunDirError(
            f"{run_dir} holds a run with a different config ({'; '.join(differing)}); resume it with "
            f"the same settings, or start a new run with another --run_dir"
        )
    ts, env_state, buf = trainer.init(key)
    ts, env_state, saved_buf = restore_checkpoint(run_dir, meta, ts, env_state, buf)
    log.info("resuming %s from epoch %d (%s env steps)", run_dir, meta["epoch"], f"{meta['env_steps']:,}")
    if saved_buf is None:  # saved with --save_buffer 0: refill with the restored policy
        ts, env_state, buf = trainer.prefill(ts, env_state, buf)
    else:
        buf = saved_buf
    return ts, env_state, buf, meta["epoch"], meta["env_steps"], meta["wandb_id"]


def train(config: Config) -> dict:
    """Runs (or resumes) an experiment; returns the last epoch's metrics record."""
    if config.compilation_cache_dir:
        use_compilation_cache(config.compilation_cache_dir)
    trainer = build(config)
    d, c = trainer.derived, config
    run_dir = open_run_dir(c)
    log.info(
        "run %s | %s: obs_dim %d, goal [%d, %d), %d actions | %d epochs x %d training steps "
        "x %d env steps, prefill %d",
        run_dir, c.env_id, d.obs_dim, d.goal_start, d.goal_end, d.action_dim, c.num_epochs,
        d.training_steps_per_epoch, d.env_steps_per_training_step, d.prefill_env_steps,
    )  # fmt: skip
    key, eval_key, vis_key = jax.random.split(jax.random.PRNGKey(c.seed), 3)

    start = time.time()
    ts, env_state, buf, first_epoch, env_steps, wandb_id = start_or_resume(trainer, run_dir, key)
    checkpoints = checkpoint_manager(run_dir, keep=c.checkpoint_keep) if c.checkpoint else None
    last_checkpoint = None if first_epoch == 0 else run_dir / "checkpoints" / f"epoch_{first_epoch}"
    metrics_log = MetricsLog(run_dir, c, first_epoch, wandb_id)
    record, epoch_times = {}, []
    try:
        with StopSignals() as stop:
            for epoch in range(first_epoch + 1, c.num_epochs + 1):
                t0 = time.time()
                ts, env_state, buf, train_metrics = trainer.training_epoch(ts, env_state, buf)
                train_metrics = {k: float(v) for k, v in jax.device_get(train_metrics).items()}
                epoch_time = time.time() - t0
                epoch_env_steps = d.training_steps_per_epoch * d.env_steps_per_training_step
                env_steps += epoch_env_steps
                check_finite(train_metrics, epoch, last_checkpoint)

                t1 = time.time()
                eval_metrics = trainer.evaluate(
                    ts.actor_params, ts.critic_params, jax.random.fold_in(eval_key, epoch)
                )
                eval_metrics = {k: float(v) for k, v in jax.device_get(eval_metrics).items()}
                eval_time = time.time() - t1
                epoch_times.append(time.time() - t0)

                record = {
                    "epoch": epoch,
                    "training/envsteps": env_steps,
                    "training/sps": epoch_env_steps / epoch_time,
                    "training/walltime": time.time() - start,
                    "training/epoch_time": epoch_time,
                    **{f"training/{k}": v for k, v in train_metrics.items()},
                    **eval_metrics,
                    "eval/epoch_eval_time": eval_time,
                    "eval/sps": c.num_eval_envs * c.episode_length / eval_time,
                }
                metrics_log.write(record)
                recent = epoch_times[-5:] if len(epoch_times) > 1 else epoch_times
                eta = (c.num_epochs - epoch) * sum(recent) / len(recent)
                log.info(
                    "epoch %d/%d | env steps %s | %s sps | critic %.4f actor %.4f alpha %.4f | "
                    "eval success %.1f any %.2f dist %.1f | ETA %s",
                    epoch, c.num_epochs, f"{env_steps:,}", f"{record['training/sps']:,.0f}",
                    train_metrics["critic_loss"], train_metrics["actor_loss"], train_metrics["alpha"],
                    eval_metrics["eval/episode_success"], eval_metrics["eval/episode_success_any"],
                    eval_metrics["eval/episode_dist"], format_eta(eta),
                )  # fmt: skip
                due = epoch % c.checkpoint_every == 0 or epoch == c.num_epochs or stop.received
                if checkpoints is not None and due:
                    last_checkpoint = save_checkpoint(
                        checkpoints, c, ts, env_state, buf, epoch, env_steps, metrics_log.wandb_id
                    )
                if stop.received and epoch < c.num_epochs:
                    raise Preempted(
                        f"{stop.received}: stopped after epoch {epoch}; checkpoint {last_checkpoint}. "
                        f"Resume with --resume {run_dir}"
                    )

        if c.capture_vis and jax.process_index() == 0:
            # Host copies of the parameters: the renders run on this process's devices alone.
            params = jax.device_get((ts.actor_params, ts.critic_params))
            paths = evaluation.visualize(
                trainer, *params, run_dir, vis_key, metrics_log.wandb, step=record.get("training/envsteps")
            )
            log.info("visualisations saved: %s", ", ".join(str(p) for p in paths))
    finally:
        metrics_log.close()
    return {**record, "run_dir": str(run_dir)}


def initialize_distributed(mode: str) -> None:
    """Joins the processes of a multi-node job before JAX touches any device.

    Under SLURM (srun), jax.distributed.initialize() finds the coordinator and the ranks
    itself; elsewhere they come from JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
    JAX_PROCESS_ID.
    """
    if mode == "off" or (mode == "auto" and int(os.environ.get("SLURM_NTASKS", "1")) <= 1):
        return
    ranks = {}
    if "JAX_NUM_PROCESSES" in os.environ:
        ranks = dict(
            coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
            num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
            process_id=int(os.environ["JAX_PROCESS_ID"]),
        )
    # Cross-process collectives for CPU processes (tests, debugging); GPUs use NCCL.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**ranks)
    log.info(
        "process %d of %d, %d devices in all", jax.process_index(), jax.process_count(), jax.device_count()
    )


def parse_config(args: Optional[list[str]] = None) -> Config:
    config = tyro.cli(Config, args=args, use_underscores=True)
    if config.resume is None:
        return config
    # --resume: the saved config is the default, so only flags given next to it can differ.
    try:
        saved = Config(**checkpoint_meta(Path(config.resume))["config"])
    except FileNotFoundError as e:
        raise RunDirError(f"--resume {config.resume}: {e}") from None
    return tyro.cli(Config, args=args, default=saved, use_underscores=True)


def main(args: Optional[list[str]] = None) -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", force=True
    )
    log.setLevel(logging.INFO)
    try:
        config = parse_config(args)
        initialize_distributed(config.distributed)
        train(config)
    except (ConfigError, FloatingPointError) as e:
        sys.exit(f"error: {e}")
    except Preempted as e:
        log.warning("%s", e)
        sys.exit(EXIT_REQUEUE)


if __name__ == "__main__":
    main()
