"""The GPU check: what this code does on one GPU, within about 10 minutes.

    bash scripts/gpu_check.sh            # on the GPU machine (installs the carried wheels first)
    uv run bash scripts/gpu_check.sh --tiny     # the same code paths on the CPU in a few minutes

Sections, each item in a fresh process (clean peak GPU memory, and a hard time limit that
cannot take the others down):
  ceilings  the device's own speeds, measured here: large bf16 and fp32 matmuls (TFLOP/s), the
            networks' layer shape (batch 512 x 256 @ 256 x 256), a device-to-device stream (GB/s)
  humanoid  the paper's config (512 envs, batch 512, width 256, unroll 62, 800 SGD steps per
            training step) at depths 4, 16 and 64: compile time, collection env steps/s, SGD
            steps/s, end-to-end env steps/s, the update's TFLOP/s against the measured matmul
            peak, peak GPU memory; beside the paper's A100 figures (Table 3)
  bf16      depth 64 with --matmul_dtype bfloat16, against the float32 run above
  deep      a 1024-layer critic with a 512-layer actor (width 256, batch 512): compile time,
            SGD step time and peak memory with and without --remat
  learn     a short reacher run (about 3M env steps) with eval success before and after
  seeds     humanoid depth 4 with --num_seeds 4 (2 in --tiny): several seeds in one process, their
            env steps/s together against 4 one-seed runs in turn (the humanoid_d4 item)

Results go to a JSON file after every stage of every item, so a run cut short still leaves its
figures; an item that fails or runs out of time is recorded (status, error) and the next one
starts. The driver itself never imports JAX: it must not hold GPU memory while its children run.
The measuring functions are bench.py's (measure, matmul_tflops, best_of, update_flops).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parents[1]

# The paper's own figures (Table 3, one A100): Humanoid, 100M env steps in 1.48 h at depth 4 and
# 10.99 h at depth 64 (whole runs, evaluation included). Constants from the paper, not measured
# in this sitting: every ratio to them names both devices.
PAPER_DEVICE = "A100 (paper, Table 3)"
PAPER_HOURS_PER_100M = {4: 1.48, 64: 10.99}
PAPER_SPS = {depth: 100e6 / (hours * 3600) for depth, hours in PAPER_HOURS_PER_100M.items()}
PAPER_ITEMS = {"humanoid_d4": 4, "humanoid_d64": 64}  # the items measured at the paper's depths

# Python distributions of the GPU image the check is sized for (python3 3.12, jax 0.11.2 with the
# CUDA 13 plugin, no internet access; the H100 run in docs/gpu.md used it): anything train.py
# loads from outside this list must travel as a wheel (scripts/gpu_wheels.txt; a test compares
# them).
DEVICE_IMAGE = """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs
botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy
coverage cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython
diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools formulaic
frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize
hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities
linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl
meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind
narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti
nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile
nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py
nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime
onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker
prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing
pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich
sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy seaborn
sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers
statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl
tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric
torchmetrics torchvision tqdm transformers treescope triton typer typing-extensions
typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
"""

SECTIONS = ("ceilings", "humanoid", "bf16", "deep", "learn", "seeds")

# What every trainer here leaves out: no wandb, checkpoints or renders.
QUIET = dict(track=False, checkpoint=False, capture_vis=False)


def total_for(config: dict, training_steps_per_epoch: int) -> int:
    """--total_env_steps that gives this many training steps per epoch after the prefill."""
    per_unroll = config["num_envs"] * config["unroll_length"]
    prefill_unrolls = math.ceil(config["min_replay_size"] / config["unroll_length"])
    return (prefill_unrolls + training_steps_per_epoch * config["num_epochs"]) * per_unroll


def with_total(config: dict, training_steps_per_epoch: int = 1) -> dict:
    return {**config, "total_env_steps": total_for(config, training_steps_per_epoch)}


def plan(tiny: bool) -> list[dict]:
    """The items in running order: name, section, kind, train.Config overrides, time budget (s).

    The whole check stops at 560 s, inside a 10-minute command with time to spare for process
    starts; the items' GPU budgets add up to more, so the last item (depth 16) gets what is left. --tiny keeps every item and JSON key but shrinks envs, nets and
    depths to run on a CPU: reacher stands in for humanoid, and every tiny trainer shares one
    depth-4 actor so that programs repeat and load from the compilation cache (tiny mode only:
    on the GPU every compile time is a cold one).
    """
    if tiny:
        paper = dict(env_id="reacher", num_envs=8, num_eval_envs=4, episode_length=20,
                     unroll_length=5, min_replay_size=20, max_replay_size=50, batch_size=16,
                     num_sgd_batches_per_training_step=2, num_epochs=1, actor_network_width=16,
                     critic_network_width=16, repr_dim=8)  # fmt: skip
        # (actor, critic): few distinct programs, since each costs tens of seconds to compile on
        # a 2-core CPU. d16 and d64 repeat d4's programs and load them from the compilation
        # cache, as do the learning run's epochs; bf16 and the two deep runs compile their own.
        depths = {"d4": (4, 4), "d16": (4, 4), "d64": (4, 4)}
        deep = dict(paper, actor_depth=4, critic_depth=16, unroll_blocks=1)  # looped, as at 1024
        learn = dict(paper, num_epochs=2)
        learn_steps = 1
        num_seeds = 2
        # Generous: a tiny item takes 15-170 s on a 2-core CPU that others share; the budgets only
        # stop a hung item.
        budgets = dict(ceilings=300, measure=600, learn=600)
    else:
        paper = dict(env_id="humanoid", num_envs=512, batch_size=512, unroll_length=62,
                     actor_network_width=256, critic_network_width=256,
                     num_sgd_batches_per_training_step=800, num_epochs=1,
                     # 800 SGD steps x 512 samples need a goal window of 800 steps per env; the
                     # paper's 1000 would only make the prefill (timed twice) longer.
                     min_replay_size=800)  # fmt: skip
        depths = {"d4": (4, 4), "d16": (16, 16), "d64": (64, 64)}
        # One training step of 8 SGD steps: enough to time an SGD step of a 1536-layer pair.
        deep = dict(paper, actor_depth=512, critic_depth=1024, num_sgd_batches_per_training_step=8,
                    min_replay_size=62)  # fmt: skip
        learn = dict(env_id="reacher", num_envs=512, batch_size=256, unroll_length=62,
                     num_sgd_batches_per_training_step=200, min_replay_size=124, num_epochs=5,
                     actor_depth=4, critic_depth=4)  # fmt: skip
        learn_steps = 18  # 5 epochs x 18 training steps x 31,744 + prefill: about 2.9M env steps
        num_seeds = 4  # humanoid's buffers: about 6 GB a seed
        # Measured on one H100 (jax 0.11.2): a paper-size item spends about 40 s on imports,
        # init and the prefill's compile before its own training step compiles (25 s at depth
        # 4, 33 s at 16, 58 s at 64); the ceilings took 28 s and the learning run 64 s.
        budgets = dict(ceilings=35, d4=70, d16=85, d64=120, bf16=110, deep=60, learn=75, seeds=80)
    budget = lambda name, kind: budgets.get(name, budgets.get(kind))  # noqa: E731
    items = [dict(name="ceilings", section="ceilings", kind="ceilings", config={},
                  budget_s=budget("ceilings", "ceilings"))]  # fmt: skip
    for name, (actor, critic) in depths.items():
        config = with_total(dict(paper, actor_depth=actor, critic_depth=critic))
        items.append(dict(name=f"humanoid_{name}", section="humanoid", kind="measure",
                          config=config, budget_s=budget(name, "measure")))  # fmt: skip
    actor, critic = depths["d64"]
    bf16 = with_total(dict(paper, actor_depth=actor, critic_depth=critic, matmul_dtype="bfloat16"))
    items.append(dict(name="bf16_d64", section="bf16", kind="measure", config=bf16,
                      budget_s=budget("bf16", "measure")))  # fmt: skip
    for remat in (False, True):
        items.append(dict(name=f"deep_remat_{str(remat).lower()}", section="deep", kind="measure",
                          config=with_total(dict(deep, remat=remat)),
                          budget_s=budget("deep", "measure")))  # fmt: skip
    seeds = with_total(dict(paper, actor_depth=depths["d4"][0], critic_depth=depths["d4"][1], num_seeds=num_seeds))
    items.append(dict(name=f"seeds_d4_n{num_seeds}", section="seeds", kind="measure", config=seeds,
                      budget_s=budget("seeds", "measure")))  # fmt: skip
    items.append(dict(name="learn", section="learn", kind="learn",
                      config=with_total(learn, learn_steps), budget_s=budget("learn", "learn")))  # fmt: skip
    for item in items:
        item["config"] = {**item["config"], **QUIET}
    # Running order by what a first GPU run most needs: the paper's two Table 3 depths, that
    # the GPU path learns, bf16, the 1536-layer pair; depth 16 gets whatever time is left.
    order = ["ceilings", "humanoid_d4", "humanoid_d64", "learn", "bf16_d64", "seeds", "deep_remat_true",
             "deep_remat_false", "humanoid_d16"]  # fmt: skip
    return sorted(items, key=lambda item: order.index(item["section" if item["section"] == "seeds" else "name"]))


# =============================================================================
# Children: one item each, writing its figures so far to a part file
# =============================================================================


def write_json(path: str, data) -> None:
    """Whole-file replace, so a reader (or a kill) never sees half a file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, default=str)
    os.replace(tmp, path)


def import_train():
    """Import train and bench, then drop an XLA:CPU flag newer jaxlibs reject.

    envs/arm.py adds --xla_cpu_use_fusion_emitters=false to XLA_FLAGS on import (for the arm
    envs on older XLA:CPU); jaxlib 0.11 no longer knows that flag and aborts the process when its
    first backend starts. Removing it after the import and before any backend starts keeps the
    GPU image's jax 0.11.2 working; the check uses no arm env."""
    sys.path.insert(0, str(ROOT))
    import bench
    import train

    flags = os.environ.get("XLA_FLAGS", "").split()
    kept = [f for f in flags if not f.startswith("--xla_cpu_use_fusion_emitters")]
    if kept != flags and tuple(int(p) for p in __import__("jax").__version__.split(".")[:2]) >= (0, 11):
        os.environ["XLA_FLAGS"] = " ".join(kept)
    return bench, train


def copy_gbps(nbytes: int, best_of: Callable) -> float:
    """Device memory bandwidth of a stream y = x + 1 over nbytes of float32 (bytes read plus
    bytes written over the best time): what a device-to-device copy moves."""
    import jax
    import jax.numpy as jnp

    x = jax.random.uniform(jax.random.PRNGKey(0), (nbytes // 4,), jnp.float32)
    _, seconds = best_of(jax.jit(lambda x: x + 1.0), x, repeats=10)
    return 2 * nbytes / seconds / 1e9


def run_ceilings(tiny: bool, report: Callable[[dict], None]) -> dict:
    bench, _ = import_train()
    import jax

    big, (batch, width) = (256, (16, 16)) if tiny else (8192, (512, 256))
    result = {
        "device": jax.devices()[0].device_kind,
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "matmul_size": big,
        "default_matmul_precision": str(jax.config.jax_default_matmul_precision),
    }
    steps = [
        ("bf16_matmul_tflops", lambda: bench.matmul_tflops(big, big, "bfloat16", chain=4)),
        ("fp32_matmul_tflops", lambda: bench.matmul_tflops(big, big, "float32", chain=4)),
        ("layer_bf16_matmul_tflops", lambda: bench.matmul_tflops(batch, width, "bfloat16")),
        ("layer_fp32_matmul_tflops", lambda: bench.matmul_tflops(batch, width, "float32")),
        ("copy_gbps", lambda: copy_gbps(2**24 if tiny else 2**31, bench.best_of)),
    ]
    for key, fn in steps:
        result[key] = fn()
        report(result)
    # float32 at full precision: what fp32 matmuls give if the default lets the GPU use TF32.
    with jax.default_matmul_precision("highest"):
        result["fp32_highest_matmul_tflops"] = bench.matmul_tflops(big, big, "float32", chain=4)
    return result


def run_measure(item: dict, report: Callable[[dict], None]) -> dict:
    bench, train = import_train()
    config = train.Config(**item["config"])
    # One timed epoch and no update timed on its own (its second compile of the SGD loop cost as
    # much as the training step's: 58 s at depth 64 on an H100), no breakdown or per-config
    # floors: the ceilings section measures those once.
    return bench.measure(config, epochs=1, breakdown=False, floors=False, time_update=False,
                         report=report)  # fmt: skip


def run_learn(item: dict, report: Callable[[dict], None]) -> dict:
    bench, train = import_train()
    import jax

    config = train.Config(**item["config"])
    trainer = train.build(config)
    d = trainer.derived
    key, eval_key = jax.random.split(jax.random.PRNGKey(config.seed))
    ts, env_state, buf = trainer.init(key)

    def evaluate(epoch: int) -> dict:
        metrics = trainer.evaluate(ts.actor_params, ts.critic_params, jax.random.fold_in(eval_key, epoch))
        return {k: float(v) for k, v in jax.device_get(metrics).items()}

    result = {**bench.describe(config), "episode_length": config.episode_length, "curve": []}
    start = evaluate(0)
    result["success_before"] = start["eval/episode_success"]
    report(result)
    ts, env_state, buf = jax.block_until_ready(trainer.prefill(ts, env_state, buf))
    env_steps = d.prefill_env_steps
    began = time.perf_counter()
    for epoch in range(1, config.num_epochs + 1):
        t0 = time.perf_counter()
        ts, env_state, buf, train_metrics = trainer.training_epoch(ts, env_state, buf)
        train_metrics = {k: float(v) for k, v in jax.device_get(train_metrics).items()}
        epoch_s = time.perf_counter() - t0
        env_steps += d.training_steps_per_epoch * d.env_steps_per_training_step
        ev = evaluate(epoch)
        result["curve"].append({
            "epoch": epoch,
            "env_steps": env_steps,
            "epoch_s": epoch_s,  # the first includes compilation
            "success": ev["eval/episode_success"],
            "success_any": ev["eval/episode_success_any"],
            **{k: v for k, v in train_metrics.items() if k.endswith("loss")},
        })  # fmt: skip
        result.update(
            env_steps=env_steps,
            wall_s=time.perf_counter() - began,
            success_after=ev["eval/episode_success"],
            success_any_after=ev["eval/episode_success_any"],
        )
        report(result)
    return result


def child(name: str, part: str, tiny: bool, fail: Optional[str]) -> None:
    item = next(i for i in plan(tiny) if i["name"] == name)

    def report(partial: dict) -> None:
        write_json(part, partial)
        if fail == name:  # test hook: fail after the first figures are written
            raise RuntimeError(f"injected failure in {name}")

    if item["kind"] == "ceilings":
        result = run_ceilings(tiny, report)
    elif item["kind"] == "measure":
        result = run_measure(item, report)
    else:
        result = run_learn(item, report)
    write_json(part, result)


# =============================================================================
# Driver: runs the children under their budgets and writes the JSON as it goes
# =============================================================================


RUNNING: list = []  # the child in flight, for the driver's stop handler


def stop_children(signum, frame) -> None:
    """The driver was told to stop: take the running child with it, then exit."""
    for proc in RUNNING:
        os.killpg(proc.pid, signal.SIGKILL)
    sys.exit(128 + signum)


def run_child(cmd: list[str], part: str, timeout: float, log) -> dict:
    """Runs one child in its own process group; kills the group at `timeout`. Returns status
    (ok, error, timeout), seconds, the error's tail, and whatever figures the child wrote."""
    if os.path.exists(part):
        os.remove(part)
    start = time.perf_counter()
    # Its own process group (not session), so a kill reaches the child's whole tree and the
    # caller's own stop (a command's time limit) still reaches the child.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            process_group=0, cwd=ROOT)  # fmt: skip
    RUNNING.append(proc)
    try:
        output, _ = proc.communicate(timeout=timeout)
        status = "ok" if proc.returncode == 0 else "error"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        status = "timeout"
    finally:
        RUNNING.remove(proc)
    seconds = time.perf_counter() - start
    log.write(output)
    log.flush()
    entry = {"status": status, "seconds": seconds, "budget_s": timeout}
    if status == "error":
        lines = [line for line in output.strip().splitlines() if line.strip()]
        entry["error"] = "\n".join(lines[-15:])
    elif status == "timeout":
        entry["error"] = f"stopped after its budget of {timeout:.0f} s"
    try:
        with open(part) as f:
            entry["result"] = json.load(f)
    except (OSError, json.JSONDecodeError):
        entry["result"] = {}
    return entry


def drive(args) -> dict:
    items = plan(args.tiny)
    if args.only:
        items = [i for i in items if i["section"] in args.only or i["name"] in args.only]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    log_path = out.with_suffix(".log")
    report = {
        "meta": {
            "mode": "tiny" if args.tiny else "gpu",
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "budget_s": args.budget_s,
            "python": sys.version.split()[0],
            "paper_device": PAPER_DEVICE,
            "paper_sps": PAPER_SPS,
            "paper_note": "Humanoid, 100M env steps on one A100 in 1.48 h (depth 4) and 10.99 h "
            "(depth 64), whole runs; constants from the paper, not measured in this sitting",
        },
        "sections": {s: {} for s in SECTIONS if any(i["section"] == s for i in items)},
    }
    deadline = time.perf_counter() + args.budget_s
    signal.signal(signal.SIGTERM, stop_children)
    if args.tiny:  # children inherit it: repeated tiny programs compile once
        cache = out.parent / "gpu_check_jax_cache"
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(cache))
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    with open(log_path, "w") as log:
        for item in items:
            left = deadline - time.perf_counter()
            section = report["sections"][item["section"]]
            if left < 5:
                section[item["name"]] = {"status": "skipped", "error": "the check's time ran out",
                                         "config": item["config"], "result": {}}  # fmt: skip
                write_json(str(out), summarize(report))
                continue
            budget = min(item["budget_s"] * args.budget_scale, left)
            print(f"[gpu_check] {item['name']}: budget {budget:.0f} s", flush=True)
            log.write(f"\n===== {item['name']} =====\n")
            part = str(out.parent / f".{out.stem}.{item['name']}.part")
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", item["name"], "--part", part]
            cmd += ["--tiny"] if args.tiny else []
            cmd += ["--fail", args.fail] if args.fail else []
            entry = run_child(cmd, part, budget, log)
            if os.path.exists(part):
                os.remove(part)
            section[item["name"]] = {**entry, "config": item["config"]}
            print(f"[gpu_check] {item['name']}: {entry['status']} in {entry['seconds']:.0f} s"
                  + (f" ({entry['error'].splitlines()[-1]})" if entry.get("error") else ""), flush=True)  # fmt: skip
            write_json(str(out), summarize(report))
    report = summarize(report)
    write_json(str(out), report)
    table = render(report)
    out.with_suffix(".md").write_text(table)
    print(table)
    return report


# =============================================================================
# Comparisons and the table
# =============================================================================


def result_of(report: dict, section: str, name: str) -> dict:
    return report["sections"].get(section, {}).get(name, {}).get("result", {})


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


def summarize(report: dict) -> dict:
    """Adds the comparisons: each config's update against the measured matmul peak of its dtype,
    this device against the paper's A100, bf16 against float32, remat against none."""
    ceilings = result_of(report, "ceilings", "ceilings")
    device = ceilings.get("device") or next(
        (e["result"]["device"] for s in report["sections"].values() for e in s.values()
         if e.get("result", {}).get("device")), "this device")  # fmt: skip
    for section in report["sections"].values():
        for entry in section.values():
            r = entry.get("result", {})
            if "update_tflops" in r:
                dtype = "bf16" if r.get("matmul_dtype") == "bfloat16" else "fp32"
                r["matmul_peak_tflops"] = ceilings.get(f"{dtype}_matmul_tflops")
                r["update_share_of_peak"] = ratio(r["update_tflops"], r["matmul_peak_tflops"])
                r["layer_matmul_tflops"] = ceilings.get(f"layer_{dtype}_matmul_tflops")
                r["update_share_of_layer_matmul"] = ratio(r["update_tflops"], r["layer_matmul_tflops"])
    vs_paper = {}
    for name, depth in PAPER_ITEMS.items():
        r = result_of(report, "humanoid", name)
        vs_paper[f"depth_{depth}"] = {
            "device": device,
            "reference_device": PAPER_DEVICE,
            "train_sps": r.get("train_sps"),
            "reference_train_sps": PAPER_SPS[depth],
            "ratio": ratio(r.get("train_sps"), PAPER_SPS[depth]),
        }
    fp32, bf16 = result_of(report, "humanoid", "humanoid_d64"), result_of(report, "bf16", "bf16_d64")
    plain, remat = (result_of(report, "deep", f"deep_remat_{f}") for f in ("false", "true"))
    together = next(iter(report["sections"].get("seeds", {}).values()), {}).get("result", {})
    one = result_of(report, "humanoid", "humanoid_d4")
    n = together.get("num_seeds")
    total = together["train_sps"] * n if n and together.get("train_sps") else None
    report["comparisons"] = {
        # N seeds in one process against N one-seed runs in turn (steady-state epochs, this sitting).
        "seeds_vs_runs_in_turn": {"num_seeds": n, "train_sps_all_seeds": total,
                                  "speedup": ratio(total, one.get("train_sps"))},
        "device": device,
        "vs_paper_a100": vs_paper,
        "bf16_vs_fp32_d64": {
            k: ratio(bf16.get(k), fp32.get(k))
            for k in ("sgd_steps_per_s", "train_sps", "update_tflops", "peak_device_gib", "compile_s")
        },
        "remat_vs_plain_deep": {
            k: ratio(remat.get(k), plain.get(k))
            for k in ("sgd_steps_per_s", "peak_device_gib", "temp_gib", "compile_s")
        },
    }
    return report


def fmt(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return spec.format(value)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def render(report: dict) -> str:
    c = report["comparisons"]
    device = c["device"]
    ceil = result_of(report, "ceilings", "ceilings")
    parts = [f"## GPU check ({report['meta']['mode']}): {device}, jax {ceil.get('jax', '?')}"]
    parts.append(table(
        ["ceiling (measured here)", "value"],
        [[f"bf16 matmul {ceil.get('matmul_size', '?')}^3", fmt(ceil.get("bf16_matmul_tflops"), "{:.4g} TFLOP/s")],
         [f"fp32 matmul, default precision ({ceil.get('default_matmul_precision')})",
          fmt(ceil.get("fp32_matmul_tflops"), "{:.4g} TFLOP/s")],
         ["fp32 matmul, highest precision", fmt(ceil.get("fp32_highest_matmul_tflops"), "{:.4g} TFLOP/s")],
         ["layer-shape matmul bf16 / fp32 (batch x width @ width x width)",
          f"{fmt(ceil.get('layer_bf16_matmul_tflops'), '{:.4g}')} / "
          f"{fmt(ceil.get('layer_fp32_matmul_tflops'), '{:.4g}')} TFLOP/s"],
         ["device-to-device stream (y = x + 1, read + write)", fmt(ceil.get("copy_gbps"), "{:,.0f} GB/s")]],
    ))  # fmt: skip

    rows = []
    for section, name in [("humanoid", "humanoid_d4"), ("humanoid", "humanoid_d16"),
                          ("humanoid", "humanoid_d64"), ("bf16", "bf16_d64")]:  # fmt: skip
        r = result_of(report, section, name)
        config = report["sections"].get(section, {}).get(name, {}).get("config", {})
        depth = config.get("critic_depth")
        paper = c["vs_paper_a100"][f"depth_{PAPER_ITEMS[name]}"] if name in PAPER_ITEMS else None
        rows.append([
            name, f"{config.get('env_id', '-')} {depth or '-'}", config.get("matmul_dtype", "float32"),
            fmt(r.get("compile_s"), "{:.0f}"), fmt(r.get("collect_sps"), "{:,.0f}"),
            fmt(r.get("sgd_steps_per_s"), "{:.1f}"), fmt(r.get("train_sps"), "{:,.0f}"),
            fmt(r.get("update_tflops"), "{:.3g}"), fmt(r.get("update_share_of_peak"), "{:.1%}"),
            fmt(r.get("peak_device_gib"), "{:.1f}"),
            fmt(paper and paper["reference_train_sps"], "{:,.0f}"), fmt(paper and paper["ratio"], "x{:.2f}"),
        ])  # fmt: skip
    parts.append(table(
        ["item", "env, depth", "matmuls", "compile s", "collect sps", "SGD steps/s", "train sps",
         "update TFLOP/s", "of matmul peak", "peak GPU GiB", f"{PAPER_DEVICE} train sps",
         f"{device} / {PAPER_DEVICE}"],
        rows,
    ))  # fmt: skip
    parts.append(
        f"The {PAPER_DEVICE} figures are the paper's (Humanoid, 100M env steps in 1.48 h at depth 4 "
        "and 10.99 h at depth 64, whole runs with evaluation), not measured in this sitting: the "
        "ratio compares this run on this device with that run on that device. A real comparison "
        "runs both side by side in one sitting. 'of matmul peak' is the update's TFLOP/s over "
        "the large matmul of its dtype measured above. SGD steps/s is the timed epoch's rate "
        "less its collection (at the prefill's measured speed), not a separately timed update."
    )
    b = c["bf16_vs_fp32_d64"]
    parts.append(table(
        ["bf16 / fp32 at depth 64", "SGD steps/s", "train sps", "update TFLOP/s", "peak GPU GiB", "compile s"],
        [["ratio"] + [fmt(b[k], "x{:.2f}") for k in ("sgd_steps_per_s", "train_sps", "update_tflops",
                                                      "peak_device_gib", "compile_s")]],
    ))  # fmt: skip
    rows = []
    for name in ("deep_remat_false", "deep_remat_true"):
        r = result_of(report, "deep", name)
        sps = r.get("sgd_steps_per_s")
        rows.append([
            name, f"{r.get('critic_depth', '?')}/{r.get('actor_depth', '?')}", str(r.get("remat", "?")),
            fmt(r.get("compile_s"), "{:.0f}"), fmt(sps and 1000 / sps, "{:.1f}"),
            fmt(r.get("temp_gib"), "{:.2f}"), fmt(r.get("peak_device_gib"), "{:.1f}"),
            fmt(r.get("peak_rss_gib"), "{:.1f}"),
        ])  # fmt: skip
    parts.append(table(
        ["item", "critic/actor depth", "remat", "compile s", "SGD step ms", "XLA temp GiB",
         "peak GPU GiB", "peak host GiB"],
        rows,
    ))  # fmt: skip
    r = result_of(report, "learn", "learn")
    rows = [["0 (untrained)", "0", fmt(r.get("success_before"), "{:.1f}"), "-", "-"]]
    for p in r.get("curve", []):
        rows.append([str(p["epoch"]), f"{p['env_steps']:,}", fmt(p["success"], "{:.1f}"),
                     fmt(p["success_any"], "{:.2f}"), fmt(p["epoch_s"], "{:.1f}")])  # fmt: skip
    parts.append(
        f"Learning run: {r.get('env_id', '?')}, {r.get('num_envs', '?')} envs, depth "
        f"{r.get('critic_depth', '?')}; eval success = steps within the goal radius out of "
        f"{r.get('episode_length', '?')}\n\n"
        + table(["epoch", "env steps", "eval success", "success any", "epoch s"], rows)
    )
    s = c["seeds_vs_runs_in_turn"]
    parts.append(
        "Several seeds in one process (--num_seeds), depth 4, against as many one-seed runs in turn "
        "(humanoid_d4's epoch rate), both measured in this sitting\n\n"
        + table(["seeds", "train sps, all seeds", "speed-up over runs in turn"],
                [[str(s["num_seeds"] or "-"), fmt(s["train_sps_all_seeds"], "{:,.0f}"), fmt(s["speedup"], "x{:.2f}")]])
    )  # fmt: skip
    rows = []
    for section, entries in report["sections"].items():
        for name, e in entries.items():
            error = (e.get("error") or "").splitlines()[-1:] or [""]
            rows.append([section, name, e["status"], fmt(e.get("seconds"), "{:.0f}"),
                         fmt(e.get("budget_s"), "{:.0f}"), error[0][:120].replace("|", "/")])  # fmt: skip
    parts.append(table(["section", "item", "status", "s", "budget s", "error"], rows))
    return "\n\n".join(parts) + "\n"


def main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny envs, nets and depths, for the CPU")
    p.add_argument("--out", default="gpu_check.json", help="JSON path (.md table and .log beside it)")
    p.add_argument("--budget_s", type=float, default=None,
                   help="whole check's time limit (default 560 on the GPU, 1800 tiny)")  # fmt: skip
    p.add_argument("--budget_scale", type=float, default=1.0, help="multiply every item's budget")
    p.add_argument("--only", nargs="*", default=(), help="sections or item names to run")
    p.add_argument("--child", help=argparse.SUPPRESS)  # internal: run one item
    p.add_argument("--part", help=argparse.SUPPRESS)
    p.add_argument("--fail", help=argparse.SUPPRESS)  # test hook: make this item fail
    args = p.parse_args(argv)
    if args.child:
        try:
            child(args.child, args.part, args.tiny, args.fail)
        except Exception:
            traceback.print_exc()
            sys.exit(1)
        return
    if args.budget_s is None:
        args.budget_s = 1800.0 if args.tiny else 560.0
    drive(args)


if __name__ == "__main__":
    main()
