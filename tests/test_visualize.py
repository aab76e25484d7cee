"""Looking at the policy (HTML, MP4, Q-value heat map; render.py, evaluation.py's CLI) and plot.py.

Tiny point-mass maze trainer with untrained parameters: what is checked is
that the files exist with the right content and shape, not what they show.
"""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import envs
import evaluation
import plot
import render
import train
from envs import maze
from tests import test_train

VIS_LENGTH = 20
# The trainer tests' tiny config, on a maze (for the heat map), keeping its checkpoints.
TINY = {**test_train.TINY, "env_id": "simple_u_maze", "checkpoint": True, "vis_length": VIS_LENGTH}


@pytest.fixture(scope="module")
def maze_trainer():
    trainer = train.build(train.Config(**TINY))
    actor_params, critic_params = train.init_params(trainer.nets, jax.random.PRNGKey(0), trainer.derived)
    return trainer, actor_params, critic_params


@pytest.fixture
def fresh_gl(monkeypatch):
    """gl_backend and its once-per-process message start afresh, and are reset after."""
    monkeypatch.setattr(render, "_warned_no_gl", False)
    render.gl_backend.cache_clear()
    yield monkeypatch
    render.gl_backend.cache_clear()


@pytest.fixture
def no_gl(fresh_gl):
    """This process behaves as if no headless OpenGL library were installed: MUJOCO_GL
    unset, and neither libEGL nor libOSMesa loads."""
    fresh_gl.delenv("MUJOCO_GL", raising=False)
    fresh_gl.setattr(render, "_library_loads", lambda stem: False)


def no_gl_warnings(caplog, level=logging.WARNING) -> list[logging.LogRecord]:
    records = [r for r in caplog.records if r.name == "crl" and r.levelno == level]
    return [r for r in records if "no MP4 videos" in r.getMessage()]


# -- the value grid ---------------------------------------------------------------


def test_cell_value_grid_places_one_value_per_free_cell():
    layout = ("######", "#R.#G#", "#.B#.#", "#....#", "######")
    cell = 2.5
    # value = 100 * x + y at each centre, so every grid entry names its own cell.
    grid = render.cell_value_grid(layout, cell, lambda xy: 100 * xy[:, 0] + xy[:, 1])
    assert grid.shape == (5, 6)
    for i, row in enumerate(layout):
        for j, symbol in enumerate(row):
            if symbol == "#":
                assert np.isnan(grid[i, j]), (i, j)
            else:
                assert grid[i, j] == pytest.approx(100 * i * cell + j * cell), (i, j)
    assert np.isfinite(grid).sum() == sum(row.count(s) for row in layout for s in "RGB.")


def test_cell_value_grid_rejects_a_wrong_number_of_values():
    with pytest.raises(ValueError, match="for 3 cells"):
        render.cell_value_grid(("#####", "#R.G#", "#####"), 1.0, lambda xy: np.zeros(len(xy) + 1))


def test_maze_geometry_matches_the_env():
    env = envs.make("simple_u_maze")
    layout, cell = render.maze_geometry(env)
    assert layout == maze.JG_LAYOUTS["u_maze"] and cell == 4.0
    np.testing.assert_allclose(maze.start_xy(layout, cell), np.asarray(env.start_xy))
    goals = {tuple(g) for g in maze.goal_xys(layout, cell)}
    assert goals == {tuple(g) for g in np.asarray(env.goal_candidates)}
    assert render.maze_geometry(envs.make("reacher")) is None


def test_critic_value_fn_moves_only_the_agent_position(maze_trainer):
    """At the start cell (where reset puts the point mass exactly) the value must equal
    the critic's value of the unchanged reset state; elsewhere it must differ."""
    trainer, actor_params, critic_params = maze_trainer
    d = trainer.derived
    obs = trainer.eval_env.reset(jax.random.PRNGKey(3)).obs
    value_fn = render.critic_value_fn(trainer, actor_params, critic_params, obs)
    state, goal = obs[None, : d.obs_dim], obs[None, d.obs_dim :]
    action = jnp.tanh(trainer.nets.actor.apply(actor_params, obs[None])[0])
    expected = train.critic_value(critic_params, trainer.nets, state, action, goal)
    start = np.asarray(trainer.eval_env.start_xy)[None]
    np.testing.assert_allclose(value_fn(start), np.asarray(expected), rtol=1e-5)
    assert abs(value_fn(start + [[4.0, 0.0]])[0] - float(expected[0])) > 1e-6


# -- the files visualize() writes ------------------------------------------------------


def test_visualize_writes_html_video_and_heatmap(maze_trainer, tmp_path, caplog):
    import imageio_ffmpeg

    trainer, actor_params, critic_params = maze_trainer
    caplog.set_level(logging.WARNING, logger="crl")
    paths = render.visualize(trainer, actor_params, critic_params, tmp_path, jax.random.PRNGKey(0))
    names = {p.name for p in paths}

    html = (tmp_path / "render_0.html").read_text()
    assert 'id="brax-viewer"' in html and "Brax visualizer" in html

    if render.gl_backend() is not None:
        assert "render_0.mp4" in names
        frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "render_0.mp4"))
        assert frames == VIS_LENGTH  # at the env's own rate: one frame per env step
        assert seconds == pytest.approx(VIS_LENGTH * float(trainer.eval_env.dt), rel=0.05)
    else:
        assert "render_0.mp4" not in names and len(no_gl_warnings(caplog)) == 1

    heatmap = tmp_path / "qvalue_heatmap.png"
    assert "qvalue_heatmap.png" in names
    with Image.open(heatmap) as image:
        assert image.format == "PNG" and image.size == (640, 480)
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # not blank
    assert sorted(names) == sorted(p.name for p in tmp_path.iterdir())


def test_without_gl_video_is_skipped_with_one_warning(maze_trainer, tmp_path, caplog, no_gl):
    trainer, actor_params, critic_params = maze_trainer
    caplog.set_level(logging.WARNING, logger="crl")
    qs = np.tile(np.asarray(trainer.eval_env.sys.init_q), (3, 1))
    assert render.render_video(trainer.eval_env, qs, tmp_path / "a.mp4") is None
    assert render.render_video(trainer.eval_env, qs, tmp_path / "b.mp4") is None
    paths = render.visualize(
        trainer, actor_params, critic_params, tmp_path, jax.random.PRNGKey(0), html=False, heatmap=False
    )
    assert paths == [] and not list(tmp_path.glob("*.mp4"))
    assert len(no_gl_warnings(caplog)) == 1
    # The one warning says what to install or set.
    message = no_gl_warnings(caplog)[0].getMessage()
    assert "install libegl1 (EGL) or libosmesa6 (OSMesa)" in message and "MUJOCO_GL=off" in message


def test_mujoco_gl_off_turns_videos_off_with_one_info_line(maze_trainer, tmp_path, caplog, fresh_gl):
    """Videos off as asked: said once, at INFO, and no warning (nothing is broken)."""
    trainer, _, _ = maze_trainer
    fresh_gl.setenv("MUJOCO_GL", "off")
    caplog.set_level(logging.INFO, logger="crl")
    qs = np.tile(np.asarray(trainer.eval_env.sys.init_q), (3, 1))
    assert render.render_video(trainer.eval_env, qs, tmp_path / "a.mp4") is None
    assert render.render_video(trainer.eval_env, qs, tmp_path / "b.mp4") is None
    infos = no_gl_warnings(caplog, logging.INFO)
    assert len(infos) == 1 and "MUJOCO_GL=off turns them off" in infos[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    "value,missing,expected",
    [
        ("osmesa", "OSMesa", "MUJOCO_GL=osmesa but libOSMesa is not installed: install libosmesa6, or set"),
        ("egl", "EGL", "MUJOCO_GL=egl but libEGL is not installed: install libegl1, or set MUJOCO_GL=osmesa"),
        ("Vulkan", None, "MUJOCO_GL=vulkan is not a backend MuJoCo knows: set MUJOCO_GL=egl or osmesa"),
    ],
)
def test_an_unusable_mujoco_gl_is_one_warning_naming_the_fix(value, missing, expected, fresh_gl):
    """Each of these would crash `import mujoco` (render.py hides them during its import)."""
    fresh_gl.setenv("MUJOCO_GL", value)
    fresh_gl.setattr(render, "_library_loads", lambda stem: stem != missing)
    assert render._mujoco_gl_problem(render._requested_gl()) is not None
    assert render.gl_backend() is None
    level, message = render.no_gl_message()
    assert level == logging.WARNING and expected in message and "MUJOCO_GL=off skips videos" in message
    # The same value with its library present imports cleanly (an unknown value never does).
    fresh_gl.setattr(render, "_library_loads", lambda stem: True)
    assert (render._mujoco_gl_problem(render._requested_gl()) is None) == (missing is not None)


def test_visualize_skips_the_heatmap_off_mazes_and_survives_wandb_failures(tmp_path, caplog):
    trainer = train.build(train.Config(**{**TINY, "env_id": "reacher"}))
    actor_params, critic_params = train.init_params(trainer.nets, jax.random.PRNGKey(0), trainer.derived)

    class BrokenRun:
        def log(self, *args, **kwargs):
            raise RuntimeError("wandb is down")

    caplog.set_level(logging.WARNING, logger="crl")
    paths = render.visualize(
        trainer, actor_params, critic_params, tmp_path, jax.random.PRNGKey(0), BrokenRun(), video=False
    )
    assert [p.name for p in paths] == ["render_0.html"]
    assert any("wandb is down" in r.getMessage() for r in caplog.records)


# -- rollouts end with their episode ----------------------------------------------------


def test_rollouts_end_with_the_episodes_own_last_state(maze_trainer):
    """brax's auto-reset would swap the state at the episode's end for a fresh reset, and
    the last frame would jump back to the start pose. The rollout must stop at the first
    done, its last frame the state a plain step-by-step rollout reaches."""
    trainer, actor_params, critic_params = maze_trainer
    episode = trainer.config.episode_length
    key = jax.random.PRNGKey(5)
    rollouts = render.policy_rollouts(trainer, actor_params, critic_params, key, 2, episode + 5)
    assert rollouts.lengths.tolist() == [episode, episode]  # 5 steps past the episode are not shown

    # Rollout 0 by hand: the same reset key, the deterministic eval actor, no wrappers.
    assert trainer.config.eval_actor == 0
    env, policy = trainer.eval_env, trainer.policy(0)
    state = env.reset(jax.random.split(jax.random.split(key)[0], 2)[0])
    start_q = np.asarray(state.pipeline_state.q)
    step = jax.jit(env.step)
    for _ in range(episode):
        state = step(state, policy(actor_params, critic_params, state.obs[None], None)[0])

    last_q = rollouts.states.q[episode - 1, 0]
    np.testing.assert_allclose(last_q, np.asarray(state.pipeline_state.q), rtol=1e-5, atol=1e-6)
    assert np.abs(last_q - start_q).max() > 1e-4  # not the reset pose
    assert np.abs(last_q - rollouts.states.q[0, 0]).max() > 1e-4  # nor the first frame


# -- a missing OpenGL, from a fresh process --------------------------------------------

OSMESA_HERE = render._library_loads("OSMesa")
# In a fresh Python: the imports in the given order, then a tiny visualize (HTML + video).
IMPORT_THEN_VISUALIZE = """
import json, logging, sys
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
for name in sys.argv[3].split(","):
    __import__(name)
import jax, render, train
trainer = train.build(train.Config(**json.loads(sys.argv[1])))
actor, critic = train.init_params(trainer.nets, jax.random.PRNGKey(0), trainer.derived)
paths = render.visualize(trainer, actor, critic, sys.argv[2], jax.random.PRNGKey(0), heatmap=False)
print("WROTE", *sorted(p.name for p in paths))
"""


def run_under_mujoco_gl(value: str, code: str, *args: str) -> subprocess.CompletedProcess:
    # Without PYOPENGL_PLATFORM: mujoco sets it on importing a GL context (as an earlier
    # in-process video does), and a mismatching value turns the crash into an ImportError
    # that mujoco catches, which would hide what is tested here.
    env = {k: v for k, v in os.environ.items() if k != "PYOPENGL_PLATFORM"}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=Path(__file__).resolve().parents[1],
        env={**env, "MUJOCO_GL": value},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "first",
    [
        "render",
        "train",
    ],
)
def test_mujoco_gl_osmesa_without_libosmesa_is_one_warning_not_a_crash(tmp_path, first):
    config = {**test_train.TINY, "vis_length": VIS_LENGTH}
    result = run_under_mujoco_gl("osmesa", IMPORT_THEN_VISUALIZE, json.dumps(config), str(tmp_path), first)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "WROTE" in result.stdout and "render_0.html" in result.stdout, result.stdout
    messages = [line for line in result.stderr.splitlines() if "no MP4 videos" in line]
    if OSMESA_HERE:  # the library is there: a video, or one warning saying what failed
        assert "render_0.mp4" in result.stdout or len(messages) == 1, result.stderr[-3000:]
    else:
        assert len(messages) == 1, result.stderr[-3000:]
        assert messages[0].startswith("WARNING crl ") and "install libosmesa6" in messages[0]
        assert "render_0.mp4" not in result.stdout


@pytest.mark.skipif(OSMESA_HERE, reason="control for a machine without libOSMesa; this one has it")
def test_control_plain_brax_import_crashes_under_mujoco_gl_osmesa_without_libosmesa():
    """What render.py guards against: PyOpenGL's OSMesa platform fails inside mujoco's import
    with an AttributeError, which mujoco does not catch."""
    result = run_under_mujoco_gl("osmesa", "import brax")
    assert result.returncode != 0 and "AttributeError" in result.stderr, result.stderr[-3000:]


def test_cli_makes_the_files_from_a_checkpoint(maze_trainer, tmp_path, monkeypatch):
    """evaluation.py relies only on train.load_checkpoint -> (config, payload); the real
    train -> checkpoint -> evaluation.py chain is tested in test_train.py."""
    trainer, actor_params, critic_params = maze_trainer
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints" / "ckpt_2").mkdir(parents=True)
    (run_dir / "config.json").write_text("{}")
    payload = {"actor_params": actor_params, "critic_params": critic_params, "epoch": 2}
    loaded = []
    monkeypatch.setattr(
        train, "load_checkpoint", lambda path: loaded.append(path) or (trainer.config, payload)
    )

    evaluation.main([str(run_dir / "checkpoints" / "ckpt_2"), "--no_evaluate", "--heatmap", "--html"])
    assert loaded == [str(run_dir / "checkpoints" / "ckpt_2")]
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoints", "config.json", "qvalue_heatmap.png", "render_0.html"
    ]  # fmt: skip

    out = tmp_path / "out"
    evaluation.main([str(run_dir), "--no_evaluate", "--heatmap", "--out_dir", str(out)])
    assert [p.name for p in out.iterdir()] == ["qvalue_heatmap.png"]


# -- plot.py -----------------------------------------------------------------------


def fake_run(root: Path, name: str, seed: int, depth: int, scale: float, epochs: int = 5) -> Path:
    run = root / name
    run.mkdir(parents=True)
    config = {"env_id": "ant", "seed": seed, "critic_depth": depth, "actor_depth": depth, "run_root": "x"}
    (run / "config.json").write_text(json.dumps(config))
    records = [
        {"epoch": e, "training/envsteps": 1000 * e, "eval/episode_success": scale * e + seed}
        for e in range(1, epochs + 1)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


def test_plot_groups_seeds_and_draws_a_png(tmp_path):
    runs = [
        fake_run(tmp_path, "d4_s0", 0, 4, 1.0),
        fake_run(tmp_path, "d4_s1", 1, 4, 1.0, epochs=4),  # still running: cuts the curve at 4
        fake_run(tmp_path, "d64_s0", 0, 64, 10.0),
    ]
    groups = plot.group_runs([plot.read_run(r) for r in runs])
    assert [[r.path.name for r in g] for g in groups] == [["d4_s0", "d4_s1"], ["d64_s0"]]
    x, mean, low, high = plot.pool_seeds(groups[0], "training/envsteps", "eval/episode_success")
    np.testing.assert_allclose(x, [1000, 2000, 3000, 4000])
    np.testing.assert_allclose(mean, [1.5, 2.5, 3.5, 4.5])
    np.testing.assert_allclose(low, [1, 2, 3, 4])
    np.testing.assert_allclose(high, [2, 3, 4, 5])
    assert plot.labels(groups, []) == ["actor_depth=4, critic_depth=4", "actor_depth=64, critic_depth=64"]
    assert plot.labels(groups, ["critic_depth"]) == ["critic_depth=4", "critic_depth=64"]

    out = plot.main([*map(str, runs), "--out", str(tmp_path / "curves.png"), "--label_by", "critic_depth"])
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (800, 500)


def test_plot_errors_clearly(tmp_path):
    empty = tmp_path / "not_a_run"
    empty.mkdir()
    with pytest.raises(SystemExit, match="not_a_run: no metrics.jsonl"):
        plot.main([str(empty), "--out", str(tmp_path / "x.png")])
    with pytest.raises(SystemExit, match="no run directories given"):
        plot.main(["--out", str(tmp_path / "x.png")])
    run = fake_run(tmp_path, "r", 0, 4, 1.0)
    with pytest.raises(SystemExit, match="no record has both 'training/envsteps' and 'eval/nope'"):
        plot.main([str(run), "--metric", "eval/nope", "--out", str(tmp_path / "x.png")])
    assert not (tmp_path / "x.png").exists()
