"""Env throughput benchmark: compile time and env steps/s of random-action rollouts.

    uv run python -m envs.benchmark --num_envs 128 [--env_ids ant reacher] [--unroll 50]
        [--json out.json] [--skip_arm] [--seconds 3]

For each env id (default: every id of `envs.ENV_IDS`): `jit(vmap(reset))` and a
jitted `lax.scan` of `--unroll` vmapped steps with uniform random actions in
[-1, 1] over `--num_envs` envs (no episode wrapper, no auto-reset). Compile time
is lowering + XLA compilation of both programs; throughput is env steps per
second of the compiled rollout, repeated for about `--seconds` after one
warm-up call. The machine (device kind, CPU count, load average) heads the
table; `--json` also writes every figure.

Ids whose physics is identical to an id already measured (same system, backend
and substeps, e.g. `ant_u_maze_eval` and `ant_u_maze`, whose layouts differ only
in goal cells) are not compiled again: they are listed with that id's figures
and `same_as` names it. `--no_dedupe` measures every id.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import time
import warnings

import jax
import numpy as np

import envs


def machine() -> dict:
    """What the figures were measured on."""
    device = jax.devices()[0]
    return {
        "device_kind": device.device_kind,
        "platform": device.platform,
        "cpu_count": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "jax": jax.__version__,
    }


def physics_key(env: envs.GoalEnv) -> str:
    """Fingerprint of what a step costs: the system's arrays, backend, substeps, sizes."""
    digest = hashlib.sha256(f"{env.backend} {env._n_frames} {env.obs_dim} {env.goal_dim}".encode())
    for leaf in jax.tree.leaves(env.sys):
        array = np.asarray(leaf)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def measure(env: envs.GoalEnv, num_envs: int, unroll: int, seconds: float, seed: int = 0) -> dict:
    """Compile seconds and env steps/s of `num_envs` envs stepping `unroll` random actions."""
    vstep = jax.vmap(env.step)
    action_shape = (num_envs, env.action_size)

    def rollout(state, key):
        def body(state, step_key):
            action = jax.random.uniform(step_key, action_shape, minval=-1.0, maxval=1.0)
            return vstep(state, action), None

        state, _ = jax.lax.scan(body, state, jax.random.split(key, unroll))
        return state

    keys = jax.random.split(jax.random.PRNGKey(seed), num_envs)
    start = time.perf_counter()
    reset = jax.jit(jax.vmap(env.reset)).lower(keys).compile()
    state_shape = jax.eval_shape(jax.vmap(env.reset), keys)
    run = jax.jit(rollout).lower(state_shape, jax.random.PRNGKey(0)).compile()
    compile_s = time.perf_counter() - start

    state = jax.block_until_ready(reset(keys))
    key = jax.random.PRNGKey(seed + 1)
    state = jax.block_until_ready(run(state, key))  # warm-up
    calls, start = 0, time.perf_counter()
    while calls == 0 or time.perf_counter() - start < seconds:
        key, call_key = jax.random.split(key)
        state = jax.block_until_ready(run(state, call_key))
        calls += 1
    elapsed = time.perf_counter() - start
    finite = bool(np.all(np.isfinite(np.asarray(state.obs))))
    return {
        "compile_s": round(compile_s, 2),
        "steps_per_s": round(calls * unroll * num_envs / elapsed, 1),
        "calls": calls,
        "finite": finite,
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num_envs", type=int, default=128, help="parallel (vmapped) envs")
    parser.add_argument("--env_ids", nargs="+", default=None, help="ids to measure (default: all)")
    parser.add_argument("--unroll", type=int, default=50, help="steps per jitted lax.scan call")
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per env after warm-up")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--skip_arm", action="store_true", help="leave out arm_* ids (slow under MJX on CPU)")
    parser.add_argument("--no_dedupe", action="store_true", help="measure ids with identical physics again")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    env_ids = list(args.env_ids or envs.ENV_IDS)
    for env_id in env_ids:
        envs.check_id(env_id)
    if args.skip_arm:
        env_ids = [i for i in env_ids if not i.startswith("arm_")]
    info = machine()
    print(
        f"machine: {info['device_kind']} ({info['platform']}), {info['cpu_count']} CPUs, "
        f"load average {' '.join(map(str, info['load_average']))}; jax {info['jax']}"
    )
    print(f"{args.num_envs} envs, {args.unroll}-step scan, uniform random actions\n")
    header = f"{'env id':<28} {'backend':<12} {'env dt':>7} {'compile s':>10} {'env steps/s':>12}  note"
    print(header)
    print("-" * len(header))
    results, measured = [], {}
    for env_id in env_ids:
        env = envs.make(env_id)
        key = None if args.no_dedupe else physics_key(env)
        row = {"env_id": env_id, "backend": env.backend, "env_dt": round(float(env.dt), 4)}
        if key in measured:
            same = measured[key]
            row.update({k: same[k] for k in ("compile_s", "steps_per_s", "finite")}, same_as=same["env_id"])
        else:
            row.update(measure(env, args.num_envs, args.unroll, args.seconds))
            if key is not None:
                measured[key] = row
        results.append(row)
        note = f"same physics as {row['same_as']}" if "same_as" in row else ""
        note += "" if row["finite"] else " NON-FINITE"
        print(
            f"{env_id:<28} {row['backend']:<12} {row['env_dt']:>7g} {row['compile_s']:>10.1f} "
            f"{row['steps_per_s']:>12,.0f}  {note}",
            flush=True,
        )
    out = {
        "machine": info,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "config": {"num_envs": args.num_envs, "unroll": args.unroll, "seconds": args.seconds},
        "results": results,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    warnings.filterwarnings("ignore", message="Brax System, piplines")
    main()
