"""job.slurm: syntax, array grid mapping, signal forwarding and requeue, run with stand-in
`srun` / `scontrol` commands that record how they were called."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "job.slurm"

FAKE_SRUN = """#!/bin/bash
echo "$@" > "$LOG_DIR/srun_args"
trap 'echo USR1 > "$LOG_DIR/srun_signal"; exit 75' USR1
if [[ -n "${SRUN_WAIT:-}" ]]; then
  touch "$LOG_DIR/srun_started"
  for _ in $(seq 300); do sleep 0.1; done
fi
exit "${SRUN_STATUS:-0}"
"""
FAKE_SCONTROL = """#!/bin/bash
echo "$@" > "$LOG_DIR/scontrol_args"
"""


@pytest.fixture
def slurm(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)

    def env(**extra):
        base = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        return {
            **base,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "LOG_DIR": str(tmp_path),
            "SLURM_SUBMIT_DIR": str(ROOT),
            "SLURM_JOB_ID": "777",
            **extra,
        }

    return tmp_path, env


def run(env, *args):
    return subprocess.run(["bash", str(JOB), *args], env=env, capture_output=True, text=True, timeout=60)


def test_job_script_parses():
    assert subprocess.run(["bash", "-n", str(JOB)]).returncode == 0


def test_single_job_passes_env_depth_seed_and_extra_flags(slurm):
    logs, env = slurm
    result = run(env(ENV_ID="humanoid", DEPTH="64", SEED="2"), "--num_epochs", "50")
    assert result.returncode == 0, result.stderr
    args = (logs / "srun_args").read_text().split()
    assert args[args.index("--env_id") + 1] == "humanoid"
    assert args[args.index("--critic_depth") + 1] == "64" and args[args.index("--actor_depth") + 1] == "64"
    assert args[args.index("--run_dir") + 1] == "runs/humanoid__depth64__s2__777"
    assert args[-2:] == ["--num_epochs", "50"]
    assert not (logs / "scontrol_args").exists()


@pytest.mark.parametrize(
    "task,expected",
    [
        ("0", ("ant", "4", "0")),
        ("4", ("ant", "8", "1")),
        ("14", ("ant", "64", "2")),
        ("7", ("humanoid", "4", "1")),
    ],
)
def test_array_task_maps_to_its_grid_point(slurm, task, expected):
    logs, env = slurm
    grid = {"ENVS": "ant humanoid", "DEPTHS": "4 64", "SEEDS": "0 1 2"} if task == "7" else {}
    result = run(env(SLURM_ARRAY_TASK_ID=task, SLURM_ARRAY_JOB_ID="500", **grid))
    assert result.returncode == 0, result.stderr
    args = (logs / "srun_args").read_text().split()
    got = (
        args[args.index("--env_id") + 1],
        args[args.index("--critic_depth") + 1],
        args[args.index("--seed") + 1],
    )
    assert got == expected
    assert args[args.index("--run_dir") + 1].endswith(f"__500_{task}")


def test_array_task_outside_the_grid_fails_clearly(slurm):
    _, env = slurm
    result = run(env(SLURM_ARRAY_TASK_ID="15"))
    assert result.returncode == 1 and "outside the grid of 15" in result.stderr


@pytest.mark.parametrize("status,requeued", [(75, True), (1, False), (0, False)])
def test_only_the_checkpoint_status_requeues(slurm, status, requeued):
    logs, env = slurm
    result = run(env(SRUN_STATUS=str(status)))
    assert result.returncode == status
    assert (logs / "scontrol_args").exists() == requeued
    if requeued:
        assert (logs / "scontrol_args").read_text().split() == ["requeue", "777"]


def test_usr1_is_forwarded_to_the_run_and_the_job_requeued(slurm):
    logs, env = slurm
    proc = subprocess.Popen(["bash", str(JOB)], env=env(SRUN_WAIT="1"), stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while not (logs / "srun_started").exists():
        assert time.time() < deadline, "stand-in srun never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=30) == 75
    assert (logs / "srun_signal").read_text().strip() == "USR1"
    assert (logs / "scontrol_args").read_text().split() == ["requeue", "777"]
