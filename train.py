"""Contrastive RL (CRL) with very deep residual networks, in one file.

Implements "1000 Layer Networks for Self-Supervised RL" (Wang et al., NeurIPS 2025):
an actor and a contrastive critic built from residual blocks of
Dense -> LayerNorm -> Swish, trained online on goal-conditioned Brax tasks with
no reward, only hindsight goals taken from the agent's own future states.

Read top to bottom, in the paper's order:
  1. config          one dataclass (the paper's Table 2 defaults), its checks, derived sizes
  2. networks        residual torso, phi(s, a) = sa_encoder, psi(g) = g_encoder, actor
  3. critic loss     energy f(s, a, g) = -||phi - psi||, InfoNCE + logsumexp penalty
  4. actor loss      tanh-Gaussian policy, entropy temperature alpha
  5. collection      unroll the envs with the exploration actor, store in the replay buffer
  6. SGD step        critic, actor and alpha from one batch
  7. update          sample hindsight goals, scan the SGD steps of one training step
  8. training epoch  training steps (collect + update), each one jitted call; progress between them
  9. evaluation      the paper's protocol
 10. main loop       epochs, evaluation, checkpoints (run management lives in runs.py)

    uv run train.py --env_id reacher --num_envs 64 ...   (see README.md)
"""

from __future__ import annotations

import signal

if __name__ == "__main__":
    # SLURM's warning (SIGUSR1/SIGTERM) or Ctrl-C may come during the slow imports below; blocked,
    # it stays pending until runs.StopSignals handles it, so a signal at any moment ends cleanly.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGUSR1, signal.SIGINT})

import dataclasses
import logging
import math
import textwrap
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

import runs

import buffer as replay
import contrastive
import render  # before envs and checks (which imports envs): makes importing mujoco safe under any MUJOCO_GL
import checks  # isort: skip
import envs  # isort: skip
from envs.wrappers import wrap_for_evaluation, wrap_for_training
from runs import Bool, ConfigError

log = logging.getLogger("crl")


# ===== 1. Config ==================================================================================


@dataclass
class Config(runs.RunSettings):
    """Contrastive RL with deep residual actor and critic. Defaults: the paper's Table 2.

    The fields below define the experiment; those inherited from runs.RunSettings (run directory,
    logging, checkpoints, renders) manage the run and may change when it is resumed."""

    # --- experiment
    algorithm: ClassVar[str] = "crl"  # recorded in config.json (runs.described), not a flag
    exp_name: str = "crl"
    """Name of the experiment; part of the run directory and wandb run name."""
    seed: int = 0
    """Random seed; the same seed and config give the same numbers on CPU."""
    num_seeds: int = 1
    """Train seeds seed .. seed+N-1 in this one process, vmapped into one compiled program. Each is a
    run of its own: run directory (under --run_dir when given, as s<seed>), config.json with its
    seed, metrics, checkpoints, wandb run (docs/long-runs-and-slurm.md)."""

    # --- environment
    env_id: str = "ant"
    """Training environment id (docs/environments.md; the list: `uv run python -m envs`)."""
    eval_env_id: Optional[str] = None
    """Evaluation environment id; None means the same as env_id."""
    env_backend: Optional[str] = None
    """Override the env's physics pipeline (spring, generalized, positional, mjx); None keeps its default."""
    env_timestep: Optional[float] = None
    """Override the env's physics timestep in seconds; None keeps its default."""
    episode_length: int = 1000
    """Steps per episode, in training and evaluation."""
    reset_mode: Literal["replay", "fresh"] = "replay"
    """At an episode's end, replay: restore that env's first start and goal (brax's AutoResetWrapper,
    the paper's code: training sees only num_envs goals); fresh: draw a new start and goal."""
    num_envs: int = 512
    """Parallel training environments."""
    num_eval_envs: int = 128
    """Parallel evaluation environments (one episode each per evaluation)."""

    # --- schedule
    total_env_steps: int = 100_000_000
    """Total env steps, prefill included; raised on --resume of a finished run, it continues the run."""
    num_epochs: int = 100
    """Epochs; one evaluation, log line and metrics record after each."""
    unroll_length: int = 62
    """Steps each env takes per training step (with 512 envs and 800 SGD steps: UTD 1:40)."""

    # --- replay buffer
    max_replay_size: int = 10_000
    """Buffer capacity in time steps per env (FIFO)."""
    min_replay_size: int = 1_000
    """Time steps per env collected before the first update."""
    save_buffer: Bool = True
    """Checkpoints include the replay buffer, so a resumed run continues exactly; 0 (the paper's scripts)
    keeps them small, and a resumed run then refills its buffer first."""

    # --- optimisation
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
    """Weight of the logsumexp^2 penalty that pins the logits' level (ignored by binary, fb, sppo)."""
    energy_fn: Literal[tuple(contrastive.ENERGY_FNS)] = "l2"
    """Critic energy f(s, a, g) from phi(s, a) and psi(g): l2 = -||phi - psi|| (the paper), l2_no_sqrt,
    l1, dot, cos (docs/algorithm.md)."""
    contrastive_loss_fn: Literal[tuple(contrastive.CONTRASTIVE_LOSSES)] = "infonce"
    """Critic loss over the B x B logits: infonce (the paper; softmax over goals per row),
    infonce_backward, symmetric_infonce, binary, flatnce, flatnce_backward, fb, dpo, ipo, sppo."""

    # --- networks
    repr_dim: int = 64
    """Representation size of phi(s, a) and psi(g)."""
    critic_network_width: int = 256
    """Hidden width of both critic encoders."""
    critic_depth: int = 4
    """Dense layers in the critic's residual blocks (4N); the paper scales this to 1024."""
    critic_skip_connections: int = 4
    """Residual block size: Dense layers per skip connection (the reference's name); 0 = plain MLP."""
    actor_network_width: int = 256
    """Hidden width of the actor."""
    actor_depth: int = 4
    """Dense layers in the actor's residual blocks."""
    actor_skip_connections: int = 4
    """Residual block size of the actor (Dense layers per skip connection); 0 = plain MLP."""
    use_relu: Bool = False
    """Use ReLU instead of Swish activations."""
    log_prob_correction: Literal["exact", "authors"] = "exact"
    """tanh change of variables in log pi(a): exact = 2 (log 2 - u - softplus(-2u)); authors =
    log(1 - tanh(u)^2 + 1e-6), the reference code's form, which stops penalising saturated actions."""

    # --- entropy and action selection
    entropy_param: float = 0.5
    """Target entropy = -entropy_param * action_dim."""
    disable_entropy: Bool = False
    """Drop the entropy term: alpha = 0 and no temperature update."""
    expl_actor: int = 1
    """Actor for data collection: 0 deterministic, 1 stochastic, K >= 2 best of K samples by critic."""
    eval_actor: int = 0
    """Actor for evaluation: 0 deterministic, 1 stochastic, K >= 2 best of K samples by critic."""

    # --- performance (same numbers, different speed and memory)
    unroll_blocks: int = 16
    """Torsos of at most this many residual blocks are unrolled (on CPU 1.1-1.3x more SGD steps/s at
    depths 16-64, compile time growing with depth); deeper ones loop (flat compile time); 0 = always
    loop. Checkpoints do not depend on it."""
    remat: Bool = False
    """Recompute residual blocks in the backward pass (gradient checkpointing): activation memory
    stops growing with depth, for about one more forward pass of compute."""
    matmul_dtype: Literal["float32", "bfloat16"] = "float32"
    """Dtype of the hidden layers' matmuls; parameters, LayerNorm, representations and InfoNCE
    logits stay float32. bfloat16 is for GPUs/TPUs (slow on most CPUs)."""
    cpu_fusion_emitters: Literal["auto", "on", "off"] = "auto"
    """XLA:CPU's newer fusion emitters (jaxlib 0.10; GPUs and newer jaxlibs ignore it). auto: off for
    the arm tasks (MJX kinematics need it) and below depth 16 (brax physics runs faster), on from
    depth 16 (the update does), unless XLA_FLAGS already chooses (docs/benchmark.md)."""


@dataclass(frozen=True)
class Derived:
    """Quantities computed once from the config and the env, never set by hand."""

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

    @property
    def epoch_env_steps(self) -> int:
        return self.training_steps_per_epoch * self.env_steps_per_training_step


class Schedule(NamedTuple):
    prefill_unrolls: int
    training_steps_per_epoch: int
    window: int


def schedule(config: Config) -> Schedule:
    """How the env-step budget splits into prefill and epochs, and the goal-sampling window."""
    prefill_unrolls = math.ceil(config.min_replay_size / config.unroll_length)
    steps_per_unroll = config.num_envs * config.unroll_length
    training_steps = (config.total_env_steps - prefill_unrolls * steps_per_unroll) // (
        config.num_epochs * steps_per_unroll
    )
    stored_after_prefill = min(prefill_unrolls * config.unroll_length, config.max_replay_size)
    return Schedule(prefill_unrolls, training_steps, min(config.episode_length, stored_after_prefill))


def budget(config: Config) -> tuple[int, int]:
    """(prefill env steps, env steps per epoch): what runs.extend keeps fixed when a run grows."""
    s, steps_per_unroll = schedule(config), config.num_envs * config.unroll_length
    return s.prefill_unrolls * steps_per_unroll, s.training_steps_per_epoch * steps_per_unroll


def validate(config: Config) -> Schedule:
    """Checks the config before anything is built or compiled (checks.py; a ConfigError says what to
    change) and returns its schedule."""
    return checks.validate(config, schedule)


def derive(config: Config, env: envs.GoalEnv, s: Schedule) -> Derived:
    return Derived(
        obs_dim=env.obs_dim,
        goal_start=env.goal_start,
        goal_end=env.goal_end,
        action_dim=env.action_size,
        env_steps_per_training_step=config.num_envs * config.unroll_length,
        prefill_unrolls=s.prefill_unrolls,
        training_steps_per_epoch=s.training_steps_per_epoch,
        window=s.window,
        target_entropy=-config.entropy_param * env.action_size,
    )


def make_env(env_id: str, config: Config) -> envs.GoalEnv:
    overrides = {"backend": config.env_backend, "timestep": config.env_timestep}
    try:
        return envs.make(env_id, **{k: v for k, v in overrides.items() if v is not None})
    except (ValueError, TypeError) as e:  # unknown id, backend or option
        raise ConfigError(str(e)) from None


# ===== 2. Networks (paper Fig. 2) =================================================================

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

    The blocks share one traced body under `nn.scan` (parameters stacked on a leading axis), so
    compile time does not grow with depth. Up to `unroll_blocks` blocks, the scan is unrolled
    (same parameters, faster code, longer compile). With `remat`, a block's activations are
    recomputed in the backward pass instead of stored, so activation memory no longer grows with depth.
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
    energy: contrastive.Energy  # f(s, a, g) from phi(s, a) and psi(g)
    log_prob_correction: str  # tanh correction of the actor's log pi


def make_torso(config: Config, net: str) -> Torso:
    """The residual torso of the "actor" or "critic" as the config sizes it (sac.py, td3.py reuse it)."""
    return Torso(
        getattr(config, f"{net}_network_width"),
        getattr(config, f"{net}_depth"),
        getattr(config, f"{net}_skip_connections"),
        nn.relu if config.use_relu else nn.swish,
        config.remat,
        jnp.dtype(config.matmul_dtype),
        config.unroll_blocks,
    )


def make_networks(config: Config, derived: Derived) -> Networks:
    torso = partial(make_torso, config)
    return Networks(
        actor=Actor(torso("actor"), derived.action_dim),
        sa_encoder=Encoder(torso("critic"), config.repr_dim),
        g_encoder=Encoder(torso("critic"), config.repr_dim),
        energy=contrastive.ENERGY_FNS[config.energy_fn],
        log_prob_correction=config.log_prob_correction,
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


# ===== 3. Critic: energy, InfoNCE, logsumexp penalty (contrastive.py holds the energies and losses) ===
#
# Logits l_ij = f(s_i, a_i, g_j) = energy(phi_i, psi_j) for all pairs of a batch; the paper's energy is
# -||phi_i - psi_j||_2 (negative: a larger logit means "g is more likely reached"). Row i's positive
# is its own future goal on the diagonal, the other goals of the batch are its negatives. InfoNCE:
#     loss_i = logsumexp_j l_ij - l_ii + logsumexp_penalty * (logsumexp_j l_ij)^2
# where the penalty pins the per-row constant that the softmax cannot see.


def encode(critic_params, nets: Networks, state, action, goal) -> tuple[jax.Array, jax.Array]:
    """(phi(s, a), psi(g)): the sa_encoder and g_encoder representations."""
    phi = nets.sa_encoder.apply(critic_params["sa_encoder"], jnp.concatenate([state, action], -1))
    return phi, nets.g_encoder.apply(critic_params["g_encoder"], goal)


def critic_loss(critic_params, nets: Networks, loss: contrastive.ContrastiveLoss, state, action, goal, valid,
                logsumexp_penalty):  # fmt: skip
    """The contrastive loss of the batch's B x B logits and its metrics; psi(g) comes back too, for the
    actor loss to reuse. Rows without a valid goal (`valid` False) are left out."""
    phi, psi = encode(critic_params, nets, state, action, goal)
    value, metrics = loss.fn(nets.energy.pairwise(phi, psi), valid, logsumexp_penalty)
    return value, (metrics, psi)


def critic_value(critic_params, nets: Networks, state, action, goal) -> jax.Array:
    """f(s, a, g) for matched rows: [B]."""
    return nets.energy.matched(*encode(critic_params, nets, state, action, goal))


# ===== 4. Actor: tanh-Gaussian policy, entropy temperature ========================================


def tanh_gaussian_sample(key, mean, log_std, correction: str = "exact") -> tuple[jax.Array, jax.Array]:
    """a = tanh(u), u ~ N(mean, std); log pi(a) includes the tanh log-det correction."""
    u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
    return jnp.tanh(u), tanh_gaussian_log_prob(u, mean, log_std, correction)


def tanh_gaussian_log_prob(u, mean, log_std, correction: str = "exact") -> jax.Array:
    gaussian = -0.5 * ((u - mean) / jnp.exp(log_std)) ** 2 - log_std - 0.5 * jnp.log(2 * jnp.pi)
    if correction == "exact":  # log(1 - tanh(u)^2), written so it stays finite for large |u|
        log_det = 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))
    else:  # the authors' form: flat at log(1e-6) once tanh(u)^2 rounds to 1 (|u| > ~7)
        log_det = jnp.log(1.0 - jnp.tanh(u) ** 2 + 1e-6)
    return jnp.sum(gaussian - log_det, axis=-1)


def actor_loss(actor_params, critic_params, alpha, nets: Networks, state, goal, psi, valid, key):
    """Maximise f(s, pi(s, g), g) - alpha * log pi: the critic scores the actor's own action.

    psi = psi(g) from the critic loss's forward pass (same critic parameters and goals), so the
    goal encoder does not run twice; the actor's gradient does not flow into it."""
    mean, log_std = nets.actor.apply(actor_params, jnp.concatenate([state, goal], -1))
    action, log_prob = tanh_gaussian_sample(key, mean, log_std, nets.log_prob_correction)
    phi = nets.sa_encoder.apply(critic_params["sa_encoder"], jnp.concatenate([state, action], -1))
    q = nets.energy.matched(phi, jax.lax.stop_gradient(psi))
    return contrastive.masked_mean(alpha * log_prob - q, valid), log_prob


def alpha_loss(log_alpha, log_prob, target_entropy, valid):
    """Moves alpha so that the policy entropy -log pi tracks target_entropy."""
    return contrastive.masked_mean(
        jnp.exp(log_alpha) * jax.lax.stop_gradient(-log_prob - target_entropy), valid
    )


def make_policy(nets: Networks, obs_dim: int, mode: int):
    """Returns policy(actor_params, critic_params, obs, key) -> action for one actor mode.

    0: deterministic tanh(mean); 1: a sample; K >= 2: the best of K samples by critic value.
    """

    def policy(actor_params, critic_params, obs, key):
        mean, log_std = nets.actor.apply(actor_params, obs)
        if mode == 0:
            return jnp.tanh(mean)
        if mode == 1:
            return tanh_gaussian_sample(key, mean, log_std)[0]  # log pi unused: any correction
        keys = jax.random.split(key, mode)
        candidates = jax.vmap(lambda k: tanh_gaussian_sample(k, mean, log_std)[0])(keys)  # [K, B, A]
        state, goal = obs[:, :obs_dim], obs[:, obs_dim:]
        scores = jax.vmap(lambda a: critic_value(critic_params, nets, state, a, goal))(candidates)
        best = jnp.argmax(scores, axis=0)  # [B]
        return jnp.take_along_axis(candidates, best[None, :, None], axis=0)[0]

    return policy


# ===== 5. Training state and data collection ======================================================


@struct.dataclass
class TrainingState:
    actor_params: Any
    critic_params: Any
    log_alpha: jax.Array
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any
    key: jax.Array


# What evaluation needs: checkpoints store these apart from the rest of the training state.
PARAMS_FIELDS = ("actor_params", "critic_params", "log_alpha")


class Optimizers(NamedTuple):
    actor: optax.GradientTransformation
    critic: optax.GradientTransformation
    alpha: optax.GradientTransformation


class Setup(NamedTuple):
    """The static parts of training, built once from the config; the pure functions below take it
    as their first argument (bound with functools.partial before jit)."""

    config: Config
    derived: Derived
    nets: Networks
    optimizers: Optimizers
    loss: contrastive.ContrastiveLoss  # the critic's loss (config.contrastive_loss_fn)
    train_env: Any  # envs.wrappers.wrap_for_training(env)
    explore: Callable  # the exploration policy (config.expl_actor)


def init(s: Setup, key: jax.Array):
    """(TrainingState, env states, empty replay buffer) of a new run."""
    k_params, k_env, k_train = jax.random.split(key, 3)
    actor_params, critic_params = init_params(s.nets, k_params, s.derived)
    log_alpha = jnp.zeros((), jnp.float32)
    ts = TrainingState(
        actor_params=actor_params,
        critic_params=critic_params,
        log_alpha=log_alpha,
        actor_opt=s.optimizers.actor.init(actor_params),
        critic_opt=s.optimizers.critic.init(critic_params),
        alpha_opt=s.optimizers.alpha.init(log_alpha),
        key=k_train,
    )
    env_state = s.train_env.reset(jax.random.split(k_env, s.config.num_envs))
    buf = replay.init(s.config.max_replay_size, s.config.num_envs, s.derived.obs_dim, s.derived.action_dim)
    return ts, env_state, buf


def collect(s: Setup, ts: TrainingState, env_state, key):
    """unroll_length steps of all envs with the exploration actor -> (env_state, (state, action, episode))."""

    def env_step(env_state, key):
        obs, episode_id = env_state.obs, env_state.info["episode_id"]
        action = s.explore(ts.actor_params, ts.critic_params, obs, key)
        return s.train_env.step(env_state, action), (obs[:, : s.derived.obs_dim], action, episode_id)

    return jax.lax.scan(env_step, env_state, jax.random.split(key, s.config.unroll_length))


def collect_and_store(s: Setup, ts: TrainingState, env_state, buf):
    key, k_collect = jax.random.split(ts.key)
    env_state, (state, action, episode) = collect(s, ts, env_state, k_collect)
    return ts.replace(key=key), env_state, replay.insert(buf, state, action, episode)


def prefill(s: Setup, ts: TrainingState, env_state, buf):
    """Fills the buffer with min_replay_size steps per env before the first update."""

    def body(carry, _):
        return collect_and_store(s, *carry), None

    return jax.lax.scan(body, (ts, env_state, buf), length=s.derived.prefill_unrolls)[0]


# ===== 6. One SGD step: critic, actor and temperature, all from the same (old) parameters =========


def sgd_step(s: Setup, ts: TrainingState, buf, idx: replay.SampleIndices, key):
    c, d = s.config, s.derived
    state, action, goal = replay.gather(buf, idx, d.goal_start, d.goal_end)
    alpha = 0.0 if c.disable_entropy else jnp.exp(ts.log_alpha)

    # The critic's gradients first: its forward pass yields psi(g) for the actor loss.
    (c_loss, (c_metrics, psi)), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(
        ts.critic_params, s.nets, s.loss, state, action, goal, idx.valid, c.logsumexp_penalty_coeff
    )
    (a_loss, log_prob), a_grads = jax.value_and_grad(actor_loss, has_aux=True)(
        ts.actor_params, ts.critic_params, alpha, s.nets, state, goal, psi, idx.valid, key
    )
    updates, actor_opt = s.optimizers.actor.update(a_grads, ts.actor_opt)
    actor_params = optax.apply_updates(ts.actor_params, updates)

    if c.disable_entropy:
        al_loss, log_alpha, alpha_opt = jnp.zeros(()), ts.log_alpha, ts.alpha_opt
    else:
        al_loss, al_grad = jax.value_and_grad(alpha_loss)(ts.log_alpha, log_prob, d.target_entropy, idx.valid)
        updates, alpha_opt = s.optimizers.alpha.update(al_grad, ts.alpha_opt)
        log_alpha = optax.apply_updates(ts.log_alpha, updates)

    updates, critic_opt = s.optimizers.critic.update(c_grads, ts.critic_opt)
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
        "entropy": -contrastive.masked_mean(log_prob, idx.valid),
        **c_metrics,
    }
    return ts, metrics


# ===== 7. The update of one training step: sample hindsight goals, scan the SGD steps =============


def update(s: Setup, ts: TrainingState, buf):
    c = s.config
    key, k_sample, k_sgd = jax.random.split(ts.key, 3)
    idx = replay.sample_indices(
        buf,
        k_sample,
        window=s.derived.window,
        gamma=c.gamma,
        num_batches=c.num_sgd_batches_per_training_step,
        batch_size=c.batch_size,
    )
    sgd_keys = jax.random.split(k_sgd, c.num_sgd_batches_per_training_step)
    ts, metrics = jax.lax.scan(lambda ts, xs: sgd_step(s, ts, buf, *xs), ts.replace(key=key), (idx, sgd_keys))
    return ts, jax.tree.map(jnp.mean, metrics)


# ===== 8. The training epoch: training steps, each one jitted call (collect an unroll, then update) =


def training_step(s: Setup, ts: TrainingState, env_state, buf):
    ts, env_state, buf = collect_and_store(s, ts, env_state, buf)
    ts, metrics = update(s, ts, buf)
    # The norms make the NaN guard see broken parameters even when the losses look fine.
    norms = {"actor_param_norm": optax.tree.norm(ts.actor_params),
             "critic_param_norm": optax.tree.norm(ts.critic_params)}  # fmt: skip
    return ts, env_state, buf, {**metrics, **norms}


def training_epoch(step: Callable, num_steps: int, ts, env_state, buf, report: Optional[Callable] = None):
    """num_steps calls of the jitted training `step` -> (state, the steps' mean metrics). `report(n)`,
    when given, hears that n steps of the epoch are done.

    The host queues step n + 1 before it waits for step n, so the device never waits for Python.
    Separate calls rather than one scan with a progress callback inside it: JAX never stores a
    program with host callbacks in its persistent compilation cache (--compilation_cache_dir)."""
    history = []
    for n in range(num_steps):
        ts, env_state, buf, metrics = step(ts, env_state, buf)
        if report is not None and n > 0:
            jax.block_until_ready(history[-1])  # step n - 1 is done, step n queued behind it
            report(n)
        history.append(metrics)
    history = jax.device_get(history)  # waits for the last step
    if report is not None:
        report(num_steps)
    # Floats, or arrays of one per seed (--num_seeds): each seed's mean over the epoch's steps.
    steps = {k: np.asarray([h[k] for h in history]) for k in history[0]}  # [steps] or [steps, seeds]
    metrics = {k: float(v.mean()) if v.ndim == 1 else np.array([s.mean() for s in v.T]) for k, v in steps.items()}
    # The parameters' norms after the epoch, not their mean over it.
    metrics.update({k: float(steps[k][-1]) if steps[k].ndim == 1 else steps[k][-1]
                    for k in ("actor_param_norm", "critic_param_norm")})  # fmt: skip
    return ts, env_state, buf, metrics


# ===== 9. Evaluation: the paper's protocol ========================================================


def make_evaluator(env, policy: Callable, *, num_envs: int, episode_length: int) -> Callable:
    """Returns a jitted evaluate(actor_params, critic_params, key) -> metrics.

    num_envs envs, each reset with a new key (new start and goal), run for exactly one episode with
    `policy`. Per env, brax's EvalWrapper sums each per-step metric while the episode is still active.
    Reported as means over envs: eval/episode_success (steps within the goal radius, the paper's
    score), eval/episode_success_any (reached the goal at least once), eval/episode_<metric> (episode
    sums of the env's other metrics), eval/avg_episode_length.
    """
    eval_env = wrap_for_evaluation(env, episode_length)

    @jax.jit
    def evaluate(actor_params, critic_params, key):
        k_reset, k_act = jax.random.split(key)
        state = eval_env.reset(jax.random.split(k_reset, num_envs))

        def step(state, key):
            return eval_env.step(state, policy(actor_params, critic_params, state.obs, key)), None

        state, _ = jax.lax.scan(step, state, jax.random.split(k_act, episode_length))
        totals = state.info["eval_metrics"].episode_metrics
        metrics = {f"eval/episode_{name}": jnp.mean(value) for name, value in totals.items()}
        metrics["eval/episode_success_any"] = jnp.mean(totals["success"] > 0)
        metrics["eval/avg_episode_length"] = jnp.mean(state.info["eval_metrics"].episode_steps)
        return metrics

    return evaluate


# ===== Building the jitted functions ==============================================================


class Trainer(NamedTuple):
    """Everything a run needs, built once from the config. The jitted functions are pure:
    (state, ...) -> (state, ...). With --num_seeds N > 1, init, prefill, training_step,
    training_epoch and evaluate take and give everything with a leading axis of N seeds (keys too);
    update, policy and value stay those of one seed."""

    config: Config
    derived: Derived
    env: envs.GoalEnv
    eval_env: envs.GoalEnv
    nets: Networks
    init: Callable  # key -> (TrainingState, env_state, ReplayBuffer)
    prefill: Callable  # (ts, env_state, buffer) -> same
    training_step: Callable  # (ts, env_state, buffer) -> same + metrics: one jitted training step
    training_epoch: Callable  # (ts, env_state, buffer) -> same + mean metrics: the epoch's steps
    evaluate: Callable  # (actor_params, critic_params, key) -> metrics
    update: Callable  # (ts, buffer) -> (ts, metrics): one training step's SGD alone (benchmarks)
    policy: Callable  # actor mode -> policy(actor_params, critic_params, obs, key) -> action
    value: Callable  # (critic_params, state, action, goal) -> f(s, a, g) for matched rows [B]
    params_fields: tuple = PARAMS_FIELDS  # TrainingState fields that checkpoints store as params


def make_setup(config: Config) -> tuple[Setup, envs.GoalEnv]:
    """Checks the config and builds the static parts of training: (Setup, the unwrapped env)."""
    sched = validate(config)
    env = make_env(config.env_id, config)
    derived = derive(config, env, sched)
    nets = make_networks(config, derived)
    optimizers = Optimizers(*(optax.adam(lr) for lr in (config.actor_lr, config.critic_lr, config.alpha_lr)))
    train_env = wrap_for_training(env, config.episode_length, config.reset_mode)
    loss = contrastive.CONTRASTIVE_LOSSES[config.contrastive_loss_fn]
    explore = make_policy(nets, derived.obs_dim, config.expl_actor)
    return Setup(config, derived, nets, optimizers, loss, train_env, explore), env


def build(config: Config, report: Optional[Callable] = None) -> Trainer:
    """Builds envs and networks and jits the training functions. `report(n)` hears from the epoch
    after each of its training steps (progress)."""
    s, env = make_setup(config)
    derived, nets = s.derived, s.nets
    same = config.eval_env_id in (None, config.env_id)  # envs are stateless: one object serves both
    eval_env = env if same else make_env(config.eval_env_id, config)
    checks.same_family(config, env, eval_env)

    # --num_seeds: every function of the training loop is vmapped over a leading seed axis.
    per_seed = jax.vmap if config.num_seeds > 1 else (lambda f: f)
    evaluate = make_evaluator(eval_env, make_policy(nets, derived.obs_dim, config.eval_actor),
                              num_envs=config.num_eval_envs, episode_length=config.episode_length)
    # Sharding is set in this one place, at the jit boundary: the carried state in and out.
    ts_sharding, _, buf_sharding = one_seed = runs.data_parallel(jax.device_count(), partial(init, s))
    if config.num_seeds > 1:  # the update (timed alone by bench.py) stays one seed's
        state = runs.data_parallel(jax.device_count(), per_seed(partial(init, s)), config.num_seeds)
    else:
        state = one_seed
    carried = dict(in_shardings=state, donate_argnums=(0, 1, 2))
    step = jax.jit(per_seed(partial(training_step, s)), out_shardings=(*state, None), **carried)
    return Trainer(
        config, derived, env, eval_env, nets,
        init=jax.jit(per_seed(partial(init, s)), out_shardings=state),
        prefill=jax.jit(per_seed(partial(prefill, s)), out_shardings=state, **carried),
        training_step=step,
        training_epoch=partial(training_epoch, step, derived.training_steps_per_epoch, report=report),
        evaluate=jax.jit(per_seed(evaluate)) if config.num_seeds > 1 else evaluate,
        update=jax.jit(partial(update, s), in_shardings=(ts_sharding, buf_sharding),
                       out_shardings=(ts_sharding, None)),
        policy=partial(make_policy, nets, derived.obs_dim),
        value=lambda critic_params, state, action, goal: critic_value(critic_params, nets, state, action,
                                                                      goal),
    )  # fmt: skip


# ===== 10. Main loop ==============================================================================


def checkpoint_items(ts, env_state, buf, params_fields: tuple = PARAMS_FIELDS) -> tuple[dict, dict]:
    """(params, train_state) as checkpoints store them: the training state's `params_fields` as params
    (enough to evaluate), its other fields with the env state and the buffer as train_state."""
    fields = {f.name: getattr(ts, f.name) for f in dataclasses.fields(ts)}
    params = {k: fields.pop(k) for k in params_fields}
    return params, {**fields, "env_state": env_state, "buffer": buf}


def from_checkpoint(ts, env_state, buf, params: dict, train_state: dict):
    """(ts, env_state, buf) from restored checkpoint items; `buf` stays when none was saved."""
    rest = {k: v for k, v in train_state.items() if k not in ("env_state", "buffer")}
    return type(ts)(**params, **rest), train_state["env_state"], train_state.get("buffer", buf)


def load_checkpoint(path) -> tuple[Config, dict]:
    """(config, payload) of a checkpoint (a run directory or checkpoints/epoch_<n>): the payload
    holds actor_params, critic_params, log_alpha, epoch and env_steps."""
    config, payload = runs.load_params(path)
    return Config(**config), payload


def seed_configs(config: Config) -> list[Config]:
    """One config per seed of a --num_seeds run, each that of a plain run of its seed."""
    if config.num_seeds == 1:
        return [config]
    n, first = config.num_seeds, config.seed
    return [dataclasses.replace(
        config, seed=seed, num_seeds=1, run_dir=config.run_dir and str(Path(config.run_dir) / f"s{seed}"),
        wandb_group=config.wandb_group or f"{config.env_id}__{config.exp_name}__s{first}-{first + n - 1}",
    ) for seed in range(first, first + n)]  # fmt: skip


def train(
    config: Config, stop: Optional[runs.StopSignals] = None, make_trainer: Optional[Callable] = None
) -> dict | list[dict]:
    """Runs (or resumes) an experiment; returns the last epoch's metrics record (one per seed, as a
    list, with --num_seeds > 1). sac.py and td3.py run this same loop with their own
    `make_trainer(config, report)` in place of `build`."""
    stop = stop or runs.StopSignals()
    if config.compilation_cache_dir:
        runs.use_compilation_cache(config.compilation_cache_dir)
    progress = runs.Progress(total_steps=config.total_env_steps)
    trainer = (make_trainer or build)(config, report=progress.training_step)
    c, d = config, trainer.derived
    run = runs.Seeds(seed_configs(config), stop, budget)
    log.info(
        "run %s | %s %s: obs_dim %d, goal [%d, %d), %d actions | %d epochs x %d training steps "
        "x %d env steps, prefill %d",
        ", ".join(str(r.dir) for r in run.runs), c.exp_name, c.env_id, d.obs_dim, d.goal_start, d.goal_end,
        d.action_dim, c.num_epochs, d.training_steps_per_epoch, d.env_steps_per_training_step,
        d.prefill_env_steps,
    )  # fmt: skip
    if run.finished:
        log.info("%s already finished (epoch %d of %d); to train longer, resume it with a larger "
                 "--total_env_steps", run.runs[0].dir, run.first_epoch, c.num_epochs)  # fmt: skip
        return run.close()
    keys = [jax.random.split(jax.random.PRNGKey(r.config.seed), 3) for r in run.runs]  # a plain run's
    key, eval_key, vis_key = (run.stack([k[j] for k in keys]) for j in range(3))

    ts, env_state, buf = trainer.init(key)
    restored = run.restore(*checkpoint_items(ts, env_state, buf, trainer.params_fields))
    if restored is not None:
        ts, env_state, buf = from_checkpoint(ts, env_state, buf, *restored)
    if restored is None or "buffer" not in restored[1]:  # new run, or saved with --save_buffer 0
        with progress.phase(
            f"compiling and prefilling the replay buffer ({d.prefill_env_steps:,} env steps)"
        ):
            ts, env_state, buf = jax.block_until_ready(trainer.prefill(ts, env_state, buf))
    run.begin()
    try:
        for epoch in range(run.first_epoch + 1, c.num_epochs + 1):
            progress.start_epoch(epoch, c.num_epochs, run.env_steps, d.env_steps_per_training_step)
            if epoch == run.first_epoch + 1:
                progress.begin_phase("compiling the training epoch")
            t0 = time.time()
            ts, env_state, buf, train_metrics = trainer.training_epoch(ts, env_state, buf)  # host floats
            epoch_time = time.time() - t0
            progress.end_phase()

            t1 = time.time()
            fold_in = jax.vmap(jax.random.fold_in, (0, None)) if run.several else jax.random.fold_in
            eval_metrics = trainer.evaluate(ts.actor_params, ts.critic_params, fold_in(eval_key, epoch))
            eval_metrics = jax.device_get(eval_metrics)
            eval_time = time.time() - t1
            records = [{
                "training/sps": d.epoch_env_steps / epoch_time,  # each seed's env steps
                "training/epoch_time": epoch_time,
                **{f"training/{k}": float(run.pick(v, i)) for k, v in train_metrics.items()},
                **{k: float(run.pick(v, i)) for k, v in eval_metrics.items()},
                "eval/epoch_eval_time": eval_time,
                "eval/sps": c.num_eval_envs * c.episode_length / eval_time,
            } for i in range(len(run.runs))]  # fmt: skip
            checkpoint_of = lambda i: checkpoint_items(*run.pick((ts, env_state, buf), i), trainer.params_fields)  # noqa: E731
            run.end_epoch(epoch, d.epoch_env_steps, records, checkpoint_of)
            progress.clear()
            run.log_epoch(epoch)
            run.check_stop(epoch)

        for i, r in enumerate(run.runs):
            if c.capture_vis and jax.process_index() == 0 and i not in run.failed:
                # Host copies of the parameters: the renders run on this process's devices alone.
                params = jax.device_get(run.pick((ts.actor_params, ts.critic_params), i))
                seed = f" of seed {r.config.seed}" if run.several else ""
                with progress.phase(f"rendering the evaluation policy{seed}"):
                    paths = render.visualize(trainer, *params, r.dir, run.pick(vis_key, i), r.metrics.wandb,
                                             step=r.record.get("training/envsteps"))  # fmt: skip
                log.info("visualisations saved: %s", ", ".join(str(p) for p in paths))
    finally:
        result = run.close()
    run.check_failed()
    return result


def parse_config(args: Optional[list[str]] = None) -> Config:
    env_ids = "env ids: " + ", ".join(envs.ENV_IDS) + ", arm_grasp_<cube noise>"
    config = runs.parse_config(Config, args, budget, epilog="\n".join(textwrap.wrap(env_ids, 100)))
    checks.choose_cpu_fusion_emitters(config)  # before JAX's first backend starts, which reads XLA_FLAGS
    return config


def main(args: Optional[list[str]] = None) -> None:
    runs.main(partial(parse_config, args), train)


if __name__ == "__main__":
    main()
