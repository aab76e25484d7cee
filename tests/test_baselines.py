"""SAC+HER (sac.py) and TD3+HER (td3.py): losses on hand-computed values, HER batches, the env's
success rule, exact resume, one tiny run each, flags and errors."""

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import typing
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import baselines
import buffer as replay
import envs
import runs
import sac
import td3
import train
from tests.test_resume import TIMING
from tests.test_train import ROOT, TINY


# -- stand-in networks whose outputs are known by hand ---------------------------------------------


class ConstQ:
    """Q(x) = c + sum(action part of x): the action's effect is visible, the state's is not."""

    def __init__(self, action_dim: int):
        self.action_dim = action_dim

    def apply(self, p, x):
        return p["c"] + jnp.sum(x[:, -self.action_dim :], -1)


class GaussianActor:
    """(mean, log_std) = (p["m"], p["log_std"]) for every row: a known tanh-Gaussian policy."""

    def apply(self, p, obs):
        ones = jnp.ones((obs.shape[0], p["m"].shape[-1]))
        return p["m"] * ones, p["log_std"] * ones


class ConstActor:
    """mu(obs) = p["a"] for every row."""

    def apply(self, p, obs):
        return p["a"] * jnp.ones((obs.shape[0], p["a"].shape[-1]))


class LinearTanhActor:
    """mu(obs) = tanh(w * sum(obs)): differentiable, so an update visibly moves w."""

    def apply(self, p, obs):
        return jnp.tanh(p["w"] * jnp.sum(obs, -1, keepdims=True))


def batch(obs, action, next_obs, reward, valid=None) -> baselines.Batch:
    valid = jnp.ones(len(reward), bool) if valid is None else jnp.asarray(valid)
    return baselines.Batch(*(jnp.asarray(x, jnp.float32) for x in (obs, action, next_obs, reward)), valid)


# -- shared pieces: TD target, masking, Polyak -------------------------------------------------------


def test_td_target_scales_the_reward_discounts_the_target_value_and_stops_gradients():
    y = baselines.td_target(jnp.array([1.0, 0.0]), jnp.array([2.0, 3.0]), gamma=0.5, reward_scaling=2.0)
    np.testing.assert_allclose(y, [2 * 1 + 0.5 * 2, 0 + 0.5 * 3])
    grad = jax.grad(lambda v: baselines.td_target(jnp.ones(2), v, 0.5, 1.0).sum())(jnp.ones(2))
    np.testing.assert_array_equal(grad, 0.0)


def test_q_loss_averages_both_critics_and_leaves_rows_without_a_next_state_out():
    q = jnp.array([[1.0, 2.0], [3.0, 4.0]])  # [critic, row]
    valid = jnp.array([True, False])
    # Row 0 only: 0.5 * mean over critics of (1 - 0)^2, (3 - 0)^2 = 0.5 * 5.
    assert float(baselines.q_loss(q, jnp.array([0.0, 1.0]), valid)) == pytest.approx(2.5)
    assert float(baselines.q_loss(q, jnp.array([0.0, 99.0]), valid)) == pytest.approx(2.5)
    assert float(baselines.q_loss(q, jnp.array([0.0, 1.0]), jnp.array([True, True]))) == pytest.approx(
        0.5 * (1 + 9 + 1 + 9) / 4
    )


def test_polyak_moves_tau_of_the_way_to_the_online_parameters():
    out = baselines.polyak({"a": jnp.array([1.0, -2.0])}, {"a": jnp.array([3.0, 2.0])}, 0.25)
    np.testing.assert_allclose(out["a"], [1.5, -1.0])


# -- SAC ---------------------------------------------------------------------------------------------

ATANH_HALF = math.atanh(0.5)
LOG_STD = -20.0  # std 2e-9: the sample is the mean to float precision, its log-density known


def sac_nets(action_dim=2):
    return sac.Networks(GaussianActor(), ConstQ(action_dim), "exact")


def near_deterministic_log_prob(action_dim, tanh_mean=0.5):
    # Gaussian density at its mean, minus log(1 - tanh(u)^2) per action dimension.
    return action_dim * (-LOG_STD - 0.5 * math.log(2 * math.pi) - math.log(1 - tanh_mean**2))


def test_sac_critic_loss_soft_target_from_the_target_critics():
    nets = sac_nets()
    actor = {"m": jnp.full(2, ATANH_HALF), "log_std": jnp.full(2, LOG_STD)}  # a' = (0.5, 0.5)
    online, target = {"c": jnp.array([1.0, 2.0])}, {"c": jnp.array([5.0, 3.0])}
    b = batch(obs=[[0.0] * 3], action=[[0.25, 0.25]], next_obs=[[1.0] * 3], reward=[1.0])
    alpha, gamma, scale = 0.1, 0.9, 2.0
    loss, _ = sac.critic_loss(online, target, actor, alpha, nets, b, jax.random.PRNGKey(0), gamma, scale)

    log_pi = near_deterministic_log_prob(2)
    next_v = min(5.0, 3.0) + 1.0 - alpha * log_pi  # min target Q at a' (sum a' = 1), entropy bonus
    y = scale * 1.0 + gamma * next_v
    q = [1.0 + 0.5, 2.0 + 0.5]  # online critics at the stored action
    assert float(loss) == pytest.approx(0.5 * np.mean([(qi - y) ** 2 for qi in q]), rel=1e-5)


def test_sac_actor_loss_is_alpha_log_pi_minus_the_smaller_q():
    nets = sac_nets()
    actor = {"m": jnp.full(2, ATANH_HALF), "log_std": jnp.full(2, LOG_STD)}
    critic = {"c": jnp.array([1.0, -1.0])}
    b = batch(obs=[[0.0] * 3, [1.0] * 3], action=[[0, 0]] * 2, next_obs=[[0.0] * 3] * 2, reward=[0, 0])
    loss, log_prob = sac.actor_loss(actor, critic, 0.2, nets, b, jax.random.PRNGKey(1))
    log_pi = near_deterministic_log_prob(2)
    np.testing.assert_allclose(log_prob, [log_pi, log_pi], rtol=1e-5)
    assert float(loss) == pytest.approx(0.2 * log_pi - (-1.0 + 1.0), rel=1e-5)
    # The gradient reaches the actor through the critics' action input: d/dm of -sum(tanh(m)) < 0.
    grad = jax.grad(lambda p: sac.actor_loss(p, critic, 0.0, nets, b, jax.random.PRNGKey(1))[0])(actor)
    np.testing.assert_allclose(grad["m"], -(1 - 0.25), rtol=1e-4)


# -- TD3 ---------------------------------------------------------------------------------------------


def test_td3_target_policy_smoothing_clips_the_noise_then_the_action():
    nets = td3.Networks(ConstActor(), ConstQ(2))
    key = jax.random.PRNGKey(3)
    z = np.asarray(jax.random.normal(key, (4, 2)))
    target_action = {"a": jnp.array([0.9, 0.0])}
    out = td3.smoothed_target_action(nets, target_action, jnp.zeros((4, 3)), key, policy_noise=100.0, noise_clip=0.5)
    # Noise 100 z is clipped to +-0.5, then 0.9 + 0.5 to the action box's 1.0.
    expected = np.clip(np.array([0.9, 0.0]) + 0.5 * np.sign(z), -1.0, 1.0)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    small = td3.smoothed_target_action(nets, target_action, jnp.zeros((4, 3)), key, policy_noise=1e-3, noise_clip=0.5)
    np.testing.assert_allclose(small, np.clip(np.array([0.9, 0.0]) + 1e-3 * z, -1, 1), rtol=1e-5)


def test_td3_critic_loss_bootstraps_from_the_smaller_target_critic_at_the_smoothed_action():
    nets = td3.Networks(LinearTanhActor(), ConstQ(1))
    c = td3.Config(gamma=0.5, reward_scaling=3.0, policy_noise=0.0, noise_clip=0.5)
    target_actor = {"w": jnp.array(ATANH_HALF)}  # mu'(s') = tanh(atanh(0.5) * 1) = 0.5 for sum(s') = 1
    b = batch(obs=[[0.0, 0.0]], action=[[0.2]], next_obs=[[1.0, 0.0]], reward=[1.0])
    loss, _ = td3.critic_loss({"c": jnp.array([0.0, 1.0])}, {"c": jnp.array([4.0, 2.0])}, target_actor, nets, b,
                              jax.random.PRNGKey(0), c)  # fmt: skip
    y = 3.0 * 1.0 + 0.5 * (2.0 + 0.5)
    assert float(loss) == pytest.approx(0.5 * np.mean([(0.2 - y) ** 2, (1.2 - y) ** 2]), rel=1e-6)


def tiny_setup(module, **config):
    """A Setup over a hand-made 1-env buffer: obs = [state (2) | goal (2)], 1-d actions."""
    c = module.Config(batch_size=4, num_sgd_batches_per_training_step=1, **config)
    d = train.Derived(obs_dim=2, goal_start=0, goal_end=2, action_dim=1, env_steps_per_training_step=1,
                      prefill_unrolls=1, training_steps_per_epoch=1, window=4, target_entropy=-0.5)  # fmt: skip
    success = lambda state, goal: (jnp.linalg.norm(state - goal, axis=-1) < 0.1).astype(jnp.float32)  # noqa: E731
    buf = replay.init(6, 1, 4, 1)
    obs = jnp.array([[0.0, 0.0, 9.0, 9.0], [0.5, 0.0, 9.0, 9.0], [1.0, 0.0, 9.0, 9.0], [1.5, 0.0, 9.0, 9.0]])
    buf = replay.insert(buf, obs[:, None], jnp.full((4, 1, 1), 0.3), jnp.zeros((4, 1), jnp.int32))
    return c, d, success, buf


def test_td3_actor_and_targets_move_only_every_policy_delay_steps_by_polyak():
    c, d, success, buf = tiny_setup(td3, tau=0.25, policy_delay=2, policy_noise=0.0)
    nets = td3.Networks(LinearTanhActor(), ConstQ(1))
    opt = optax.sgd(0.1)
    s = baselines.Setup(c, d, nets, td3.Optimizers(opt, opt), None, success, None)
    actor, critic = {"w": jnp.array(0.3)}, {"c": jnp.array([1.0, 2.0])}
    ts = td3.TrainingState(actor, critic, {"w": jnp.array(-0.5)}, {"c": jnp.array([0.0, 0.0])}, opt.init(actor),
                           opt.init(critic), jnp.zeros((), jnp.int32), jax.random.PRNGKey(0))  # fmt: skip
    idx = replay.SampleIndices(row=jnp.array([0, 1, 2, 3]), env=jnp.zeros(4, int), goal_row=jnp.array([1, 2, 3, 3]),
                               valid=jnp.array([True, True, True, False]))  # fmt: skip
    history = [ts]
    for n in range(4):
        ts, _ = td3.sgd_step(s, ts, buf, idx, jax.random.PRNGKey(n))
        history.append(ts)
    for n in range(4):
        before, after = history[n], history[n + 1]
        assert int(after.sgd_steps) == n + 1
        assert not np.allclose(after.critic_params["c"], before.critic_params["c"])  # the critic: every step
        if n % 2 == 0:  # due: the actor steps, and both targets move tau towards the new online nets
            assert float(after.actor_params["w"]) != float(before.actor_params["w"])
            np.testing.assert_allclose(after.target_actor_params["w"],
                                       0.75 * before.target_actor_params["w"] + 0.25 * after.actor_params["w"])  # fmt: skip
            np.testing.assert_allclose(after.target_critic_params["c"],
                                       0.75 * before.target_critic_params["c"] + 0.25 * after.critic_params["c"])  # fmt: skip
        else:
            for name in ("actor_params", "target_actor_params", "target_critic_params", "actor_opt"):
                jax.tree.map(np.testing.assert_array_equal, getattr(after, name), getattr(before, name))


def test_sac_step_moves_the_target_critics_by_polyak_every_step():
    c, d, success, buf = tiny_setup(sac, tau=0.1)
    nets = sac.Networks(GaussianActor(), ConstQ(1), "exact")
    opt = optax.sgd(0.1)
    s = baselines.Setup(c, d, nets, train.Optimizers(opt, opt, opt), None, success, None)
    actor, critic = {"m": jnp.zeros(1), "log_std": jnp.zeros(1)}, {"c": jnp.array([1.0, 2.0])}
    ts = sac.TrainingState(actor, critic, jnp.zeros(()), {"c": jnp.array([-1.0, 0.0])}, opt.init(actor),
                           opt.init(critic), opt.init(jnp.zeros(())), jax.random.PRNGKey(0))  # fmt: skip
    idx = replay.SampleIndices(row=jnp.array([0, 1, 2, 3]), env=jnp.zeros(4, int), goal_row=jnp.array([1, 2, 3, 3]),
                               valid=jnp.array([True, True, True, False]))  # fmt: skip
    after, metrics = sac.sgd_step(s, ts, buf, idx, jax.random.PRNGKey(0))
    np.testing.assert_allclose(after.target_critic_params["c"],
                               0.9 * np.array([-1.0, 0.0]) + 0.1 * after.critic_params["c"], rtol=1e-6)  # fmt: skip
    assert float(after.log_alpha) != 0.0 and not np.allclose(after.actor_params["m"], 0.0)
    # HER with fraction 1: goals are next states' achieved goals for rows 0-2, so each is a success.
    assert float(metrics["reward"]) == 1.0


# -- HER batches and the env's success rule ----------------------------------------------------------


def test_her_batch_relabels_the_stated_fraction_and_rewards_the_next_state():
    for fraction, expected_reward in ((1.0, 1.0), (0.0, 0.0)):
        c, d, success, buf = tiny_setup(sac, her_fraction=fraction)
        idx = replay.SampleIndices(row=jnp.array([0, 1, 2, 3]), env=jnp.zeros(4, int),
                                   goal_row=jnp.array([1, 3, 3, 3]), valid=jnp.array([True] * 3 + [False]))  # fmt: skip
        b = baselines.her_batch(c, d, success, buf, idx, jax.random.PRNGKey(0))
        goal = [[0.5, 0.0], [1.5, 0.0], [1.5, 0.0], [1.5, 0.0]] if fraction else [[9.0, 9.0]] * 4
        np.testing.assert_allclose(b.obs[:, 2:], goal)
        np.testing.assert_allclose(b.next_obs[:3, :2], [[0.5, 0.0], [1.0, 0.0], [1.5, 0.0]])
        # fraction 1: row 0 reaches its goal next step, row 1 not yet (goal 2 steps on), row 2 does.
        assert b.reward[:3].tolist() == ([1.0, 0.0, 1.0] if fraction else [0.0, 0.0, 0.0])
    c, d, success, buf = tiny_setup(sac, her_fraction=0.3)
    n = 4000
    idx = replay.SampleIndices(row=jnp.zeros(n, int), env=jnp.zeros(n, int), goal_row=jnp.ones(n, int),
                               valid=jnp.ones(n, bool))  # fmt: skip
    b = baselines.her_batch(c, d, success, buf, idx, jax.random.PRNGKey(1))
    assert float(jnp.mean(b.obs[:, 2] == 0.5)) == pytest.approx(0.3, abs=0.03)  # hindsight goal (0.5, 0)


def test_final_strategy_takes_the_last_step_of_the_episode_in_the_window():
    offset, valid = replay.final_offsets(jnp.array([0, 0, 0, 1, 1, 2]))
    assert offset.tolist() == [2, 1, 0, 1, 0, 0]
    assert valid.tolist() == [True, True, False, True, False, False]
    buf = replay.init(8, 2, 1, 1)
    episode = jnp.array([[0, 0], [0, 0], [0, 1], [1, 1], [1, 1], [1, 1]])
    buf = replay.insert(buf, jnp.zeros((6, 2, 1)), jnp.zeros((6, 2, 1)), episode)
    idx = replay.sample_indices(buf, jax.random.PRNGKey(0), window=6, gamma=0.9, num_batches=1, batch_size=12,
                                strategy="final")  # fmt: skip
    last = {(0, 0): 2, (0, 1): 5, (1, 0): 1, (1, 1): 5}  # (env, episode) -> its last row
    for row, env, goal_row, ok in zip(*(np.asarray(x).ravel() for x in (idx.row, idx.env, idx.goal_row, idx.valid))):
        assert goal_row == last[(int(env), int(episode[row, env]))]
        assert ok == (row != goal_row)


def test_reward_follows_the_env_success_rule():
    reacher = envs.make("reacher")  # 3-d fingertip distance < 0.05
    success = baselines.make_success(reacher)
    state = jnp.zeros((2, reacher.obs_dim)).at[:, 4:7].set(jnp.array([[0.04, 0.0, 0.0], [0.06, 0.0, 0.0]]))
    assert success(state, jnp.zeros((2, 3))).tolist() == [1.0, 0.0]
    ant = envs.make("ant")  # its _metrics also reads the pipeline state (distance from the origin)
    state = jnp.zeros((2, ant.obs_dim)).at[:, :2].set(jnp.array([[0.4, 0.0], [0.6, 0.0]]))
    assert baselines.make_success(ant)(state, jnp.zeros((2, 2))).tolist() == [1.0, 0.0]


# -- flags ---------------------------------------------------------------------------------------------


def test_shared_flags_have_train_pys_names_types_and_defaults():
    crl = {f.name: f for f in dataclasses.fields(train.Config)}
    hints, crl_hints = typing.get_type_hints(baselines.Config), typing.get_type_hints(train.Config)
    shared = [f for f in dataclasses.fields(baselines.Config) if f.name in crl]
    assert len(shared) > 40  # RunSettings and the experiment's flags
    for f in shared:
        assert (hints[f.name], f.default) == (crl_hints[f.name], crl[f.name].default), f.name
    for cls in (sac.Config, td3.Config):
        help_text = runs.grouped_help(cls, "x")
        for heading in ("experiment:", "environment:", "hindsight relabelling (HER):", "networks:", "logging:"):
            assert f"\n{heading}\n" in help_text
        assert help_text.count("--exp_name ") == 1
    assert {"alpha_lr", "entropy_param", "eval_actor"} <= {f.name for f in dataclasses.fields(sac.Config)}
    assert not {"repr_dim", "energy_fn", "contrastive_loss_fn"} & {f.name for f in dataclasses.fields(sac.Config)}


def test_cli_bad_value_is_one_line_without_traceback():
    result = subprocess.run([sys.executable, "sac.py", "--env_id", "reacher", "--track", "False", "--tau", "0"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "error: --tau must lie in (0, 1], got 0.0"
    assert "Traceback" not in result.stderr
    # td3.py's command line is the same runs.main, which prints a ConfigError as that one line.
    for flags, message in ((dict(her_fraction=1.5), r"^--her_fraction must lie in \[0, 1\], got 1.5$"),
                           (dict(policy_delay=0), r"^--policy_delay must be positive, got 0$")):  # fmt: skip
        with pytest.raises(runs.ConfigError, match=message):
            td3.build(td3.Config(**RUN, **flags))


# -- tiny runs: end to end, and exact resume -----------------------------------------------------------

RUN = {k: v for k, v in TINY.items() if k != "repr_dim"}
RUN.update(num_epochs=2, total_env_steps=160 + 2 * 80, checkpoint=True, checkpoint_every=1)


class Crash(Exception):
    pass


def records(run_dir) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def build_once(module, monkeypatch, crash_in_epoch=None, signal_in_epoch=None):
    """Makes module.build return one trainer per seed count for all runs of a test (the run directory
    and the first seed are no part of it): its programs are traced and compiled once. With
    crash_in_epoch, that epoch call raises; with signal_in_epoch, a real SIGUSR1 arrives during it."""
    trainers, calls = {}, []

    def build(config, report=None):
        if config.num_seeds not in trainers:
            trainers[config.num_seeds] = real_build(config)
        trainer = trainers[config.num_seeds]
        epoch = partial(train.training_epoch, trainer.training_step, trainer.derived.training_steps_per_epoch,
                        report=report)  # fmt: skip

        def training_epoch(*args):
            calls.append(1)
            if len(calls) == crash_in_epoch:
                raise Crash(f"simulated crash in epoch call {crash_in_epoch}")
            if len(calls) == signal_in_epoch:
                os.kill(os.getpid(), signal.SIGUSR1)
            return epoch(*args)

        return trainer._replace(training_epoch=training_epoch)

    real_build = module.build
    monkeypatch.setattr(module, "build", build)
    return calls


@pytest.mark.parametrize("module", [sac, td3], ids=["sac", "td3"])
def test_tiny_run_and_exact_resume_after_epoch_1(module, tmp_path, monkeypatch):
    calls = build_once(module, monkeypatch, crash_in_epoch=4)  # the whole run's 2 epochs, then 2 more
    whole = module.train_run(module.Config(**RUN, run_root=str(tmp_path), run_dir=str(tmp_path / "whole")))
    rec = records(tmp_path / "whole")
    assert [r["epoch"] for r in rec] == [1, 2] and whole["training/envsteps"] == 320
    for key in ("training/critic_loss", "training/actor_loss", "training/q", "eval/episode_success"):
        assert all(np.isfinite(r[key]) for r in rec), key
    assert 0.0 < rec[0]["training/reward"] < 1.0  # HER yields successes, and failures
    _, payload = runs.load_params(tmp_path / "whole")
    assert jax.tree.leaves(payload["critic_params"])[0].shape[0] == baselines.NUM_CRITICS

    # Stopped in its second epoch (after epoch 1's checkpoint), then the same command again.
    config = module.Config(**RUN, run_root=str(tmp_path), run_dir=str(tmp_path / "resumed"))
    with pytest.raises(Crash):
        module.train_run(config)
    assert runs.latest_checkpoint(tmp_path / "resumed") == 1 and len(calls) == 4
    module.train_run(config)
    assert records(tmp_path / "resumed") == rec


@pytest.mark.parametrize("module", [sac, td3], ids=["sac", "td3"])
def test_several_seeds_are_plain_runs_and_resume_exactly_after_a_stop_signal(module, tmp_path, monkeypatch):
    """--num_seeds 2 (seeds 0 and 1): each seed's records are those of a plain run of its seed, to
    float32 rounding (the vmapped program fuses differently); a stop signal in the first epoch
    checkpoints both seeds at epoch 1, and the same command again finishes both exactly."""
    build_once(module, monkeypatch, signal_in_epoch=5)  # 2 plain runs, then the 2-seed run's epoch 1
    alone = {}
    for seed in (0, 1):
        module.train_run(module.Config(**RUN, seed=seed, run_dir=str(tmp_path / f"alone{seed}")))
        alone[seed] = records(tmp_path / f"alone{seed}")
    assert alone[0][-1]["training/critic_loss"] != pytest.approx(alone[1][-1]["training/critic_loss"], rel=1e-3)

    config = module.Config(**RUN, num_seeds=2, run_dir=str(tmp_path / "together"))
    with runs.StopSignals() as stop, pytest.raises(runs.Preempted, match="after epoch 1; checkpoint epoch_1 of each"):
        module.train_run(config, stop)
    for seed in (0, 1):
        seed_dir = tmp_path / "together" / f"s{seed}"
        assert runs.latest_checkpoint(seed_dir) == 1
        saved = json.loads((seed_dir / "config.json").read_text())
        assert (saved["algorithm"], saved["seed"], saved["num_seeds"]) == (module.Config.algorithm, seed, 1)
    stopped = {seed: records(tmp_path / "together" / f"s{seed}") for seed in (0, 1)}

    out = module.train_run(config)  # the same command: both seeds resume from epoch 1
    assert [o["run_dir"] for o in out] == [str(tmp_path / "together" / f"s{s}") for s in (0, 1)]
    module.train_run(dataclasses.replace(config, run_dir=str(tmp_path / "uninterrupted")))
    for seed in (0, 1):
        together = records(tmp_path / "together" / f"s{seed}")
        assert together[:1] == stopped[seed]
        assert together == records(tmp_path / "uninterrupted" / f"s{seed}")  # bit for bit
        for mine, theirs in zip(together, alone[seed], strict=True):
            assert mine.keys() == theirs.keys()
            for k in mine:
                assert mine[k] == pytest.approx(theirs[k], rel=1e-4, abs=1e-6), (seed, mine["epoch"], k)


# -- job.slurm: ALGO picks the program ------------------------------------------------------------------

from tests.test_slurm import run as run_job  # noqa: E402
from tests.test_slurm import slurm  # noqa: E402,F401  (the fixture: stand-in srun, scontrol, repository)


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_job_slurm_algo_runs_the_baseline_under_its_own_name(slurm, algo):  # noqa: F811
    logs, env = slurm
    result = run_job(env(ALGO=algo, ENV_ID="ant", DEPTH="16", SEED="1"))
    assert result.returncode == 0, result.stderr
    args = (logs / "srun_args").read_text().split()
    assert args[args.index("run") + 1] == f"{algo}.py"
    assert args[args.index("--run_dir") + 1] == f"runs/ant__{algo}_depth16__s1__777"
    assert args[args.index("--exp_name") + 1] == f"{algo}_depth16"
    assert f"{algo}.py exited with status 0" in result.stdout


def test_job_slurm_refuses_an_unknown_algo(slurm):  # noqa: F811
    logs, env = slurm
    result = run_job(env(ALGO="ppo"))
    assert result.returncode == 2 and "job.slurm: ALGO=ppo; use crl, sac or td3" in result.stderr
    assert not (logs / "srun_args").exists()
