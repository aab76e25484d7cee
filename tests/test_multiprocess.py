"""Multi-process (multi-node) training: two CPU processes joined by jax.distributed, the
path a multi-node SLURM job takes, against one process on one device."""

import json
import os
import socket
import subprocess
import sys

import runs
import train
from tests.test_resume import records
from tests.test_train import ROOT, TINY, assert_same_metrics, cli_args, tiny_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_train_like_one(tmp_path):
    config = {**TINY, "run_dir": str(tmp_path / "two"), "checkpoint": True, "checkpoint_every": 1}
    port = free_port()
    procs = []
    for rank in (0, 1):
        env = {
            **os.environ,
            "JAX_PLATFORMS": "cpu",
            "JAX_COORDINATOR_ADDRESS": f"localhost:{port}",
            "JAX_NUM_PROCESSES": "2",
            "JAX_PROCESS_ID": str(rank),
        }
        # One CPU device per process; the session's other XLA flags (tests/conftest.py) stay.
        flags = env.get("XLA_FLAGS", "").split()
        env["XLA_FLAGS"] = " ".join(f for f in flags if not f.startswith("--xla_force_host_platform_device_count"))
        cmd = [sys.executable, "train.py", *cli_args(config), "--distributed", "on"]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True))
    logs = [p.communicate(timeout=900)[1] for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    assert "process 0 of 2, 2 devices in all" in logs[0] and "process 1 of 2" in logs[1]

    run_dir = tmp_path / "two"
    two = records(run_dir)  # written by process 0 alone: one line per epoch
    assert [r["epoch"] for r in two] == [1, 2]
    assert runs.latest_checkpoint(run_dir) == 2
    assert json.loads((run_dir / "config.json").read_text())["num_envs"] == TINY["num_envs"]

    train.train(tiny_config(tmp_path, run_dir=str(tmp_path / "one")))
    one = records(tmp_path / "one")
    for a, b in zip(one, two, strict=True):
        assert_same_metrics(b, a)
