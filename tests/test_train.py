"""The trainer: config checks, determinism, no retracing, checkpoints, CLI, deep nets."""

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import runs
from envs.wrappers import wrap_for_training
import train

ROOT = Path(__file__).resolve().parents[1]
# For subprocess runs that check plumbing (every item runs, flags reach config.json) or compare two
# runs made at one level: XLA's LLVM optimisation level 0 cuts the CPU time of these compile-bound
# tiny programs by a third or more. Same HLO; results may differ from the default level's in the
# last bits. tests/conftest.py sets it for the whole session unless CRL_TEST_XLA_OPT=default.
PLUMBING_XLA_FLAGS = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()

# A run small enough to compile and train in seconds: 2 epochs x 2 training steps.
TINY = dict(
    env_id="reacher",
    num_envs=8,
    num_eval_envs=4,
    episode_length=20,
    unroll_length=5,
    min_replay_size=20,
    max_replay_size=50,
    batch_size=16,
    num_sgd_batches_per_training_step=2,
    total_env_steps=320,
    num_epochs=2,
    actor_network_width=16,
    critic_network_width=16,
    repr_dim=8,
    track=False,
    capture_vis=False,
    checkpoint=False,
)


def tiny_config(tmp_path=None, **overrides) -> train.Config:
    run_root = str(tmp_path) if tmp_path else "runs"
    return train.Config(**{**TINY, "run_root": run_root, **overrides})


def cli_args(config_dict: dict) -> list[str]:
    return [arg for k, v in config_dict.items() for arg in (f"--{k}", str(v))]


# -- configuration errors ---------------------------------------------------------


@pytest.mark.parametrize(
    "overrides,message",
    [
        (dict(env_id="no_such_env"), "unknown env_id 'no_such_env'; valid ids: ant, .*reacher"),
        (dict(critic_depth=6), "--critic_depth 6 is not a multiple of the residual block size 4"),
        (dict(actor_depth=0), "--actor_depth must be positive"),
        (dict(num_envs=0), "--num_envs must be positive"),
        (dict(batch_size=-4), "--batch_size must be positive"),
        (dict(batch_size=200), "only num_envs x min\\(episode_length, prefilled steps\\) = 8 x 20 = 160"),
        (dict(num_sgd_batches_per_training_step=11), "= 176 transitions"),
        (dict(total_env_steps=239), "--total_env_steps 239 leaves no training step per epoch.*at least 240"),
        (dict(min_replay_size=60), "--min_replay_size 60 exceeds --max_replay_size 50"),
        (dict(gamma=1.0), "--gamma must lie in \\(0, 1\\)"),
        (dict(eval_actor=-1), "--eval_actor must be >= 0"),
    ],
)
def test_bad_config_is_rejected_before_compiling(overrides, message):
    compiles = []
    listener = lambda event, duration, **kw: compiles.append(event)  # noqa: E731
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        with pytest.raises(train.ConfigError, match=message):
            train.build(tiny_config(**overrides))
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert "/jax/core/compile/backend_compile_duration" not in compiles


def test_cli_reports_config_errors_without_a_traceback():
    result = subprocess.run(
        [sys.executable, "train.py", "--env_id", "humanoidd", "--track", "False"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "error: unknown env_id 'humanoidd'; valid ids:" in result.stderr
    assert "Traceback" not in result.stderr


# -- command line -------------------------------------------------------------------


def test_paper_readme_command_parses_unchanged():
    # The example command of the paper's README, minus its launcher.
    args = (
        '--env_id humanoid --eval_env_id humanoid --num_epochs 100 --total_env_steps 100000000 '
        '--critic_depth 16 --actor_depth 16 --actor_skip_connections 4 --critic_skip_connections 4 '
        '--batch_size 512 --vis_length 1000 --save_buffer 0'
    ).split()  # fmt: skip
    config = train.parse_config(args)
    assert (config.env_id, config.eval_env_id, config.num_epochs) == ("humanoid", "humanoid", 100)
    assert (config.total_env_steps, config.critic_depth, config.actor_depth) == (100_000_000, 16, 16)
    assert (config.actor_skip_connections, config.batch_size, config.vis_length) == (4, 512, 1000)
    assert config.save_buffer is False


def test_dashes_and_boolean_values_parse():
    config = train.parse_config(
        ["--env-id", "reacher", "--track", "False", "--save-buffer", "1", "--use_relu", "true"]
    )
    assert config.env_id == "reacher" and config.track is False
    assert config.save_buffer is True and config.use_relu is True
    with pytest.raises(SystemExit):
        train.parse_config(["--track", "maybe"])


def test_defaults_are_the_papers_table_2():
    c = train.Config()
    assert (c.num_envs, c.batch_size, c.max_replay_size, c.min_replay_size) == (512, 512, 10_000, 1_000)
    assert (c.episode_length, c.gamma, c.logsumexp_penalty_coeff, c.repr_dim) == (1000, 0.99, 0.1, 64)
    assert c.actor_lr == c.critic_lr == c.alpha_lr == 3e-4
    assert c.critic_network_width == c.actor_network_width == 256
    # Update-to-data 1:40: one SGD step per ~40 env steps.
    assert c.num_envs * c.unroll_length / c.num_sgd_batches_per_training_step == pytest.approx(40, rel=0.01)


def test_help_lists_every_option():
    result = subprocess.run(
        [sys.executable, "train.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0
    for field in dataclasses.fields(train.Config):
        assert f"--{field.name}" in result.stdout, field.name


# -- one compiled tiny trainer shared by the in-process tests ----------------------------


@pytest.fixture(scope="module")
def tiny_trainer():
    return train.build(tiny_config())


def run_epochs(trainer, seed, epochs):
    ts, env_state, buf = trainer.init(jax.random.PRNGKey(seed))
    ts, env_state, buf = trainer.prefill(ts, env_state, buf)
    history = []
    for _ in range(epochs):
        ts, env_state, buf, metrics = trainer.training_epoch(ts, env_state, buf)
        history.append(jax.device_get(metrics))
    evals = jax.device_get(trainer.evaluate(ts.actor_params, ts.critic_params, jax.random.PRNGKey(seed)))
    return ts, env_state, buf, history, evals


def test_same_seed_gives_identical_numbers(tiny_trainer):
    _, _, _, first, eval_first = run_epochs(tiny_trainer, seed=3, epochs=2)
    _, _, _, second, eval_second = run_epochs(tiny_trainer, seed=3, epochs=2)
    _, _, _, other, _ = run_epochs(tiny_trainer, seed=4, epochs=2)
    for a, b in zip(first, second):
        assert a == b
    assert eval_first == eval_second
    assert first[-1]["critic_loss"] != other[-1]["critic_loss"]
    assert all(np.isfinite(v) for m in first for v in m.values())


def test_epochs_do_not_retrace_or_recompile(tiny_trainer):
    ts, env_state, buf = tiny_trainer.init(jax.random.PRNGKey(0))
    ts, env_state, buf = tiny_trainer.prefill(ts, env_state, buf)
    ts, env_state, buf, _ = tiny_trainer.training_epoch(ts, env_state, buf)
    tiny_trainer.evaluate(ts.actor_params, ts.critic_params, jax.random.PRNGKey(0))

    compiles = []
    listener = lambda event, duration, **kw: compiles.append(event)  # noqa: E731
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        for epoch in range(3):
            ts, env_state, buf, metrics = tiny_trainer.training_epoch(ts, env_state, buf)
            jax.block_until_ready(metrics)
            tiny_trainer.evaluate(ts.actor_params, ts.critic_params, jax.random.PRNGKey(epoch))
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert "/jax/core/compile/backend_compile_duration" not in compiles


def test_training_changes_parameters_and_fills_buffer(tiny_trainer):
    ts0, _, _ = tiny_trainer.init(jax.random.PRNGKey(1))
    ts, _, buf, _, _ = run_epochs(tiny_trainer, seed=1, epochs=1)
    for name in ("actor_params", "critic_params"):
        before, after = jax.tree.leaves(getattr(ts0, name)), jax.tree.leaves(getattr(ts, name))
        assert any(not np.allclose(a, b) for a, b in zip(before, after)), name
    # prefill 4 unrolls + 2 training steps of 5 steps each: 30 of 50 rows.
    assert int(buf.size) == 30
    assert float(ts.log_alpha) != 0.0


def save_checkpoint(manager, config, ts, env_state, buf, epoch, env_steps):
    meta = dict(epoch=epoch, env_steps=env_steps, wandb_id=None, has_buffer=True, config=dataclasses.asdict(config))
    return runs.save_checkpoint(manager, *train.checkpoint_items(ts, env_state, buf), meta)


def test_checkpoint_round_trip_reproduces_evaluation(tiny_trainer, tmp_path):
    ts, env_state, buf, _, evals = run_epochs(tiny_trainer, seed=2, epochs=1)
    config = tiny_trainer.config
    manager = runs.checkpoint_manager(tmp_path, keep=3)
    path = save_checkpoint(manager, config, ts, env_state, buf, epoch=1, env_steps=240)
    assert path == (tmp_path / "checkpoints" / "epoch_1").absolute() and path.is_dir()
    loaded_config, payload = train.load_checkpoint(tmp_path)
    assert loaded_config == config
    assert payload["epoch"] == 1 and payload["env_steps"] == 240
    for a, b in zip(jax.tree.leaves(ts.actor_params), jax.tree.leaves(payload["actor_params"])):
        np.testing.assert_array_equal(a, b)
    again = jax.device_get(
        tiny_trainer.evaluate(payload["actor_params"], payload["critic_params"], jax.random.PRNGKey(2))
    )
    assert again == evals
    # The full state comes back too: optimizer moments, RNG key, env states, buffer.
    fresh = train.checkpoint_items(*tiny_trainer.init(jax.random.PRNGKey(9)))
    restored = runs.restore_checkpoint(tmp_path, runs.checkpoint_meta(tmp_path)["epoch"], *fresh)
    saved = train.checkpoint_items(ts, env_state, buf)
    for a, b in zip(jax.tree.leaves(saved), jax.tree.leaves(restored)):
        np.testing.assert_array_equal(a, b)


def test_checkpoints_are_pruned_only_after_a_newer_one_exists(tiny_trainer, tmp_path):
    state = tiny_trainer.init(jax.random.PRNGKey(0))
    config = dataclasses.replace(tiny_trainer.config, checkpoint_keep=2)
    manager = runs.checkpoint_manager(tmp_path, keep=2)
    for epoch in (1, 2, 3, 4):
        save_checkpoint(manager, config, *state, epoch=epoch, env_steps=epoch)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["epoch_3", "epoch_4"]


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train.load_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train.load_checkpoint(tmp_path / "checkpoints" / "epoch_9")


def test_non_finite_loss_stops_with_a_message(tmp_path):
    with pytest.raises(FloatingPointError, match="non-finite actor_loss at epoch 7; .*epoch_5"):
        runs.check_finite({"critic_loss": 1.0, "actor_loss": float("nan")}, 7, tmp_path / "epoch_5")
    runs.check_finite({"critic_loss": 1.0}, 1, None)


# -- deep networks --------------------------------------------------------------------


def test_depth_1024_critic_and_512_actor_run_a_training_step():
    config = tiny_config(
        actor_depth=512,
        critic_depth=1024,
        remat=True,
        actor_network_width=64,
        critic_network_width=64,
        num_envs=4,
        num_eval_envs=2,
        batch_size=8,
        num_sgd_batches_per_training_step=1,
        total_env_steps=4 * 5 * 5,  # prefill 4 unrolls + 1 training step
        num_epochs=1,
    )
    trainer = train.build(config)
    start = time.time()
    ts, env_state, buf = trainer.init(jax.random.PRNGKey(0))
    ts, env_state, buf = trainer.prefill(ts, env_state, buf)
    before = np.asarray(
        ts.critic_params["sa_encoder"]["params"]["torso"]["blocks"]["DenseNormAct_3"]["Dense_0"]["kernel"][-1]
    )
    ts, env_state, buf, metrics = trainer.training_epoch(ts, env_state, buf)
    metrics = jax.device_get(metrics)
    assert all(np.isfinite(v) for v in metrics.values())
    kernel = ts.critic_params["sa_encoder"]["params"]["torso"]["blocks"]["DenseNormAct_3"]["Dense_0"][
        "kernel"
    ]
    assert kernel.shape == (256, 64, 64)  # 1024 layers = 256 scanned blocks of 4
    assert not np.allclose(before, kernel[-1])  # the deepest block received gradients
    assert time.time() - start < 600


# -- end to end -------------------------------------------------------------------------


def test_cli_end_to_end_run_and_evaluate_checkpoint(tmp_path):
    config = {
        **TINY,
        "num_epochs": 3,
        "total_env_steps": 160 + 3 * 2 * 40,
        "run_root": str(tmp_path / "runs"),
        "track": True,
        "wandb_mode": "offline",
        "checkpoint": True,
        "checkpoint_every": 1,
        "checkpoint_keep": 2,
        "save_buffer": True,
        "capture_vis": True,
        "vis_length": 10,
        "exp_name": "e2e",
    }
    env = {**os.environ, "WANDB_SILENT": "true"}
    result = subprocess.run(
        [sys.executable, "train.py", *cli_args(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # One log line per epoch (the progress lines between them carry no evaluation).
    epoch_lines = [line for line in result.stderr.splitlines() if "| eval success" in line]
    assert len(epoch_lines) == 3 and epoch_lines[-1].split(" ", 1)[1].startswith("epoch 3/3 |")
    assert "ETA" in epoch_lines[-1] and "/20 steps" in epoch_lines[-1] and "per step" in epoch_lines[-1]
    assert "compiling and prefilling" in result.stderr and "compiling the training epoch" in result.stderr

    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("reacher__e2e__s0__")
    assert json.loads((run_dir / "config.json").read_text())["num_epochs"] == 3
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert [r["training/envsteps"] for r in records] == [240, 320, 400]
    for key in ("training/sps", "training/walltime", "training/critic_loss", "training/actor_loss",
                "eval/episode_success", "eval/episode_success_any", "eval/episode_dist",
                "eval/episode_reward", "eval/avg_episode_length"):  # fmt: skip
        assert all(np.isfinite(r[key]) for r in records), key
    assert records[-1]["eval/avg_episode_length"] == 20  # reacher never terminates

    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert checkpoints == ["epoch_2", "epoch_3"]
    meta = runs.checkpoint_meta(run_dir)
    assert (meta["epoch"], meta["env_steps"], meta["has_buffer"]) == (3, 400, True)
    assert meta["wandb_id"] and meta["wandb_id"] in str(next((run_dir / "wandb").glob("offline-run-*")))
    assert "<html" in (run_dir / "render_0.html").read_text().lower()
    assert list((run_dir / "wandb").glob("offline-run-*")), "wandb offline run not written"

    result = subprocess.run(
        [sys.executable, "evaluation.py", str(run_dir), "--num_eval_envs", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout[result.stdout.index("{") :])
    assert out["checkpoint_epoch"] == 3
    assert 0 <= out["eval/episode_success"] <= 20 and 0 <= out["eval/episode_success_any"] <= 1


# -- learning ---------------------------------------------------------------------------


def test_reacher_learns_clearly_better_than_a_random_policy(tmp_path):
    """A ~2-minute CPU run; success counts steps within 5 cm of the target (of 300)."""
    config = train.Config(
        env_id="reacher",
        num_envs=16,
        num_eval_envs=32,
        episode_length=300,
        unroll_length=50,
        min_replay_size=300,
        max_replay_size=10_000,
        batch_size=128,
        num_sgd_batches_per_training_step=32,
        alpha_lr=3e-3,
        total_env_steps=200_000,
        num_epochs=5,
        actor_network_width=64,
        critic_network_width=64,
        track=False,
        capture_vis=False,
        checkpoint=False,
        run_root=str(tmp_path),
    )
    final = train.train(config)
    records = [
        json.loads(line) for line in (Path(final["run_dir"]) / "metrics.jsonl").read_text().splitlines()
    ]
    trained = np.mean([r["eval/episode_success"] for r in records[-2:]])

    env = train.make_env("reacher", config)

    def random_policy(actor_params, critic_params, obs, key):
        return jax.random.uniform(key, (obs.shape[0], env.action_size), minval=-1.0, maxval=1.0)

    evaluate = train.make_evaluator(
        env, random_policy, num_envs=config.num_eval_envs, episode_length=config.episode_length
    )
    random_success = np.mean(
        [float(evaluate(None, None, jax.random.PRNGKey(s))["eval/episode_success"]) for s in range(2)]
    )
    print(f"reacher eval success: trained {trained:.1f} vs random {random_success:.1f} (of 300 steps)")
    assert trained > max(5 * random_success, random_success + 60)


def unroll_training_env(reset_mode: str, num_envs: int = 2, steps: int = 8):
    """Per step: the observation's goal, the episode id and done, with zero actions."""
    base = train.make_env("reacher", tiny_config())
    env = wrap_for_training(base, 3, reset_mode)
    state = jax.jit(env.reset)(jax.random.split(jax.random.PRNGKey(0), num_envs))

    @jax.jit
    def unroll(state):
        def step(state, _):
            goal, episode_id = state.obs[:, base.obs_dim :], state.info["episode_id"]
            state = env.step(state, jnp.zeros((num_envs, 2)))
            return state, (goal, episode_id, state.done)

        return jax.lax.scan(step, state, length=steps)[1]

    return jax.device_get(unroll(state))


@pytest.mark.parametrize("reset_mode", ["replay", "fresh"])
def test_episode_ids_advance_exactly_at_episode_ends(reset_mode):
    _, ids, done = unroll_training_env(reset_mode)
    np.testing.assert_array_equal(ids[:, 0], [0, 0, 0, 1, 1, 1, 2, 2])
    np.testing.assert_array_equal(done[:, 1], [0, 0, 1, 0, 0, 1, 0, 0])


def test_replay_resets_repeat_the_first_goal_and_fresh_resets_draw_new_ones():
    # The target's xy: what a reset draws (its height is not drawn).
    replay_goals = unroll_training_env("replay", num_envs=4, steps=9)[0][..., :2]
    fresh_goals = unroll_training_env("fresh", num_envs=4, steps=9)[0][..., :2]
    # Episodes of 3 steps: steps 0-2, 3-5, 6-8. Same keys, so the first episode agrees.
    np.testing.assert_array_equal(replay_goals[0], fresh_goals[0])
    for t in (3, 6):
        np.testing.assert_array_equal(replay_goals[t], replay_goals[0])
        assert np.all(np.abs(fresh_goals[t] - fresh_goals[0]).max(axis=-1) > 1e-3)
    assert not np.allclose(fresh_goals[6], fresh_goals[3])
    # Within an episode the goal never changes.
    np.testing.assert_array_equal(fresh_goals[4], fresh_goals[3])


# -- multi-device ---------------------------------------------------------------------------

MULTI_DEVICE_SCRIPT = """
import json, sys
import jax
sys.path.insert(0, {root!r})
import train
from tests.test_train import run_epochs, tiny_config
assert jax.device_count() == 2, jax.devices()
trainer = train.build(tiny_config())
ts, _, buf, history, evals = run_epochs(trainer, seed=5, epochs=2)
assert buf.state.sharding.spec == jax.sharding.PartitionSpec(None, "data")
print(json.dumps({{"history": [{{k: float(v) for k, v in m.items()}} for m in history],
                  "evals": {{k: float(v) for k, v in evals.items()}}}}))
"""


def assert_same_metrics(got: dict, want: dict) -> None:
    """Metrics of a sharded run against a one-device run: equal up to float reassociation.
    The accuracy is an argmax: a pair whose logits nearly tie (a goal drawn twice) may flip,
    which moves an epoch's mean by 1/(SGD batches x valid pairs), about 1/60 here."""
    assert got.keys() == want.keys()
    for key, value in want.items():
        atol = 0.025 if key.endswith("categorical_accuracy") else 1e-5
        np.testing.assert_allclose(got[key], value, rtol=1e-4, atol=atol, err_msg=key)


def test_two_devices_compute_the_same_losses_as_one(tiny_trainer):
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip()
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-c", MULTI_DEVICE_SCRIPT.format(root=str(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sharded = json.loads(result.stdout.strip().splitlines()[-1])
    _, _, _, history, evals = run_epochs(tiny_trainer, seed=5, epochs=2)
    for one, two in zip(history, sharded["history"], strict=True):
        assert_same_metrics(two, one)
    assert_same_metrics(sharded["evals"], evals)


def test_sizes_must_divide_over_devices(monkeypatch):
    monkeypatch.setattr(jax, "device_count", lambda: 3)
    with pytest.raises(train.ConfigError, match="--num_envs 8 does not divide evenly over the 3 devices"):
        train.validate(tiny_config())


def test_compilation_cache_option_points_jax_at_the_directory(tmp_path):
    before = jax.config.jax_compilation_cache_dir
    before_min_time = jax.config.jax_persistent_cache_min_compile_time_secs
    try:
        runs.use_compilation_cache(str(tmp_path))
        assert jax.config.jax_compilation_cache_dir == str(tmp_path)
        assert jax.config.jax_persistent_cache_min_compile_time_secs == 1.0
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", before_min_time)


# -- the environment suite as the trainer sees it -----------------------------------------

# The paper's Table 1 tasks: (obs_dim, goal slice, action dim, success radius, env dt).
PAPER_TASKS = {
    "arm_binpick_hard": (17, (0, 3), 5, 0.1, 0.05),
    "arm_push_easy": (17, (0, 3), 5, 0.1, 0.05),
    "arm_push_hard": (17, (0, 3), 5, 0.1, 0.05),
    "ant_u4_maze": (29, (0, 2), 8, 0.5, 0.05),
    "ant_u5_maze": (29, (0, 2), 8, 0.5, 0.05),
    "ant_big_maze": (29, (0, 2), 8, 0.5, 0.05),
    "ant_hardest_maze": (29, (0, 2), 8, 0.5, 0.05),
    "humanoid": (268, (0, 3), 17, 0.5, 0.03),
    "humanoid_u_maze": (268, (0, 3), 17, 0.5, 0.015),
    "humanoid_big_maze": (268, (0, 3), 17, 0.5, 0.015),
}


@pytest.mark.parametrize("env_id", sorted(PAPER_TASKS))
def test_paper_tasks_match_the_spec(env_id):
    obs_dim, (start, end), act, radius, dt = PAPER_TASKS[env_id]
    trainer = train.build(tiny_config(env_id=env_id))
    d, env = trainer.derived, trainer.env
    assert (d.obs_dim, d.goal_start, d.goal_end, d.action_dim) == (obs_dim, start, end, act)
    assert env.success_radius == radius
    assert env.dt == pytest.approx(dt)
