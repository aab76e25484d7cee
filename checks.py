"""Checks on a train.Config before anything is built or compiled.

A config that cannot run stops at start-up with one line naming the flag and what to change, not
with a traceback from deep inside XLA minutes later. train.validate calls this; it never imports
train (the config and train.schedule are passed in).
"""

from __future__ import annotations

import os

import jax

import envs
from runs import ConfigError

# Checks on single fields: (fields, test, what the message says they must be).
FIELD_RULES = [
    (("episode_length", "num_envs", "num_eval_envs", "total_env_steps", "num_epochs", "unroll_length",
      "max_replay_size", "min_replay_size", "batch_size", "num_sgd_batches_per_training_step", "repr_dim",
      "critic_network_width", "actor_network_width", "critic_depth", "actor_depth", "checkpoint_every",
      "checkpoint_keep", "vis_length", "actor_lr", "critic_lr", "alpha_lr", "num_seeds"),
     lambda v: v > 0, "must be positive"),
    (("expl_actor", "eval_actor", "num_render", "logsumexp_penalty_coeff", "unroll_blocks",
      "critic_skip_connections", "actor_skip_connections"),
     lambda v: v >= 0, "must be >= 0"),
    (("gamma",), lambda v: 0.0 < v < 1.0, "must lie in (0, 1)"),
]  # fmt: skip


def validate(config, schedule):
    """Raises ConfigError, saying what to change, for a train.Config that cannot run; else returns
    its schedule. `schedule` is train.schedule, called once the single fields are known to be sane."""
    for names, ok, requirement in FIELD_RULES:
        for name in names:
            if not ok(getattr(config, name)):
                raise ConfigError(f"--{name} {requirement}, got {getattr(config, name)}")
    for net in ("actor", "critic"):
        depth, block = getattr(config, f"{net}_depth"), getattr(config, f"{net}_skip_connections")
        if block and depth % block:
            raise ConfigError(
                f"--{net}_depth {depth} is not a multiple of the residual block size {block} "
                f"(--{net}_skip_connections): depth counts the Dense layers in the residual blocks; "
                f"use e.g. {max(block, depth - depth % block)} or {depth - depth % block + block}"
            )
    if config.num_seeds > 1 and config.resume:
        raise ConfigError(
            "--resume takes one run's folder; to continue a --num_seeds run, give its command again "
            "with the same --run_dir (each seed resumes from its own checkpoint there)"
        )
    if config.num_seeds > 1 and os.environ.get("WANDB_SWEEP_ID"):
        raise ConfigError(
            "--num_seeds > 1 under a wandb sweep agent, which follows one wandb run per command: "
            "sweep over --seed instead"
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
    for name in ("num_envs", "batch_size"):
        if getattr(config, name) % jax.device_count():
            raise ConfigError(
                f"--{name} {getattr(config, name)} does not divide evenly over the {jax.device_count()} "
                f"devices that share the work; use a multiple of {jax.device_count()}"
            )
    for env_id in (config.env_id, config.eval_env_id or config.env_id):
        try:
            envs.check_id(env_id)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    s, steps_per_unroll = schedule(config), config.num_envs * config.unroll_length
    if s.training_steps_per_epoch < 1:
        prefill = s.prefill_unrolls * steps_per_unroll
        raise ConfigError(
            f"--total_env_steps {config.total_env_steps:,} leaves no training step per "
            f"epoch after the {prefill:,}-step prefill; raise it to at least "
            f"{prefill + config.num_epochs * steps_per_unroll:,}, or lower --num_epochs / --num_envs / "
            f"--unroll_length"
        )
    sampled = config.num_envs * s.window
    needed = config.batch_size * config.num_sgd_batches_per_training_step
    if needed > sampled:
        raise ConfigError(
            f"--batch_size {config.batch_size} x --num_sgd_batches_per_training_step "
            f"{config.num_sgd_batches_per_training_step} = {needed:,} transitions, but one "
            f"training step samples only num_envs x min(episode_length, prefilled steps) = "
            f"{config.num_envs} x {s.window} = {sampled:,}; lower the batch size or SGD "
            f"steps, or raise --num_envs / --episode_length / --min_replay_size"
        )
    return s


def same_family(config, env, eval_env) -> None:
    """The eval env must take the trained networks' inputs: same observation size and goal slice."""
    if (eval_env.obs_dim, eval_env.goal_slice) != (env.obs_dim, env.goal_slice):
        raise ConfigError(
            f"--eval_env_id {config.eval_env_id} has obs_dim/goal slice "
            f"{eval_env.obs_dim}/{eval_env.goal_slice}, but {config.env_id} has "
            f"{env.obs_dim}/{env.goal_slice}; pick an eval env of the same family"
        )


def fusion_emitters_on(config) -> bool:
    """Whether a run wants XLA:CPU's fusion emitters, from --cpu_fusion_emitters or, under auto,
    from what the run is (measured: docs/benchmark.md, "XLA fusion emitters on the CPU")."""
    if config.cpu_fusion_emitters != "auto":
        return config.cpu_fusion_emitters == "on"
    if any(i.startswith("arm_") for i in (config.env_id, config.eval_env_id or config.env_id)):
        return False  # they slow MJX's kinematics of the arm's 9-level chain by orders of magnitude
    return max(config.actor_depth, config.critic_depth) >= 16  # the update outweighs brax's physics


def choose_cpu_fusion_emitters(config) -> None:
    """Sets this process's XLA:CPU fusion emitters for `config`; it must run before JAX's first
    backend starts (a command line's parse_config), else it changes nothing."""
    envs.use_cpu_fusion_emitters(fusion_emitters_on(config), override=config.cpu_fusion_emitters != "auto")
