"""Every env family renders: its HTML page, its MP4 (where headless OpenGL works) and, on
mazes, the value heat map.

One id per family. No physics is compiled: the frames are poses computed with MuJoCo's
forward kinematics (render.py only reads body transforms and generalized positions), the
robot's hinge and slide joints swinging, the robot on the maze's start cell and the
target on a goal cell where the env has them. tests/test_viewer_browser.py opens the
same pages in a real browser.
"""

from __future__ import annotations

import functools
import json
import logging
import re

import imageio_ffmpeg
import mujoco
import numpy as np
import pytest
from brax import base
from PIL import Image

import envs
import render

pytestmark = [
    pytest.mark.filterwarnings("ignore:Brax System, piplines:UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:brax"),
    # imageio's ffmpeg runs as a subprocess, which execs at once after the fork.
    pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning"),
]

FAMILY_IDS = (
    "reacher",
    "ant",
    "ant_u_maze",
    "ant_ball",
    "ant_push",
    "ant_ball_u_maze",
    "humanoid",
    "humanoid_u_maze",
    "simple_u_maze",
    "arm_push_easy",
    "pusher_easy",
    "cheetah",
)
MAZE_IDS = tuple(i for i in FAMILY_IDS if "maze" in i)
NUM_FRAMES = 6
# Goal markers away from the robot where init_q puts them on it (joint name: qpos).
GOALS = {"cheetah": {"target_x": 5.0}}


@functools.cache
def family_env(env_id: str):
    return envs.make(env_id)


def family_qs(env_id: str) -> np.ndarray:
    """[NUM_FRAMES, nq] poses: init_q, robot on the maze start and target on a goal cell
    (mazes; GOALS), every hinge and slide joint but the target's swinging by up to 0.3."""
    env = family_env(env_id)
    model = env.sys.mj_model
    q0 = np.array(env.sys.init_q, np.float64)
    if getattr(env, "start_xy", None) is not None:
        q0[0:2] = np.asarray(env.start_xy)
    target = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, f"target_{a}") for a in "xy"]
    if getattr(env, "goal_candidates", None) is not None and min(target) >= 0:
        q0[[model.jnt_qposadr[j] for j in target]] = np.asarray(env.goal_candidates)[0]
    for name, value in GOALS.get(env_id, {}).items():
        q0[model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)]] = value
    swing = [
        model.jnt_qposadr[j]
        for j in range(model.njnt)
        if model.jnt_type[j] in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE) and j not in target
    ]
    qs = np.tile(q0, (NUM_FRAMES, 1))
    for k, adr in enumerate(swing):
        qs[:, adr] += 0.3 * np.sin(np.arange(NUM_FRAMES) / 2 + k)
    return qs


def family_frames(env_id: str) -> tuple[object, list]:
    """(env, brax states with the link transforms of `family_qs`)."""
    env = family_env(env_id)
    model = env.sys.mj_model
    data = mujoco.MjData(model)
    frames = []
    for q in family_qs(env_id):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        x = base.Transform(pos=np.array(data.xpos[1:]), rot=np.array(data.xquat[1:]))
        frames.append(base.State(q=q, qd=None, x=x, xd=None, contact=None))
    return env, frames


@pytest.mark.parametrize("env_id", FAMILY_IDS)
def test_html_page_of_every_family(env_id):
    env, frames = family_frames(env_id)
    page = render.html_page(env.sys, frames)
    embedded = re.search(r'<script type="application/json" id="brax-system">(.*?)</script>', page, re.S)
    shown = json.loads(embedded.group(1))
    assert len(shown["states"]["x"]) == NUM_FRAMES
    np.testing.assert_allclose(shown["states"]["x"][-1]["pos"], frames[-1].x.pos, atol=1e-5)

    # The camera's view holds every body in every frame.
    camera = json.loads(re.search(r'id="brax-camera">(.*?)</script>', page).group(1))
    target, position = np.array(camera["target"]), np.array(camera["position"])
    assert np.linalg.norm(position - target) == pytest.approx(camera["distance"], rel=1e-3)
    pos = np.concatenate([np.asarray(f.x.pos) for f in frames])
    assert np.linalg.norm(pos - target, axis=1).max() <= camera["radius"] + 1e-3


@pytest.mark.parametrize("env_id", FAMILY_IDS)
def test_mp4_of_every_family(env_id, tmp_path, caplog):
    env, _ = family_frames(env_id)
    caplog.set_level(logging.WARNING, logger="crl")
    path = render.render_video(env, family_qs(env_id), tmp_path / "v.mp4", fps=10.0, width=160, height=128)
    if render.gl_backend() is None:  # no headless OpenGL here: one warning instead (test_visualize.py)
        assert path is None and not (tmp_path / "v.mp4").exists()
        return
    assert path == tmp_path / "v.mp4"
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    assert frames == NUM_FRAMES and seconds == pytest.approx(NUM_FRAMES / 10.0, abs=0.05)
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    assert tuple(meta["size"]) == (160, 128)
    first = np.frombuffer(next(reader), np.uint8).reshape(128, 160, 3)
    reader.close()
    assert first.std() > 5  # the scene, not a blank frame


@pytest.mark.parametrize("env_id", MAZE_IDS)
def test_heatmap_of_every_maze_family(env_id, tmp_path):
    env = family_env(env_id)
    layout, cell = render.maze_geometry(env)
    goal = np.asarray(env.goal_candidates)[0]
    grid = render.cell_value_grid(layout, cell, lambda xy: -np.linalg.norm(xy - goal, axis=1))
    assert np.isfinite(grid).sum() == sum(len(row) - row.count("#") for row in layout)
    start = np.asarray(env.start_xy)
    path = render.draw_heatmap(grid, cell, tmp_path / "h.png", goal_xy=goal, start_xy=start)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (640, 480)
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50
