"""Looking at the policy: HTML rollouts, MP4 videos and, on mazes, the critic's value map.

`visualize` (called by train.py after training with --capture_vis, and by
`evaluation.py --html/--video/--heatmap`) writes, for the evaluation policy:

* render_<i>.html: brax's 3-D viewer of rollout i, its camera framing the
  robot, objects and goal. The file holds everything it runs: the trajectory,
  brax's viewer code, and three.js and lil-gui (which the brax wheel does not
  ship) from a local cache that `bash scripts/fetch_viewer_libs.sh` fills once
  from the npm registry (`viewer_cache`), so it opens offline. Without that
  cache the page fetches them from the internet when it opens, and says so
  (see `html_page`);
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
from html import escape as escape_html
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
# HTML: brax's viewer, its code and its libraries inlined
# =============================================================================

_VIEWER_DIR = Path(brax_json.__file__).resolve().parents[1] / "visualizer"
_VIEWER_MODULES = ("viewer.js", "animator.js", "selector.js", "system.js")
_LOCAL_PREFIX = "brax-viewer/"  # import-map names of the inlined viewer modules
VIEWER_CACHE_ENV = "CRL_VIEWER_CACHE"
FETCH_SCRIPT = Path(__file__).resolve().parent / "scripts" / "fetch_viewer_libs.sh"
_warned_no_viewer_libs = False


def viewer_cache() -> Path:
    """Where scripts/fetch_viewer_libs.sh puts three.js and lil-gui: $CRL_VIEWER_CACHE,
    else $XDG_CACHE_HOME/deep-crl/viewer, else ~/.cache/deep-crl/viewer."""
    if os.environ.get(VIEWER_CACHE_ENV):
        return Path(os.environ[VIEWER_CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "deep-crl" / "viewer"


def fetch_command() -> str:
    """The shell command that fills `viewer_cache()` (needs npm and the npm registry)."""
    command = f"bash {FETCH_SCRIPT}"
    if os.environ.get(VIEWER_CACHE_ENV):
        command = f"{VIEWER_CACHE_ENV}={viewer_cache()} {command}"
    return command


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


# An npm package in a CDN URL: .../[npm/]<name>@<version>[/<path>] (unpkg, jsdelivr).
_PACKAGE_URL = re.compile(r"https?://[^/]+/(?:npm/)?((?:@[\w.-]+/)?[\w.-]+@[\w.-]+)(?:/(.*))?$")


def _package_of(url: str) -> tuple[str, str]:
    """(name@version, path inside the package) of a CDN URL in brax's import map."""
    found = _PACKAGE_URL.match(url)
    if found is None:
        raise RuntimeError(f"brax's viewer imports {url}, which names no npm package@version")
    return found.group(1), found.group(2) or ""


def viewer_packages() -> tuple[str, ...]:
    """The npm packages (name@version) brax's viewer imports and the brax wheel lacks:
    what scripts/fetch_viewer_libs.sh fetches."""
    return tuple(dict.fromkeys(_package_of(url)[0] for url in _external_imports().values()))


def _bare_imports(source: str) -> list[str]:
    """The bare specifiers (not ./x, ../x, data: or URLs) a module imports statically."""
    specifiers = re.findall(r"""(?:\bfrom|\bimport)\s*(['"])([^'"\n]+)\1""", source)
    return [s for _, s in specifiers if not s.startswith((".", "/", "data:")) and "://" not in s]


def _data_url(source: str) -> str:
    return "data:text/javascript;base64," + base64.b64encode(source.encode()).decode("ascii")


def _library_file(url: str, cache: Path) -> Path:
    """The cached file a CDN URL of brax's import map stands for. A URL naming no file
    (jsdelivr's `/+esm`) stands for the package's ES module (package.json "module")."""
    package, inner = _package_of(url)
    root = cache / package
    if inner in ("", "+esm"):
        try:
            manifest = json.loads((root / "package.json").read_text())
        except (OSError, ValueError):
            return root / "package.json"
        inner = manifest.get("module") or manifest.get("main") or "index.js"
    return root / inner


def _library_imports(cache: Path) -> tuple[dict[str, str], list[str]]:
    """({import-map name: data: URL} for every library module brax's viewer imports,
    directly or through another library module, read from `cache`; the files missing
    there). Each specifier gets its own entry (a data: URL cannot be a folder prefix)."""
    external = _external_imports()
    todo = [s for name in _VIEWER_MODULES for s in _bare_imports((_VIEWER_DIR / "js" / name).read_text())]
    found: dict[str, str] = {}
    missing: list[str] = []
    while todo:
        specifier = todo.pop(0)
        if specifier in found or specifier.startswith(_LOCAL_PREFIX):
            continue
        if specifier in external:
            url = external[specifier]
        else:
            prefixes = [k for k in external if k.endswith("/") and specifier.startswith(k)]
            prefix = max(prefixes, key=len, default=None)
            if prefix is None:
                raise RuntimeError(f"brax's viewer imports {specifier!r}, which its import map does not name")
            url = external[prefix] + specifier[len(prefix) :]
        path = _library_file(url, cache)
        if not path.is_file():
            missing.append(str(path.relative_to(cache)))
            found[specifier] = url
            continue
        source = path.read_text()
        found[specifier] = _data_url(source)
        todo.extend(_bare_imports(source))
    return found, missing


def _viewer_module(name: str) -> str:
    """One of brax's viewer modules as a data: URL, its relative imports ('./x.js', which
    cannot resolve from a data: URL) renamed to their import-map names."""
    source = (_VIEWER_DIR / "js" / name).read_text()
    source = re.sub(r"""(from\s+)(['"])\./([\w-]+\.js)\2""", rf"\1\2{_LOCAL_PREFIX}\3\2", source)
    return _data_url(source)


def needs_network_note(cache: Path, missing: list[str]) -> str:
    """What a page written without the cached libraries says (and the run logs once)."""
    return (
        f"This page draws with three.js and lil-gui ({', '.join(viewer_packages())}), which were not "
        f"in {cache} when it was written (missing: {', '.join(missing)}): the browser fetches them "
        "from the internet when the page opens, and offline the viewer stays blank (the MP4 of the "
        "same name, where there is one, shows the same rollout). To write pages that work offline, "
        f"run once, on a machine with access to the npm registry: {fetch_command()}"
    )


def _report_no_viewer_libs(cache: Path, missing: list[str]) -> None:
    """Once per process, one line: several pages (and runs) share one message."""
    global _warned_no_viewer_libs
    if not _warned_no_viewer_libs:
        log.warning(
            "HTML pages will need the internet to draw: three.js and lil-gui are not in %s (missing: %s); "
            "to write pages that work offline, run once: %s",
            cache,
            ", ".join(missing),
            fetch_command(),
        )
        _warned_no_viewer_libs = True


def camera_framing(sys_, states: list, elevation: float = 55.0) -> dict:
    """Where the viewer's camera starts: looking at the centre of the box that holds every
    body (its geoms included; the world's floor and walls excluded) in every frame, from
    the azimuth of brax's default camera, `elevation` degrees above the horizontal, and
    just far enough that the box's corners fit the 40-degree view (both ways, so a page
    wider than high shows it all). Robot, objects and goal marker are bodies: all of them
    stay in view for the whole rollout."""
    model = sys_.mj_model
    pos = np.stack([np.asarray(s.x.pos, np.float64).reshape(-1, 3) for s in states])  # [T, links, 3]
    rot = np.stack([np.asarray(s.x.rot, np.float64).reshape(-1, 4) for s in states])  # [T, links, wxyz]
    # Every geom of a link (planes, unbounded, skipped) as a sphere: its centre in the world
    # in every frame, its bounding radius.
    geoms = [
        g
        for g in range(model.ngeom)
        if 0 < model.geom_bodyid[g] <= pos.shape[1] and model.geom_type[g] != mujoco.mjtGeom.mjGEOM_PLANE
    ]
    links = np.array([model.geom_bodyid[g] - 1 for g in geoms], int)
    offset = np.array([model.geom_pos[g] for g in geoms]).reshape(-1, 3)
    w, v = rot[:, links, :1], rot[:, links, 1:]  # rotate offset by each link's quaternion
    t = 2 * np.cross(v, offset[None])
    centre = pos[:, links] + offset[None] + w * t + np.cross(v, t)
    bound = np.array([model.geom_rbound[g] for g in geoms])[None, :, None]
    points = np.concatenate([pos, centre - bound, centre + bound], axis=1)
    low, high = points.min(axis=(0, 1)), points.max(axis=(0, 1))
    target = (low + high) / 2
    azimuth, el = np.arctan2(8.0, 5.0), np.deg2rad(elevation)  # brax's default camera sits at (5, 8, 2)
    back = np.array([np.cos(el) * np.cos(azimuth), np.cos(el) * np.sin(azimuth), np.sin(el)])
    right = np.cross(-back, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, -back)
    corners = np.array(np.meshgrid(*zip(low, high), indexing="ij")).reshape(3, -1).T
    rel = corners - target
    across = np.abs(np.stack([rel @ right, rel @ up], -1)).max(-1)  # off the view's axis
    towards = rel @ back  # towards the camera
    tan_half = np.tan(np.deg2rad(40.0 / 2))  # brax's camera: 40-degree vertical fov
    distance = max(float(np.max(1.1 * across / tan_half + towards)), float(np.max(towards)) + 0.2, 0.3)
    return {
        "target": [round(float(v), 4) for v in target],
        "position": [round(float(v), 4) for v in target + distance * back],
        "distance": round(distance, 4),
        "radius": round(float(np.linalg.norm(high - low)) / 2, 4),
    }


def html_page(sys_, states: list, height: int = 480) -> str:
    """A page showing `states` (brax pipeline states) of system `sys_` in brax's viewer,
    its camera framing every body over the whole rollout (`camera_framing`).

    Everything the page runs is in the file: the trajectory as plain JSON (no pako to
    inflate it), brax's viewer modules from the installed wheel, and three.js (with the
    add-ons the viewer imports) and lil-gui from `viewer_cache()`, as data: URLs in the
    import map, so the file alone works offline. Without that cache (fill it with
    scripts/fetch_viewer_libs.sh) the import map names the CDN URLs of brax's own page,
    the page says so in a visible note (`needs_network_note`), and the process logs it
    once.
    """
    cache = viewer_cache()
    libraries, missing = _library_imports(cache)
    note = ""
    if missing:
        note = needs_network_note(cache, missing)
        _report_no_viewer_libs(cache, missing)
    imports = {**libraries, **{_LOCAL_PREFIX + name: _viewer_module(name) for name in _VIEWER_MODULES}}
    # "<" only occurs inside JSON strings, where \u003c is the same character: no string
    # in the trajectory can close the <script> element early.
    system = brax_json.dumps(sys_, states).replace("<", "\\u003c")
    camera = json.dumps(camera_framing(sys_, states))
    import_map = json.dumps({"imports": imports}, indent=2)
    note_html = f'<p id="needs-network">{escape_html(note)}</p>\n' if note else ""
    note_comment = f"<!-- Offline viewing: {note.replace('--', '- -')} -->\n" if note else ""
    return f"""<!DOCTYPE html>
<html>
{note_comment}<head>
<meta charset="utf-8">
<title>Brax visualizer</title>
<style>
  body {{ margin: 0; padding: 0; font-family: sans-serif; }}
  #brax-viewer {{ height: {int(height)}px; margin: 0; padding: 0; }}
  #needs-network {{ padding: 0.5em 1em; margin: 0; background: #fff3cd; }}
</style>
<script type="importmap">
{import_map}
</script>
<script type="application/json" id="brax-system">{system}</script>
<script type="application/json" id="brax-camera">{camera}</script>
</head>
<body>
{note_html}<div id="brax-viewer"></div>
<script type="module">
  import * as THREE from 'three';
  import {{Viewer}} from '{_LOCAL_PREFIX}viewer.js';
  const system = JSON.parse(document.getElementById('brax-system').textContent);
  const view = JSON.parse(document.getElementById('brax-camera').textContent);
  const viewer = new Viewer(document.getElementById('brax-viewer'), system);
  // The camera orbits a fixed point framing every body of the rollout (render.camera_framing)
  // instead of following the first body from brax's default distance; selecting a body
  // still follows it, deselecting it comes back here.
  const centre = new THREE.Object3D();
  centre.position.fromArray(view.target);
  viewer.scene.add(centre);
  viewer.defaultTarget = viewer.target = centre;
  viewer.controls.target.copy(centre.position);
  viewer.controlTargetPos.copy(centre.position);
  viewer.camera.position.fromArray(view.position);
  viewer.camera.followDistance = view.distance * 1.01;
  viewer.camera.far = Math.max(100, 4 * view.distance);
  viewer.camera.updateProjectionMatrix();
  viewer.scene.fog.near = Math.max(viewer.scene.fog.near, 2 * view.distance);
  viewer.scene.fog.far = Math.max(viewer.scene.fog.far, 3 * view.distance);
  const shadow = viewer.dirLight.shadow.camera, reach = Math.max(10, 1.5 * view.radius);
  [shadow.left, shadow.right, shadow.top, shadow.bottom] = [-reach, reach, reach, -reach];
  shadow.far = Math.max(shadow.far, 20 + 2 * reach);
  shadow.updateProjectionMatrix();
  viewer.controls.update();
  viewer.setDirty();
  window.braxViewer = viewer;
  document.getElementById('needs-network')?.remove();  // the libraries loaded
  requestAnimationFrame(() => requestAnimationFrame(() => {{ document.body.dataset.viewer = 'drawn'; }}));
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
    policy = trainer.policy(getattr(c, "eval_actor", 0))  # sac.py and td3.py: one (deterministic) mode

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
