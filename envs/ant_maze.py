"""Ant mazes (`ant_<layout>`) and their stitching variant (`ant_<layout>_gen_<cfg>`)."""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET

import jax
import numpy as np
from jax import numpy as jp

from envs import maze
from envs.ant import Ant
from envs.assets import (
    add_target_body,
    load_brax_asset_tree,
    set_floor_size,
    set_geom_attributes,
    set_init_qpos,
)

CELL_SIZE = 4.0
TARGET_RANGE = 100.0
FLOOR_HALF_EXTENT = 100.0
# Wall pairs collided per group (sphere-box: torso + 4 feet; capsule-box: 4
# upper legs): up to 3 blocks near each of 5 geoms (`maze.limit_contact_pairs`).
MAX_WALL_PAIRS = 16

# Geoms given conaffinity 1 so that they touch the walls (contype 1): the torso,
# the four fixed upper-leg capsules and the four feet.
_WALL_TOUCHING_GEOMS = (
    "torso_geom",
    *(f"aux_{k}_geom" for k in range(1, 5)),
    "left_foot_geom",
    "right_foot_geom",
    "third_foot_geom",
    "fourth_foot_geom",
)

# The paper's stitching experiment trains on U-Maze pairs at most 3 cells apart;
# the other corridors and distances are registered for the same study.
GEN_CONFIGS = {
    "u_maze": ("1f", "1f2f", "1f2f3f", "1f2f3f4f", "1f2f3f4f5f"),
    "u2_maze": ("1f2f3f",),
    "u3_maze": ("1f2f3f",),
    "u4_maze": ("1f2f3f",),
    "u5_maze": ("1f2f3f",),
}


def ant_maze_tree(layout: maze.Layout, start_xy, cell_size: float = CELL_SIZE) -> ET.ElementTree:
    """brax's `ant.xml` turned into a maze: wall contacts, torso at `start_xy`, target, walls.

    The torso xy in `init_qpos` is the start cell, so `sys.init_q` is a valid
    start and the reset noise applies around it. Walls are appended after the
    target body; being geoms they leave the target the last link.
    """
    tree = load_brax_asset_tree("ant.xml")
    set_geom_attributes(tree, _WALL_TOUCHING_GEOMS, conaffinity="1")
    set_floor_size(tree, FLOOR_HALF_EXTENT)
    set_init_qpos(tree, 0, start_xy)
    add_target_body(tree, TARGET_RANGE)
    maze.add_walls(tree, layout, cell_size)
    maze.limit_contact_pairs(tree, MAX_WALL_PAIRS)
    return tree


class AntMaze(maze.MazeTask, Ant):
    """Ant that must bring its torso to a goal cell of a maze (`ant_<layout>`).

    Robot, observation (31 = q_ant 15 | qd_ant 14 | target xy), obs_dim 29,
    goal = torso xy [0, 2), success < 0.5, success_easy < 2.0, the
    `distance_from_origin` metric and termination (torso z outside [0.2, 1.0])
    are the `ant` ones. Asset changes (`ant_maze_tree`): conaffinity 1 on the
    torso, the upper-leg capsules and the feet so they collide with the walls;
    floor 100 x 100; target slides +-100; one wall box per `#` (cell size 4.0,
    height 2.0; `envs.maze`).

    Layouts: `maze.ANT_LAYOUTS`, the paper repo's grids. For `big_maze_eval`
    that is the paper repo's own grid (9 goals), which differs from JaxGCRL's
    and the humanoid maze's in one cell; the ant mazes are the paper's tasks,
    so its grid wins here.

    Reset (the paper repo's behaviour): the torso starts at the R cell centre
    plus the ant's U(-0.1, 0.1) noise on every q entry (JaxGCRL instead puts it
    on the R cell exactly); qd = 0.1 * N(0, 1); the goal is the centre of a G
    cell drawn uniformly (no noise). Eval layouts are ordinary layouts with
    fewer G cells, so every eval form samples the same way.

    Backends and timing as `ant` (default spring, 0.005 x 10); `timestep=`
    overrides the physics timestep.

    Contacts: as in the reference, the conaffinity change also makes the feet
    collide with the torso, the upper legs and each other. MJX is told to
    collide only the 16 nearest wall pairs per geom-type group
    (`maze.limit_contact_pairs`), which drops only pairs that cannot touch,
    so the step cost no longer grows with the number of wall blocks. The
    capsule-box (upper leg vs wall) pairs still dominate the cost: on the
    2-core dev CPU (128 envs, 62-step scan, random actions) ant mazes run at
    1.0k-1.3k env steps/s, about a tenth of `ant`, hardest_maze as fast as
    u_maze.
    """

    def __init__(
        self,
        layout: str = "u_maze",
        backend: str = "spring",
        timestep: float | None = None,
        **kwargs,
    ):
        self._set_layout(layout, self._layout_grid(layout), CELL_SIZE)
        tree = ant_maze_tree(self.layout, self.start_xy)
        super().__init__(backend=backend, timestep=timestep, tree=tree, **kwargs)

    @staticmethod
    def _layout_grid(layout: str) -> maze.Layout:
        return maze.pick_layout(maze.ANT_LAYOUTS, layout, "ant")


class AntMazeGeneralization(AntMaze):
    """Stitching variant (`ant_<layout>_gen_<cfg>`): short start-goal pairs on one corridor.

    Layout: a corridor of `maze.GEN_LAYOUTS` (u_maze, u2_maze .. u5_maze).
    `config` such as "1f2f3f" lists start-goal distances k in cells; a pair is
    (path[i], path[i + k]) along the R-to-G corridor, always forward. Reset
    draws k uniformly among the listed distances, then a pair uniformly among
    that k's pairs, and puts the torso xy exactly on the start cell centre
    (the ant's noise on every other q entry) and the target on the goal cell
    centre. Everything else is `AntMaze`.

    Choice: any k from 1 to path length - 1 is accepted (the paper repo
    normalises weights over k = 1..5 only, so larger k there get no weight);
    an impossible k raises instead of producing an all-zero distribution.
    Paper Fig. 6 pairs `ant_u_maze_gen_1f2f3f` (training) with
    `ant_u_maze_eval` (evaluation).
    """

    def __init__(self, layout: str = "u_maze", config: str = "1f2f3f", **kwargs):
        self.config = config
        super().__init__(layout=layout, **kwargs)
        starts, goals, probs = maze.distance_pairs(self.layout, maze.parse_gen_config(config), CELL_SIZE)
        self._pair_starts, self._pair_goals = jp.asarray(starts), jp.asarray(goals)
        self._pair_logits = jp.log(jp.asarray(probs))
        self._goal_xys = jp.asarray(np.unique(goals, axis=0))

    @staticmethod
    def _layout_grid(layout: str) -> maze.Layout:
        return maze.pick_layout(maze.GEN_LAYOUTS, layout, "generalization")

    def _initial_q_qd(self, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
        rng_ant, rng_pair = jax.random.split(rng)
        q, qd = super()._initial_q_qd(rng_ant)
        pair = jax.random.categorical(rng_pair, self._pair_logits)
        q = q.at[0:2].set(self._pair_starts[pair])
        return q.at[-2:].set(self._pair_goals[pair]), qd


def registry() -> dict:
    """Env id -> constructor for every ant maze and stitching id."""
    entries = maze.registry("ant", AntMaze, maze.ANT_LAYOUTS)
    for layout, configs in GEN_CONFIGS.items():
        for config in configs:
            entries[f"ant_{layout}_gen_{config}"] = functools.partial(
                AntMazeGeneralization, layout=layout, config=config
            )
    return entries


__all__ = ["AntMaze", "AntMazeGeneralization", "ant_maze_tree", "registry"]
