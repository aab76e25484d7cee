"""On-device trajectory replay buffer with future-state (hindsight) goal sampling.

The buffer is a FIFO ring of time steps, one column per environment slot:
arrays are shaped [max_replay_size, num_envs, ...]. Row order in memory wraps
around; the *logical* index 0 is always the oldest stored time step.

Training samples indices, not data: for every env slot a window of
consecutive time steps is drawn, each state in it gets a goal from a later
step of the same episode, and the (state, goal) index pairs are shuffled into
SGD batches. The states themselves are gathered one batch at a time inside the
update loop, so memory does not grow with the number of sampled windows.

Everything here is a pure function of explicit arrays, safe under jit/scan.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class ReplayBuffer:
    state: jax.Array  # [capacity, num_envs, obs_dim] float32
    action: jax.Array  # [capacity, num_envs, action_dim] float32
    episode: jax.Array  # [capacity, num_envs] int32, episode id within an env slot
    insert_pos: jax.Array  # () int32, next physical row to write
    size: jax.Array  # () int32, number of valid rows

    @property
    def capacity(self) -> int:
        return self.state.shape[0]


@struct.dataclass
class SampleIndices:
    """Where to read one SGD batch (or a stack of them) from the buffer."""

    row: jax.Array  # physical row of the state/action
    env: jax.Array  # env slot (column)
    goal_row: jax.Array  # physical row of the future state used as goal
    valid: jax.Array  # False where the state has no future step in its episode


def init(capacity: int, num_envs: int, obs_dim: int, action_dim: int) -> ReplayBuffer:
    return ReplayBuffer(
        state=jnp.zeros((capacity, num_envs, obs_dim), jnp.float32),
        action=jnp.zeros((capacity, num_envs, action_dim), jnp.float32),
        episode=jnp.zeros((capacity, num_envs), jnp.int32),
        insert_pos=jnp.zeros((), jnp.int32),
        size=jnp.zeros((), jnp.int32),
    )


def insert(buffer: ReplayBuffer, state: jax.Array, action: jax.Array, episode: jax.Array) -> ReplayBuffer:
    """Appends an unroll shaped [unroll_length, num_envs, ...], evicting the oldest rows."""
    unroll_length = state.shape[0]
    if unroll_length > buffer.capacity:
        raise ValueError(f"unroll of {unroll_length} steps does not fit a buffer of {buffer.capacity}")
    rows = (buffer.insert_pos + jnp.arange(unroll_length)) % buffer.capacity
    return buffer.replace(
        state=buffer.state.at[rows].set(state),
        action=buffer.action.at[rows].set(action),
        episode=buffer.episode.at[rows].set(episode.astype(jnp.int32)),
        insert_pos=(buffer.insert_pos + unroll_length) % buffer.capacity,
        size=jnp.minimum(buffer.size + unroll_length, buffer.capacity),
    )


def physical_row(buffer: ReplayBuffer, logical: jax.Array) -> jax.Array:
    """Maps logical time indices (0 = oldest stored step) to rows in memory."""
    oldest = buffer.insert_pos - buffer.size
    return (oldest + logical) % buffer.capacity


def episode_horizon(episode: jax.Array) -> jax.Array:
    """H_t: how many later steps of step t's episode the window holds (0 at its last stored step)."""
    length = episode.shape[0]
    t = jnp.arange(length)
    # Episode ids never decrease in time, so the last step of t's episode is
    # the first "episode ends here" marker at or after t: a reverse running min.
    ends_here = jnp.append(episode[1:] != episode[:-1], True)
    last = jax.lax.cummin(jnp.where(ends_here, t, length), reverse=True)
    return last - t


def final_offsets(episode: jax.Array) -> tuple[jax.Array, jax.Array]:
    """HER's `final` strategy: every step's goal is the last step of its episode inside the window
    (offset H_t). Returns (offset, valid) like future_offsets."""
    horizon = episode_horizon(episode)
    return horizon, horizon >= 1


def future_offsets(key: jax.Array, episode: jax.Array, gamma: float) -> tuple[jax.Array, jax.Array]:
    """Draws a hindsight-goal offset k >= 1 for every step of one window.

    `episode` holds the episode id of each of the window's T consecutive steps.
    For step t, k is drawn with P(k) proportional to gamma^(k-1) on
    1..H_t, where H_t is the number of later steps of the same episode inside
    the window, so a goal never crosses an episode boundary. The draw is the
    exact inverse CDF of that truncated geometric law: O(T) time and memory.

    Returns (offset, valid); steps with H_t = 0 (an episode's last stored step)
    have no goal: offset 0 and valid False.
    """
    horizon = episode_horizon(episode)
    u = jax.random.uniform(key, (episode.shape[0],))
    # CDF F(k) = (1 - g^k) / (1 - g^H); the smallest k with F(k) >= u is below.
    mass = 1.0 - gamma ** horizon.astype(jnp.float32)
    k = jnp.ceil(jnp.log1p(-u * mass) / jnp.log(gamma)).astype(jnp.int32)
    valid = horizon >= 1
    offset = jnp.where(valid, jnp.clip(k, 1, horizon), 0)
    return offset, valid


def sample_indices(
    buffer: ReplayBuffer,
    key: jax.Array,
    *,
    window: int,
    gamma: float,
    num_batches: int,
    batch_size: int,
    strategy: str = "future",
) -> SampleIndices:
    """Samples num_batches x batch_size (state, goal) index pairs.

    Every env slot contributes one window of `window` consecutive steps drawn
    uniformly from the stored history (the buffer must hold >= window steps);
    the window's steps get future goals (`strategy` "future": k steps ahead,
    P(k) ~ gamma^(k-1); "final": the episode's last step in the window), then
    all num_envs * window pairs are shuffled and the first num_batches *
    batch_size kept.
    """
    num_envs = buffer.state.shape[1]
    key_start, key_goal, key_perm = jax.random.split(key, 3)

    start = jax.random.randint(key_start, (num_envs,), 0, buffer.size - window + 1)
    logical = start[:, None] + jnp.arange(window)  # [num_envs, window]
    env = jnp.broadcast_to(jnp.arange(num_envs)[:, None], logical.shape)
    row = physical_row(buffer, logical)
    episode = buffer.episode[row, env]

    goal_keys = jax.random.split(key_goal, num_envs)
    if strategy == "final":
        offset, valid = jax.vmap(final_offsets)(episode)
    elif strategy == "future":
        offset, valid = jax.vmap(future_offsets, (0, 0, None))(goal_keys, episode, gamma)
    else:
        raise ValueError(f"unknown hindsight goal strategy {strategy!r}; use future or final")
    goal_row = physical_row(buffer, logical + offset)

    needed = num_batches * batch_size
    keep = jax.random.permutation(key_perm, num_envs * window)[:needed]

    def batched(x: jax.Array) -> jax.Array:
        return x.reshape(-1)[keep].reshape(num_batches, batch_size)

    return SampleIndices(row=batched(row), env=batched(env), goal_row=batched(goal_row), valid=batched(valid))


def gather(
    buffer: ReplayBuffer, idx: SampleIndices, goal_start: int, goal_end: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Reads (state, action, goal) for one batch of indices."""
    state = buffer.state[idx.row, idx.env]
    action = buffer.action[idx.row, idx.env]
    goal = buffer.state[idx.goal_row, idx.env, goal_start:goal_end]
    return state, action, goal
