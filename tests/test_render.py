"""Checks every env family shares: one trace of `step` serves every call, and HTML renders
(render.html_page, the page render_<i>.html is written with).

* Jit once: a jitted `step` is traced for the state `reset` returns, then
  called on the state `step` returns; the second call must reuse the first
  trace (same pytree, shapes, dtypes and weak types), or training would
  recompile after its first step. Only tracing is done (`jit(...).trace`),
  no XLA compilation, so one id per family costs seconds.
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
import re

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


def test_html_page_carries_the_trajectory_and_the_viewer_code():
    """Nothing comes from a <script src>: the trajectory is plain JSON in the page and
    brax's viewer modules are inlined from the installed wheel. three.js and lil-gui are
    not in the wheel: the import map still names them online, and the page says so."""
    env, frames = humanoid_maze_frames()
    page = render.html_page(env.sys, frames)
    assert re.search(r"<script[^>]*\bsrc=", page) is None

    embedded = re.search(r'<script type="application/json" id="brax-system">(.*?)</script>', page, re.S)
    assert json.loads(embedded.group(1)) == json.loads(brax_json.dumps(env.sys, frames))

    import_map = re.search(r'<script type="importmap">(.*?)</script>', page, re.S)
    imports = json.loads(import_map.group(1))["imports"]
    online = {name for name, url in imports.items() if not url.startswith("data:")}
    assert online == {"three", "three/addons/", "lilgui"}
    assert all(url.startswith("https://") for name, url in imports.items() if name in online)
    assert set(re.findall(r"https?://[^\s\"']+", page)) == {imports[name] for name in online}

    # Each inlined module is the wheel's own, its relative imports renamed to import-map names
    # that resolve (a name, or one under a prefix ending in /).
    for name in render._VIEWER_MODULES:
        source = base64.b64decode(imports[f"brax-viewer/{name}"].split(",", 1)[1]).decode()
        wheel = (render._VIEWER_DIR / "js" / name).read_text()
        assert source == wheel.replace("from './", "from 'brax-viewer/")
        for specifier in re.findall(r"""from\s+['"]([^'"]+)['"]""", source):
            assert specifier in imports or any(
                k.endswith("/") and specifier.startswith(k) for k in imports
            ), (name, specifier)
    assert "Viewer" in base64.b64decode(imports["brax-viewer/viewer.js"].split(",", 1)[1]).decode()

    # What still needs the network is said in the file: a comment and a visible note.
    assert "<!-- Offline viewing: This page draws with three.js and lil-gui" in page
    assert '<p id="needs-network">' in page and "Offline, the viewer stays blank" in page
    assert 'id="brax-viewer"' in page and "Brax visualizer" in page
