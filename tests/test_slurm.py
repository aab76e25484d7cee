"""job.slurm: syntax, array grid mapping, build choice, repository lookup, signal forwarding
and requeue, run with stand-in `srun` / `scontrol` / `nvidia-smi` commands that record how
they were called. tests/test_slurm_cluster.py runs it on a real SLURM cluster."""

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
echo "${JAX_PLATFORMS:-unset}" > "$LOG_DIR/srun_jax_platforms"
trap 'echo USR1 > "$LOG_DIR/srun_signal"; exit 75' USR1
if [[ -n "${SRUN_WAIT:-}" ]]; then
  touch "$LOG_DIR/srun_started"
  for _ in $(seq 300); do sleep 0.1; done
fi
exit "${SRUN_STATUS:-0}"
"""
FAKE_SCONTROL = """#!/bin/bash
if [[ "$1" == show ]]; then
  touch "$LOG_DIR/setting_up"
  [[ -n "${SCONTROL_SHOW_WAIT:-}" ]] && sleep "$SCONTROL_SHOW_WAIT"
  echo "   StdOut=$LOG_DIR/slurm.log"
  exit 0
fi
echo "$@" >> "$LOG_DIR/scontrol_args"
"""
NO_GPU = "#!/bin/bash\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n"
ONE_GPU = "#!/bin/bash\necho 'GPU 0: NVIDIA H100 (UUID: GPU-0)'\n"
# nvidia-smi -L lists the GPU; plain nvidia-smi prints the header with the driver's CUDA version.
CUDA13_GPU = (
    "#!/bin/bash\nif [[ $1 == -L ]]; then echo 'GPU 0: NVIDIA H200 (UUID: GPU-0)'; exit; fi\n"
    "echo '| NVIDIA-SMI 580.95    Driver Version: 580.95    CUDA Version: 13.0 |'\n"
)


@pytest.fixture
def slurm(tmp_path):
    # The submit directory: a stand-in repository (train.py is all the script looks for),
    # so the runs/ the script makes stay in the temp folder.
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "train.py").touch()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # A CPU node unless a test says otherwise.
    for name, text in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL), ("nvidia-smi", NO_GPU)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "slurm.log").touch()

    def env(**extra):
        drop = ("SLURM_", "DEEP_CRL_", "JAX_PLATFORMS")
        base = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        return {
            **base,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "LOG_DIR": str(tmp_path),
            "SLURM_SUBMIT_DIR": str(repo),
            "SLURM_JOB_ID": "777",
            **extra,
        }

    return tmp_path, env


def run(env, *args, cwd=None):
    return subprocess.run(
        ["bash", str(JOB), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def requeues(logs: Path) -> list[list[str]]:
    path = logs / "scontrol_args"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


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
    assert requeues(logs) == []
    # The SLURM log is linked from the run dir, whatever SLURM named it.
    assert (logs / "repo/runs/humanoid__depth64__s2__777/slurm.out").resolve() == logs / "slurm.log"


@pytest.mark.parametrize(
    "gpu,override,extra,platforms",
    [
        (False, None, [], "cpu"),
        (ONE_GPU, None, ["--extra", "cuda12"], "unset"),
        (CUDA13_GPU, None, ["--extra", "cuda13"], "unset"),
        (ONE_GPU, "cuda13", ["--extra", "cuda13"], "unset"),
        (ONE_GPU, "cpu", [], "cpu"),
    ],
)
def test_the_build_follows_the_node_or_deep_crl_extra(slurm, gpu, override, extra, platforms):
    logs, env = slurm
    if gpu:
        (logs / "bin" / "nvidia-smi").write_text(gpu)
    result = run(env(**({"DEEP_CRL_EXTRA": override} if override else {})))
    assert result.returncode == 0, result.stderr
    args = (logs / "srun_args").read_text().split()
    assert args[args.index("run") + 1 : args.index("train.py")] == extra
    assert (logs / "srun_jax_platforms").read_text().strip() == platforms


def test_an_unknown_build_is_refused(slurm):
    _, env = slurm
    result = run(env(DEEP_CRL_EXTRA="cuda"))
    assert result.returncode == 2 and "use cpu, cuda12 or cuda13" in result.stderr


def test_the_repository_comes_from_the_submit_dir_or_deep_crl_dir(slurm, tmp_path):
    logs, env = slurm
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run(env(SLURM_SUBMIT_DIR=str(elsewhere)), cwd=elsewhere)
    assert result.returncode == 2
    assert "no train.py in the submit directory" in result.stderr and "DEEP_CRL_DIR" in result.stderr
    assert not (logs / "srun_args").exists()

    result = run(env(SLURM_SUBMIT_DIR=str(elsewhere), DEEP_CRL_DIR=str(logs / "repo")), cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert f"repo {logs / 'repo'})" in result.stdout
    assert (logs / "repo/runs/ant__depth4__s0__777").is_dir()

    result = run(env(DEEP_CRL_DIR=str(elsewhere)))
    assert result.returncode == 2 and f"DEEP_CRL_DIR={elsewhere} holds no train.py" in result.stderr


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


def test_an_array_task_requeues_itself_not_its_array(slurm):
    """`scontrol requeue <array job id>` requeues every task of the array, finished ones too."""
    logs, env = slurm
    result = run(env(SLURM_ARRAY_TASK_ID="4", SLURM_ARRAY_JOB_ID="500", SLURM_JOB_ID="500", SRUN_STATUS="75"))
    assert result.returncode == 75
    assert requeues(logs) == [["requeue", "500_4"]]


def test_array_task_outside_the_grid_fails_clearly(slurm):
    _, env = slurm
    result = run(env(SLURM_ARRAY_TASK_ID="15"))
    assert result.returncode == 1 and "outside the grid of 15" in result.stderr


@pytest.mark.parametrize("status,requeued", [(75, True), (1, False), (0, False)])
def test_only_the_checkpoint_status_requeues(slurm, status, requeued):
    logs, env = slurm
    result = run(env(SRUN_STATUS=str(status)))
    assert result.returncode == status
    assert requeues(logs) == ([["requeue", "777"]] if requeued else [])
    assert f"train.py exited with status {status}" in result.stdout


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
    assert requeues(logs) == [["requeue", "777"]]


def test_usr1_during_set_up_still_reaches_the_run_and_requeues(slurm):
    """The signal lands before srun starts (here: while the script asks scontrol for its log
    name); the script keeps it, passes it on once the run has started, and requeues."""
    logs, env = slurm
    proc = subprocess.Popen(
        ["bash", str(JOB)], env=env(SRUN_WAIT="1", SCONTROL_SHOW_WAIT="1"), stdout=subprocess.PIPE, text=True
    )
    deadline = time.time() + 30
    while not (logs / "setting_up").exists():
        assert time.time() < deadline, "job.slurm never reached its set-up"
        time.sleep(0.02)
    proc.send_signal(signal.SIGUSR1)
    # Either the stand-in run caught it (75) or it came before its trap (killed, 138):
    # both are requeued, since a run resumes from its last checkpoint.
    assert proc.wait(timeout=30) in (75, 128 + signal.SIGUSR1)
    assert requeues(logs) == [["requeue", "777"]]
