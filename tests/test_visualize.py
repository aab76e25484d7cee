"""Looking at the policy (HTML, MP4, Q-value heat map; evaluation.py) and plot.py.

Tiny point-mass maze trainer with untrained parameters: what is checked is
that the files exist with the right content and shape, not what they show.
"""

import json
import logging
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import envs
import evaluation
import plot
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
def no_gl(monkeypatch):
    """This process behaves as if no headless OpenGL existed (MUJOCO_GL=off)."""
    monkeypatch.setenv("MUJOCO_GL", "off")
    monkeypatch.setattr(evaluation, "_warned_no_gl", False)
    evaluation.gl_backend.cache_clear()
    yield
    evaluation.gl_backend.cache_clear()


def no_gl_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "crl" and "no MP4 videos" in r.getMessage()]


# -- the value grid ---------------------------------------------------------------


def test_cell_value_grid_places_one_value_per_free_cell():
    layout = ("######", "#R.#G#", "#.B#.#", "#....#", "######")
    cell = 2.5
    # value = 100 * x + y at each centre, so every grid entry names its own cell.
    grid = evaluation.cell_value_grid(layout, cell, lambda xy: 100 * xy[:, 0] + xy[:, 1])
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
        evaluation.cell_value_grid(("#####", "#R.G#", "#####"), 1.0, lambda xy: np.zeros(len(xy) + 1))


def test_maze_geometry_matches_the_env():
    env = envs.make("simple_u_maze")
    layout, cell = evaluation.maze_geometry(env)
    assert layout == maze.JG_LAYOUTS["u_maze"] and cell == 4.0
    np.testing.assert_allclose(maze.start_xy(layout, cell), np.asarray(env.start_xy))
    goals = {tuple(g) for g in maze.goal_xys(layout, cell)}
    assert goals == {tuple(g) for g in np.asarray(env.goal_candidates)}
    assert evaluation.maze_geometry(envs.make("reacher")) is None


def test_critic_value_fn_moves_only_the_agent_position(maze_trainer):
    """At the start cell (where reset puts the point mass exactly) the value must equal
    the critic's value of the unchanged reset state; elsewhere it must differ."""
    trainer, actor_params, critic_params = maze_trainer
    d = trainer.derived
    obs = trainer.eval_env.reset(jax.random.PRNGKey(3)).obs
    value_fn = evaluation.critic_value_fn(trainer, actor_params, critic_params, obs)
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
    paths = evaluation.visualize(trainer, actor_params, critic_params, tmp_path, jax.random.PRNGKey(0))
    names = {p.name for p in paths}

    html = (tmp_path / "render_0.html").read_text()
    assert 'id="brax-viewer"' in html and "Brax visualizer" in html

    if evaluation.gl_backend() is not None:
        assert "render_0.mp4" in names
        frames, _ = imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "render_0.mp4"))
        assert frames == VIS_LENGTH
    else:
        assert "render_0.mp4" not in names and len(no_gl_warnings(caplog)) == 1

    heatmap = tmp_path / "qvalue_heatmap.png"
    assert "qvalue_heatmap.png" in names
    with Image.open(heatmap) as image:
        assert image.size == (640, 480)
    assert sorted(names) == sorted(p.name for p in tmp_path.iterdir())


def test_without_gl_video_is_skipped_with_one_warning(maze_trainer, tmp_path, caplog, no_gl):
    trainer, actor_params, critic_params = maze_trainer
    caplog.set_level(logging.WARNING, logger="crl")
    qs = np.tile(np.asarray(trainer.eval_env.sys.init_q), (3, 1))
    assert evaluation.render_video(trainer.eval_env, qs, tmp_path / "a.mp4") is None
    assert evaluation.render_video(trainer.eval_env, qs, tmp_path / "b.mp4") is None
    paths = evaluation.visualize(
        trainer, actor_params, critic_params, tmp_path, jax.random.PRNGKey(0), html=False, heatmap=False
    )
    assert paths == [] and not list(tmp_path.glob("*.mp4"))
    assert len(no_gl_warnings(caplog)) == 1


def test_visualize_skips_the_heatmap_off_mazes_and_survives_wandb_failures(tmp_path, caplog):
    trainer = train.build(train.Config(**{**TINY, "env_id": "reacher"}))
    actor_params, critic_params = train.init_params(trainer.nets, jax.random.PRNGKey(0), trainer.derived)

    class BrokenRun:
        def log(self, *args, **kwargs):
            raise RuntimeError("wandb is down")

    caplog.set_level(logging.WARNING, logger="crl")
    paths = evaluation.visualize(
        trainer, actor_params, critic_params, tmp_path, jax.random.PRNGKey(0), BrokenRun(), video=False
    )
    assert [p.name for p in paths] == ["render_0.html"]
    assert any("wandb is down" in r.getMessage() for r in caplog.records)


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
