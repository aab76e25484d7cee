"""Evaluate a saved checkpoint with the paper's protocol (train.make_evaluator), from the command line.

The protocol: num_eval_envs envs, each reset with a new key
(new start and goal), unrolled for exactly one episode. Per env, brax's
EvalWrapper sums each per-step metric while the episode is still active
(an env that terminates early stops counting). Reported, as means over envs:

    eval/episode_success      steps spent within the success radius (the paper's score)
    eval/episode_success_any  fraction of envs that reached the goal at least once
    eval/episode_<metric>     episode sums of the env's other metrics (dist, reward, ...)
    eval/avg_episode_length   steps before the episode ended

Looking at the policy (HTML rollouts, MP4 videos, the critic's value map over a
maze) is render.py's; the command line below calls render.visualize.

Command line: evaluate a saved checkpoint (a file or a run directory, whose
latest checkpoint is used), and/or make those files from it:

    uv run evaluation.py runs/<run>/ --num_eval_envs 256 --eval_actor 0
    uv run evaluation.py runs/<run>/ --evaluate False --video True --heatmap True --html True
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

# render first: it makes importing brax and mujoco safe under any MUJOCO_GL (see render.py).
import render  # isort: skip

import jax
import tyro

import cli
import train
from cli import Bool

log = logging.getLogger("crl")


@dataclass
class EvalArgs:
    """Evaluate a saved checkpoint with the paper's protocol, and look at its policy."""

    checkpoint: tyro.conf.Positional[str]
    """Checkpoint (file or directory) or a run directory (its latest checkpoint)."""
    # --- evaluation
    num_eval_envs: Optional[int] = None
    """Episodes to evaluate; None = the run's num_eval_envs."""
    eval_actor: Optional[int] = None
    """0 deterministic, 1 stochastic, K >= 2 best of K by critic; None = the run's setting."""
    eval_env_id: Optional[str] = None
    """Evaluate on another env of the same family; None = the run's eval env."""
    seed: int = 0
    """Seed for the evaluation resets and actions."""
    evaluate: Bool = True
    """Run the evaluation episodes and print their metrics (False: only the files below)."""
    # --- looking at the policy
    html: Bool = False
    """Save render_<i>.html: brax's 3-D viewer of the policy's rollouts."""
    video: Bool = False
    """Save render_<i>.mp4 of the same rollouts (needs headless OpenGL: EGL or OSMesa)."""
    heatmap: Bool = False
    """Save qvalue_heatmap.png, the critic's value over the maze (maze envs only)."""
    num_render: Optional[int] = None
    """Rollouts for --html / --video; None = the run's num_render (at least 1)."""
    vis_length: Optional[int] = None
    """Steps per rendered rollout; None = the run's vis_length."""
    out_dir: Optional[str] = None
    """Where the files go; None = the run directory of the checkpoint."""


def run_dir_of(checkpoint: str | Path) -> Path:
    """The run directory holding a checkpoint: the nearest folder (itself or above) with a
    config.json, else the folder the checkpoint is in."""
    path = Path(checkpoint).resolve()
    for folder in [path, *path.parents]:
        if (folder / "config.json").is_file():
            return folder
    return path if path.is_dir() else path.parent


def parse(args: Optional[list[str]] = None) -> EvalArgs:
    """The command line, in the dialect of every script here (cli.py)."""
    return cli.parse(EvalArgs, args)


def main(args: Optional[list[str]] = None) -> dict:
    opts = parse(args)
    config, payload = train.load_checkpoint(opts.checkpoint)
    overrides = dict(
        num_eval_envs=opts.num_eval_envs,
        eval_actor=opts.eval_actor,
        eval_env_id=opts.eval_env_id,
        vis_length=opts.vis_length,
        num_render=opts.num_render,
    )
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if opts.html or opts.video:
        config = dataclasses.replace(config, num_render=max(config.num_render, 1))
    trainer = train.build(config)
    actor_params, critic_params = payload["actor_params"], payload["critic_params"]
    metrics = {}
    if opts.evaluate:
        metrics = trainer.evaluate(actor_params, critic_params, jax.random.PRNGKey(opts.seed))
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        print(json.dumps({"checkpoint_epoch": int(payload["epoch"]), **metrics}, indent=2))
    if opts.html or opts.video or opts.heatmap:
        out_dir = Path(opts.out_dir) if opts.out_dir else run_dir_of(opts.checkpoint)
        if opts.heatmap and render.maze_geometry(trainer.eval_env) is None:
            log.warning("no heat map: %s is not a maze env", config.eval_env_id or config.env_id)
        paths = render.visualize(
            trainer,
            actor_params,
            critic_params,
            out_dir,
            jax.random.PRNGKey(opts.seed),
            html=opts.html,
            video=opts.video,
            heatmap=opts.heatmap,
        )
        for path in paths:
            print(f"wrote {path}")
    return metrics


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    main()
