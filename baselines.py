"""What SAC+HER (sac.py) and TD3+HER (td3.py) share: the paper's TD baselines on the same residual
networks, envs, evaluation protocol and run management as train.py (CRL).

    config          the flags both take (train.py's names and meanings), plus tau, reward scale, HER
    twin critic     Q(s, g, a) = Dense(1) on train.py's residual torso, two of them stacked
    HER batch       hindsight goals from buffer.py's sampler, sparse reward from the env's success rule
    TD target       r * reward_scaling + gamma * Q_target(s', a'); Polyak averaging of target networks
    collection      unroll the envs with the exploration policy, store full observations
    main loop       epochs, evaluation, checkpoints and exact resume, as train.train does

Transitions are (s_t, a_t, s_t+1) from consecutive rows of one env's column of the replay buffer.
A step whose next state is in another episode (time limit or termination: the auto-reset has put the
new episode's first state there) has no transition and is left out of every loss, as brax's SAC
leaves truncated steps out; so no target bootstraps across an episode's end (docs/baselines.md).
"""

from __future__ import annotations

import dataclasses
import textwrap
import types
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Literal, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

import runs

import buffer as replay
import contrastive
import render  # noqa: F401  # before checks and envs: makes importing mujoco safe under any MUJOCO_GL
import checks  # isort: skip
import envs  # isort: skip
import train
from envs.wrappers import wrap_for_training
from runs import Bool, ConfigError


# ===== Config: train.py's flags where the meaning is the same =====================================


@dataclass
class Config(runs.RunSettings):
    """A TD baseline with hindsight relabelling on the residual networks of train.py."""

    # --- experiment
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
    """Checkpoints include the replay buffer, so a resumed run continues exactly; 0 keeps them small,
    and a resumed run then refills its buffer first."""

    # --- hindsight relabelling (HER)
    her_strategy: Literal["future", "final"] = "future"
    """Hindsight goal of a relabelled transition: future = the achieved goal k steps later in its
    episode, P(k) ~ gamma^(k-1) (CRL's sampler); final = its episode's last step in the sampled window
    (JaxGCRL's only strategy)."""
    her_fraction: float = 1.0
    """Fraction of each batch relabelled with hindsight goals (JaxGCRL with HER: all); the rest keep
    the goal the env commanded. Reward: 1 where the next state meets the goal by the env's success rule."""

    # --- optimisation
    batch_size: int = 512
    """Transitions per SGD step."""
    num_sgd_batches_per_training_step: int = 800
    """SGD steps per training step (800 x 512 samples per 512 x 62 env steps: UTD 1:40)."""
    gamma: float = 0.99
    """Discount of the TD target; also the future strategy's P(k) ~ gamma^(k-1)."""
    actor_lr: float = 3e-4
    """Actor learning rate (Adam)."""
    critic_lr: float = 3e-4
    """Critic learning rate (Adam)."""
    tau: float = 0.005
    """Polyak rate of the target networks: target <- (1 - tau) target + tau online (JaxGCRL's)."""
    reward_scaling: float = 1.0
    """The TD target's reward is reward_scaling x the 0/1 success reward (JaxGCRL's default)."""

    # --- networks
    critic_network_width: int = 256
    """Hidden width of both Q networks."""
    critic_depth: int = 4
    """Dense layers in each Q network's residual blocks (4N), as train.py's critic encoders."""
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

    # --- performance (same numbers, different speed and memory)
    unroll_blocks: int = 16
    """Torsos of at most this many residual blocks are unrolled (faster steps, longer compile); deeper
    ones loop (flat compile time); 0 = always loop. Checkpoints do not depend on it."""
    remat: Bool = False
    """Recompute residual blocks in the backward pass (gradient checkpointing): activation memory
    stops growing with depth, for about one more forward pass of compute."""
    matmul_dtype: Literal["float32", "bfloat16"] = "float32"
    """Dtype of the hidden layers' matmuls; parameters, LayerNorm and outputs stay float32."""
    cpu_fusion_emitters: Literal["auto", "on", "off"] = "auto"
    """XLA:CPU's newer fusion emitters (jaxlib 0.10; GPUs and newer jaxlibs ignore it). auto: off for
    the arm tasks (MJX kinematics need it) and below depth 16 (brax physics runs faster), on from
    depth 16 (the update does), unless XLA_FLAGS already chooses (docs/benchmark.md)."""


def validate(config: Config) -> train.Schedule:
    """checks.validate on the shared fields (train.Config's defaults stand in for CRL's own, which
    pass), then the baselines' own; a ConfigError says what to change."""
    for name, ok, requirement in (
        ("tau", 0.0 < config.tau <= 1.0, "must lie in (0, 1]"),
        ("her_fraction", 0.0 <= config.her_fraction <= 1.0, "must lie in [0, 1]"),
    ):
        if not ok:
            raise ConfigError(f"--{name} {requirement}, got {getattr(config, name)}")
    shared = types.SimpleNamespace(**{**dataclasses.asdict(train.Config()), **dataclasses.asdict(config)})
    return checks.validate(shared, train.schedule)


def derive(config: Config, env: envs.GoalEnv, s: train.Schedule, target_entropy: float = 0.0) -> train.Derived:
    return train.Derived(
        obs_dim=env.obs_dim,
        goal_start=env.goal_start,
        goal_end=env.goal_end,
        action_dim=env.action_size,
        env_steps_per_training_step=config.num_envs * config.unroll_length,
        prefill_unrolls=s.prefill_unrolls,
        training_steps_per_epoch=s.training_steps_per_epoch,
        window=s.window,
        target_entropy=target_entropy,
    )


# ===== Twin critic: two Q networks on train.py's residual torso, parameters stacked ===============


class QNetwork(nn.Module):
    """Q(s, g, a): the residual torso on [state | goal | action], then a linear scalar head."""

    torso: train.Torso

    @nn.compact
    def __call__(self, obs_action):
        return nn.Dense(1, kernel_init=train.dense_init)(self.torso(obs_action))[..., 0]


NUM_CRITICS = 2  # clipped double Q: the target takes the smaller of two independent estimates


def init_twin(q: QNetwork, key, input_dim: int):
    """Parameters of NUM_CRITICS Q networks, stacked on a leading axis (one batched matmul each layer)."""
    return jax.vmap(lambda k: q.init(k, jnp.zeros((1, input_dim))))(jax.random.split(key, NUM_CRITICS))


def twin_q(q: QNetwork, params, obs, action) -> jax.Array:
    """[NUM_CRITICS, B] values of the stacked Q networks."""
    x = jnp.concatenate([obs, action], -1)
    return jax.vmap(lambda p: q.apply(p, x))(params)


def polyak(target, online, tau: float):
    """target <- (1 - tau) target + tau online, leaf by leaf."""
    return jax.tree.map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


# ===== TD target and critic loss ===================================================================


def td_target(reward, next_value, gamma: float, reward_scaling: float) -> jax.Array:
    """y = reward_scaling * r + gamma * V_target(s', g); no gradient flows into it. There is no
    (1 - done) factor: terminal steps have no next state in the buffer and are never in a batch."""
    return jax.lax.stop_gradient(reward_scaling * reward + gamma * next_value)


def q_loss(q: jax.Array, target: jax.Array, valid: jax.Array) -> jax.Array:
    """0.5 x the mean over critics and valid rows of (Q_i(s, g, a) - y)^2 (brax's SAC/TD3 scale)."""
    return 0.5 * contrastive.masked_mean(jnp.mean(jnp.square(q - target[None]), axis=0), valid)


# ===== HER batch: relabelled goals and the env's sparse reward =====================================


class Batch(NamedTuple):
    obs: jax.Array  # [B, obs_dim + goal_dim]: state and (relabelled) goal
    action: jax.Array
    next_obs: jax.Array  # next state and the same goal
    reward: jax.Array  # 0/1: the next state meets the goal
    valid: jax.Array  # the next state belongs to the same episode


def make_success(env: envs.GoalEnv) -> Callable:
    """success(state [B, obs_dim], goal [B, goal_dim]) -> 0/1 per row, by the env's own `_metrics`,
    the rule its evaluation counts (a radius on the achieved goal, or e.g. pusher2's two pairs).

    `_metrics` is called with a zero pipeline state: some envs read extra, logged-only metrics from
    it (ant's distance from the origin); success never does, and the unused part is dead code."""
    shapes = jax.eval_shape(env.reset, jax.random.PRNGKey(0)).pipeline_state
    template = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)

    def success(state, goal):
        one = lambda s, g: env._metrics(template, jnp.concatenate([s, g]))["success"]  # noqa: E731
        return jax.vmap(one)(state, goal).astype(jnp.float32)

    return success


def her_batch(c: Config, d: train.Derived, success: Callable, buf, idx: replay.SampleIndices, key) -> Batch:
    """One batch: rows her_fraction of the time take their hindsight goal (idx.goal_row), else the
    goal the env commanded at that step; the reward is the success of the next state for that goal."""
    obs = buf.state[idx.row, idx.env]
    next_obs = buf.state[(idx.row + 1) % buf.capacity, idx.env]  # valid rows: same episode, one step on
    state, next_state = obs[:, : d.obs_dim], next_obs[:, : d.obs_dim]
    hindsight = buf.state[idx.goal_row, idx.env, d.goal_start : d.goal_end]
    relabel = jax.random.uniform(key, idx.row.shape) < c.her_fraction
    goal = jnp.where(relabel[:, None], hindsight, obs[:, d.obs_dim :])
    return Batch(
        obs=jnp.concatenate([state, goal], -1),
        action=buf.action[idx.row, idx.env],
        next_obs=jnp.concatenate([next_state, goal], -1),
        reward=success(next_state, goal),
        valid=idx.valid,
    )


def sample_indices(c: Config, d: train.Derived, buf, key) -> replay.SampleIndices:
    return replay.sample_indices(buf, key, window=d.window, gamma=c.gamma, batch_size=c.batch_size,
                                 num_batches=c.num_sgd_batches_per_training_step, strategy=c.her_strategy)  # fmt: skip


# ===== Collection: the exploration policy's unrolls, full observations stored ======================


class Setup(NamedTuple):
    """The static parts of training, built once from the config; the pure functions take it first."""

    config: Config
    derived: train.Derived
    nets: Any  # the algorithm's networks
    optimizers: Any  # and their optimizers
    train_env: Any  # envs.wrappers.wrap_for_training(env)
    success: Callable  # make_success(env)
    explore: Callable  # (ts, obs, key) -> action


def make_env_and_derived(config: Config, entropy_param: float = 0.0):
    """Checks the config, then (env, derived, wrapped training env, success rule)."""
    sched = validate(config)
    env = train.make_env(config.env_id, config)
    derived = derive(config, env, sched, -entropy_param * env.action_size)
    train_env = wrap_for_training(env, config.episode_length, config.reset_mode)
    return env, derived, train_env, make_success(env)


def init_env_and_buffer(s: Setup, key):
    env_state = s.train_env.reset(jax.random.split(key, s.config.num_envs))
    # The buffer's rows are whole observations: the commanded goal is kept for unrelabelled rows.
    goal_dim = s.derived.goal_end - s.derived.goal_start
    buf = replay.init(s.config.max_replay_size, s.config.num_envs, s.derived.obs_dim + goal_dim,
                      s.derived.action_dim)  # fmt: skip
    return env_state, buf


def collect_and_store(s: Setup, ts, env_state, buf):
    """unroll_length steps of all envs with the exploration policy, appended to the buffer."""
    key, k_collect = jax.random.split(ts.key)

    def env_step(env_state, key):
        obs = env_state.obs
        action = s.explore(ts, obs, key)
        return s.train_env.step(env_state, action), (obs, action, env_state.info["episode_id"])

    env_state, (obs, action, episode) = jax.lax.scan(
        env_step, env_state, jax.random.split(k_collect, s.config.unroll_length)
    )
    return ts.replace(key=key), env_state, replay.insert(buf, obs, action, episode)


def prefill(s: Setup, ts, env_state, buf):
    """min_replay_size steps per env with the untrained exploration policy, before the first update."""
    body = lambda carry, _: (collect_and_store(s, *carry), None)  # noqa: E731
    return jax.lax.scan(body, (ts, env_state, buf), length=s.derived.prefill_unrolls)[0]


# ===== Building, checkpoints and the main loop (train.train's, for a TD trainer) ===================


class Trainer(NamedTuple):
    """The jitted functions of one run; the fields render.py reads are named as train.Trainer's."""

    config: Config
    derived: train.Derived
    env: envs.GoalEnv
    eval_env: envs.GoalEnv
    init: Callable  # key -> (ts, env_state, buffer)
    prefill: Callable
    training_step: Callable
    training_epoch: Callable
    evaluate: Callable  # (actor_params, critic_params, key) -> metrics
    policy: Callable  # mode -> policy(actor_params, critic_params, obs, key)
    value: Callable  # (critic_params, state, action, goal) -> min_i Q_i [B]
    params_fields: tuple  # TrainingState fields saved as checkpoint "params" (enough to evaluate)


def jit_trainer(s: Setup, env, init: Callable, training_step: Callable, policy: Callable, value: Callable,
                params_fields: tuple, report: Optional[Callable]) -> Trainer:  # fmt: skip
    """Jits an algorithm's pure functions as train.build does (shardings, and with --num_seeds N > 1 a
    leading seed axis on init, prefill, training_step, training_epoch and evaluate); `policy(mode)`
    is its evaluation policy, mode 0 the deterministic one."""
    c, d = s.config, s.derived
    same = c.eval_env_id in (None, c.env_id)
    eval_env = env if same else train.make_env(c.eval_env_id, c)
    checks.same_family(c, env, eval_env)
    per_seed = jax.vmap if c.num_seeds > 1 else (lambda f: f)
    evaluate = train.make_evaluator(eval_env, policy(getattr(c, "eval_actor", 0)), num_envs=c.num_eval_envs,
                                    episode_length=c.episode_length)  # fmt: skip
    state = runs.data_parallel(jax.device_count(), per_seed(partial(init, s)), c.num_seeds)
    carried = dict(in_shardings=state, donate_argnums=(0, 1, 2))
    step = jax.jit(per_seed(partial(training_step, s)), out_shardings=(*state, None), **carried)
    return Trainer(
        c, d, env, eval_env,
        init=jax.jit(per_seed(partial(init, s)), out_shardings=state),
        prefill=jax.jit(per_seed(partial(prefill, s)), out_shardings=state, **carried),
        training_step=step,
        training_epoch=partial(train.training_epoch, step, d.training_steps_per_epoch, report=report),
        evaluate=jax.jit(per_seed(evaluate)) if c.num_seeds > 1 else evaluate,
        policy=policy, value=value, params_fields=params_fields,
    )  # fmt: skip


def param_norms(ts) -> dict:
    """The norms make the NaN guard see broken parameters even when the losses look fine."""
    return {"actor_param_norm": optax.tree.norm(ts.actor_params),
            "critic_param_norm": optax.tree.norm(ts.critic_params)}  # fmt: skip


def parse_config(config_cls: type, args: Optional[list[str]] = None):
    env_ids = "env ids: " + ", ".join(envs.ENV_IDS) + ", arm_grasp_<cube noise>"
    config = runs.parse_config(config_cls, args, train.budget, epilog="\n".join(textwrap.wrap(env_ids, 100)))
    checks.choose_cpu_fusion_emitters(config)  # before JAX's first backend starts, which reads XLA_FLAGS
    return config
