"""The wandb sweep files, checked with wandb's own machinery rather than a re-implementation.

- `sweeps` (wandb's sweep engine, a dev dependency) validates each file against its schema
  and expands its grid, as the wandb server does when it hands runs to agents;
- wandb's agent (`wandb.wandb_agent.Agent._command_run`, with only the process start replaced
  by a recorder) turns each run into the argv it would start, expanding ${program}, ${args} etc.;
- that argv runs sweeps/train.sh with a fake `uv` that records what train.py would get, which
  goes through train.parse_config and train.validate (fast; many runs);
- and for each sweep file ONE such command really runs (`uv run train.py`, a tiny 1-epoch
  config appended as a user would) and its saved config.json is checked.
"""

import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import yaml

import baselines
import envs
import sac
import td3
import train
from tests.test_train import PLUMBING_XLA_FLAGS

with warnings.catch_warnings():
    # sweeps 0.2 declares its pydantic models in the v1 style; pydantic 2 warns on import.
    warnings.simplefilter("ignore")
    import sweeps
from wandb import wandb_agent

ROOT = Path(__file__).resolve().parent.parent
SWEEPS = sorted((ROOT / "sweeps").glob("*.yaml"))
FIELDS = set(train.Config.__dataclass_fields__)
# sweeps/train.sh's own parameter: which script runs (algo_depth.yaml).
PROGRAMS = {"crl": train, "sac": sac, "td3": td3}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def paper_sgd_steps(batch_size: int) -> int:
    """The paper's code's SGD steps per training step for a batch size."""
    return min(800, 511_488 // batch_size)


def grid_size(sweep: dict) -> int:
    return math.prod(len(p["values"]) for p in sweep["parameters"].values() if "values" in p)


def engine_runs(sweep: dict) -> list[dict]:
    """Every run of the grid, as wandb's sweep engine proposes them: {param: {"value": v}}."""
    n = grid_size(sweep)
    proposed = sweeps.next_runs(sweep, [], validate=True, n=n + 1)
    assert proposed[-1] is None, "the engine proposes more runs than the grid holds"
    return [run.config for run in proposed[:-1]]


def values(run_config: dict) -> dict:
    return {k: v["value"] for k, v in run_config.items()}


def agent_command(command: list, program: str, run_config: dict, monkeypatch, tmp_path) -> list[str]:
    """The argv wandb's agent starts for a run: its own _command_run, with the start recorded."""
    started = []

    class Recorder:
        def __init__(self, command=None, **kwargs):
            started.append(command)

    monkeypatch.setattr(wandb_agent, "AgentProcess", Recorder)
    # _command_run writes the run's config under WANDB_DIR and sets these variables; setting
    # them here first lets monkeypatch put the test process's environment back afterwards.
    for name, value in [("WANDB_DIR", tmp_path), ("WANDB_SWEEP_ID", "test"), ("WANDB_RUN_ID", "r"),
                        ("WANDB_SWEEP_PARAM_PATH", tmp_path)]:  # fmt: skip
        monkeypatch.setenv(name, str(value))
    agent = wandb_agent.Agent(api=None, queue=None, sweep_id="test")
    agent._sweep_command = command
    agent._command_run({"type": "run", "run_id": "r", "program": program, "args": run_config})
    assert len(started) == 1, started
    return started[0]


def fake_uv_argv(argv: list[str], tmp_path: Path, program: str = "train.py") -> list[str]:
    """Run the agent's argv (sh sweeps/train.sh ...) with a fake `uv` that records its arguments;
    the flags that `program` gets."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake_uv = bin_dir / "uv"
    fake_uv.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$UV_ARGS"\n')
    fake_uv.chmod(0o755)
    out = tmp_path / "uv_args.txt"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "UV_ARGS": str(out)}
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"{argv} failed: {done.stderr}"
    uv_args = out.read_text().splitlines()
    assert uv_args[:2] == ["run", program], uv_args
    return uv_args[2:]


def train_config(path: Path, run_config: dict, monkeypatch, tmp_path, appended=()):
    """The config the run's script (train.py, or sac.py / td3.py as --algo picks) would run for
    this engine run, with `appended` added to the command after ${args} (how a user changes
    every run of a sweep)."""
    sweep = load(path)
    argv = agent_command([*sweep["command"], *appended], sweep["program"], run_config, monkeypatch, tmp_path)
    module = PROGRAMS[values(run_config).get("algo", "crl")]
    config = module.parse_config(fake_uv_argv(argv, tmp_path, f"{module.__name__}.py"))
    (train.validate if module is train else baselines.validate)(config)
    return config


# -- the files, through wandb's engine -------------------------------------------


def test_there_are_sweeps():
    names = {p.stem for p in SWEEPS}
    assert {"depth", "width_vs_depth", "batch_depth", "actor_vs_critic", "contrastive", "algo_depth"} <= names


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_sweep_passes_wandbs_schema_and_is_well_formed(path):
    sweep = load(path)
    assert sweeps.schema_violations_from_proposed_config(sweep) == []
    sweeps.SweepConfig(sweep)  # raises on a violation, as `wandb sweep` would refuse the file
    assert sweep["metric"] == {"name": "eval/episode_success", "goal": "maximize"}
    assert sweep["program"] == "train.py"
    assert sweep["method"] == "grid"
    unknown = set(sweep["parameters"]) - FIELDS - {"algo"}
    assert not unknown, f"not train.Config fields: {unknown}"
    if "algo" in sweep["parameters"]:
        assert set(sweep["parameters"]["algo"]["values"]) <= set(PROGRAMS)
    env_ids = sweep["parameters"]["env_id"]["values"]
    assert set(env_ids) <= set(envs.ENV_IDS), set(env_ids) - set(envs.ENV_IDS)
    # Runs must reach the sweep: an offline wandb run never reports to the agent.
    assert sweep["parameters"]["track"]["value"] is True
    assert sweep["parameters"]["wandb_mode"]["value"] == "online"


def test_the_schema_check_catches_mistakes():
    """The check above can fail: the engine's schema refuses what `wandb sweep` refuses."""
    sweep = load(ROOT / "sweeps" / "depth.yaml")
    assert sweeps.schema_violations_from_proposed_config({**sweep, "method": "gird"})
    bad_metric = {**sweep, "metric": {"name": "eval/episode_success", "goal": "maximise"}}
    assert sweeps.schema_violations_from_proposed_config(bad_metric)


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_the_engine_expands_the_whole_grid(path):
    sweep = load(path)
    runs = [values(r) for r in engine_runs(sweep)]
    assert len(runs) == grid_size(sweep)
    assert len({json.dumps(r, sort_keys=True) for r in runs}) == len(runs), "a grid point repeats"
    for run in runs:  # fixed values reach every run
        assert set(run) == set(sweep["parameters"])


# -- the agent's command ------------------------------------------------------------


def test_agent_macros_as_the_agent_expands_them(monkeypatch, tmp_path):
    """What the sweep files rely on: the agent replaces a command item that is exactly one macro
    (${env}, ${interpreter}, ${program}, ${args}, ${args_no_hyphens}, ...) and leaves any other
    item alone, even one that contains a macro."""
    run_config = {"critic_depth": {"value": 8}, "track": {"value": True}}
    argv = agent_command(
        ["${env}", "${interpreter}", "${program}", "${args}", "${args_no_hyphens}", "x${program}"],
        "train.py", run_config, monkeypatch, tmp_path,
    )  # fmt: skip
    assert argv == [
        "/usr/bin/env", "python", "train.py", "--critic_depth=8", "--track=True",
        "critic_depth=8", "track=True", "x${program}",
    ]  # fmt: skip


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_sweep_command_uses_whole_item_macros(path, monkeypatch, tmp_path):
    sweep = load(path)
    for item in sweep["command"]:
        assert "${" not in item or (item.startswith("${") and item.endswith("}")), (
            f"{item!r}: the agent only expands an item that is one macro as a whole"
        )
    argv = agent_command(sweep["command"], sweep["program"], engine_runs(sweep)[0], monkeypatch, tmp_path)
    assert argv[:2] == ["sh", "sweeps/train.sh"] and "train.py" in argv
    assert not [a for a in argv if "${" in a], argv


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_sampled_runs_parse_and_validate(path, monkeypatch, tmp_path):
    sweep = load(path)
    runs = engine_runs(sweep)
    swept = {k for k, v in sweep["parameters"].items() if "values" in v}
    for run in [runs[0], runs[-1], *random.Random(path.stem).sample(runs, 3)]:
        config = train_config(path, run, monkeypatch, tmp_path)
        for name, value in values(run).items():
            if name == "algo":
                assert config.algorithm == value, (type(config), values(run))
            else:
                assert getattr(config, name) == value, (name, values(run))
        # The paper scales actor and critic together unless the sweep varies them apart.
        if "actor_depth" not in swept:
            assert config.actor_depth == config.critic_depth
        assert config.actor_network_width == config.critic_network_width
        if "batch_size" in swept:
            assert config.num_sgd_batches_per_training_step == paper_sgd_steps(config.batch_size)
        else:
            assert config.num_sgd_batches_per_training_step == 800


def test_batch_depth_follows_the_papers_sgd_rule(monkeypatch, tmp_path):
    path = ROOT / "sweeps" / "batch_depth.yaml"
    steps = {}
    for run in engine_runs(load(path)):
        if values(run)["critic_depth"] == 4 and values(run)["env_id"] == "humanoid" and values(run)["seed"] == 0:
            config = train_config(path, run, monkeypatch, tmp_path)
            steps[config.batch_size] = config.num_sgd_batches_per_training_step
    assert steps == {256: 800, 512: 800, 1024: 499, 2048: 249}


def test_tied_depth_actually_varies(monkeypatch, tmp_path):
    """The copy must follow the swept value, not a constant."""
    path = ROOT / "sweeps" / "depth.yaml"
    depths = {train_config(path, run, monkeypatch, tmp_path).actor_depth for run in engine_runs(load(path))[::3]}
    assert depths == {4, 8, 16, 32, 64}


def test_algo_depth_runs_each_algorithms_own_script_at_each_depth(monkeypatch, tmp_path):
    path = ROOT / "sweeps" / "algo_depth.yaml"
    seen = set()
    for run in engine_runs(load(path)):
        v = values(run)
        if v["env_id"] == "humanoid" and v["seed"] == 1:
            config = train_config(path, run, monkeypatch, tmp_path)
            assert type(config) is PROGRAMS[v["algo"]].Config
            assert config.exp_name == v["algo"]  # each script's own, so the runs tell them apart
            seen.add((v["algo"], config.critic_depth, config.actor_depth))
    assert seen == {(a, d, d) for a in ("crl", "sac", "td3") for d in (4, 16, 64)}


@pytest.mark.parametrize(
    "args,program,flags",
    [
        (["--algo=sac", "--seed=1"], "sac.py", ["--seed=1"]),
        (["--seed", "2", "--algo", "td3", "--critic_depth", "16"], "td3.py",
         ["--actor_depth=16", "--seed", "2", "--critic_depth", "16"]),
        (["--algo=td3", "--env_id=ant", "--algo", "crl"], "train.py", ["--env_id=ant"]),  # the last wins
    ],
)  # fmt: skip
def test_train_sh_runs_the_script_that_algo_names(args, program, flags, tmp_path):
    assert fake_uv_argv(["sh", "sweeps/train.sh", "train.py", *args], tmp_path, program) == flags


@pytest.mark.parametrize(
    "args,message",
    [(["--algo=ppo"], "error: --algo 'ppo' is not one of crl, sac, td3"),
     (["--seed=1", "--algo"], "error: --algo needs a value: crl, sac or td3")],
)  # fmt: skip
def test_train_sh_refuses_an_unknown_algo(args, message):
    done = subprocess.run(["sh", "sweeps/train.sh", "train.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=30)  # fmt: skip
    assert done.returncode == 2 and done.stderr.strip() == message


# What a user appends after ${args}, and what each run must then get: the user's flags win
# over swept values and over the copies; copies follow the effective (last) critic flag.
USER_FLAGS = [
    ("width_vs_depth", ["--actor_network_width=32"], dict(actor_network_width=32, critic_network_width=256)),
    ("width_vs_depth", ["--critic_network_width", "32"], dict(actor_network_width=32, critic_network_width=32)),
    ("depth", ["--critic_depth=16"], dict(actor_depth=16, critic_depth=16)),
    ("depth", ["--actor_depth=4"], dict(actor_depth=4, critic_depth=8)),
    ("actor_vs_critic", ["--critic_network_width=512"], dict(actor_depth=4, critic_depth=8, actor_network_width=512)),
    ("batch_depth", ["--batch_size=1024"], dict(batch_size=1024, num_sgd_batches_per_training_step=499, actor_depth=8)),
    ("batch_depth", ["--batch_size", "64", "--num_sgd_batches_per_training_step=3"],
     dict(batch_size=64, num_sgd_batches_per_training_step=3)),
]  # fmt: skip


@pytest.mark.parametrize("name,appended,expected", USER_FLAGS, ids=lambda v: str(v) if isinstance(v, str) else None)
def test_flags_a_user_appends_win(name, appended, expected, monkeypatch, tmp_path):
    path = ROOT / "sweeps" / f"{name}.yaml"
    run = next(r for r in engine_runs(load(path)) if chosen(name, values(r)))
    config = train_config(path, run, monkeypatch, tmp_path, appended)
    assert {k: getattr(config, k) for k in expected} == expected


def test_train_sh_refuses_a_batch_size_it_cannot_divide_by(tmp_path):
    argv = ["sh", "sweeps/train.sh", "--paper_sgd_steps", "train.py", "--batch_size=0512"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "error: --batch_size '0512' is not a positive integer" in done.stderr


# -- one real run per sweep file ----------------------------------------------------


def chosen(name: str, run: dict) -> bool:
    """The grid point each sweep's real run takes: critic depth 8, so that a copy to the actor
    shows (the default is 4); in actor_vs_critic the swept actor depth 4 must stay 4."""
    if name == "contrastive":  # a non-default energy and loss must reach the config
        knobs = (run["energy_fn"], run["contrastive_loss_fn"], run["critic_depth"], run["seed"])
        return knobs == ("cos", "binary", 4, 0)
    if name == "algo_depth":  # a baseline, so that --algo must pick its script
        return (run["algo"], run["critic_depth"], run["seed"]) == ("sac", 16, 0)
    return run["critic_depth"] == 8 and run.get("actor_depth", 4) == 4 and run["seed"] == 0


# A 1-epoch, 1-training-step reacher run with 16-wide nets, appended after ${args} as a user
# would: it overrides the swept env, batch and width (and turns wandb off).
TINY = [
    "--env_id=reacher", "--num_eval_envs=4", "--num_epochs=1", "--repr_dim=8",
    "--critic_network_width=16", "--checkpoint=False", "--track=False", "--capture_vis=False",
]  # fmt: skip
TINY_ENVS = [
    "--num_envs=8", "--episode_length=20", "--unroll_length=5", "--min_replay_size=20",
    "--max_replay_size=50", "--total_env_steps=200", "--batch_size=16",
    "--num_sgd_batches_per_training_step=2",
]  # fmt: skip
# batch_depth keeps the paper's SGD-steps rule (no SGD flag appended): batch 4 gets
# min(800, 511488 // 4) = 800 steps x 4 = 3,200 samples, which 32 envs x 100 steps hold.
TINY_BATCH = [
    "--num_envs=32", "--episode_length=100", "--unroll_length=10", "--min_replay_size=100",
    "--max_replay_size=200", "--total_env_steps=3520", "--batch_size=4",
]  # fmt: skip
APPENDED = {
    "depth": TINY + TINY_ENVS,
    "width_vs_depth": TINY + TINY_ENVS + ["--actor_network_width=32"],
    "actor_vs_critic": TINY + TINY_ENVS,
    "batch_depth": TINY + TINY_BATCH,
    "contrastive": TINY + TINY_ENVS,
    "algo_depth": [flag for flag in TINY if not flag.startswith("--repr_dim")] + TINY_ENVS,  # CRL's only
}
# What config.json must then hold, besides the appended values.
EXPECTED = {
    "depth": dict(critic_depth=8, actor_depth=8, actor_network_width=16),
    "width_vs_depth": dict(critic_depth=8, actor_depth=8, actor_network_width=32, critic_network_width=16),
    "actor_vs_critic": dict(critic_depth=8, actor_depth=4, actor_network_width=16),
    "batch_depth": dict(critic_depth=8, actor_depth=8, actor_network_width=16, batch_size=4,
                        num_sgd_batches_per_training_step=paper_sgd_steps(4)),
    "contrastive": dict(energy_fn="cos", contrastive_loss_fn="binary", critic_depth=4, actor_depth=4),
    "algo_depth": dict(algorithm="sac", exp_name="sac", critic_depth=16, actor_depth=16, actor_network_width=16),
}  # fmt: skip
# Seconds for the runs together (one per sweep file).
TIMEOUT_S = 900


def test_one_command_per_sweep_really_trains(monkeypatch, tmp_path):
    """The agent's command for one grid point of each file, tiny flags appended, really run
    (sweeps/train.sh, then `uv run train.py`); they start together to share the cores."""
    assert shutil.which("uv"), "uv is not on PATH; the sweep commands run train.py with `uv run`"
    assert set(APPENDED) == {p.stem for p in SWEEPS}, "add the new sweep file to APPENDED/EXPECTED"
    # --no-sync: use the environment these tests run in, and never touch uv.lock from a test.
    # These runs check flags and config.json, not figures: XLA at opt level 0 (PLUMBING_XLA_FLAGS).
    env = {**os.environ, "UV_NO_SYNC": "1", "XLA_FLAGS": PLUMBING_XLA_FLAGS}
    procs = {}
    start, failures = time.monotonic(), []
    try:
        for path in SWEEPS:
            sweep = load(path)
            run = next(r for r in engine_runs(sweep) if chosen(path.stem, values(r)))
            run_dir = tmp_path / path.stem
            command = [*sweep["command"], *APPENDED[path.stem], f"--run_dir={run_dir}"]
            argv = agent_command(command, sweep["program"], run, monkeypatch, tmp_path / f"agent_{path.stem}")
            with open(tmp_path / f"{path.stem}.log", "w") as log:
                # Own session: uv starts train.py as a child, so a timeout must end the whole group.
                proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)  # fmt: skip
            procs[path.stem] = (proc, run_dir)
        for name, (proc, _) in procs.items():
            try:
                proc.wait(timeout=max(1, TIMEOUT_S - (time.monotonic() - start)))
            except subprocess.TimeoutExpired:
                failed = f"still running after {TIMEOUT_S} s"
            else:
                failed = f"exit {proc.returncode}" if proc.returncode else ""
            if failed:
                tail = (tmp_path / f"{name}.log").read_text()[-3000:]
                failures.append(f"{name}: {failed}\n{tail}")
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    print(f"{len(procs)} sweep runs: {time.monotonic() - start:.0f} s", file=sys.stderr)
    assert not failures, "\n\n".join(failures)

    for name, (_, run_dir) in procs.items():
        saved = json.loads((run_dir / "config.json").read_text())
        appended = (sac if name == "algo_depth" else train).parse_config(APPENDED[name])
        for flag in APPENDED[name]:
            key = flag[2:].split("=")[0]
            assert saved[key] == getattr(appended, key), (name, key, saved[key])
        assert {k: saved[k] for k in EXPECTED[name]} == EXPECTED[name], name
        if name != "algo_depth":  # its runs keep their script's exp_name (EXPECTED)
            assert saved["exp_name"] == name  # swept values that were not overridden are kept
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in records] == [1], (name, records)
