"""job.slurm on a real SLURM cluster: Debian's slurm-wlm and munge on localhost, started by
.ci/slurm_cluster.sh, jobs submitted with sbatch from a folder that is not the repository
and stopped with real signals through slurmctld, slurmd, the batch script and srun.

The scenarios run at the same time in one background process (the "campaign"): most of a
job's time is compiling or waiting, and pytest-xdist may give these tests to either worker.
The first test to need it starts the campaign under a lock in the folder the workers share;
every test waits for its own scenario's result and then checks what the jobs left: states,
restart counts, logs and run directories. The campaign stops its cluster when it is done,
or when the pytest session it belongs to has gone.

Run as a script (`python tests/test_slurm_cluster.py DIR PID`) it is the campaign itself.
"""

import fcntl
import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "job.slurm"
CLUSTER = ROOT / ".ci" / "slurm_cluster.sh"

# tests/test_train.py's TINY config (test_tiny_config_matches_the_trainer_tests checks it),
# kept here so the campaign process does not import JAX.
TINY = dict(
    num_envs=8,
    num_eval_envs=4,
    episode_length=20,
    unroll_length=5,
    min_replay_size=20,
    max_replay_size=50,
    batch_size=16,
    num_sgd_batches_per_training_step=2,
    actor_network_width=16,
    critic_network_width=16,
    repr_dim=8,
    track=False,
    capture_vis=False,
)


def train_args(epochs: int) -> list[str]:
    # 2 training steps of 40 env steps per epoch, as in TINY, so the programs are the ones
    # the other tests compiled into the session's cache. Checkpoints only on the signal
    # and at the end.
    config = {
        **TINY,
        "num_epochs": epochs,
        "total_env_steps": 160 + epochs * 2 * 40,
        "checkpoint": True,
        "checkpoint_every": 100_000,
    }
    return [arg for k, v in config.items() for arg in (f"--{k}", str(v))]


def baseline_args(epochs: int) -> list[str]:
    """sac.py / td3.py: TINY without CRL's --repr_dim, as tests/test_baselines.py runs them."""
    args = train_args(epochs)
    i = args.index("--repr_dim")
    return args[:i] + args[i + 2 :]


# Long enough that a signal sent on seeing "epoch 1/" lands mid-run (an epoch takes
# milliseconds), short enough to finish in seconds.
LONG = 200
SHORT = 2
# The CPU form of the README; memory is only a scheduling figure here (no cgroups).
CPU = ["--gres=none", "-c", "1", "--mem=1G"]
# A requeued job may start again once its old credentials have expired: SLURM's default
# of 120 s would hold each requeue two minutes (README), which the tests shorten.
CRED_EXPIRE = 15
# The longest wait for one step of a scenario, and for a test for its scenario's result.
# A scenario takes 4 to 8 minutes on a busy 2-core machine; the margin is for a busier one.
SCENARIO_TIMEOUT = 900
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}
TIMING = ("training/sps", "training/walltime", "training/epoch_time", "eval/epoch_eval_time", "eval/sps")


# -- the campaign (a separate process) ---------------------------------------------------


class Campaign:
    def __init__(self, out: Path):
        self.out = out
        self.cluster = out / "cluster"
        self.submit_dir = out / "submit"  # no train.py here: job.slurm must find the repo
        self.runs = out / "runs"
        self.results = out / "results"
        self.t0 = time.time()
        self.jobs: list[str] = []
        self.lock = threading.Lock()
        for d in (self.submit_dir, self.runs, self.results):
            d.mkdir(parents=True, exist_ok=True)

    def say(self, message: str) -> None:
        with self.lock, open(self.out / "campaign.log", "a") as f:
            f.write(f"{time.time() - self.t0:7.1f}s {message}\n")

    def start_cluster(self) -> None:
        ports = free_ports(2)
        env = {
            **os.environ,
            "SLURMCTLD_PORT": str(ports[0]),
            "SLURMD_PORT": str(ports[1]),
            "SLURM_CRED_EXPIRE": str(CRED_EXPIRE),
        }
        result = subprocess.run(
            [str(CLUSTER), "start", str(self.cluster)], env=env, capture_output=True, text=True, timeout=900
        )
        self.say(f"cluster start: status {result.returncode}\n{result.stderr}")
        if result.returncode != 0:
            raise RuntimeError(f"{CLUSTER} start failed (status {result.returncode}):\n{result.stderr[-3000:]}")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SLURM_")},
            "SLURM_CONF": str(self.cluster / "slurm.conf"),
            "DEEP_CRL_DIR": str(ROOT),
            "DEEP_CRL_RUNS": str(self.runs),
            "DEEP_CRL_EXTRA": "cpu",
            # The session's compilation cache (tests/conftest.py), else one of our own.
            "JAX_CACHE_DIR": os.environ.get("JAX_COMPILATION_CACHE_DIR", str(self.out / "xla-cache")),
            "WANDB_MODE": "offline",
        }

    def stop_cluster(self) -> None:
        # Cancels what still runs, then stops the daemons.
        subprocess.run([str(CLUSTER), "stop", str(self.cluster)], capture_output=True, timeout=120)
        self.say("cluster stopped")

    def slurm(self, *cmd: str, check=True) -> str:
        result = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: status {result.returncode}: {result.stderr.strip()}")
        return result.stdout

    def sbatch(self, *options: str, env=None, train=()) -> str:
        cmd = ["sbatch", "--parsable", *options, str(JOB), *train]
        result = subprocess.run(
            cmd, env={**self.env, **(env or {})}, cwd=self.submit_dir, capture_output=True, text=True, timeout=60
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: status {result.returncode}: {result.stderr.strip()}")
        job = result.stdout.strip().split(";")[0]
        self.jobs.append(job)
        self.say(f"submitted {job}: {' '.join(options)}")
        return job

    def job(self, job: str) -> dict:
        """scontrol's record of a job (an array task as <array job>_<task>); {} until it has one."""
        result = subprocess.run(
            ["scontrol", "show", "job", "-o", job], env=self.env, capture_output=True, text=True, timeout=60
        )
        if result.returncode != 0:
            return {}
        return dict(re.findall(r"(\w+)=(\S*)", result.stdout.splitlines()[0]))

    def wait(self, what: str, predicate, timeout: float = SCENARIO_TIMEOUT):
        deadline = time.time() + timeout
        while True:
            value = predicate()
            if value:
                self.say(f"{what}: yes")
                return value
            if time.time() > deadline:
                raise TimeoutError(f"waited {timeout:.0f} s for: {what}")
            time.sleep(1)

    def log_has(self, path: Path, pattern: str) -> bool:
        return path.exists() and re.search(pattern, path.read_text(errors="replace")) is not None

    def wait_done(self, job: str) -> dict:
        return self.wait(f"{job} finished", lambda: (rec := self.job(job)).get("JobState") in TERMINAL and rec)

    def wait_requeued(self, job: str) -> None:
        def requeued():
            record = self.job(job)
            if record.get("JobState") in TERMINAL:
                raise RuntimeError(f"{job} ended instead of being requeued: {record}")
            return int(record.get("Restarts", 0)) >= 1

        self.wait(f"{job} requeued", requeued)

    def signal(self, job: str) -> None:
        """SIGUSR1 to the batch script alone, as --signal=B:USR1@300 sends it."""
        self.slurm("scancel", "--batch", "--signal=USR1", job)
        self.say(f"SIGUSR1 to {job}")

    # Scenarios: each records the jobs' final scontrol records; the tests judge them.

    def plain(self) -> dict:
        job = self.sbatch(*CPU, env=dict(ENV_ID="reacher", DEPTH="4", SEED="0"), train=train_args(LONG))
        return {"job": job, "final": self.wait_done(job)}

    def array(self) -> dict:
        grid = dict(ENVS="reacher", DEPTHS="4", SEEDS="0 1")
        array = self.sbatch(*CPU, "--array=0-1", "--output=slurm-%x-%A_%a.out", env=grid, train=train_args(LONG))
        first, second = f"{array}_0", f"{array}_1"
        log0 = self.submit_dir / f"slurm-deep-crl-{first}.out"
        # Task 1 must be running or done when task 0 requeues: requeueing the whole array
        # would start it again.
        self.wait(f"{second} started", lambda: self.job(second).get("JobState") in {"RUNNING", *TERMINAL})
        self.wait(f"{first} in its epochs", lambda: self.log_has(log0, r"epoch 1/"))
        self.signal(first)
        self.wait_requeued(first)
        return {"array": array, "final": {t: self.wait_done(t) for t in (first, second)}}

    def startup(self) -> dict:
        job = self.sbatch(*CPU, env=dict(ENV_ID="reacher", DEPTH="4", SEED="0"), train=train_args(LONG))
        log = self.submit_dir / f"slurm-deep-crl-{job}.out"
        # train.py's first line after building the trainer: compiling and prefilling follow.
        self.wait(f"{job} started train.py", lambda: self.log_has(log, r"\| \S+ reacher: obs_dim"))
        self.signal(job)
        self.wait_requeued(job)
        return {"job": job, "final": self.wait_done(job)}

    def two_tasks(self) -> dict:
        job = self.sbatch(
            "--gres=none", "-n", "2", "-c", "1", "--mem=1G",
            env=dict(ENV_ID="reacher", DEPTH="4", SEED="3"), train=train_args(SHORT),
        )  # fmt: skip
        return {"job": job, "final": self.wait_done(job)}

    def baselines(self) -> dict:
        jobs = {
            algo: self.sbatch(*CPU, env=dict(ALGO=algo, ENV_ID="reacher", DEPTH="4", SEED="0"),
                              train=baseline_args(SHORT))
            for algo in ("sac", "td3")
        }  # fmt: skip
        return {"jobs": jobs, "final": {algo: self.wait_done(job) for algo, job in jobs.items()}}

    def run_scenario(self, name: str) -> None:
        t = time.time()
        try:
            result = {"error": None, **getattr(self, name)()}
        except Exception:
            result = {"error": traceback.format_exc()}
            self.say(f"{name} failed:\n{result['error']}")
        result["seconds"] = round(time.time() - t, 1)
        (self.results / f"{name}.json").write_text(json.dumps(result, indent=1))
        self.say(f"{name} done in {result['seconds']} s")


SCENARIOS = ("plain", "array", "startup", "two_tasks", "baselines")


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_campaign(out: Path, watch_pid: int) -> None:
    campaign = Campaign(out)

    def watchdog():
        # The pytest session went away (killed, interrupted): leave no daemons behind.
        while True:
            time.sleep(2)
            try:
                os.kill(watch_pid, 0)
            except ProcessLookupError:
                campaign.say(f"pytest process {watch_pid} gone: stopping")
                campaign.stop_cluster()
                os._exit(1)

    threading.Thread(target=watchdog, daemon=True).start()
    try:
        campaign.start_cluster()
    except Exception as e:
        (out / "error").write_text(str(e))
        campaign.stop_cluster()
        return
    threads = [threading.Thread(target=campaign.run_scenario, args=(name,)) for name in SCENARIOS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    campaign.stop_cluster()


# -- the tests ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def campaign(tmp_path_factory) -> Path:
    """The campaign's folder; started by the first worker that gets here."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    # xdist: each worker has basetemp/popen-gwN, and they share its parent; the pytest
    # process that outlives the workers is the workers' parent.
    shared = tmp_path_factory.getbasetemp().parent if worker else tmp_path_factory.getbasetemp()
    session_pid = os.getppid() if worker else os.getpid()
    out = shared / "slurm-cluster"
    out.mkdir(exist_ok=True)
    with open(shared / "slurm-cluster.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "started").exists():
            (out / "started").write_text(str(time.time()))
            log = open(out / "campaign.out", "w")
            subprocess.Popen(
                [sys.executable, __file__, str(out), str(session_pid)],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
    return out


def result(out: Path, name: str) -> dict:
    deadline = time.time() + SCENARIO_TIMEOUT + 60
    path = out / "results" / f"{name}.json"
    while not path.exists():
        if (out / "error").exists():
            pytest.fail(f"the SLURM cluster did not start:\n{(out / 'error').read_text()}")
        if time.time() > deadline:
            pytest.fail(
                f"no result for scenario {name}; campaign log:\n{tail(out / 'campaign.log')}\n"
                f"campaign output:\n{tail(out / 'campaign.out')}"
            )
        time.sleep(1)
    got = json.loads(path.read_text())
    if got["error"]:
        pytest.fail(f"scenario {name} failed:\n{got['error']}\ncampaign log:\n{tail(out / 'campaign.log')}")
    return got


def tail(path: Path, n: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else f"({path} missing)"


def job_log(out: Path, name: str) -> str:
    return (out / "submit" / f"slurm-deep-crl-{name}.out").read_text(errors="replace")


def records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def assert_completed(record: dict, log: str, restarts: int) -> None:
    assert record["JobState"] == "COMPLETED" and record["ExitCode"] == "0:0", log[-4000:]
    assert int(record["Restarts"]) == restarts, log[-4000:]


def test_tiny_config_matches_the_trainer_tests():
    from tests.test_train import TINY as trainer_tiny

    assert {k: trainer_tiny[k] for k in TINY} == TINY


def test_a_plain_job_completes_with_its_metrics(campaign):
    got = result(campaign, "plain")
    job = got["job"]
    log = job_log(campaign, job)
    assert_completed(got["final"], log, restarts=0)
    run_dir = campaign / "runs" / f"reacher__depth4__s0__{job}"
    assert [r["epoch"] for r in records(run_dir)] == list(range(1, LONG + 1))
    # Found the repository from another submit folder, and chose the CPU build.
    assert f"repo {ROOT}" in log and "build cpu" in log
    assert (run_dir / "slurm.out").resolve() == campaign / "submit" / f"slurm-deep-crl-{job}.out"


def test_sigusr1_requeues_only_that_array_task_which_resumes_to_the_same_numbers(campaign):
    got = result(campaign, "array")
    array = got["array"]
    first, second = f"{array}_0", f"{array}_1"
    log0, log1 = job_log(campaign, first), job_log(campaign, second)
    # The signalled task: train.py checkpointed and exited 75, the task was requeued
    # by its own name, and ran again from the checkpoint to the end.
    assert_completed(got["final"][first], log0, restarts=1)
    assert "train.py exited with status 75" in log0, log0[-4000:]
    assert f"requeueing job {first}" in log0, log0[-4000:]
    assert log0.count("task: env reacher") == 2 and "restart 1" in log0
    assert re.search(r"resuming .* from epoch \d+", log0), (
        "the requeued task did not resume from a checkpoint (train.py stopped without one?):\n"
        + "\n".join(line for line in log0.splitlines() if not re.search(r"epoch \d+/\d+ \|", line))[-4000:]
    )
    # The other task ran once: requeueing the array job id would have restarted it.
    assert_completed(got["final"][second], log1, restarts=0)
    assert log1.count("task: env reacher") == 1, log1[-4000:]
    # Logs (slurm-%x-%A_%a.out) and run dirs share the <array job>_<task> name.
    run0 = campaign / "runs" / f"reacher__depth4__s0__{first}"
    run1 = campaign / "runs" / f"reacher__depth4__s1__{second}"
    assert (run0 / "slurm.out").resolve().name == f"slurm-deep-crl-{first}.out"
    assert [r["epoch"] for r in records(run1)] == list(range(1, LONG + 1))
    # Stopped mid-run and resumed: the numbers of the uninterrupted plain job.
    plain = result(campaign, "plain")
    reference = records(campaign / "runs" / f"reacher__depth4__s0__{plain['job']}")
    assert records(run0) == reference


def test_sigusr1_during_start_up_requeues_and_the_run_finishes(campaign):
    """Depends on train.py catching the signal from its very start (before imports,
    compile and prefill are done) and exiting 75."""
    got = result(campaign, "startup")
    job = got["job"]
    log = job_log(campaign, job)
    first_try = log.split("restart 1")[0]
    assert "epoch 1/" not in first_try, "the signal came after the first epoch: not a start-up test"
    assert "train.py exited with status 75" in first_try, (
        "train.py did not exit 75 on a SIGUSR1 during start-up:\n" + first_try[-4000:]
    )
    assert f"requeueing job {job}" in first_try
    assert_completed(got["final"], log, restarts=1)
    plain = result(campaign, "plain")
    reference = records(campaign / "runs" / f"reacher__depth4__s0__{plain['job']}")
    assert records(campaign / "runs" / f"reacher__depth4__s0__{job}") == reference


def test_two_tasks_join_one_run(campaign):
    got = result(campaign, "two_tasks")
    job = got["job"]
    log = job_log(campaign, job)
    assert_completed(got["final"], log, restarts=0)
    assert "2 task(s)" in log
    assert "process 0 of 2, 2 devices in all" in log and "process 1 of 2" in log, log[-4000:]
    run_dir = campaign / "runs" / f"reacher__depth4__s3__{job}"
    # Process 0 alone writes the metrics: one line per epoch.
    assert [r["epoch"] for r in records(run_dir)] == list(range(1, SHORT + 1))
    assert sorted(p.name for p in run_dir.glob("*.jsonl")) == ["metrics.jsonl"]


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_each_baseline_runs_as_a_job_under_its_own_name(campaign, algo):
    got = result(campaign, "baselines")
    job = got["jobs"][algo]
    log = job_log(campaign, job)
    assert_completed(got["final"][algo], log, restarts=0)
    assert f"{algo}.py exited with status 0" in log, log[-4000:]
    run_dir = campaign / "runs" / f"reacher__{algo}_depth4__s0__{job}"
    assert json.loads((run_dir / "config.json").read_text())["algorithm"] == algo
    saved = records(run_dir)
    assert [r["epoch"] for r in saved] == list(range(1, SHORT + 1))
    assert all(math.isfinite(r["training/critic_loss"]) and math.isfinite(r["training/q"]) for r in saved)


if __name__ == "__main__":
    run_campaign(Path(sys.argv[1]), int(sys.argv[2]))
