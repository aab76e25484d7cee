"""Tests for the manipulation tasks (`envs/arm.py`, `envs/panda.py`).

MJX steps of the arm are expensive to compile on a CPU, so exactly two
programs are compiled for physics: reset + an edit of the cube position, and
one vmapped `arm_push_easy` step (B envs), which is called T times from
Python (so the same run also shows the step is traced only once). Every
physics test reads that one rollout; the other tasks are checked with
`jax.eval_shape` (tracing only), with their reset distribution and with
their action and success rules (no physics).

Rollout batch: env 0 and 1 hold fixed actions that differ in the joint1
command and the gripper; env 2 starts with the cube on its goal and env 3
with the cube 0.3 m from it; envs 2 and 3 take uniform random actions.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jp
import numpy as np
import pytest
from brax.io import html

import envs
from envs import arm

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.filterwarnings("ignore:Brax System, piplines:UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:brax"),
]

# env id -> (observation size, obs_dim, goal_start, goal_end, action size), from the spec (SCRL).
EXPECTED_LAYOUT = {
    "arm_reach": (16, 13, 7, 10, 4),
    "arm_grasp": (30, 23, 16, 23, 5),
    "arm_push_easy": (20, 17, 0, 3, 5),
    "arm_push_hard": (20, 17, 0, 3, 5),
    "arm_binpick_easy": (20, 17, 0, 3, 5),
    "arm_binpick_hard": (20, 17, 0, 3, 5),
    "arm_binpick_easy_EEF": (14, 11, 0, 3, 4),
}

# env id -> (cube centre xy, cube noise, goal centre xyz, goal noise per axis), from the spec.
RESET_RANGES = {
    "arm_push_easy": ((-0.1, 0.6), 0.1, (0.1, 0.6, 0.03), (0.1, 0.1, 0.0)),
    "arm_push_hard": ((-0.25, 0.65), 0.25, (0.25, 0.65, 0.03), (0.25, 0.25, 0.0)),
    "arm_binpick_easy": ((-0.15, 0.6), 0.09, (0.17, 0.6, 0.03), (0.09, 0.09, 0.0)),
    "arm_binpick_hard": ((-0.3, 0.6), 0.15, (0.3, 0.6, 0.03), (0.15, 0.15, 0.0)),
    "arm_reach": (None, None, (0.0, 0.5, 0.3), (0.2, 0.2, 0.2)),
    "arm_grasp": ((0.0, 0.6), 0.3, None, None),
    "arm_grasp_0.1": ((0.0, 0.6), 0.1, None, None),
    "arm_binpick_easy_EEF": ((-0.15, 0.6), 0.07, (0.17, 0.6, 0.03), (0.005, 0.005, 0.0)),
}

TASK = "arm_push_easy"
B, T = 4, 24  # 24 env steps = 1.2 s of simulated time
A0 = (-0.6, 0.6)  # joint1 commands of envs 0 and 1
FAR = 0.3  # env 3's cube offset from its goal (x)


def _joint1_target(a0: float) -> float:
    low, high = 0.3491, 2.7925
    return low + 0.5 * (a0 + 1.0) * (high - low)


_FRAMES = []  # env 0's pipeline states along the rollout, for the render test


@functools.cache
def _rollout():
    """(env, reset obs [B], obs [T, B], metrics [T, B], step traces) of the two compiled programs."""
    env = envs.make(TASK)
    traces = []

    @jax.jit
    def start(keys):
        state = jax.vmap(env.reset)(keys)
        goal = state.obs[:, env.obs_dim :]
        q = state.pipeline_state.q
        c = env._q_cube
        q = q.at[2, c : c + 3].set(goal[2])
        q = q.at[3, c : c + 3].set(goal[3] + jp.array([FAR, 0.0, 0.0]))
        return state, state.replace(pipeline_state=state.pipeline_state.replace(q=q, qpos=q))

    @jax.jit
    def step(state, action):
        traces.append(1)
        return jax.vmap(env.step)(state, action)

    actions = jax.random.uniform(jax.random.PRNGKey(1), (T, B, env.action_size), minval=-1.0, maxval=1.0)
    held = jp.array([[A0[0], 0.0, 0.0, 0.0, 1.0], [A0[1], 0.0, 0.0, 0.0, -1.0]])
    actions = actions.at[:, 0:2].set(held)
    reset, state = start(jax.random.split(jax.random.PRNGKey(0), B))
    obs, metrics = [], []
    for t in range(T):
        state = step(state, actions[t])
        obs.append(state.obs)
        metrics.append(state.metrics)
        _FRAMES.append(jax.tree.map(lambda x: np.asarray(x[0]), state.pipeline_state))
    obs = np.stack([np.asarray(o) for o in obs])
    metrics = {k: np.stack([np.asarray(m[k]) for m in metrics]) for k in metrics[0]}
    return env, np.asarray(reset.obs), obs, metrics, len(traces)


def test_registry_and_layout_of_every_arm_id():
    arm_ids = sorted(i for i in envs.ENV_IDS if i.startswith("arm_"))
    assert "arm_binpick_easy_EEF" in arm_ids
    assert arm_ids == sorted(EXPECTED_LAYOUT)
    for env_id, (obs_size, obs_dim, g0, g1, act) in EXPECTED_LAYOUT.items():
        env = envs.make(env_id)
        assert (env.obs_dim, env.goal_start, env.goal_end, env.action_size) == (obs_dim, g0, g1, act)
        assert env.goal_dim == obs_size - obs_dim
        assert env.backend == "mjx" and env.dt == pytest.approx(0.05)
        state = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
        assert state.obs.shape == (obs_size,)
        stepped = jax.eval_shape(env.step, state, jp.zeros(act))
        assert stepped.obs.shape == (obs_size,)
        assert {"success", "dist", "success_easy", "success_hard"} <= set(stepped.metrics)


def test_only_mjx_backend():
    with pytest.raises(ValueError, match="mjx"):
        envs.make("arm_push_easy", backend="spring")


def test_physics_settings():
    env = envs.make("arm_binpick_hard")
    opt = env.sys.mj_model.opt
    assert (opt.timestep, opt.iterations, opt.ls_iterations, opt.impratio) == (0.002, 6, 12, 10.0)
    # cube 7 + arm 7 + fingers 2; the goal lives in userdata, not in a marker body.
    mj = env.sys.mj_model
    assert (mj.nu, mj.nq, mj.nv, mj.nuserdata) == (9, 16, 15, 3)
    eef = envs.make("arm_binpick_easy_EEF").sys.mj_model
    assert (eef.nu, eef.nq, eef.nv, eef.opt.impratio) == (5, 12, 11, 10.0)
    assert envs.make("arm_reach", timestep=0.001).sys.opt.timestep == pytest.approx(0.001)


def test_action_mapping():
    env = envs.make("arm_push_easy")
    ctrl = np.asarray(env.action_to_ctrl(jp.array([-1.0, 1.0, -1.0, 1.0, 0.5])))
    np.testing.assert_allclose(ctrl, [0.3491, 1.48353, 0, -3.0718, 0, 3.7525, 1.4487, 0, 0], atol=1e-6)
    ctrl = np.asarray(env.action_to_ctrl(jp.array([3.0, -3.0, 0.0, 0.0, -0.1])))  # clipped
    np.testing.assert_allclose(ctrl[[0, 1, 7, 8]], [2.7925, 0.0, 255.0, 255.0], atol=1e-6)
    assert env.action_to_ctrl(jp.zeros(5))[7] == 255.0  # a4 <= 0 opens
    assert envs.make("arm_reach").action_to_ctrl(jp.zeros(4)).shape == (7,)


@pytest.mark.parametrize("env_id", sorted(RESET_RANGES))
def test_reset_distribution(env_id):
    env = envs.make(env_id)
    keys = jax.random.split(jax.random.PRNGKey(3), 256)
    q, qd, goal = jax.jit(jax.vmap(env._initial_state))(keys)
    q, goal = np.asarray(q), np.asarray(goal)
    assert not np.any(qd)
    cube_c, cube_n, goal_c, goal_n = RESET_RANGES[env_id]
    if env_id.endswith("_EEF"):
        np.testing.assert_allclose(
            q[:, env._q_hand : env._q_hand + 3], np.tile([0.0, 0.6, 0.2], (256, 1)), atol=1e-6
        )
    else:
        np.testing.assert_allclose(
            q[:, env._q_arm : env._q_arm + 7], np.tile(arm.INIT_JOINTS, (256, 1)), atol=1e-6
        )
    if cube_c is not None:
        cube = q[:, env._q_cube : env._q_cube + 3]
        off = cube[:, :2] - np.array(cube_c)
        assert np.all(np.abs(off) <= cube_n + 1e-6)
        np.testing.assert_allclose(cube[:, 2], 0.07, atol=1e-6)
        assert np.abs(off).max() > 0.8 * cube_n  # spans the range
        assert len(np.unique(cube[:, 0])) == 256  # different keys, different cubes
        np.testing.assert_allclose(q[:, list(env._q_fingers)], 0.04, atol=1e-6)
    if goal_c is not None:
        off = np.abs(goal - np.array(goal_c))
        assert np.all(off <= np.array(goal_n) + 1e-6)
        assert np.all(off.max(axis=0) >= 0.8 * np.array(goal_n))
        assert len(np.unique(goal[:, 0])) > 250  # float32 ties are possible at 0.005 noise
    else:
        assert not np.any(goal)  # grasp: the goal follows the cube, nothing stored


def test_rollout_is_finite():
    _, reset_obs, obs, metrics, _ = _rollout()
    assert np.isfinite(reset_obs).all() and np.isfinite(obs).all()
    for value in metrics.values():
        assert np.isfinite(value).all()
    # The arm actually moves under random actions, and the goal stays put.
    assert np.abs(obs[-1, 2:, 3:10] - reset_obs[2:, 3:10]).max() > 0.05
    np.testing.assert_array_equal(obs[:, :, 17:], np.broadcast_to(obs[0, :, 17:], obs[:, :, 17:].shape))
    np.testing.assert_allclose(obs[0, :, 17:], reset_obs[:, 17:], atol=1e-6)


def test_reset_keys_give_different_goals_and_cubes():
    _, reset_obs, _, _, _ = _rollout()
    assert len(np.unique(reset_obs[:, 17].round(6))) == B
    assert len(np.unique(reset_obs[:, 0].round(6))) == B


def test_success_on_goal_and_not_far():
    env, _, obs, metrics, _ = _rollout()
    goal = obs[0, :, 17:]
    # Env 2: the cube rests on its goal; env 3: it rests 0.3 m away.
    assert np.linalg.norm(obs[0, 2, 0:3] - goal[2]) < 0.01
    assert metrics["success"][0, 2] == 1.0 and metrics["success_hard"][0, 2] == 1.0
    assert metrics["success"][0, 3] == 0.0 and metrics["success_easy"][0, 3] == 0.0
    assert metrics["dist"][0, 3] == pytest.approx(FAR, abs=0.02)
    np.testing.assert_allclose(metrics["dist"][0], np.linalg.norm(obs[0, :, 0:3] - goal, axis=-1), rtol=1e-5)
    assert env.success_radius == 0.1


def test_commanded_targets_move_the_end_effector():
    _, reset_obs, obs, _, _ = _rollout()
    final = obs[-1]
    for i, a0 in enumerate(A0):
        target = _joint1_target(a0)
        assert abs(final[i, 3] - target) < 0.05  # joint1 tracks its command
        assert abs(final[i, 4] - 0.7418) < 0.05  # joint2 at the middle of its range
        eef = final[i, 10:13]
        # The arm stays in the vertical plane of joint1: the wrist's azimuth follows.
        assert abs(np.arctan2(eef[1], eef[0]) - target) < 0.05
        assert abs(np.arctan2(reset_obs[i, 11], reset_obs[i, 10]) - 1.571) < 0.01
    # Gripper: env 0 closes (a4 > 0), env 1 opens to 8 cm per finger.
    np.testing.assert_allclose(reset_obs[:, 16], 0.08, atol=1e-4)
    assert final[0, 16] < 0.02
    assert final[1, 16] > 0.14


def test_html_render_of_the_rollout():
    env, *_ = _rollout()
    page = html.render(env.sys, _FRAMES)
    assert "<html" in page.lower() and len(_FRAMES) == T
    # A real rollout: the arm moved between the first and the last frame.
    assert not np.allclose(_FRAMES[0].x.pos, _FRAMES[-1].x.pos, atol=1e-3)


def test_step_is_traced_once():
    # T calls of the jitted step with fresh states: one trace, one compilation.
    *_, traces = _rollout()
    assert traces == 1


def test_cpu_fusion_flag_is_requested(monkeypatch):
    # Importing envs (before any JAX backend) asked XLA:CPU for its classic emitters.
    assert arm._CLASSIC_CPU_FUSION
    assert "--xla_cpu_use_fusion_emitters=false" in os.environ["XLA_FLAGS"]
    # Too late once a backend runs: nothing is changed, and it says so.
    jax.devices()
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    assert not arm._request_classic_cpu_fusion()
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=1"
    # An explicit choice in XLA_FLAGS is left alone.
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=true")
    assert arm._request_classic_cpu_fusion()
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_use_fusion_emitters=true"


def test_grasp_noise_ids():
    assert arm.parse_id("arm_grasp_0.1") is not None
    assert envs.make("arm_grasp_0.1").cube_noise == pytest.approx(0.1)
    assert envs.make("arm_grasp_1e-2").cube_noise == pytest.approx(0.01)
    assert envs.make("arm_grasp").cube_noise == pytest.approx(0.3)
    for bad in ("arm_grasp_abc", "arm_grasp_", "arm_grasp_nan", "arm_grasp_0.1x", "arm_reach_0.1"):
        assert arm.parse_id(bad) is None
        with pytest.raises(ValueError, match="unknown env_id"):
            envs.check_id(bad)
    assert arm.parse_id("ant") is None
    with pytest.raises(ValueError, match="noise"):
        arm.parse_id("arm_grasp_-0.1")
    with pytest.raises(ValueError, match="noise"):
        envs.make("arm_grasp", cube_noise=-1.0)


def test_eef_action_mapping():
    env = envs.make("arm_binpick_easy_EEF")
    q = jp.zeros(env.sys.q_size()).at[env._q_hand : env._q_hand + 3].set(jp.array([0.0, 0.6, 0.2]))
    ctrl = np.asarray(env.eef_ctrl(q, jp.array([1.0, -1.0, 0.5, 0.3])))
    np.testing.assert_allclose(ctrl, [0.2, 0.4, 0.3, 0.0, 0.0], atol=1e-6)  # a3 > 0 closes
    ctrl = np.asarray(env.eef_ctrl(q, jp.array([3.0, 0.0, -3.0, -0.3])))  # clipped; a3 <= 0 opens
    np.testing.assert_allclose(ctrl, [0.2, 0.6, 0.0, 255.0, 255.0], atol=1e-6)
    # ctrl 255 opens each finger to the 5 cm slide range: gain * 255 = 500 * 0.05.
    gain = env.sys.mj_model.actuator_gainprm[3, 0]
    assert gain * 255.0 == pytest.approx(500.0 * 0.05, rel=1e-3)


@pytest.mark.parametrize("env_id", ["arm_binpick_easy_EEF", "arm_binpick_hard"])
def test_cube_task_success_rule(env_id):
    # The commanded goal sits after the state; success compares it with the cube, state[0:3].
    env = envs.make(env_id)
    goal = np.array([0.17, 0.6, 0.03])
    state = np.zeros(env.obs_dim)
    for offset, success, easy in ((0.0, 1.0, 1.0), (0.05, 1.0, 1.0), (0.2, 0.0, 1.0), (0.4, 0.0, 0.0)):
        state[0:3] = goal + np.array([offset, 0.0, 0.0])
        metrics = env._metrics(None, jp.asarray(np.concatenate([state, goal])))
        assert (float(metrics["success"]), float(metrics["success_easy"])) == (success, easy), offset
        assert float(metrics["dist"]) == pytest.approx(offset, abs=1e-6)
    state[0:3] = 0.0
    state[3:6] = goal  # the hand on the goal is not the cube on the goal
    assert float(env._metrics(None, jp.asarray(np.concatenate([state, goal])))["success"]) == 0.0


CHOICE = """
import os, sys, bench, sac, train
from jax._src import xla_bridge
for argv in sys.argv[1:]:
    os.environ["XLA_FLAGS"] = os.environ["START_FLAGS"]
    script, *args = argv.split()
    {"train": train, "sac": sac}[script].parse_config(args)
    print("choice", os.environ["XLA_FLAGS"].split()[-1].split("=")[-1])
print("child", bench.device_env(None)["XLA_FLAGS"] or "-")
print("choice", xla_bridge.backends_are_initialized())
"""


def fusion_choices(start_flags: str, *argvs: str) -> tuple[list[str], str]:
    # A fresh process: the choice only counts before JAX's first backend starts, and the scripts'
    # command lines make it before then. Also returns the XLA_FLAGS bench.py gives its children.
    env = {**os.environ, "XLA_FLAGS": start_flags, "START_FLAGS": start_flags}
    out = subprocess.run([sys.executable, "-c", CHOICE, *argvs], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True).stdout.splitlines()  # fmt: skip
    choices = [line.split()[1] for line in out if line.startswith("choice ")]
    assert choices[-1] == "False", "parsing the config started a JAX backend"
    child = next(line.split(maxsplit=1)[1] for line in out if line.startswith("child "))
    return choices[:-1], child


def test_each_run_chooses_the_cpu_fusion_emitters():
    runs = ["train --env_id ant", "train --env_id ant --critic_depth 16",
            "train --env_id arm_reach --actor_depth 16 --critic_depth 16",
            "train --env_id ant --eval_env_id arm_reach --critic_depth 64",
            "train --env_id arm_reach --cpu_fusion_emitters on",
            "train --env_id ant --critic_depth 64 --cpu_fusion_emitters off",
            "sac --env_id humanoid --actor_depth 64", "sac --env_id arm_push_easy --critic_depth 64"]  # fmt: skip
    choices, child = fusion_choices("", *runs)
    assert choices == ["false", "true", "false", "false", "true", "false", "true", "false"]
    # bench.py's children get no import default: each chooses for its own config.
    assert child == "-"
    # A choice in the user's XLA_FLAGS stays under auto (in children too); the flag overrides it.
    user = "--xla_cpu_use_fusion_emitters=true"
    choices, child = fusion_choices(user, "train --env_id ant", "train --env_id ant --cpu_fusion_emitters off")
    assert choices == ["true", "false"] and child == user
