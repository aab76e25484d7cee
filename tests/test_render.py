"""Checks every env family shares: one trace of `step` serves every call, and HTML renders
(render.html_page, the page render_<i>.html is written with).

* Jit once: a jitted `step` is traced for the state `reset` returns, then
  called on the state `step` returns; the second call must reuse the first
  trace (same pytree, shapes, dtypes and weak types), or training would
  recompile after its first step. Only tracing is done (`jit(...).trace`),
  no XLA compilation, so one id per family costs seconds.
* HTML page: everything it runs is in the file (three.js and lil-gui from the
  viewer cache, here a stand-in); without the cache it names what is missing
  and the command that fetches it (tests/test_viewer_browser.py opens real
  pages in a browser).
* HTML render: families with a compiled physics run render a short slice
  of it in their own test file (`test_envs.py`: reacher, ant;
  `test_mazes.py`: ant, point-mass and ant-ball mazes; `test_env_family.py`:
  humanoid, pusher, cheetah, ant soccer; `test_arm.py`: the arm). Humanoid mazes get no physics
  compile anywhere (about a minute on the dev CPU), so here they render a
  short kinematic trajectory (brax forward kinematics of a few poses): the
  renderer only reads link transforms, and what is specific to the family is
  its scene (walls, floor, target), which this exercises.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import shutil
import subprocess

import jax
import jax.numpy as jp
import numpy as np
import pytest
from brax import base, kinematics
from brax.io import json as brax_json

import envs
import render

pytestmark = [
    pytest.mark.filterwarnings("ignore:Brax System, piplines:UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:brax"),
]

# One id per family. The arm family (envs/arm.py) is left to tests/test_arm.py:
# tracing its MJX step takes ~30 s on the shared dev CPU.
FAMILY_IDS = (
    "reacher",
    "ant",
    "ant_u_maze",
    "simple_u_maze",
    "ant_ball_u_maze",
    "humanoid",
    "humanoid_u_maze",
    "pusher_easy",
    "cheetah",
    "ant_push",
)


@pytest.mark.parametrize("env_id", FAMILY_IDS)
def test_step_is_traced_once_for_reset_and_stepped_states(env_id):
    env = envs.make(env_id)
    traces = []

    def step(state, action):
        traces.append(1)
        return env.step(state, action)

    jitted = jax.jit(step)
    action = jax.ShapeDtypeStruct((env.action_size,), jp.float32)
    first = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
    second = jitted.trace(first, action).out_info
    jitted.trace(second, action)
    assert len(traces) == 1
    # Control: a state that differs only in a weak type is a new trace.
    jitted.trace(first.replace(done=jax.ShapeDtypeStruct((), jp.float32, weak_type=True)), action)
    assert len(traces) == 2


def humanoid_maze_frames():
    env = envs.make("humanoid_u_maze")
    q0 = env.sys.init_q.at[0:2].set(env.start_xy).at[-2:].set(env.goal_candidates[0])
    # Walk the torso from the start cell (2, 2) towards +y, one pose per frame.
    qs = jp.stack([q0.at[1].add(0.2 * t) for t in range(5)])
    x, _ = jax.jit(jax.vmap(lambda q: kinematics.forward(env.sys, q, jp.zeros(env.sys.qd_size()))))(qs)
    frames = [
        base.State(q=qs[t], qd=None, x=jax.tree.map(lambda a, t=t: a[t], x), xd=None, contact=None)
        for t in range(5)
    ]
    return env, frames


def test_html_render_of_a_humanoid_maze_trajectory():
    env, frames = humanoid_maze_frames()
    page = render.html_page(env.sys, frames)
    shown = json.loads(brax_json.dumps(env.sys, frames))
    assert "<html" in page.lower() and len(shown["states"]["x"]) == 5
    torso_y = [frame["pos"][0][1] for frame in shown["states"]["x"]]
    np.testing.assert_allclose(torso_y, 2.0 + 0.2 * np.arange(5), atol=1e-5)
    n_walls = sum(g["name"] == "Box" for geoms in shown["geoms"].values() for g in geoms)
    assert n_walls == "".join(env.layout).count("#")


def fake_viewer_cache(root):
    """What scripts/fetch_viewer_libs.sh leaves, with stand-in module sources."""
    files = {
        "three@0.150.1/build/three.module.js": "export const REVISION = '150';\n",
        "three@0.150.1/examples/jsm/controls/OrbitControls.js": (
            "import { EventDispatcher } from 'three';\nexport class OrbitControls {}\n"
        ),
        "lil-gui@0.18.0/package.json": '{"module": "dist/lil-gui.esm.js", "main": "dist/lil-gui.umd.js"}',
        "lil-gui@0.18.0/dist/lil-gui.esm.js": "export class GUI {}\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return files


def page_imports(page: str) -> dict:
    return json.loads(re.search(r'<script type="importmap">(.*?)</script>', page, re.S).group(1))["imports"]


def decoded(url: str) -> str:
    assert url.startswith("data:text/javascript;base64,"), url[:60]
    return base64.b64decode(url.split(",", 1)[1]).decode()


def test_html_page_holds_everything_it_runs(tmp_path, monkeypatch):
    """Nothing comes from a <script src> or a URL: the trajectory is plain JSON in the page,
    brax's viewer modules are inlined from the installed wheel, three.js (with the add-on
    the viewer imports) and lil-gui from the viewer cache, each under the exact name the
    modules import."""
    files = fake_viewer_cache(tmp_path / "cache")
    monkeypatch.setenv(render.VIEWER_CACHE_ENV, str(tmp_path / "cache"))
    env, frames = humanoid_maze_frames()
    page = render.html_page(env.sys, frames)
    assert re.search(r"<script[^>]*\bsrc=", page) is None
    assert re.search(r"https?://", page) is None

    embedded = re.search(r'<script type="application/json" id="brax-system">(.*?)</script>', page, re.S)
    assert json.loads(embedded.group(1)) == json.loads(brax_json.dumps(env.sys, frames))

    imports = page_imports(page)
    assert decoded(imports["three"]) == files["three@0.150.1/build/three.module.js"]
    orbit = files["three@0.150.1/examples/jsm/controls/OrbitControls.js"]
    assert decoded(imports["three/addons/controls/OrbitControls.js"]) == orbit
    assert decoded(imports["lilgui"]) == files["lil-gui@0.18.0/dist/lil-gui.esm.js"]

    # Each inlined brax module is the wheel's own, its relative imports renamed to import-map
    # names; every module's every import has its own entry.
    for name in render._VIEWER_MODULES:
        source = decoded(imports[f"brax-viewer/{name}"])
        wheel = (render._VIEWER_DIR / "js" / name).read_text()
        assert source == wheel.replace("from './", "from 'brax-viewer/")
    for url in imports.values():
        for specifier in re.findall(r"""from\s+['"]([^'"]+)['"]""", decoded(url)):
            assert specifier in imports, specifier
    assert "Viewer" in decoded(imports["brax-viewer/viewer.js"])
    assert 'id="brax-viewer"' in page and "Brax visualizer" in page
    assert '<p id="needs-network">' not in page and "Offline viewing" not in page


def test_without_the_cache_the_page_names_what_is_missing_and_the_command(tmp_path, monkeypatch, caplog):
    """The CDN URLs of brax's own page, a visible note and one logged line per process,
    both with the exact command that fills the cache."""
    fake_viewer_cache(tmp_path / "cache")
    (tmp_path / "cache/lil-gui@0.18.0/dist/lil-gui.esm.js").unlink()
    monkeypatch.setenv(render.VIEWER_CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(render, "_warned_no_viewer_libs", False)
    caplog.set_level(logging.WARNING, logger="crl")
    env, frames = humanoid_maze_frames()
    page = render.html_page(env.sys, frames)
    render.html_page(env.sys, frames)

    command = f"{render.VIEWER_CACHE_ENV}={tmp_path / 'cache'} bash {render.FETCH_SCRIPT}"
    assert render.fetch_command() == command
    lines = [r.getMessage() for r in caplog.records if "HTML pages will need the internet" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "missing: lil-gui@0.18.0/dist/lil-gui.esm.js" in lines[0] and lines[0].endswith(command)

    imports = page_imports(page)
    assert imports["lilgui"] == render._external_imports()["lilgui"]
    assert imports["lilgui"].startswith("https://")
    assert decoded(imports["three"]) == "export const REVISION = '150';\n"  # what is there is used
    note = re.search(r'<p id="needs-network">(.*?)</p>', page, re.S).group(1)
    assert "offline the viewer stays blank" in note and note.endswith(command)
    assert "three@0.150.1, lil-gui@0.18.0" in note and "missing: lil-gui@0.18.0/dist/lil-gui.esm.js" in note
    assert f"<!-- Offline viewing: {note} -->" in page


def test_viewer_cache_location(monkeypatch, tmp_path):
    monkeypatch.delenv(render.VIEWER_CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert render.viewer_cache() == tmp_path / "xdg" / "deep-crl" / "viewer"
    assert render.fetch_command() == f"bash {render.FETCH_SCRIPT}"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert render.viewer_cache() == tmp_path / "home" / ".cache" / "deep-crl" / "viewer"
    monkeypatch.setenv(render.VIEWER_CACHE_ENV, "~/libs")
    assert render.viewer_cache() == tmp_path / "home" / "libs"


def test_fetch_script_fetches_the_versions_brax_imports():
    """brax's viewer page names three.js and lil-gui by version; the script must fetch those."""
    script = render.FETCH_SCRIPT.read_text()
    packages = re.search(r"^PACKAGES=\((.*)\)$", script, re.M).group(1).split()
    assert tuple(packages) == render.viewer_packages() == ("three@0.150.1", "lil-gui@0.18.0")


def test_fetch_script_without_npm_says_so(tmp_path):
    bin_dir = tmp_path / "bin"  # a PATH with what the script needs but npm
    bin_dir.mkdir()
    for tool in ("bash", "mktemp", "rm", "mkdir", "dirname"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    result = subprocess.run(
        [shutil.which("bash"), str(render.FETCH_SCRIPT), str(tmp_path / "cache")],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and not (tmp_path / "cache").exists()
    assert result.stderr.strip() == (
        "fetch_viewer_libs.sh: npm not found: install Node.js and npm (Debian: apt-get install npm)"
    )
    result = subprocess.run(["bash", str(render.FETCH_SCRIPT), "a", "b"], capture_output=True, text=True)
    assert result.returncode == 1 and "usage: bash scripts/fetch_viewer_libs.sh [DIR]" in result.stderr
