"""Reference numbers from the authors' code, for tests/test_reference.py.

Run with the authors' own install (docs/parity.md, Reproducing, says what it holds):

    $REF/venv/bin/python scripts/reference/make_fixtures.py --src $REF/src \
        --out tests/data/reference

It imports nothing from this project except scripts/reference/inputs.py (pure numpy). The authors'
networks are their classes from their train.py; their losses and SGD step are the closures inside
its `if __name__ == "__main__":` block, taken from their source with `ast` and executed as they are
with the globals they close over (args, actor, sa_encoder, g_encoder, target_entropy). Their goal
sampler is TrajectoryUniformSamplingQueue from their buffer.py, imported as is.

Writes networks.npz, losses.npz, goal_sampling.npz, buffer_window.npz, evaluation.npz,
env_facts.npz (sizes, timing, compiled models), env_dynamics.npz (resets, rollouts from a reset
state and their kicked copies, success probes; their envs come from their make_env) and meta.json
(commit, versions, command, the parameter trees' names and shapes).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import inputs  # noqa: E402

OBS_DIM, GOAL_START, GOAL_END, ACTION_DIM = 29, 0, 2, 8  # ant, as the authors' make_env sets it
GOAL_DIM = GOAL_END - GOAL_START
NETWORK_CONFIGS = {  # name: (width, depth, use_relu)
    "w32_d8": (32, 8, 0),
    "w32_d8_relu": (32, 8, 1),
    "w256_d4": (256, 4, 0),
    "w256_d16": (256, 16, 0),
}
NETWORK_BATCH = 32
LOSS_CONFIG = (64, 8)  # width, depth of actor and critic for the loss, gradient and SGD fixtures
LOSS_BATCH = 128
SGD_STEPS = 3
LOG_ALPHA = -1.3  # a non-zero temperature, so the entropy terms count
SEED = 20250101


def load_authors(src: Path):
    """Namespace with the authors' module-level definitions and their main-block closures."""
    tree = ast.parse((src / "train.py").read_text())
    import flax
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import optax
    from flax.linen.initializers import variance_scaling
    from flax.training.train_state import TrainState
    from typing import Any, NamedTuple

    module = types.ModuleType("authors_train")  # dataclasses look their module up in sys.modules
    sys.modules[module.__name__] = module
    ns = module.__dict__
    ns.update(jax=jax, jnp=jnp, nn=nn, flax=flax, optax=optax, np=np, variance_scaling=variance_scaling,
              TrainState=TrainState, NamedTuple=NamedTuple, Any=Any)
    top, main_block = [], None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in (
            "residual_block", "SA_encoder", "G_encoder", "Actor", "TrainingState", "Transition"
        ):
            top.append(node)
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id in ("lecun_unfirom", "bias_init") for t in node.targets
        ):
            top.append(node)
        elif isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            main_block = node
    exec(compile(ast.Module(top, []), str(src / "train.py"), "exec"), ns)

    closures = {n.name: n for n in main_block.body if isinstance(n, ast.FunctionDef)}
    wanted = [closures[k] for k in ("update_actor_and_alpha", "update_critic", "sgd_step")]
    # The loss functions themselves, nested one level further down.
    for outer, names in (("update_actor_and_alpha", ("actor_loss", "alpha_loss")), ("update_critic", ("critic_loss",))):
        for n in closures[outer].body:
            if isinstance(n, ast.FunctionDef) and n.name in names:
                wanted.append(n)
    code = compile(ast.Module(wanted, []), str(src / "train.py"), "exec")
    return ns, code


def bind(ns: dict, code, *, width: int, depth: int, use_relu: int, batch_size: int):
    """The authors' closures bound to one network size (their main() globals, set as main() sets them)."""
    g = dict(ns)
    g["args"] = types.SimpleNamespace(
        obs_dim=OBS_DIM, goal_start_idx=GOAL_START, goal_end_idx=GOAL_END, batch_size=batch_size,
        logsumexp_penalty_coeff=0.1, disable_entropy=0, entropy_param=0.5,
    )
    g["actor"] = ns["Actor"](action_size=ACTION_DIM, network_width=width, network_depth=depth, use_relu=use_relu)
    g["sa_encoder"] = ns["SA_encoder"](network_width=width, network_depth=depth, use_relu=use_relu)
    g["g_encoder"] = ns["G_encoder"](network_width=width, network_depth=depth, use_relu=use_relu)
    g["target_entropy"] = -0.5 * ACTION_DIM
    exec(code, g)
    return g


def flat(tree, prefix="") -> dict:
    out = {}
    for k, v in tree.items():
        name = f"{prefix}/{k}" if prefix else k
        if isinstance(v, dict) or hasattr(v, "items"):
            out.update(flat(v, name))
        else:
            out[name] = np.asarray(v)
    return out


def unflat(d: dict) -> dict:
    out: dict = {}
    for name, v in d.items():
        node = out
        *path, leaf = name.split("/")
        for p in path:
            node = node.setdefault(p, {})
        node[leaf] = v
    return out


def authors_params(g, key_seed: int = 0):
    """The three networks' parameter trees with the authors' names and shapes (their init), filled
    with inputs.param values. Returns (trees, specs)."""
    import jax

    k = jax.random.PRNGKey(key_seed)
    shapes = {
        "actor": g["actor"].init(k, np.ones([1, OBS_DIM + GOAL_DIM])),
        "sa_encoder": g["sa_encoder"].init(k, np.ones([1, OBS_DIM]), np.ones([1, ACTION_DIM])),
        "g_encoder": g["g_encoder"].init(k, np.ones([1, GOAL_DIM])),
    }
    trees, specs = {}, {}
    for net, t in shapes.items():
        spec = {name: list(v.shape) for name, v in flat(t).items()}
        specs[net] = spec
        trees[net] = unflat(inputs.params_from_spec(net, spec))
    return trees, specs


def batch(tag: str, n: int):
    state = inputs.uniform(f"{tag}/state", (n, OBS_DIM), -2.0, 2.0)
    action = inputs.uniform(f"{tag}/action", (n, ACTION_DIM), -0.99, 0.99)
    future = inputs.uniform(f"{tag}/future_state", (n, OBS_DIM), -2.0, 2.0)
    return state, action, future


def transitions_of(g, state, action, future):
    import jax.numpy as jnp

    goal = future[:, GOAL_START:GOAL_END]
    return g["Transition"](
        observation=jnp.concatenate([state, goal], 1), action=jnp.asarray(action),
        reward=jnp.zeros(len(state)), discount=jnp.ones(len(state)),
        extras={"future_state": jnp.asarray(future)},
    )


def networks_fixture(ns, code):
    out, specs = {}, {}
    for name, (width, depth, relu) in NETWORK_CONFIGS.items():
        g = bind(ns, code, width=width, depth=depth, use_relu=relu, batch_size=NETWORK_BATCH)
        trees, spec = authors_params(g)
        specs[name] = spec
        state, action, future = batch(f"net/{name}", NETWORK_BATCH)
        goal = future[:, GOAL_START:GOAL_END]
        out[f"{name}/sa"] = np.asarray(g["sa_encoder"].apply(trees["sa_encoder"], state, action))
        out[f"{name}/g"] = np.asarray(g["g_encoder"].apply(trees["g_encoder"], goal))
        mean, log_std = g["actor"].apply(trees["actor"], np.concatenate([state, goal], 1))
        out[f"{name}/actor_mean"], out[f"{name}/actor_log_std"] = np.asarray(mean), np.asarray(log_std)
        out[f"{name}/checksum"] = np.array([inputs.checksum(flat(trees[n])) for n in ("actor", "sa_encoder", "g_encoder")])
        print(f"networks {name}: sa {out[f'{name}/sa'].std():.3f} actor mean {out[f'{name}/actor_mean'].std():.3f}")
    return out, specs


def losses_fixture(ns, code):
    import jax
    import jax.numpy as jnp
    import optax

    width, depth = LOSS_CONFIG
    g = bind(ns, code, width=width, depth=depth, use_relu=0, batch_size=LOSS_BATCH)
    trees, spec = authors_params(g)
    critic = {"sa_encoder": trees["sa_encoder"], "g_encoder": trees["g_encoder"]}
    saturating = trees["actor"]  # init-like: log_std spans [-5, 2], a quarter of the rows saturate tanh
    actor = unflat(inputs.calm_actor(flat(saturating), depth))
    out = {}

    # One batch: critic loss, actor loss (with its reparameterisation noise), alpha loss.
    state, action, future = batch("loss", LOSS_BATCH)
    tr = transitions_of(g, state, action, future)
    key = jax.random.PRNGKey(SEED)
    out["actor_key"] = np.asarray(key)
    out["actor_noise"] = np.asarray(jax.random.normal(key, (LOSS_BATCH, ACTION_DIM), jnp.float32))
    (c_loss, (lse, *_)), c_grad = jax.value_and_grad(g["critic_loss"], has_aux=True)(critic, tr, key)
    log_alpha = jnp.asarray(LOG_ALPHA, jnp.float32)
    (a_loss, log_prob), a_grad = jax.value_and_grad(g["actor_loss"], has_aux=True)(actor, critic, log_alpha, tr, key)
    al_loss, al_grad = jax.value_and_grad(g["alpha_loss"])({"log_alpha": log_alpha}, log_prob)
    (s_loss, s_log_prob), _ = jax.value_and_grad(g["actor_loss"], has_aux=True)(saturating, critic, log_alpha, tr, key)
    out.update({"critic_loss": np.asarray(c_loss), "critic_logsumexp": np.asarray(lse),
                "actor_loss": np.asarray(a_loss), "log_prob": np.asarray(log_prob),
                "alpha_loss": np.asarray(al_loss), "alpha_grad": np.asarray(al_grad["log_alpha"]),
                "saturating_actor_loss": np.asarray(s_loss), "saturating_log_prob": np.asarray(s_log_prob)})
    out.update({f"critic_grad/{k}": v for k, v in flat(c_grad).items()})
    out.update({f"actor_grad/{k}": v for k, v in flat(a_grad).items()})
    print(f"losses: critic {float(c_loss):.6f} actor {float(a_loss):.6f} alpha {float(al_loss):.6f}")

    # SGD_STEPS whole steps of their sgd_step (Adam from its initial state), scanned as they scan it.
    from flax.training.train_state import TrainState

    ts = g["TrainingState"](
        env_steps=jnp.zeros(()), gradient_steps=jnp.zeros(()),
        actor_state=TrainState.create(apply_fn=g["actor"].apply, params=actor, tx=optax.adam(3e-4)),
        critic_state=TrainState.create(apply_fn=None, params=critic, tx=optax.adam(3e-4)),
        alpha_state=TrainState.create(apply_fn=None, params={"log_alpha": log_alpha}, tx=optax.adam(3e-4)),
    )
    steps = [batch(f"sgd/{i}", LOSS_BATCH) for i in range(SGD_STEPS)]
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *[transitions_of(g, *b) for b in steps])
    sgd_key = jax.random.PRNGKey(SEED + 1)
    # The actor keys their sgd_step derives (key -> key, critic_key, actor_key per step).
    k, actor_keys = sgd_key, []
    for _ in range(SGD_STEPS):
        k, _, ak = jax.random.split(k, 3)
        actor_keys.append(np.asarray(ak))
    out["sgd_actor_keys"] = np.stack(actor_keys)
    out["sgd_actor_noise"] = np.stack([np.asarray(jax.random.normal(jnp.asarray(a), (LOSS_BATCH, ACTION_DIM)))
                                       for a in actor_keys])
    (ts, _), metrics = jax.lax.scan(g["sgd_step"], (ts, sgd_key), stacked)
    out.update({f"sgd_actor/{k}": v for k, v in flat(ts.actor_state.params).items()})
    out.update({f"sgd_critic/{k}": v for k, v in flat(ts.critic_state.params).items()})
    out["sgd_log_alpha"] = np.asarray(ts.alpha_state.params["log_alpha"])
    for m in ("critic_loss", "actor_loss", "alph_aloss"):
        out[f"sgd_metrics/{m}"] = np.asarray(metrics[m])
    print(f"sgd: log_alpha {float(out['sgd_log_alpha']):.6f} critic losses {out['sgd_metrics/critic_loss']}")
    return out, spec


GS_EPISODES = (1, 37, 100, 2, 50, 10)  # episode lengths inside one window (T = 200)
GS_SAMPLES = 20000
GS_GAMMA = 0.99


def goal_sampling_fixture(src: Path):
    """Their flatten_crl_fn on one window whose observations are the time index: the sampled
    future state is the goal's time index. Counts[t, j] = draws of goal index j for state t."""
    import jax
    import jax.numpy as jnp

    sys.path.insert(0, str(src))
    from buffer import TrajectoryUniformSamplingQueue  # the authors' buffer.py
    ns, _ = load_authors(src)
    Transition = ns["Transition"]
    episode = np.concatenate([np.full(n, i, np.float32) for i, n in enumerate(GS_EPISODES)])
    T = len(episode)
    tr = Transition(
        observation=jnp.arange(T, dtype=jnp.float32)[:, None], action=jnp.zeros((T, 1)),
        reward=jnp.zeros(T), discount=jnp.ones(T),
        extras={"state_extras": {"truncation": jnp.zeros(T), "seed": jnp.asarray(episode)}},
    )
    fn = jax.jit(jax.vmap(lambda k: TrajectoryUniformSamplingQueue.flatten_crl_fn(
        (GS_GAMMA, 1, 0, 1), tr, k).extras["future_state"][:, 0]))
    counts = np.zeros((T - 1, T), np.int64)
    chunk = 1000
    for c in range(GS_SAMPLES // chunk):
        keys = jax.random.split(jax.random.PRNGKey(SEED + 100 + c), chunk)
        goal = np.asarray(fn(keys)).astype(np.int64)  # [chunk, T - 1]
        for t in range(T - 1):
            counts[t] += np.bincount(goal[:, t], minlength=T)
    print(f"goal sampling: {counts.sum()} draws, self-goals {np.trace(counts)}")
    return {"episode": episode.astype(np.int32), "counts": counts.astype(np.int32), "gamma": np.float32(GS_GAMMA),
            "samples": np.int64(GS_SAMPLES)}


def buffer_window_fixture(src: Path):
    """Where their sample() starts its window: a buffer of 40 rows x 3 envs whose data is the row
    index, episode_length (window) 10; the first sampled row of each env over many draws."""
    import jax
    import jax.numpy as jnp

    sys.path.insert(0, str(src))
    from buffer import TrajectoryUniformSamplingQueue

    rows, num_envs, window = 40, 3, 10
    q = TrajectoryUniformSamplingQueue(max_replay_size=rows, dummy_data_sample=jnp.zeros(1),
                                       sample_batch_size=4, num_envs=num_envs, episode_length=window)
    state = q.init(jax.random.PRNGKey(SEED + 7))
    data = jnp.broadcast_to(jnp.arange(rows, dtype=jnp.float32)[:, None, None], (rows, num_envs, 1))
    state = q.insert_internal(state, data)
    sample = jax.jit(q.sample_internal)
    starts = []
    for _ in range(2000):
        state, tr = sample(state)
        starts.append(np.asarray(tr)[:, 0, 0])
    starts = np.concatenate(starts).astype(np.int32)
    print(f"buffer window: starts {starts.min()}..{starts.max()} of {rows} rows, window {window}")
    return {"rows": np.int32(rows), "window": np.int32(window), "starts": np.bincount(starts, minlength=rows)}


EVAL_ENVS, EVAL_LENGTH = 16, 40


def eval_table():
    """A recorded evaluation: per env i and step t, the env's success and dist metrics and whether
    it terminates there (some envs end early, some never; all run EVAL_LENGTH steps)."""
    success = (inputs.uniform("eval/success", (EVAL_ENVS, EVAL_LENGTH), 0, 1) > 0.8).astype(np.float32)
    success[:3] = 0.0  # some envs never succeed
    dist = inputs.uniform("eval/dist", (EVAL_ENVS, EVAL_LENGTH), 0.0, 3.0)
    end = (inputs.uniform("eval/end", (EVAL_ENVS,), 0, 1.5) * EVAL_LENGTH).astype(np.int32)
    done = (np.arange(EVAL_LENGTH)[None, :] == end[:, None]).astype(np.float32)  # end >= length: never
    return success, dist, done


def replay_env_class(base, State):
    """A brax Env replaying eval_table(); the action carries the env's index (the policy's choice)."""
    import jax.numpy as jnp

    success, dist, done = (jnp.asarray(x) for x in eval_table())

    class ReplayEnv(base):
        def reset(self, rng):
            z = jnp.zeros(())
            return State(pipeline_state=jnp.zeros(1), obs=jnp.zeros(1), reward=z, done=z,
                         metrics={"success": z, "dist": z}, info={"t": jnp.zeros((), jnp.int32)})

        def step(self, state, action):
            i, t = action[0].astype(jnp.int32), jnp.minimum(state.info["t"], EVAL_LENGTH - 1)
            return state.replace(obs=state.obs + 1, reward=success[i, t], done=done[i, t],
                                 metrics={**state.metrics, "success": success[i, t], "dist": dist[i, t]},
                                 info={**state.info, "t": state.info["t"] + 1})

        @property
        def observation_size(self):
            return 1

        @property
        def action_size(self):
            return 1

        @property
        def backend(self):
            return "replay"

    return ReplayEnv


def evaluation_fixture(src: Path):
    """Their CrlEvaluator.run_evaluation on the recorded trajectory (eval_table)."""
    import jax
    import jax.numpy as jnp
    from brax import envs
    from brax.envs.base import Env, State

    sys.path.insert(0, str(src))
    from evaluator import CrlEvaluator  # the authors' evaluator.py

    env = envs.training.wrap(replay_env_class(Env, State)(), episode_length=EVAL_LENGTH)

    def actor_step(training_state, env, env_state, extra_fields):
        index = jnp.arange(EVAL_ENVS, dtype=jnp.float32)[:, None]
        return env.step(env_state, index), jnp.zeros(())

    ev = CrlEvaluator(actor_step, env, num_eval_envs=EVAL_ENVS, episode_length=EVAL_LENGTH,
                      key=jax.random.PRNGKey(SEED + 9))
    m = ev.run_evaluation(None, {})
    keep = ("eval/episode_success", "eval/episode_success_any", "eval/episode_dist", "eval/episode_reward",
            "eval/avg_episode_length")
    print("evaluation: " + ", ".join(f"{k} {float(m[k]):.4f}" for k in keep))
    return {k.replace("/", "__"): np.float64(m[k]) for k in keep}


# The paper's ten tasks (Table 1), plus ant and reacher; and two arm tasks outside Table 1.
PARITY_ENV_IDS = ("ant", "reacher", "humanoid", "ant_u4_maze", "ant_u5_maze", "ant_big_maze", "ant_hardest_maze",
                  "humanoid_u_maze", "humanoid_big_maze", "arm_push_easy", "arm_push_hard", "arm_binpick_hard")
ENV_IDS = tuple(dict.fromkeys(PARITY_ENV_IDS + ("ant_u_maze", "arm_reach", "arm_binpick_easy")))


def authors_make_env(src: Path, env_id: str):
    """(env, args) from their make_env (the closure inside main, taken from their train.py with
    ast); the caller is in `src` so that their relative asset paths resolve."""
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    tree = ast.parse((src / "train.py").read_text())
    main_block = next(n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test))
    make_env = next(n for n in main_block.body if isinstance(n, ast.FunctionDef) and n.name == "make_env")
    g = {"args": types.SimpleNamespace(env_id=env_id, obs_dim=0, goal_start_idx=0, goal_end_idx=0)}
    exec(compile(ast.Module([make_env], []), str(src / "train.py"), "exec"), g)
    return g["make_env"](env_id), g["args"]


def env_facts_fixture(src: Path):
    """Per env: sizes and goal indices as their make_env sets them, timing, and compiled-model
    parameters from their env's sys."""
    cwd = os.getcwd()
    os.chdir(src)
    out = {}
    for env_id in ENV_IDS:
        env, a = authors_make_env(src, env_id)
        sy = env.sys
        facts = {
            "observation_size": env.observation_size, "action_size": env.action_size, "obs_dim": a.obs_dim,
            "goal_start": a.goal_start_idx, "goal_end": a.goal_end_idx, "dt": float(env.dt),
            "n_frames": env._n_frames, "sim_timestep": float(env.dt) / env._n_frames, "backend": env.backend,
        }
        for k, v in facts.items():
            out[f"{env_id}/{k}"] = np.asarray(v)
        arrays = {"dof_damping": sy.dof_damping, "dof_armature": sy.dof_armature, "jnt_stiffness": sy.jnt_stiffness,
                  "actuator_gear": sy.actuator.gear, "actuator_ctrl_range": sy.actuator.ctrl_range,
                  "geom_friction": sy.geom_friction, "body_mass": sy.body_mass, "jnt_range": sy.jnt_range}
        for k, v in arrays.items():
            out[f"{env_id}/{k}"] = np.asarray(v)
        print(f"env {env_id}: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
    os.chdir(cwd)
    return out


N_RESETS = 256
ROLLOUT_STEPS = 100
KICK = 1e-6
PROBE_RADII = (0.5, 0.8, 0.9, 0.95, 0.98, 1.02, 1.05, 1.1, 1.2, 1.5, 2.0, 3.0)  # x the task's success radius
SUCCESS_RADIUS = {"reacher": 0.05, "humanoid": 0.5, "arm": 0.1, "ant": 0.5}


def family(env_id: str) -> str:
    return next(f for f in ("reacher", "humanoid", "arm", "ant") if env_id.startswith(f))


def env_dynamics_fixture(src: Path):
    """Per env, from their make_env's env:
    - `resets`: the observations of N_RESETS resets (keys split from SEED), the initial-state and
      target distribution;
    - from their first reset state (its q, qd and info), the observations, `dist` and `success`
      along ROLLOUT_STEPS steps of `actions` (uniform in [-1, 1], inputs.uniform), and the same
      rollout after a KICK added to every qd entry (the sensitivity that chaos alone explains);
    - `probe_*`: one zero-action step from that state with the target (or arm goal) moved to
      PROBE_RADII x the success radius from the achieved goal after that step (in x-y, direction
      (0.6, 0.8)), and the metrics their step gives:
      the success rule, read off their own code."""
    import jax
    import jax.numpy as jnp

    cwd = os.getcwd()
    os.chdir(src)
    out = {}
    for env_id in PARITY_ENV_IDS:
        t0 = time.time()
        env, a = authors_make_env(src, env_id)
        keys = jax.random.split(jax.random.PRNGKey(SEED), N_RESETS)
        states = jax.jit(jax.vmap(env.reset))(keys)
        s0 = jax.tree_util.tree_map(lambda x: x[0], states)
        q0, qd0 = s0.pipeline_state.q, s0.pipeline_state.qd
        actions = inputs.uniform(f"{env_id}/actions", (ROLLOUT_STEPS, env.action_size), -1.0, 1.0)
        kick = KICK * np.sign(inputs.uniform(f"{env_id}/kick", qd0.shape, -1.0, 1.0)).astype(np.float32)
        kicked = s0.replace(pipeline_state=env.pipeline_init(q0, qd0 + kick))
        keys_m = [k for k in ("dist", "success") if k in s0.metrics]

        def rollout(state, actions):
            def one(s, act):
                s = env.step(s, act)
                return s, (s.obs, *[s.metrics[k] for k in keys_m])
            return jax.lax.scan(one, state, actions)[1]

        pair = jax.tree_util.tree_map(lambda x, y: jnp.stack([x, y]), s0, kicked)
        traj = jax.jit(jax.vmap(rollout, in_axes=(0, None)))(pair, jnp.asarray(actions))

        # The success-rule probe: goals around the achieved goal, in a fixed direction.
        fam = family(env_id)
        radius = SUCCESS_RADIUS[fam]
        gs, ge = a.goal_start_idx, a.goal_end_idx
        # Placed around where the achieved goal is after the probe step (the target does not act on
        # the agent), so that the step's own motion does not carry it across the radius.
        achieved = np.asarray(jax.jit(env.step)(s0, jnp.zeros(env.action_size)).obs[gs:ge])
        direction = np.zeros_like(achieved)
        direction[:2] = [0.6, 0.8]
        goals = np.stack([achieved + r * radius * direction for r in PROBE_RADII]).astype(np.float32)

        def with_goal(goal):
            if fam == "arm":
                return s0.replace(info={**s0.info, "goal": s0.info["goal"].at[:goal.shape[0]].set(goal)})
            q = q0.at[-2:].set(goal[:2])  # the target's two slide joints end q
            return s0.replace(pipeline_state=env.pipeline_init(q, qd0))

        def probe(goal):
            s = env.step(with_goal(goal), jnp.zeros(env.action_size))
            return s.obs, *[s.metrics[k] for k in keys_m]

        probed = jax.jit(jax.vmap(probe))(jnp.asarray(goals))
        rec = {"resets": states.obs, "q0": q0, "qd0": qd0, "kick": kick, "actions": actions, "obs0": s0.obs,
               "traj_obs": traj[0][0], "kicked_obs": traj[0][1], "probe_goal": goals, "probe_obs": probed[0]}
        for i, k in enumerate(keys_m):
            rec[f"traj_{k}"] = traj[1 + i][0]
            rec[f"probe_{k}"] = probed[1 + i]
        if fam == "arm":
            rec["goal0"] = s0.info["goal"]
        for k, v in rec.items():
            out[f"{env_id}/{k}"] = np.asarray(v)
        dev = np.abs(np.asarray(traj[0][1]) - np.asarray(traj[0][0])).max(-1)
        print(f"dynamics {env_id}: q {q0.shape[0]} qd {qd0.shape[0]}, metrics {keys_m}, kick deviation at "
              f"1/10/100 {dev[0]:.2e}/{dev[9]:.2e}/{dev[99]:.2e}, probe success "
              f"{np.asarray(probed[1 + keys_m.index('success')]).astype(int).tolist()}, {time.time() - t0:.0f} s",
              flush=True)
    os.chdir(cwd)
    return out


def versions(src: Path) -> dict:
    import brax
    import flax
    import jax
    import jaxlib
    import mujoco
    import optax

    commit = (src / "REF_COMMIT").read_text().strip() if (src / "REF_COMMIT").exists() else None
    if commit is None:
        try:
            commit = subprocess.check_output(["git", "-C", str(src), "rev-parse", "HEAD"], text=True).strip()
        except Exception:
            commit = "unknown"
    return {"authors_commit": commit, "python": sys.version.split()[0], "jax": jax.__version__,
            "jaxlib": jaxlib.__version__, "flax": flax.__version__, "optax": optax.__version__,
            "brax": brax.__version__, "mujoco": mujoco.__version__, "numpy": np.__version__}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", type=Path, required=True, help="the authors' checkout")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--parts", default="networks,losses,goal_sampling,buffer_window,evaluation,env_facts,env_dynamics",
                   help="comma-separated subset to (re)compute; meta.json is updated in place")
    a = p.parse_args()
    parts = a.parts.split(",")
    a.out.mkdir(parents=True, exist_ok=True)
    import jax

    t0 = time.time()
    ns, code = load_authors(a.src)
    meta_path = a.out / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    specs = meta.get("param_specs", {})
    if "networks" in parts:
        nets, net_specs = networks_fixture(ns, code)
        np.savez_compressed(a.out / "networks.npz", **nets)
        specs.update({f"networks/{k}": v for k, v in net_specs.items()})
    if "losses" in parts:
        losses, specs["losses"] = losses_fixture(ns, code)
        np.savez_compressed(a.out / "losses.npz", **losses)
    if "goal_sampling" in parts:
        np.savez_compressed(a.out / "goal_sampling.npz", **goal_sampling_fixture(a.src))
    if "buffer_window" in parts:
        np.savez_compressed(a.out / "buffer_window.npz", **buffer_window_fixture(a.src))
    if "env_facts" in parts:
        np.savez_compressed(a.out / "env_facts.npz", **env_facts_fixture(a.src))
    if "evaluation" in parts:
        np.savez_compressed(a.out / "evaluation.npz", **evaluation_fixture(a.src))
    if "env_dynamics" in parts:
        np.savez_compressed(a.out / "env_dynamics.npz", **env_dynamics_fixture(a.src))
    commands = {**meta.get("commands", {}), **{part: " ".join(["python", *sys.argv]) for part in parts}}
    meta.pop("command", None)
    meta = {
        **versions(a.src),
        "device": str(jax.devices()[0]),
        "commands": commands,  # per fixture: the command that last wrote it (python = the authors' venv)
        "dims": {"obs_dim": OBS_DIM, "goal_start": GOAL_START, "goal_end": GOAL_END, "action_dim": ACTION_DIM},
        "network_configs": {k: list(v) for k, v in NETWORK_CONFIGS.items()},
        "network_batch": NETWORK_BATCH,
        "loss_config": list(LOSS_CONFIG), "loss_batch": LOSS_BATCH, "sgd_steps": SGD_STEPS,
        "log_alpha": LOG_ALPHA, "eval_envs": EVAL_ENVS, "eval_length": EVAL_LENGTH, "env_ids": list(ENV_IDS), "parity_env_ids": list(PARITY_ENV_IDS), "n_resets": N_RESETS,
        "rollout_steps": ROLLOUT_STEPS, "kick": KICK, "probe_radii": list(PROBE_RADII), "lr": 3e-4, "logsumexp_penalty_coeff": 0.1, "target_entropy": -0.5 * ACTION_DIM,
        "param_specs": specs,
    }
    meta_path.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    print(f"wrote {', '.join(parts)} to {a.out} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    main()
