"""The wandb sweep files: well-formed, real flags and env ids, and every sampled run parses.

A sampled combination is turned into the exact command the wandb agent would
run (`${program}` / `${args}` expanded as `--name=value`), executed with a fake
`uv` on PATH that records its arguments, and those arguments go through
train.parse_config and train.validate (no env is built, nothing trains).
"""

import dataclasses
import itertools
import json
import os
import random
import subprocess
from pathlib import Path

import pytest
import yaml

import envs
import train

ROOT = Path(__file__).resolve().parent.parent
SWEEPS = sorted((ROOT / "sweeps").glob("*.yaml"))
FIELDS = {f.name for f in dataclasses.fields(train.Config)}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def grid(sweep: dict) -> list[dict]:
    params = sweep["parameters"]
    names = sorted(params)
    options = [params[n]["values"] if "values" in params[n] else [params[n]["value"]] for n in names]
    return [dict(zip(names, combo)) for combo in itertools.product(*options)]


def agent_argv(sweep: dict, combo: dict, tmp_path: Path) -> list[str]:
    """The arguments `uv` receives when the agent runs this combination's command."""
    fake_uv = tmp_path / "bin" / "uv"
    fake_uv.parent.mkdir(exist_ok=True)
    fake_uv.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$UV_ARGS"\n')
    fake_uv.chmod(0o755)
    args = [f"--{k}={v}" for k, v in combo.items()]  # wandb's ${args}
    command = []
    for item in sweep["command"]:
        command += args if item == "${args}" else [item.replace("${program}", sweep["program"])]
    out = tmp_path / "uv_args.txt"
    env = {**os.environ, "PATH": f"{fake_uv.parent}{os.pathsep}{os.environ['PATH']}", "UV_ARGS": str(out)}
    subprocess.run(command, cwd=ROOT, env=env, check=True, timeout=30)
    return out.read_text().splitlines()


def test_there_are_sweeps():
    names = {p.stem for p in SWEEPS}
    assert {"depth", "width_vs_depth", "batch_depth", "actor_vs_critic"} <= names


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_sweep_is_well_formed(path):
    sweep = load(path)
    assert sweep["metric"] == {"name": "eval/episode_success", "goal": "maximize"}
    assert sweep["program"] == "train.py"
    assert sweep["method"] == "grid"
    assert "${args}" in sweep["command"]
    unknown = set(sweep["parameters"]) - FIELDS
    assert not unknown, f"not train.Config fields: {unknown}"
    env_ids = sweep["parameters"]["env_id"]["values"]
    assert set(env_ids) <= set(envs.ENV_IDS), set(env_ids) - set(envs.ENV_IDS)
    # Runs must reach the sweep: an offline wandb run never reports to the agent.
    assert sweep["parameters"]["track"]["value"] is True
    assert sweep["parameters"]["wandb_mode"]["value"] == "online"


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_sampled_runs_parse_and_validate(path, tmp_path):
    sweep = load(path)
    combos = grid(sweep)
    swept = {k for k, v in sweep["parameters"].items() if "values" in v}
    samples = [combos[0], combos[-1], *random.Random(path.stem).sample(combos, 3)]
    for combo in samples:
        argv = agent_argv(sweep, combo, tmp_path)
        assert argv[:2] == ["run", "train.py"], argv
        config = train.parse_config(argv[2:])
        train.validate(config)
        for name, value in combo.items():
            assert getattr(config, name) == value, (name, json.dumps(combo))
        # The paper scales actor and critic together unless the sweep varies them apart.
        if "actor_depth" not in swept:
            assert config.actor_depth == config.critic_depth
        if "actor_network_width" not in swept:
            assert config.actor_network_width == config.critic_network_width
        if "batch_size" in swept:
            assert config.batch_size * config.num_sgd_batches_per_training_step == 512 * 800


def test_tied_depth_actually_varies(tmp_path):
    """The copy in depth.yaml's command must follow the swept value, not a constant."""
    sweep = load(ROOT / "sweeps" / "depth.yaml")
    depths = set()
    for depth in sweep["parameters"]["critic_depth"]["values"]:
        combo = {**grid(sweep)[0], "critic_depth": depth}
        depths.add(train.parse_config(agent_argv(sweep, combo, tmp_path)[2:]).actor_depth)
    assert depths == {4, 8, 16, 32, 64}
