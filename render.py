"""Looking at the policy: HTML rollouts, MP4 videos and, on mazes, the critic's value map.

`visualize` (called by train.py after training with --capture_vis, and by
`evaluation.py --html/--video/--heatmap`) writes, for the evaluation policy:

* render_<i>.html: brax's 3-D viewer of rollout i. brax's own viewer code and
  the trajectory are inside the file; three.js and lil-gui, which the brax
  wheel does not ship, still come from the internet when the page opens (the
  page says so, see `html_page`);
* render_<i>.mp4: the same rollout filmed with MuJoCo's offscreen renderer,
  headless EGL or OSMesa (see `gl_backend`; without either: one warning, no
  videos, the run goes on);
* qvalue_heatmap.png (maze envs): the paper's Fig. 5, the critic's value of
  reaching the goal from every free cell.

Rollouts end with their episode: they run without brax's auto-reset, and
frames stop at the first done, so the last frame is the episode's real last
state rather than the next episode's start.

This module needs from train.py only the Trainer it is handed (config,
derived, eval_env, nets, policy(mode), value), and never imports train.

MUJOCO_GL: importing mujoco with MUJOCO_GL=osmesa where libOSMesa is missing
(or =egl without libEGL, or a value MuJoCo does not know) raises inside
PyOpenGL or MuJoCo (an AttributeError, a RuntimeError), not an ImportError
that MuJoCo would catch. This module therefore checks MUJOCO_GL before it
imports brax and mujoco, hides an unusable value during that import, and
reports it once, with what to install, when a video is asked for. Importing
this module before brax makes the import safe for the importer too.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import functools
import importlib
import json
import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Callable, NamedTuple, Optional

log = logging.getLogger("crl")

# =============================================================================
# MUJOCO_GL: checked before brax and mujoco are imported
# =============================================================================

_OFF = ("disable", "disabled", "off", "false", "0")
# Values for which MuJoCo (on Linux) imports its GLFW context: a missing GLFW
# surfaces there as an ImportError, which MuJoCo catches itself.
_GLFW = ("", "enable", "enabled", "on", "true", "1", "glfw", "glx")
# Headless backends: the shared library PyOpenGL loads for each, and the
# Debian package that provides it.
_HEADLESS = {"egl": ("EGL", "libegl1"), "osmesa": ("OSMesa", "libosmesa6")}
_INSTALL_HINT = (
    "install libegl1 (EGL) or libosmesa6 (OSMesa), or set MUJOCO_GL=egl|osmesa; MUJOCO_GL=off skips videos"
)


def _library_loads(stem: str) -> bool:
    """Whether lib<stem>.so loads here, tried the way PyOpenGL looks for it
    (unversioned name, then .so.<N>)."""
    for name in [f"lib{stem}.so", *(f"lib{stem}.so.{n}" for n in range(9, -1, -1))]:
        try:
            ctypes.CDLL(name, mode=os.RTLD_LOCAL)
            return True
        except OSError:
            continue
    return False


def _requested_gl() -> str:
    return os.environ.get("MUJOCO_GL", "").strip().lower()


def _mujoco_gl_problem(requested: str) -> Optional[str]:
    """Why `import mujoco` would crash under MUJOCO_GL=requested here (the text of the
    warning), or None when it imports cleanly."""
    if requested in _OFF or requested in _GLFW:
        return None
    if requested in _HEADLESS:
        library, package = _HEADLESS[requested]
        if _library_loads(library):
            return None
        other = "egl" if requested == "osmesa" else "osmesa"
        return (
            f"MUJOCO_GL={requested} but lib{library} is not installed: install {package}, "
            f"or set MUJOCO_GL={other} ({_HEADLESS[other][1]}); MUJOCO_GL=off skips videos"
        )
    return (
        f"MUJOCO_GL={requested} is not a backend MuJoCo knows: set MUJOCO_GL=egl or osmesa; "
        "MUJOCO_GL=off skips videos"
    )


@contextlib.contextmanager
def _importable_mujoco_gl():
    """While mujoco is first imported, an unusable MUJOCO_GL is replaced by `disabled`
    (MuJoCo then defines no GL context); the caller's value is restored afterwards, so
    child processes see what the user set and `gl_backend` reports it."""
    requested = os.environ.get("MUJOCO_GL")
    hide = "mujoco" not in sys.modules and _mujoco_gl_problem(_requested_gl()) is not None
    if hide:
        os.environ["MUJOCO_GL"] = "disabled"
    try:
        yield
    finally:
        if hide:
            os.environ["MUJOCO_GL"] = requested


with _importable_mujoco_gl():
    import mujoco  # noqa: E402
    from brax.envs.wrappers import training as brax_wrappers  # noqa: E402
    from brax.io import json as brax_json  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from envs import maze  # noqa: E402

# =============================================================================
# MP4 videos: MuJoCo's offscreen renderer
# =============================================================================

_warned_no_gl = False
_GL_PROBE = (
    "import importlib, sys; ctx = importlib.import_module('mujoco.' + sys.argv[1]).GLContext(16, 16); "
    "ctx.make_current(); ctx.free()"
)


@functools.cache
def gl_backend() -> Optional[str]:
    """The OpenGL backend MuJoCo can render with here, or None (see `no_gl_message`).

    MUJOCO_GL, when set, is the only candidate (`off` disables videos);
    otherwise egl, then osmesa, each only if its library loads. A candidate is
    tried in a child process: PyOpenGL fixes its platform on first import, so a
    backend that failed in-process would block the next one.
    """
    requested = _requested_gl()
    if requested in _OFF or _mujoco_gl_problem(requested) is not None:
        return None
    if requested in ("egl", "osmesa", "glfw", "glx"):
        candidates = (requested,)
    else:
        candidates = tuple(name for name, (library, _) in _HEADLESS.items() if _library_loads(library))
    for name in candidates:
        try:
            with _forks_then_execs():
                probe = subprocess.run(
                    [sys.executable, "-c", _GL_PROBE, "glfw" if name == "glx" else name],
                    env={**os.environ, "MUJOCO_GL": name},
                    capture_output=True,
                    timeout=120,
                )
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0:
            return name
    return None


def no_gl_message() -> tuple[int, str]:
    """(logging level, message) saying why `gl_backend` found nothing and what to do:
    INFO for MUJOCO_GL=off (videos off as asked), WARNING otherwise."""
    requested = _requested_gl()
    if requested in _OFF:
        return logging.INFO, f"no MP4 videos: MUJOCO_GL={requested} turns them off"
    problem = _mujoco_gl_problem(requested)
    if problem is not None:
        return logging.WARNING, f"no MP4 videos: {problem}"
    if requested in _HEADLESS:
        name = _HEADLESS[requested][0]
        return logging.WARNING, (
            f"no MP4 videos: MUJOCO_GL={requested}: MuJoCo could not make an {name} context here "
            f"(a GPU driver, or Mesa's software renderer, is needed); {_INSTALL_HINT}"
        )
    if requested in _GLFW and requested:
        return logging.WARNING, (
            f"no MP4 videos: MUJOCO_GL={requested} needs a display; on a headless machine {_INSTALL_HINT}"
        )
    return logging.WARNING, f"no MP4 videos: no headless OpenGL here: {_INSTALL_HINT}"


@contextlib.contextmanager
def _forks_then_execs():
    """JAX warns on every fork; a subprocess (probe, ffmpeg) execs at once, which is safe."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
        yield


def _report_no_gl(level: int, message: str) -> None:
    """Once per process: several videos (and several runs in one process) share one message."""
    global _warned_no_gl
    if not _warned_no_gl:
        log.log(level, message)
        _warned_no_gl = True


def _video_camera(model, geometry: Optional[tuple[maze.Layout, float]]):
    """Top-down over the whole maze (rows pointing down, like the printed grid and the heat
    map); a camera following the robot for free-floating robots; else the whole scene."""
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

    Returns None, after one message per process saying what to install or set,
    when no headless OpenGL backend works here (see `gl_backend`); never raises
    for that.
    """
    import imageio

    backend = gl_backend()
    if backend is None:
        _report_no_gl(*no_gl_message())
        return None
    model = env.sys.mj_model
    width, height = min(width, model.vis.global_.offwidth), min(height, model.vis.global_.offheight)
    try:
        module = importlib.import_module(f"mujoco.{'glfw' if backend == 'glx' else backend}")
        ctx = module.GLContext(width, height)
        ctx.make_current()
    except Exception as e:  # noqa: BLE001 -- a missing GL stack must not end the run
        message = f"no MP4 videos: the {backend} context failed in this process ({e}); {_INSTALL_HINT}"
        _report_no_gl(logging.WARNING, message)
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


# =============================================================================
# HTML: brax's viewer, its own code inlined
# =============================================================================

_VIEWER_DIR = Path(brax_json.__file__).resolve().parents[1] / "visualizer"
_VIEWER_MODULES = ("viewer.js", "animator.js", "selector.js", "system.js")
_LOCAL_PREFIX = "brax-viewer/"  # import-map names of the inlined viewer modules
NEEDS_NETWORK = (
    "This page draws with three.js and lil-gui, which the brax package does not ship: "
    "the browser fetches them from the internet when the page opens. Offline, the viewer "
    "stays blank (the trajectory and brax's viewer code are in this file); the MP4 of the "
    "same name shows the same rollout."
)


def _external_imports() -> dict[str, str]:
    """The import map entries of brax's own page for the libraries brax does not ship
    (three.js, its add-ons, lil-gui), read from the installed brax so that they stay the
    versions its viewer was written against."""
    page = (_VIEWER_DIR / "index.html").read_text()
    found = re.search(r'<script type="importmap">(.*?)</script>', page, re.S)
    if found is None:
        raise RuntimeError(f"no import map in {_VIEWER_DIR / 'index.html'}: brax's viewer page changed")
    imports = json.loads(found.group(1))["imports"]
    return {name: url for name, url in imports.items() if name != "viewer"}


def _viewer_module(name: str) -> str:
    """One of brax's viewer modules as a data: URL, its relative imports ('./x.js', which
    cannot resolve from a data: URL) renamed to their import-map names."""
    source = (_VIEWER_DIR / "js" / name).read_text()
    source = re.sub(r"""(from\s+)(['"])\./([\w-]+\.js)\2""", rf"\1\2{_LOCAL_PREFIX}\3\2", source)
    return "data:text/javascript;base64," + base64.b64encode(source.encode()).decode("ascii")


def html_page(sys_, states: list, height: int = 480) -> str:
    """A page showing `states` (brax pipeline states) of system `sys_` in brax's viewer.

    Unlike brax.io.html.render, the trajectory is plain JSON in the page (no pako to
    inflate it), brax's viewer modules are inlined from the installed wheel (no fetch of
    viewer.js), and there is no import-map polyfill. three.js and lil-gui are still
    fetched (NEEDS_NETWORK): the page keeps a visible note until the viewer has started.
    """
    imports = {
        **_external_imports(),
        **{_LOCAL_PREFIX + name: _viewer_module(name) for name in _VIEWER_MODULES},
    }
    # "<" only occurs inside JSON strings, where \u003c is the same character: no string
    # in the trajectory can close the <script> element early.
    system = brax_json.dumps(sys_, states).replace("<", "\\u003c")
    import_map = json.dumps({"imports": imports}, indent=2)
    return f"""<!DOCTYPE html>
<html>
<!-- Offline viewing: {NEEDS_NETWORK} -->
<head>
<meta charset="utf-8">
<title>Brax visualizer</title>
<style>
  body {{ margin: 0; padding: 0; font-family: sans-serif; }}
  #brax-viewer {{ height: {int(height)}px; margin: 0; padding: 0; }}
  #needs-network {{ padding: 0.5em 1em; background: #fff3cd; }}
</style>
<script type="importmap">
{import_map}
</script>
<script type="application/json" id="brax-system">{system}</script>
</head>
<body>
<p id="needs-network">{NEEDS_NETWORK}</p>
<div id="brax-viewer"></div>
<script type="module">
  import {{Viewer}} from '{_LOCAL_PREFIX}viewer.js';
  const system = JSON.parse(document.getElementById('brax-system').textContent);
  new Viewer(document.getElementById('brax-viewer'), system);
  document.getElementById('needs-network').remove();  // the libraries loaded
</script>
</body>
</html>
"""


# =============================================================================
# The critic's value over a maze (paper Fig. 5)
# =============================================================================


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
    d = trainer.derived
    policy = trainer.policy(0)
    obs = jnp.asarray(obs)

    @jax.jit
    def value(xy):
        state = jnp.tile(obs[: d.obs_dim], (xy.shape[0], 1)).at[:, d.goal_start : d.goal_start + 2].set(xy)
        goal = jnp.tile(obs[d.obs_dim :], (xy.shape[0], 1))
        action = policy(actor_params, critic_params, jnp.concatenate([state, goal], -1), None)
        return trainer.value(critic_params, state, action, goal)

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


# =============================================================================
# Rollouts of the evaluation policy, and visualize()
# =============================================================================


class Rollouts(NamedTuple):
    reset_obs: np.ndarray  # [num, obs]
    states: object  # pipeline states after each step, leaves [length, num, ...]
    obs: np.ndarray  # [length, num, obs], after each step
    lengths: np.ndarray  # [num]: steps up to and including the first done (else length)


def policy_rollouts(trainer, actor_params, critic_params, key, num: int, length: int) -> Rollouts:
    """`num` rollouts of the evaluation policy for `length` steps from fresh resets.

    Rollout i starts from eval_env.reset(jax.random.split(k_reset, num)[i]). The env
    has brax's episode limit but no auto-reset: the state at the first done is the
    episode's own last state. Steps after it (when `length` is longer than the episode)
    are computed but are no part of the episode: use lengths[i].
    """
    c = trainer.config
    env = brax_wrappers.EpisodeWrapper(brax_wrappers.VmapWrapper(trainer.eval_env), c.episode_length, 1)
    policy = trainer.policy(c.eval_actor)

    @jax.jit
    def run(key):
        k_reset, k_act = jax.random.split(key)
        state = env.reset(jax.random.split(k_reset, num))

        def step(state, key):
            state = env.step(state, policy(actor_params, critic_params, state.obs, key))
            return state, (state.pipeline_state, state.obs, state.done)

        _, (states, obs, done) = jax.lax.scan(step, state, jax.random.split(k_act, length))
        ended = done > 0
        lengths = jnp.where(ended.any(0), jnp.argmax(ended, 0) + 1, length)
        return Rollouts(state.obs, states, obs, lengths)

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

    * render_<i>.html: brax's 3-D viewer of rollout i (config.num_render rollouts of up
      to config.vis_length steps, ending with their episode; evaluation actor, fresh resets);
    * render_<i>.mp4: the same rollout filmed with MuJoCo's offscreen renderer
      (skipped, with one message per process, where no headless OpenGL works);
    * qvalue_heatmap.png (maze envs only): the critic's value at every free cell for
      the goal of rollout 0, its path drawn over it.

    Logged to `wandb_run` when given (vis/render_<i>, vis/video_<i>, vis/qvalue_heatmap).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    c, d, env = trainer.config, trainer.derived, trainer.eval_env
    if video and gl_backend() is None:
        _report_no_gl(*no_gl_message())
        video = False
    heatmap = heatmap and maze_geometry(env) is not None
    if not (html or video or heatmap):
        return []
    num = max(c.num_render, 1)
    rollouts = policy_rollouts(trainer, actor_params, critic_params, key, num, c.vis_length)
    lengths = [int(n) for n in rollouts.lengths]
    written: dict[str, Path] = {}
    for i in range(c.num_render if (html or video) else 0):
        if html:
            rollout = _take(rollouts.states, (slice(None), i))
            frames = [_take(rollout, t) for t in range(lengths[i])]
            path = run_dir / f"render_{i}.html"
            path.write_text(html_page(env.sys, frames))
            written[f"vis/render_{i}"] = path
        if video:
            try:
                path = render_video(env, rollouts.states.q[: lengths[i], i], run_dir / f"render_{i}.mp4")
            except Exception as e:  # noqa: BLE001 -- a video is never worth a failed run
                log.warning("video of rollout %d failed: %s", i, e)
                path = None
            if path is not None:
                written[f"vis/video_{i}"] = path
    if heatmap:
        agent_xy = rollouts.obs[: lengths[0], 0, d.goal_start : d.goal_start + 2]
        obs0, path = rollouts.reset_obs[0], run_dir / "qvalue_heatmap.png"
        path = q_value_heatmap(trainer, actor_params, critic_params, obs0, path, agent_xy)
        written["vis/qvalue_heatmap"] = path
    _log_to_wandb(wandb_run, written, step)
    return list(written.values())
