"""Benchmark harness: where a training run's time and memory go.

For one config it measures, and prints and writes as JSON:
  compile_s         tracing + XLA compilation of the training step (an epoch runs it repeatedly)
  collect_sps       env steps/s of data collection alone (stochastic actor, buffer insert)
  sgd_steps_per_s   SGD steps/s of the update alone (goal sampling + actor/alpha/critic steps)
  train_sps         env steps/s of whole training epochs, end to end
  physics_sps       env steps/s of the env alone (random actions): the floor under collection
  update_tflops     achieved TFLOP/s of the update, from an analytic count of its matmuls,
                    next to the device's own matmul speed at the layers' shape (batch x width
                    @ width x width, layer_matmul_tflops) and for large square matmuls
                    (peak_matmul_tflops): the floor under the update
  sample_ms, critic_grad_ms, actor_grad_ms, rest_ms
                    where one SGD step's time goes: drawing and gathering the batch, each
                    loss's forward and backward pass (with its own TFLOP/s), and the rest
                    (optimizers, temperature, loop); printed as a second table
  peak_rss_gib      peak host memory of the process; peak_device_gib on GPUs

    uv run bench.py --env_id ant --num_envs 128 --batch_size 256 \\
        --num_sgd_batches_per_training_step 100 --depths 4 16 64

`--depths` sweeps actor and critic depth together, one fresh process per depth
(so peak memory and compile time are per depth), and prints one table.
`--device_counts 1 2 ...` runs each point on that many devices (GPUs, or virtual
CPU devices) and prints the scaling efficiency. `--compile_only` stops after
compiling the training step and reports XLA's memory plan (temp_gib: activations and
other scratch), for depths too slow to run on the machine at hand.

`--reference DIR` (an install of the authors' code: DIR/venv/bin/python, DIR/src/train.py)
runs their code and ours alternately, per depth, on the CPU and the same config, and prints
the ratio of end-to-end env steps/s; without it no figure is compared with another code's.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import jax
import jax.numpy as jnp

import buffer as replay
import checks
import cli
import contrastive
import train
from cli import Bool
from envs import arm
from envs.wrappers import wrap_for_training

@dataclass
class Bench(train.Config):
    """Benchmark a training configuration (every train.py flag applies)."""

    # --- benchmark
    depths: tuple[int, ...] = ()
    """Sweep actor and critic depth over these values, one process each; empty = the config's depths."""
    device_counts: tuple[int, ...] = ()
    """Also run each point on these numbers of devices (the first N GPUs, or N virtual CPU devices)
    and print the scaling efficiency against the smallest count; empty = all devices, no table."""
    epochs: int = 2
    """Timed epochs after the compiling one."""
    seed_counts: tuple[int, ...] = ()
    """Also time each depth with --num_seeds N for these N (one process each) and print how much faster
    N seeds train in one process than N runs one after another; empty = no table."""
    compile_only: Bool = False
    """Only compile the training step: compile time and XLA's memory plan (for depths too slow to run)."""
    json_out: Optional[str] = "bench.json"
    """Where to write the results as JSON; None = do not write."""
    # --- side by side with the authors' code
    reference: Optional[str] = None
    """An install of the authors' code (scaling-crl): a folder with venv/bin/python and src/train.py.
    Each depth then runs theirs and ours alternately, on the CPU, on this config, and prints the
    ratio of their end-to-end env steps/s. None = no comparison."""


def network_flops(batch: int, in_dim: int, width: int, depth: int, out_dim: int) -> float:
    """Matmul FLOPs of one forward pass (2 per multiply-add)."""
    return 2.0 * batch * (in_dim * width + depth * width * width + width * out_dim)


def loss_flops(config: train.Config, d: train.Derived) -> dict[str, float]:
    """Matmul FLOPs of one SGD step's two gradients, counted from the losses' structure.

    Actor loss: actor forward + backward (3 passes), the critic's sa_encoder
    forward plus the backward to its input (2); it reuses the critic loss's psi(g).
    Critic loss: both encoders forward + backward (3 each). The B x B energy is
    small next to the networks and is left out.
    """
    b, goal = config.batch_size, d.goal_end - d.goal_start
    actor = network_flops(
        b, d.obs_dim + goal, config.actor_network_width, config.actor_depth, 2 * d.action_dim
    )
    sa = network_flops(
        b, d.obs_dim + d.action_dim, config.critic_network_width, config.critic_depth, config.repr_dim
    )
    g = network_flops(b, goal, config.critic_network_width, config.critic_depth, config.repr_dim)
    return {"actor": 3 * actor + 2 * sa, "critic": 3 * sa + 3 * g}


def update_flops(config: train.Config, d: train.Derived) -> float:
    """Matmul FLOPs of one SGD step (both losses' forward and backward passes)."""
    return sum(loss_flops(config, d).values())


def matmul_tflops(m: int, k: int, dtype: str = "float32", chain: int = 32) -> float:
    """Achieved TFLOP/s of a chain of [m, k] @ [k, k] matmuls in one program: the hardware's
    practical peak for that shape (m = k = 2048+ gives the device's square-matmul peak)."""
    x = jax.random.normal(jax.random.PRNGKey(0), (m, k), dtype)
    w = jax.random.normal(jax.random.PRNGKey(1), (k, k), dtype) / k**0.5

    @jax.jit
    def run(x, w):
        return jax.lax.fori_loop(0, chain, lambda _, h: h @ w, x)

    _, seconds = best_of(run, x, w, repeats=5)
    return 2.0 * m * k * k * chain / seconds / 1e12


def physics_sps(trainer: train.Trainer) -> float:
    """Env steps/s of the training env alone (uniform random actions, no network, no buffer):
    the floor under data collection."""
    c = trainer.config
    env = wrap_for_training(trainer.env, c.episode_length, c.reset_mode)
    action_dim = trainer.derived.action_dim

    @jax.jit
    def rollout(state, key):
        def step(state, key):
            return env.step(
                state, jax.random.uniform(key, (c.num_envs, action_dim), minval=-1, maxval=1)
            ), None

        return jax.lax.scan(step, state, jax.random.split(key, c.unroll_length))[0]

    state = env.reset(jax.random.split(jax.random.PRNGKey(0), c.num_envs))
    state = jax.block_until_ready(rollout(state, jax.random.PRNGKey(1)))  # compiles
    seconds = min(timed(rollout, state, jax.random.PRNGKey(2 + i))[1] for i in range(3))
    return c.num_envs * c.unroll_length / seconds


def update_breakdown(trainer: train.Trainer, ts: train.TrainingState, buf) -> dict:
    """Milliseconds per SGD step of the update's parts, each timed as its own program over one
    training step's batches: drawing and gathering the batches, the critic's loss and gradient,
    the actor's loss and gradient (with the critic's psi(g), as in the update)."""
    c, d, nets = trainer.config, trainer.derived, trainer.nets
    n = c.num_sgd_batches_per_training_step
    loss_fn = contrastive.CONTRASTIVE_LOSSES[c.contrastive_loss_fn]

    @jax.jit
    def draw(buf, key):
        idx = replay.sample_indices(
            buf, key, window=d.window, gamma=c.gamma, num_batches=n, batch_size=c.batch_size
        )
        return jax.lax.map(lambda i: (*replay.gather(buf, i, d.goal_start, d.goal_end), i.valid), idx)

    def keep_live(total, loss, grads):  # a few adds that keep every gradient from being pruned
        return total + loss + sum(jnp.sum(g) for g in jax.tree.leaves(grads))

    @jax.jit
    def critic(params, batches):
        def step(total, batch):
            state, action, goal, valid = batch
            (loss, (_, psi)), grads = jax.value_and_grad(train.critic_loss, has_aux=True)(
                params, nets, loss_fn, state, action, goal, valid, c.logsumexp_penalty_coeff
            )
            return keep_live(total, loss, grads), psi

        return jax.lax.scan(step, 0.0, batches)

    @jax.jit
    def actor(actor_params, critic_params, batches, psis, key):
        def step(total, xs):
            (state, _, goal, valid), psi, key = xs
            (loss, _), grads = jax.value_and_grad(train.actor_loss, has_aux=True)(
                actor_params, critic_params, 1.0, nets, state, goal, psi, valid, key
            )
            return keep_live(total, loss, grads), None

        return jax.lax.scan(step, 0.0, (batches, psis, jax.random.split(key, n)))[0]

    key = jax.random.PRNGKey(0)
    batches, sample_s = best_of(draw, buf, key)
    (_, psis), critic_s = best_of(critic, ts.critic_params, batches)
    _, actor_s = best_of(actor, ts.actor_params, ts.critic_params, batches, psis, key)
    return {
        "sample_ms": sample_s * 1000 / n,
        "critic_grad_ms": critic_s * 1000 / n,
        "actor_grad_ms": actor_s * 1000 / n,
    }


def device_peak_gib() -> Optional[float]:
    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return peak / 2**30 if peak else None


def timed(fn, *args):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - start


def best_of(fn, *args, repeats: int = 3):
    """(output, best seconds of `repeats` runs) after one untimed run that compiles."""
    out = jax.block_until_ready(fn(*args))
    return out, min(timed(fn, *args)[1] for _ in range(repeats))


def describe(config: train.Config) -> dict:
    return {
        "env_id": config.env_id,
        "actor_depth": config.actor_depth,
        "critic_depth": config.critic_depth,
        "num_seeds": config.num_seeds,
        "width": config.critic_network_width,
        "num_envs": config.num_envs,
        "batch_size": config.batch_size,
        "sgd_steps_per_training_step": config.num_sgd_batches_per_training_step,
        "remat": config.remat,
        "unroll_blocks": config.unroll_blocks,
        "matmul_dtype": config.matmul_dtype,
        "device": jax.devices()[0].device_kind,
        "device_count": jax.device_count(),
    }


def memory_plan(compiled) -> dict:
    """XLA's buffer plan of a compiled program: what it needs beyond its inputs and outputs."""
    plan = compiled.memory_analysis()
    if plan is None:
        return {}
    return {
        "temp_gib": plan.temp_size_in_bytes / 2**30,
        "argument_gib": plan.argument_size_in_bytes / 2**30,
    }


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def measure(
    config: train.Config,
    epochs: int,
    compile_only: bool = False,
    *,
    breakdown: bool = True,
    floors: bool = True,
    repeats: int = 3,
    time_update: bool = True,
    report: Optional[Callable[[dict], None]] = None,
) -> dict:
    """One config's figures (module docstring). breakdown=False skips the SGD step's split,
    floors=False the physics-alone and matmul floors, and `repeats` sets how many timed runs of
    the update best_of takes: the GPU check turns these down to fit its time budget.
    time_update=False times no update on its own, which would compile the SGD loop a second
    time (as long again as the training step at depth 64); the SGD rate then comes from the
    timed epochs less their collection (`update_from_epoch`), which needs epochs >= 1.
    `report(partial)` is called after each stage with the figures so far, so a caller that is
    stopped part-way still has them."""
    report = report or (lambda figures: None)
    if config.num_seeds > 1:  # several seeds' whole epochs only: the parts are one seed's
        breakdown = floors = time_update = False
    trainer = train.build(config)
    d = trainer.derived
    keys = [jax.random.PRNGKey(c.seed) for c in train.seed_configs(config)]
    ts, env_state, buf = trainer.init(jnp.stack(keys) if config.num_seeds > 1 else keys[0])
    start = time.perf_counter()
    step = trainer.training_step.lower(ts, env_state, buf).compile()
    compile_s = time.perf_counter() - start
    result = {**describe(config), "compile_s": compile_s, **memory_plan(step)}
    epoch = functools.partial(train.training_epoch, step, d.training_steps_per_epoch)  # no second compile
    if compile_only:
        return {**result, "peak_rss_gib": peak_rss_gib()}
    report(result)

    (ts, env_state, buf), _ = timed(trainer.prefill, ts, env_state, buf)  # compiles
    # Collection alone: a second prefill, now compiled (the buffer just keeps filling).
    (ts, env_state, buf), collect_s = timed(trainer.prefill, ts, env_state, buf)
    result["collect_sps"] = d.prefill_env_steps / collect_s
    report(result)

    n = config.num_sgd_batches_per_training_step

    def record_update(update_s: float) -> None:
        result.update(
            sgd_steps_per_s=n / update_s,
            update_tflops=update_flops(config, d) * n / update_s / 1e12,
            update_gflop_per_sgd_step=update_flops(config, d) / 1e9,
        )
        report(result)

    if time_update:  # Update alone: one training step's SGD steps on the filled buffer.
        record_update(best_of(trainer.update, ts, buf, repeats=repeats)[1])
    if breakdown and time_update:
        parts = update_breakdown(trainer, ts, buf)
        # Optimizers, temperature and the loop: what the whole update takes beyond its parts.
        parts["rest_ms"] = 1000 / result["sgd_steps_per_s"] - sum(parts.values())
        flops = loss_flops(config, d)
        parts["critic_tflops"] = flops["critic"] / parts["critic_grad_ms"] / 1e9
        parts["actor_tflops"] = flops["actor"] / parts["actor_grad_ms"] / 1e9
        result.update(parts)
        report(result)

    epoch_times = []
    for _ in range(epochs):
        (ts, env_state, buf, _), seconds = timed(epoch, ts, env_state, buf)
        epoch_times.append(seconds)
    if epoch_times:
        epoch_s = min(epoch_times)
        result["train_sps"] = d.training_steps_per_epoch * d.env_steps_per_training_step / epoch_s
        result["epoch_s"] = epoch_s
        if not time_update and config.num_seeds == 1:
            # A training step is one unroll (at the prefill's measured speed) plus the update.
            update_s = epoch_s / d.training_steps_per_epoch - d.env_steps_per_training_step / result["collect_sps"]
            if update_s > 0:  # else the update is lost in the timing's noise: no figure
                result["update_from_epoch"] = True
                record_update(update_s)
    result["peak_device_gib"] = device_peak_gib()  # before the floors' matmuls add their own
    report(result)
    if floors:
        big = 8192 if jax.default_backend() == "gpu" else 2048
        result["physics_sps"] = physics_sps(trainer)
        # The update's floor: its FLOPs at the device's matmul speed for the networks' shape.
        result["layer_matmul_tflops"] = matmul_tflops(
            config.batch_size, config.critic_network_width, config.matmul_dtype
        )
        result["peak_matmul_tflops"] = matmul_tflops(big, big, config.matmul_dtype, chain=4)
    result["peak_rss_gib"] = peak_rss_gib()
    result["xla_flags"] = os.environ.get("XLA_FLAGS", "")
    report(result)
    return result


def device_env(count: Optional[int]) -> dict:
    """Environment for a process that sees `count` devices: the first N GPUs if there are
    GPUs, else N virtual CPU devices."""
    # XLA_FLAGS as the user gave them: the child chooses its fusion emitters for its own config.
    env = {**os.environ, "XLA_FLAGS": arm.USER_XLA_FLAGS}
    if count is None:
        return env
    if jax.default_backend() == "gpu":
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(count))
    else:
        env["XLA_FLAGS"] = (
            f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={count}".strip()
        )
    return env


def measure_in_subprocess(
    config: train.Config, args: "Bench", devices: Optional[int], cpu: bool = False
) -> dict:
    """One measurement in a fresh process: clean peak memory, compile caches and device count;
    `cpu` hides any GPU."""
    flags = [a for f in dataclasses.fields(config) for a in (f"--{f.name}", str(getattr(config, f.name)))]
    cmd = [sys.executable, __file__, *flags, "--epochs", str(args.epochs), "--json_out", "None"]
    cmd += ["--compile_only", "True"] if args.compile_only else []
    env = {**device_env(devices), **({"JAX_PLATFORMS": "cpu"} if cpu else {})}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


COLUMNS = [
    ("critic_depth", "depth", "{:d}"),
    ("device_count", "devices", "{:d}"),
    ("compile_s", "compile s", "{:.1f}"),
    ("physics_sps", "physics sps", "{:,.0f}"),
    ("collect_sps", "collect sps", "{:,.0f}"),
    ("sgd_steps_per_s", "SGD steps/s", "{:.1f}"),
    ("train_sps", "train sps", "{:,.0f}"),
    ("update_tflops", "update TFLOP/s", "{:.3f}"),
    ("layer_matmul_tflops", "layer matmul TFLOP/s", "{:.3f}"),
    ("peak_matmul_tflops", "peak matmul TFLOP/s", "{:.3f}"),
    ("temp_gib", "XLA temp GiB", "{:.2f}"),
    ("peak_rss_gib", "peak RSS GiB", "{:.2f}"),
]


def cell(result: dict, key: str, fmt: str) -> str:
    value = result.get(key)
    return "-" if value is None else fmt.format(value)


def print_table(results: list[dict]) -> None:
    header = [title for _, title, _ in COLUMNS]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in results:
        print("| " + " | ".join(cell(r, key, fmt) for key, _, fmt in COLUMNS) + " |")


BREAKDOWN = [
    ("sample_ms", "sample + gather"),
    ("critic_grad_ms", "critic loss + grad"),
    ("actor_grad_ms", "actor loss + grad"),
    ("rest_ms", "optimizers + rest"),
]


def print_breakdown(results: list[dict]) -> None:
    """Where one SGD step's time goes: ms and share of the step; TFLOP/s for the two gradients."""
    header = ["depth", "batch", "SGD step ms"] + [title for _, title in BREAKDOWN]
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in results:
        step_ms = 1000 / r["sgd_steps_per_s"]
        cells = [f"{r['critic_depth']}", f"{r['batch_size']}", f"{step_ms:.1f}"]
        for key, _ in BREAKDOWN:
            cells.append(f"{r[key]:.1f} ({r[key] / step_ms:.0%})")
        cells[4] += f", {r['critic_tflops']:.3f} TFLOP/s"
        cells[5] += f", {r['actor_tflops']:.3f} TFLOP/s"
        print("| " + " | ".join(cells) + " |")


def print_scaling(results: list[dict]) -> None:
    """Strong scaling: the same global config on more devices; efficiency = speed-up / (N / N0)."""
    print("\n| depth | devices | train sps | speed-up | efficiency |\n|---|---|---|---|---|")
    for depth in dict.fromkeys(r["critic_depth"] for r in results):
        runs = sorted((r for r in results if r["critic_depth"] == depth), key=lambda r: r["device_count"])
        base = runs[0]
        for r in runs:
            speedup = r["train_sps"] / base["train_sps"]
            efficiency = speedup / (r["device_count"] / base["device_count"])
            print(
                f"| {depth} | {r['device_count']} | {r['train_sps']:,.0f} | x{speedup:.2f} | {efficiency:.0%} |"
            )


def print_seeds(results: list[dict]) -> None:
    """N seeds in one process (--num_seeds N) against N runs of one seed one after another, from the
    timed epochs: speed-up = N x (env steps/s of each seed) / (env steps/s of a one-seed run)."""
    print("\n| depth | seeds | env steps/s, all seeds | speed-up over N runs in turn |\n|---|---|---|---|")
    for depth in dict.fromkeys(r["critic_depth"] for r in results):
        rows = sorted((r for r in results if r["critic_depth"] == depth), key=lambda r: r["num_seeds"])
        one = next(r["train_sps"] for r in rows if r["num_seeds"] == 1)
        for r in rows:
            total = r["num_seeds"] * r["train_sps"]
            print(f"| {depth} | {r['num_seeds']} | {total:,.0f} | x{total / one:.2f} |")


def side_by_side(config: train.Config, args: Bench, install: Path) -> list[dict]:
    """Per depth: ours (a fresh process, on the CPU), then the authors' code, on one config."""
    if args.compile_only or args.device_counts:
        raise ValueError(
            "--reference times whole epochs on one device: drop --compile_only and --device_counts"
        )
    results = []
    for depth in args.depths or (config.critic_depth,):
        one = dataclasses.replace(config, actor_depth=depth, critic_depth=depth) if args.depths else config
        ours = measure_in_subprocess(one, args, None, cpu=True)
        theirs = run_authors(one, install, args.epochs)
        ours["authors_code"] = {**theirs, "ratio": ours["train_sps"] / theirs["train_sps"]}
        results.append(ours)
        print(f"depth {depth} done", file=sys.stderr)
    print_table(results)
    print_side_by_side(results)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(results, f, indent=2)
    return results


# The authors' train.py (tyro, dashed booleans) on the flags both codes share.
AUTHORS_FLAGS = ("env_id", "num_envs", "unroll_length", "batch_size", "critic_network_width",
                 "actor_network_width", "critic_depth", "actor_depth",
                 "num_sgd_batches_per_training_step", "min_replay_size", "num_eval_envs")  # fmt: skip
AUTHORS_EPOCH = re.compile(
    r"^epoch (\d+) out of \d+ complete\. metrics: \{.*?'training/sps': ([0-9.eE+-]+)", re.M
)
AUTHORS_STEPS = re.compile(r"^num_training_steps_per_epoch: (\d+)", re.M)


def authors_command(config: train.Config, install: Path, epochs: int) -> list[str]:
    """The authors' train.py on `config`, with 1 + `epochs` epochs of exactly our training steps per
    epoch (their code derives that count from the budget: (total - min_replay x envs) //
    (epochs x envs x unroll), so the budget is chosen to give it)."""
    s = train.schedule(config)
    per_unroll = config.num_envs * config.unroll_length
    total = (s.prefill_unrolls + (1 + epochs) * s.training_steps_per_epoch) * per_unroll
    flags = [a for name in AUTHORS_FLAGS for a in (f"--{name}", str(getattr(config, name)))]
    return [str(install / "venv" / "bin" / "python"), "train.py", *flags, "--total_env_steps", str(total),
            "--num_epochs", str(1 + epochs), "--no-track", "--no-capture-vis", "--no-checkpoint"]  # fmt: skip


def authors_sps(log: str, training_steps: int, per_unroll: int) -> dict:
    """Env steps/s of the authors' run from its log: their own `training/sps` (the jitted epoch,
    evaluation excluded) for every epoch after the first, which compiles; the best of them, as
    ours takes the fastest timed epoch."""
    steps = [int(n) for n in AUTHORS_STEPS.findall(log)]
    if not steps or steps[-1] != training_steps:
        done = steps[-1] if steps else "no"
        raise ValueError(f"the authors' run did {done} training steps per epoch, not {training_steps}")
    sps = [float(v) for _, v in AUTHORS_EPOCH.findall(log)]
    if len(sps) < 2:
        raise ValueError(f"the authors' run finished {len(sps)} epoch(s); it needs 2 (the first compiles)")
    return {"train_sps": max(sps[1:]), "epoch_sps": sps, "env_steps_per_epoch": training_steps * per_unroll}


def run_authors(config: train.Config, install: Path, epochs: int) -> dict:
    """One run of the authors' code on `config` (CPU), in its own install and folder."""
    cmd = authors_command(config, install, epochs)
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"}
    # Importing envs added an XLA flag for the arm tasks that their older XLA does not know (and
    # aborts on); the rest of XLA_FLAGS is the user's and goes to both codes.
    xla_flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_cpu_use_fusion_emitters" not in f]
    env["XLA_FLAGS"] = " ".join(xla_flags)
    proc = subprocess.run(cmd, cwd=install / "src", capture_output=True, text=True, env=env)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        last = (log.strip().splitlines() or [""])[-1]
        raise ValueError(f"the authors' run failed (status {proc.returncode}): {last}")
    s = train.schedule(config)
    return authors_sps(log, s.training_steps_per_epoch, config.num_envs * config.unroll_length)


def check_install(folder: str) -> Path:
    install = Path(folder).expanduser().resolve()
    for need in (install / "venv" / "bin" / "python", install / "src" / "train.py"):
        if not need.exists():
            raise ValueError(
                f"--reference {folder}: no {need} (an install of the authors' code has venv/ and src/)"
            )
    return install


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        model = "unknown CPU"
    return f"{model}, {os.cpu_count()} cores"


def print_side_by_side(results: list[dict]) -> None:
    print("\n| depth | ours: train sps | authors' code: train sps | ours / authors' |\n|---|---|---|---|")
    for r in results:
        theirs = r["authors_code"]
        cells = [f"{r['critic_depth']}", f"{r['train_sps']:,.0f}", f"{theirs['train_sps']:,.0f}"]
        print("| " + " | ".join(cells) + f" | x{theirs['ratio']:.2f} |")
    print(
        f"\nBoth codes ran alternately in this sitting, on this machine ({cpu_name()}), on the CPU, on the "
        "same config; each figure is the fastest epoch after the compiling one."
    )


def main(args: Optional[list[str]] = None) -> None:
    args = cli.parse(Bench, args)
    config = train.Config(**{f.name: getattr(args, f.name) for f in dataclasses.fields(train.Config)})
    config = dataclasses.replace(config, track=False, checkpoint=False, capture_vis=False)
    checks.choose_cpu_fusion_emitters(config)  # for a measurement in this process
    if args.reference is not None:
        try:
            side_by_side(config, args, check_install(args.reference))
        except ValueError as e:
            sys.exit(f"error: {e}")
        return
    if args.seed_counts and (args.compile_only or args.device_counts):
        sys.exit("error: --seed_counts times whole epochs on all devices: drop --compile_only and --device_counts")
    if not args.depths and not args.device_counts and not args.seed_counts:
        results = [measure(config, args.epochs, args.compile_only)]
    else:
        results = []
        for depth in args.depths or (config.critic_depth,):
            one = (
                dataclasses.replace(config, actor_depth=depth, critic_depth=depth) if args.depths else config
            )
            for devices in args.device_counts or (None,):
                results.append(measure_in_subprocess(one, args, devices))
                print(f"depth {depth}, devices {devices or 'all'} done", file=sys.stderr)
            for n in sorted(set(args.seed_counts) - {one.num_seeds}):
                results.append(measure_in_subprocess(dataclasses.replace(one, num_seeds=n), args, None))
                print(f"depth {depth}, {n} seeds done", file=sys.stderr)
    single = [r for r in results if r["num_seeds"] == 1]
    print_table(single)
    if not args.compile_only:
        print_breakdown(single)
    if args.device_counts and not args.compile_only:
        print_scaling(results)
    if args.seed_counts:
        print_seeds(results)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(results, f, indent=2)
    if not args.depths and not args.device_counts and not args.seed_counts:
        print(json.dumps(results[0]))


if __name__ == "__main__":
    main()
