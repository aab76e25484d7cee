"""plot.py on synthetic run folders (config.json + metrics.jsonl written here, as train.py writes them)."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import plot
import runs
import train


def make_run(root: Path, name: str, epochs: int = 4, scale: float = 1.0, **config) -> Path:
    """A run folder as train.py leaves it, with `epochs` records (0: killed before the first)."""
    run = root / name
    run.mkdir(parents=True)
    config = {
        "env_id": "ant", "seed": 0, "critic_depth": 4, "actor_depth": 4, "episode_length": 1000,
        "run_dir": str(run), "run_root": "runs", "exp_name": "depth4", "wandb_group": None, **config,
    }  # fmt: skip
    (run / "config.json").write_text(json.dumps(config))
    records = [
        {"epoch": e, "training/envsteps": 1000 * e, "eval/episode_success": scale * e + config["seed"]}
        for e in range(1, epochs + 1)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


def test_bookkeeping_covers_train_run_management_fields():
    # A run-management flag added to train.py must not split seeds in plot.py.
    missing = runs.run_management_fields(train.Config) - plot.BOOKKEEPING
    assert not missing, f"add to plot.BOOKKEEPING: {sorted(missing)}"
    assert plot.BOOKKEEPING <= {f for f in train.Config.__dataclass_fields__}


def test_seeds_with_their_own_run_dir_pool_into_one_curve(tmp_path):
    # As job.slurm runs them: every seed has its own --run_dir, --resume and wandb group.
    runs = [
        make_run(tmp_path, f"s{seed}", seed=seed, resume=str(tmp_path / f"s{seed}"),
                 wandb_group=f"ant_depth4_s{seed}", distributed="auto" if seed else "off")
        for seed in range(3)
    ]  # fmt: skip
    groups = plot.group_runs([plot.read_run(r) for r in runs])
    assert [[r.path.name for r in g] for g in groups] == [["s0", "s1", "s2"]]
    x, mean, low, high = plot.pool_seeds(groups[0], "training/envsteps", "eval/episode_success")
    np.testing.assert_allclose(mean, [2, 3, 4, 5])
    np.testing.assert_allclose(high - low, [2, 2, 2, 2])


def test_legend_shows_only_the_fields_that_differ(tmp_path):
    runs = [
        make_run(tmp_path, "a", critic_depth=4, actor_depth=4, batch_size=256),
        make_run(tmp_path, "b", critic_depth=64, actor_depth=64, batch_size=256, seed=1),
        make_run(tmp_path, "c", critic_depth=4, actor_depth=4, batch_size=2048),
    ]
    groups = plot.group_runs([plot.read_run(r) for r in runs])
    assert plot.labels(groups, []) == [
        "actor_depth=4, batch_size=256,\ncritic_depth=4",
        "actor_depth=64, batch_size=256,\ncritic_depth=64",
        "actor_depth=4, batch_size=2048,\ncritic_depth=4",
    ]
    assert plot.labels(groups, ["critic_depth"]) == ["critic_depth=4", "critic_depth=64", "critic_depth=4"]
    # Paths and other bookkeeping never reach the legend, and every line stays short.
    for label in plot.labels(groups, []):
        assert str(tmp_path) not in label
        assert max(map(len, label.splitlines())) <= plot.LABEL_WIDTH


def test_algorithms_are_told_apart_by_name_not_by_the_flags_only_one_has(tmp_path):
    import dataclasses

    import sac
    import td3

    def as_saved(script, **fields):
        return {**runs.described(script.Config(**fields)), "critic_depth": 4}

    made = [
        make_run(tmp_path, "crl", **as_saved(train)),
        make_run(tmp_path, "sac", **as_saved(sac)),
        make_run(tmp_path, "sac_s1", **as_saved(sac, seed=1)),
        make_run(tmp_path, "td3_d16", **{**as_saved(td3), "critic_depth": 16}),
    ]
    old = make_run(tmp_path, "old", **dataclasses.asdict(train.Config(seed=2)))  # before config.json named it
    groups = plot.group_runs([plot.read_run(r) for r in [*made, old]])
    assert [[r.path.name for r in g] for g in groups] == [["crl", "old"], ["sac", "sac_s1"], ["td3_d16"]]
    assert plot.labels(groups, []) == [
        "algorithm=crl, critic_depth=4", "algorithm=sac, critic_depth=4", "algorithm=td3, critic_depth=16",
    ]  # fmt: skip


def test_the_legend_is_not_cut_off(tmp_path):
    # Long labels (many differing fields) are drawn inside the saved image, not past its edge.
    runs = [
        make_run(tmp_path, f"r{i}", critic_depth=4 * 2**i, actor_network_width=256 * 2**i,
                 critic_network_width=256 * 2**i, batch_size=256 * 2**i, actor_lr=3e-4 * i)
        for i in range(6)
    ]  # fmt: skip
    out = plot.main([*map(str, runs), "--out", str(tmp_path / "many.png")])
    with Image.open(out) as image:
        assert image.size == (800, 500)
        pixels = np.asarray(image.convert("L"))
    # The image's outermost columns and rows stay background: nothing is clipped at the edge.
    assert pixels[:, -2:].min() == 255 and pixels[-2:, :].min() == 255


def test_episode_lengths_get_their_own_panels(tmp_path):
    runs = [
        make_run(tmp_path, "long", episode_length=1000),
        make_run(tmp_path, "long_s1", episode_length=1000, seed=1),
        make_run(tmp_path, "short", episode_length=100),
    ]
    groups = plot.group_runs([plot.read_run(r) for r in runs])
    assert plot.panels(groups) == [("episode_length=100", [1]), ("episode_length=1000", [0])]
    # The panel title names the length, so the legend does not repeat it.
    assert plot.labels(groups, [], frozenset({plot.PANEL_BY})) == ["ant", "ant"]
    out = plot.main([*map(str, runs), "--out", str(tmp_path / "panels.png")])
    with Image.open(out) as image:
        assert image.size == (1200, 500)  # two panels side by side
    same = plot.group_runs([plot.read_run(r) for r in runs[:2]])
    assert plot.panels(same) == [(None, [0])]


def test_unstarted_runs_are_skipped_with_one_warning(tmp_path, capsys):
    good = make_run(tmp_path, "good")
    no_metrics = make_run(tmp_path, "killed_compiling", epochs=0)
    (no_metrics / "metrics.jsonl").unlink()
    empty_metrics = make_run(tmp_path, "killed_prefilling", epochs=0)
    out = plot.main([str(good), str(no_metrics), str(empty_metrics), "--out", str(tmp_path / "x.png")])
    assert out.is_file()
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"warning: skipping 2 run(s) with no epoch recorded yet: {no_metrics}, {empty_metrics}"]

    with pytest.raises(SystemExit, match="none of the given runs has an epoch in its metrics.jsonl yet"):
        plot.main([str(no_metrics), str(empty_metrics), "--out", str(tmp_path / "y.png")])
    assert not (tmp_path / "y.png").exists()


def test_a_line_cut_short_by_a_kill_is_dropped(tmp_path):
    run = make_run(tmp_path, "r", epochs=3)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 4, "training/env')
    assert [r["epoch"] for r in plot.read_run(run).records] == [1, 2, 3]
    (run / "metrics.jsonl").write_text('{"epoch": 1\n{"epoch": 2}\n')
    with pytest.raises(SystemExit, match="metrics.jsonl: line 1 is not JSON"):
        plot.main([str(run), "--out", str(tmp_path / "x.png")])


def test_not_a_run_folder_is_refused_by_name(tmp_path):
    empty = tmp_path / "not_a_run"
    empty.mkdir()
    with pytest.raises(SystemExit, match="not_a_run: no metrics.jsonl"):
        plot.main([str(empty), "--out", str(tmp_path / "x.png")])
