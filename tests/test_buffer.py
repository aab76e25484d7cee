"""Replay buffer: hindsight-goal offset law, episode boundaries, FIFO wrap-around."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import buffer as replay


def truncated_geometric(gamma: float, horizon: int) -> np.ndarray:
    """P(k) for k = 1..horizon, proportional to gamma^(k-1)."""
    p = gamma ** np.arange(horizon, dtype=np.float64)
    return p / p.sum()


def draw_offsets(episode, gamma, draws, seed=0):
    keys = jax.random.split(jax.random.PRNGKey(seed), draws)
    episode = jnp.asarray(episode, jnp.int32)
    fn = jax.jit(jax.vmap(replay.future_offsets, (0, None, None)), static_argnums=2)
    offset, valid = fn(keys, episode, gamma)
    return np.asarray(offset), np.asarray(valid)


@pytest.mark.parametrize("gamma", [0.9, 0.99])
def test_offset_distribution_matches_truncated_geometric(gamma):
    length, draws = 80, 40_000
    offset, valid = draw_offsets(np.zeros(length), gamma, draws)
    # A state with a long horizon and one close to the window's end (truncation).
    for t in (0, length - 7):
        horizon = length - 1 - t
        assert valid[:, t].all()
        counts = np.bincount(offset[:, t], minlength=horizon + 1)
        assert counts[0] == 0 and counts.size == horizon + 1, "offsets must lie in 1..horizon"
        expected = truncated_geometric(gamma, horizon) * draws
        # Merge sparse tail bins so every expected count is >= 5 (chi-square validity).
        keep = expected >= 5
        obs = np.append(counts[1:][keep], counts[1:][~keep].sum())
        exp = np.append(expected[keep], expected[~keep].sum())
        if exp[-1] == 0:
            obs, exp = obs[:-1], exp[:-1]
        _, p_value = stats.chisquare(obs, exp)
        assert p_value > 1e-3, (t, p_value)


def test_offset_mean_matches_analytic_mean():
    # A sharper check than chi-square on a long horizon: E[k] of the truncated law.
    gamma, length, draws = 0.99, 1000, 20_000
    offset, _ = draw_offsets(np.zeros(length), gamma, draws, seed=1)
    p = truncated_geometric(gamma, length - 1)
    mean = (p * np.arange(1, length)).sum()
    std = np.sqrt((p * np.arange(1, length) ** 2).sum() - mean**2)
    assert abs(offset[:, 0].mean() - mean) < 5 * std / np.sqrt(draws)


def test_goals_never_cross_episode_boundaries():
    rng = np.random.default_rng(0)
    episode = np.cumsum(rng.random(300) < 0.05)  # episodes of random length
    offset, valid = draw_offsets(episode, 0.95, 500)
    t = np.arange(episode.size)
    goal_t = t + offset
    assert (goal_t < episode.size).all()
    assert (episode[goal_t][valid] == np.broadcast_to(episode, valid.shape)[valid]).all()
    assert (offset[valid] >= 1).all() and (offset[~valid] == 0).all()
    # Only the last stored step of each episode lacks a future goal.
    last_of_episode = np.append(episode[1:] != episode[:-1], True)
    assert (valid == ~last_of_episode).all()


def test_relabelling_is_linear_in_window_length():
    # A T x T construction would need 4e10 bytes here; the O(T) draw is instant.
    episode = jnp.repeat(jnp.arange(100), 1000)
    offset, valid = jax.jit(replay.future_offsets, static_argnums=2)(jax.random.PRNGKey(0), episode, 0.99)
    assert offset.shape == (100_000,) and int(valid.sum()) == 100_000 - 100


def filled_buffer(capacity, num_envs, steps, unroll):
    """Inserts `steps` time steps; state[..., 0] = time, state[..., 1] = env slot."""
    buf = replay.init(capacity, num_envs, obs_dim=3, action_dim=1)
    for start in range(0, steps, unroll):
        t = np.arange(start, start + unroll, dtype=np.float32)
        state = np.stack(np.broadcast_arrays(t[:, None], np.arange(num_envs)[None, :], 0.0 * t[:, None]), -1)
        action = t[:, None, None] * np.ones((1, num_envs, 1), np.float32)
        episode = (t // 7).astype(np.int32)[:, None] * np.ones((1, num_envs), np.int32)
        buf = replay.insert(buf, state, action, episode)
    return buf


def test_fifo_wrap_around_keeps_latest_steps_in_order():
    buf = filled_buffer(capacity=10, num_envs=2, steps=24, unroll=4)
    assert int(buf.size) == 10
    logical = jnp.arange(10)
    times = np.asarray(buf.state[replay.physical_row(buf, logical), 0, 0])
    np.testing.assert_array_equal(times, np.arange(14, 24))  # oldest -> newest, wrapped


def test_partial_buffer_size_and_order():
    buf = filled_buffer(capacity=10, num_envs=1, steps=6, unroll=3)
    assert int(buf.size) == 6
    times = np.asarray(buf.state[replay.physical_row(buf, jnp.arange(6)), 0, 0])
    np.testing.assert_array_equal(times, np.arange(6))


def test_sampled_windows_after_wrap_are_contiguous_and_goals_in_episode():
    num_envs, window = 3, 6
    buf = filled_buffer(capacity=16, num_envs=num_envs, steps=40, unroll=5)
    idx = replay.sample_indices(
        buf, jax.random.PRNGKey(3), window=window, gamma=0.9, num_batches=3, batch_size=6
    )
    assert idx.row.shape == (3, 6)
    state, action, goal = replay.gather(buf, idx, goal_start=0, goal_end=1)
    t_state, slot = np.asarray(state[..., 0]), np.asarray(state[..., 1])
    t_goal = np.asarray(goal[..., 0])
    valid = np.asarray(idx.valid)
    np.testing.assert_array_equal(slot, np.asarray(idx.env))  # column matches env slot
    np.testing.assert_array_equal(np.asarray(action[..., 0]), t_state)
    assert t_state.min() >= 40 - 16 and t_state.max() <= 39  # only stored steps
    assert (t_goal[valid] > t_state[valid]).all()
    assert (t_goal[valid] - t_state[valid] <= window - 1).all()
    assert (t_goal[valid] // 7 == t_state[valid] // 7).all()  # same episode
    np.testing.assert_array_equal(t_goal[~valid], t_state[~valid])


def test_sample_draws_distinct_transitions():
    buf = filled_buffer(capacity=50, num_envs=4, steps=50, unroll=10)
    idx = replay.sample_indices(
        buf, jax.random.PRNGKey(0), window=20, gamma=0.99, num_batches=8, batch_size=10
    )
    pairs = set(zip(np.asarray(idx.row).ravel().tolist(), np.asarray(idx.env).ravel().tolist()))
    assert len(pairs) == 80  # a permutation: no transition drawn twice in one step


def test_insert_rejects_unroll_larger_than_buffer():
    buf = replay.init(4, 1, 1, 1)
    with pytest.raises(ValueError, match="does not fit"):
        replay.insert(buf, jnp.zeros((5, 1, 1)), jnp.zeros((5, 1, 1)), jnp.zeros((5, 1)))
