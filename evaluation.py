"""Evaluation: full episodes from fresh resets with a fixed policy.

Follows the paper's protocol: num_eval_envs envs, each reset with a new key
(new start and goal), unrolled for exactly one episode. Per env, brax's
EvalWrapper sums each per-step metric while the episode is still active
(an env that terminates early stops counting). Reported, as means over envs:

    eval/episode_success      steps spent within the success radius (the paper's score)
    eval/episode_success_any  fraction of envs that reached the goal at least once
    eval/episode_<metric>     episode sums of the env's other metrics (dist, reward, ...)
    eval/avg_episode_length   steps before the episode ended

Looking at the policy (`visualize`, called by train.py after training with
--capture_vis): HTML rollouts (brax viewer), MP4 videos (MuJoCo's offscreen
renderer, headless EGL or OSMesa; skipped with one warning where neither works)
and, for maze envs, the paper's Fig. 5 heat map of critic values over the maze.

Command line: evaluate a saved checkpoint (a file or a run directory, whose
latest checkpoint is used), and/or make those files from it:

    uv run evaluation.py runs/<run>/ --num_eval_envs 256 --eval_actor 0
    uv run evaluation.py runs/<run>/ --no_evaluate --video --heatmap --html
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import tyro
from brax.envs.wrappers import training as brax_wrappers

from envs import maze


def make_evaluator(env, policy: Callable, *, num_envs: int, episode_length: int) -> Callable:
    """Returns a jitted evaluate(actor_params, critic_params, key) -> metrics dict.

    `policy(actor_params, critic_params, obs, key) -> action` acts on a batch of
    observations.
    """
    eval_env = brax_wrappers.EvalWrapper(brax_wrappers.wrap(env, episode_length=episode_length))

    @jax.jit
    def evaluate(actor_params, critic_params, key):
        k_reset, k_act = jax.random.split(key)
        state = eval_env.reset(jax.random.split(k_reset, num_envs))

        def step(state, key):
            action = policy(actor_params, critic_params, state.obs, key)
            return eval_env.step(state, action), None

        state, _ = jax.lax.scan(step, state, jax.random.split(k_act, episode_length))
        totals = state.info["eval_metrics"].episode_metrics
        metrics = {f"eval/episode_{name}": jnp.mean(value) for name, value in totals.items()}
        metrics["eval/episode_success_any"] = jnp.mean(totals["success"] > 0)
        metrics["eval/avg_episode_length"] = jnp.mean(state.info["eval_metrics"].episode_steps)
        return metrics

    return evaluate


# =============================================================================
# Looking at the policy: HTML rollouts, MP4 videos, Q-value heat maps
# =============================================================================

log = logging.getLogger("crl")

_NO_GL = ("disable", "disabled", "off", "false", "0")
_warned_no_gl = False
_GL_PROBE = (
    "import importlib, sys; ctx = importlib.import_module('mujoco.' + sys.argv[1]).GLContext(16, 16); "
    "ctx.make_current(); ctx.free()"
)


@functools.cache
def gl_backend() -> Optional[str]:
    """The headless OpenGL backend MuJoCo can render with here, or None.

    MUJOCO_GL, when set, is the only candidate (`off` disables videos);
    otherwise egl, then osmesa. Each candidate is tried in a child process:
    PyOpenGL fixes its platform on first import, so a backend that fails
    in-process would block the next one.
    """
    requested = os.environ.get("MUJOCO_GL", "").strip().lower()
    if requested in _NO_GL:
        return None
    candidates = (requested,) if requested in ("egl", "osmesa", "glfw") else ("egl", "osmesa")
    for name in candidates:
        try:
            with _forks_then_execs():
                probe = subprocess.run(
                    [sys.executable, "-c", _GL_PROBE, name],
                    env={**os.environ, "MUJOCO_GL": name},
                    capture_output=True,
                    timeout=120,
                )
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0:
            return name
    return None


@contextlib.contextmanager
def _forks_then_execs():
    """JAX warns on every fork; a subprocess (probe, ffmpeg) execs at once, which is safe."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
        yield


def _warn_no_gl(reason: str) -> None:
    global _warned_no_gl
    if not _warned_no_gl:
        log.warning("no MP4 videos in this process: %s (set MUJOCO_GL=egl or osmesa to choose)", reason)
        _warned_no_gl = True


def _video_camera(model, geometry: Optional[tuple[maze.Layout, float]]):
    """Top-down over the whole maze (rows pointing down, like the printed grid and the heat
    map); a camera following the robot for free-floating robots; else the whole scene."""
    import mujoco

    cam = mujoco.MjvCamera()
    mujoco.mjv_defaultFreeCamera(model, cam)
    if geometry is not None:
        layout, cell = geometry
        rows, cols = len(layout), len(layout[0])
        cam.lookat[:] = [(rows - 1) * cell / 2, (cols - 1) * cell / 2, 0.0]
        half_fov = np.deg2rad(model.vis.global_.fovy) / 2
        cam.distance = 0.55 * max(rows, cols) * cell / np.tan(half_fov)
        cam.elevation, cam.azimuth = -89.9, 180.0
    elif model.body_jntnum[1] and model.jnt_type[model.body_jntadr[1]] == mujoco.mjtJoint.mjJNT_FREE:
        cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING  # a free-floating robot: follow its root body
        cam.trackbodyid = 1
        cam.distance, cam.elevation, cam.azimuth = 5.0, -30.0, 90.0
    else:
        cam.distance, cam.elevation = 0.9 * model.stat.extent, -40.0  # a fixed-base arm: whole scene
    return cam


def render_video(
    env,
    qs: np.ndarray,
    path: Path,
    *,
    fps: Optional[float] = None,
    width: int = 640,
    height: int = 480,
) -> Optional[Path]:
    """MP4 of generalized positions `qs` [T, nq] with MuJoCo's offscreen renderer.

    Returns None, after a warning logged once per process, when no headless
    OpenGL backend works here (see `gl_backend`); never raises for that.
    """
    import imageio
    import mujoco

    backend = gl_backend()
    if backend is None:
        _warn_no_gl("neither EGL nor OSMesa works here")
        return None
    model = env.sys.mj_model
    width, height = min(width, model.vis.global_.offwidth), min(height, model.vis.global_.offheight)
    try:
        ctx = importlib.import_module(f"mujoco.{backend}").GLContext(width, height)
        ctx.make_current()
    except Exception as e:  # noqa: BLE001 -- a missing GL stack must not end the run
        _warn_no_gl(f"{backend} context failed ({e})")
        return None
    try:
        data = mujoco.MjData(model)
        scene = mujoco.MjvScene(model, maxgeom=10_000)
        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION):
            scene.flags[flag] = False  # several times faster under software OpenGL
        option = mujoco.MjvOption()
        context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, context)
        rect = mujoco.MjrRect(0, 0, width, height)
        camera = _video_camera(model, maze_geometry(env))
        pixels = np.empty((height, width, 3), np.uint8)
        fps = fps or 1.0 / float(env.dt)
        writer = imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=7)
        with _forks_then_execs(), writer:  # ffmpeg starts with the first frame
            for q in np.asarray(qs):
                data.qpos[:] = q
                mujoco.mj_kinematics(model, data)
                mujoco.mjv_updateScene(model, data, option, None, camera, mujoco.mjtCatBit.mjCAT_ALL, scene)
                mujoco.mjr_render(rect, scene, context)
                mujoco.mjr_readPixels(pixels, None, rect, context)
                writer.append_data(np.flipud(pixels))  # OpenGL rows run bottom-up
        context.free()
    finally:
        ctx.free()
    return path


def maze_geometry(env) -> Optional[tuple[maze.Layout, float]]:
    """(layout, cell size) of a maze env (envs.maze.MazeTask), or None for an env without one."""
    layout, cell_size = getattr(env, "layout", None), getattr(env, "cell_size", None)
    if layout is None or cell_size is None:
        return None
    return tuple(layout), float(cell_size)


def cell_value_grid(layout: maze.Layout, cell_size: float, value_fn: Callable) -> np.ndarray:
    """[rows, cols] grid: value_fn(xy [n, 2]) -> [n] at every free (non-wall) cell's centre,
    NaN at walls."""
    free_symbols = "".join(sorted(set("".join(layout)) - {maze.WALL}))
    free = maze.cells(layout, free_symbols)
    grid = np.full((len(layout), len(layout[0])), np.nan, np.float32)
    values = np.asarray(value_fn(maze.cell_centers(layout, free_symbols, cell_size)))
    if values.shape != (len(free),):
        raise ValueError(f"value_fn gave shape {values.shape} for {len(free)} cells")
    for (i, j), v in zip(free, values):
        grid[i, j] = v
    return grid


def critic_value_fn(trainer, actor_params, critic_params, obs) -> Callable:
    """xy [n, 2] -> critic value f(s, pi(s, g), g) [n]: s is the state of `obs` (one
    observation) with the first two entries of its goal slice (the agent's xy; the ball's
    in ant-ball mazes) moved to each xy, g is obs's goal, and a the deterministic actor's."""
    import train

    d, nets = trainer.derived, trainer.nets
    policy = train.make_policy(nets, d.obs_dim, 0)
    obs = jnp.asarray(obs)

    @jax.jit
    def value(xy):
        state = jnp.tile(obs[: d.obs_dim], (xy.shape[0], 1)).at[:, d.goal_start : d.goal_start + 2].set(xy)
        goal = jnp.tile(obs[d.obs_dim :], (xy.shape[0], 1))
        action = policy(actor_params, critic_params, jnp.concatenate([state, goal], -1), None)
        return train.critic_value(critic_params, nets, state, action, goal)

    return lambda xy: np.asarray(value(jnp.asarray(xy, jnp.float32)))


def draw_heatmap(
    grid: np.ndarray,
    cell_size: float,
    path: Path,
    *,
    goal_xy=None,
    start_xy=None,
    path_xy=None,
    title: str = "",
    size: tuple[int, int] = (640, 480),
) -> Path:
    """PNG of `size` pixels: the grid as seen in the printed layout (row 0 on top),
    walls dark grey, start (o), goal (star) and an optional agent path, all in world xy."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] / 100, size[1] / 100), dpi=100)
    ax = fig.add_subplot()
    cmap = colormaps["viridis"].with_extremes(bad="0.25")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, origin="upper")
    fig.colorbar(image, ax=ax, label="critic value  -||phi(s, a) - psi(g)||")

    def to_image(xy):  # world x runs down the rows, y along the columns
        xy = np.asarray(xy, np.float32).reshape(-1, 2) / cell_size
        return xy[:, 1], xy[:, 0]

    if path_xy is not None:
        ax.plot(*to_image(path_xy), color="white", lw=1.0, alpha=0.8, label="rollout")
    if start_xy is not None:
        ax.plot(*to_image(start_xy), "o", ms=12, mfc="none", mec="white", mew=2, label="start")
    if goal_xy is not None:
        ax.plot(*to_image(goal_xy), "*", ms=18, color="red", mec="white", label="goal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    fig.savefig(path, dpi=100)
    return path


def q_value_heatmap(trainer, actor_params, critic_params, obs, path: Path, path_xy=None) -> Optional[Path]:
    """Paper Fig. 5: the critic's value of reaching obs's goal from every free cell."""
    env = trainer.eval_env
    geometry = maze_geometry(env)
    if geometry is None:
        return None
    layout, cell = geometry
    d, c = trainer.derived, trainer.config
    grid = cell_value_grid(layout, cell, critic_value_fn(trainer, actor_params, critic_params, obs))
    start = getattr(env, "start_xy", None)
    title = (
        f"{c.eval_env_id or c.env_id}: critic depth {c.critic_depth}, actor depth {c.actor_depth}\n"
        "value of reaching the goal (star) with the actor's action from each cell"
    )
    obs = np.asarray(obs)
    return draw_heatmap(
        grid,
        cell,
        path,
        goal_xy=obs[d.obs_dim : d.obs_dim + 2],
        start_xy=None if start is None else np.asarray(start),
        path_xy=path_xy,
        title=title,
    )


def policy_rollouts(trainer, actor_params, critic_params, key, num: int, length: int):
    """`num` rollouts of the evaluation policy for `length` steps from fresh resets.

    Returns (reset obs [num, obs], pipeline states [length, num, ...], obs [length, num, obs]).
    Rollout i starts from eval_env.reset(jax.random.split(k_reset, num)[i]).
    """
    import train

    c = trainer.config
    env = brax_wrappers.wrap(trainer.eval_env, episode_length=c.episode_length)
    policy = train.make_policy(trainer.nets, trainer.derived.obs_dim, c.eval_actor)

    @jax.jit
    def run(key):
        k_reset, k_act = jax.random.split(key)
        state = env.reset(jax.random.split(k_reset, num))

        def step(state, key):
            state = env.step(state, policy(actor_params, critic_params, state.obs, key))
            return state, (state.pipeline_state, state.obs)

        _, (states, obs) = jax.lax.scan(step, state, jax.random.split(k_act, length))
        return state.obs, states, obs

    return jax.device_get(run(key))


def _take(tree, index):
    return jax.tree.map(lambda x: x[index], tree)


def _log_to_wandb(wandb_run, items: dict, step: Optional[int]) -> None:
    """wandb must never stop a run: any failure here is a warning."""
    if wandb_run is None or not items:
        return
    try:
        import wandb

        kinds = {
            ".html": lambda p: wandb.Html(p.read_text()),
            ".mp4": lambda p: wandb.Video(str(p), format="mp4"),
        }
        payload = {name: kinds.get(p.suffix, lambda p: wandb.Image(str(p)))(p) for name, p in items.items()}
        wandb_run.log(payload, **({} if step is None else {"step": step}))
    except Exception as e:  # noqa: BLE001
        log.warning("could not log visualisations to wandb: %s", e)


def visualize(
    trainer,
    actor_params,
    critic_params,
    run_dir,
    key,
    wandb_run=None,
    *,
    html: bool = True,
    video: bool = True,
    heatmap: bool = True,
    step: Optional[int] = None,
) -> list[Path]:
    """Saves in run_dir what the evaluation policy does, and returns the files written.

    * render_<i>.html: brax's 3-D viewer of rollout i (config.num_render rollouts of
      config.vis_length steps, evaluation actor, fresh resets);
    * render_<i>.mp4: the same rollout filmed with MuJoCo's offscreen renderer
      (skipped, with one warning per process, where no headless OpenGL works);
    * qvalue_heatmap.png (maze envs only): the critic's value at every free cell for
      the goal of rollout 0, its path drawn over it.

    Logged to `wandb_run` when given (vis/render_<i>, vis/video_<i>, vis/qvalue_heatmap).
    """
    from brax.io import html as brax_html

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    c, d, env = trainer.config, trainer.derived, trainer.eval_env
    num = max(c.num_render, 1)
    obs0, states, obs = policy_rollouts(trainer, actor_params, critic_params, key, num, c.vis_length)
    written: dict[str, Path] = {}
    for i in range(c.num_render if (html or video) else 0):
        if html:
            rollout = _take(states, (slice(None), i))
            frames = [_take(rollout, t) for t in range(c.vis_length)]
            path = run_dir / f"render_{i}.html"
            path.write_text(brax_html.render(env.sys, frames))
            written[f"vis/render_{i}"] = path
        if video:
            try:
                path = render_video(env, states.q[:, i], run_dir / f"render_{i}.mp4")
            except Exception as e:  # noqa: BLE001 -- a video is never worth a failed run
                log.warning("video of rollout %d failed: %s", i, e)
                path = None
            if path is not None:
                written[f"vis/video_{i}"] = path
    if heatmap and maze_geometry(env) is not None:
        agent_xy = obs[:, 0, d.goal_start : d.goal_start + 2]
        path = q_value_heatmap(
            trainer, actor_params, critic_params, obs0[0], run_dir / "qvalue_heatmap.png", agent_xy
        )
        written["vis/qvalue_heatmap"] = path
    _log_to_wandb(wandb_run, written, step)
    return list(written.values())


@dataclass
class EvalArgs:
    """Evaluate a saved checkpoint with the paper's protocol, and look at its policy."""

    checkpoint: tyro.conf.Positional[str]
    """Checkpoint (file or directory) or a run directory (its latest checkpoint)."""
    num_eval_envs: Optional[int] = None
    """Episodes to evaluate; None = the run's num_eval_envs."""
    eval_actor: Optional[int] = None
    """0 deterministic, 1 stochastic, K >= 2 best of K by critic; None = the run's setting."""
    eval_env_id: Optional[str] = None
    """Evaluate on another env of the same family; None = the run's eval env."""
    seed: int = 0
    """Seed for the evaluation resets and actions."""
    evaluate: bool = True
    """Run the evaluation episodes and print their metrics (--no_evaluate: only the files below)."""
    html: bool = False
    """Save render_<i>.html: brax's 3-D viewer of the policy's rollouts."""
    video: bool = False
    """Save render_<i>.mp4 of the same rollouts (needs headless OpenGL: EGL or OSMesa)."""
    heatmap: bool = False
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


def main(args: Optional[list[str]] = None) -> dict:
    import dataclasses
    import json

    import train  # imported here: train.py imports this module

    cli = tyro.cli(EvalArgs, args=args, use_underscores=True)
    config, payload = train.load_checkpoint(cli.checkpoint)
    overrides = dict(
        num_eval_envs=cli.num_eval_envs,
        eval_actor=cli.eval_actor,
        eval_env_id=cli.eval_env_id,
        vis_length=cli.vis_length,
        num_render=cli.num_render,
    )
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if cli.html or cli.video:
        config = dataclasses.replace(config, num_render=max(config.num_render, 1))
    trainer = train.build(config)
    actor_params, critic_params = payload["actor_params"], payload["critic_params"]
    metrics = {}
    if cli.evaluate:
        metrics = trainer.evaluate(actor_params, critic_params, jax.random.PRNGKey(cli.seed))
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        print(json.dumps({"checkpoint_epoch": int(payload["epoch"]), **metrics}, indent=2))
    if cli.html or cli.video or cli.heatmap:
        out_dir = Path(cli.out_dir) if cli.out_dir else run_dir_of(cli.checkpoint)
        if cli.heatmap and maze_geometry(trainer.eval_env) is None:
            log.warning("no heat map: %s is not a maze env", config.eval_env_id or config.env_id)
        paths = visualize(
            trainer,
            actor_params,
            critic_params,
            out_dir,
            jax.random.PRNGKey(cli.seed),
            html=cli.html,
            video=cli.video,
            heatmap=cli.heatmap,
        )
        for path in paths:
            print(f"wrote {path}")
    return metrics


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    main()
