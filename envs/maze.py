"""Maze layouts (plain data) and the one builder that turns them into walls.

A layout is a tuple of equal-length strings, one per grid row:

* `#` wall block, `R` start cell, `G` goal candidate, `.` free cell that is
  never a goal, `B` ball start candidate (ant-ball mazes; otherwise free).
* Cell (i, j) is row i (first string = row 0), column j. Its centre is the
  world point x = i * cell_size, y = j * cell_size: rows advance along +x,
  columns along +y, so a printed grid is the maze seen with +x pointing down.
* Every `#` becomes one static box on the world body, filling its cell in x
  and y and `cell_size / 2` high, so neighbouring blocks tile with no gaps.

The grids are shared by every robot: ant mazes use cell size 4.0, humanoid
mazes 2.0, point-mass mazes 4.0. Helpers here are robot-agnostic: `add_walls`
(and `limit_contact_pairs`, which keeps big mazes as fast as small ones) edit
an MJCF ElementTree; `start_xy`, `goal_xys` and `cell_centers` give world
coordinates; `forward_path` and `distance_pairs` serve the stitching
(`_gen_`) variant; `MazeTask` gives a maze env its layout, start, goal cells
and uniform goal draw. `ANT_LAYOUTS` are the paper repo's ant grids,
`JG_LAYOUTS` the grids of JaxGCRL and of both repos' humanoid mazes,
`BALL_LAYOUTS` JaxGCRL's ant-ball grids.
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET

import jax
import numpy as np
from jax import numpy as jp

Layout = tuple[str, ...]

WALL, START, GOAL, FREE, BALL = "#", "R", "G", ".", "B"
_SYMBOLS = frozenset(WALL + START + GOAL + FREE + BALL)
WALL_RGBA = "0.7 0.5 0.3 1"

# -- layouts ----------------------------------------------------------------------------
# The paper repo's ant-maze grids. "Train" layouts make every free cell but R a goal;
# `_eval` layouts keep only the far goals; `_single_eval` keeps the farthest one;
# `_eval_<k>f...` keep the cells k steps along the corridor from R.

ANT_LAYOUTS: dict[str, Layout] = {
    "u_maze": (
        "#####",
        "#RGG#",
        "###G#",
        "#GGG#",
        "#####",
    ),
    "u_maze_eval": (
        "#####",
        "#R..#",
        "###.#",
        "#GGG#",
        "#####",
    ),
    "u_maze_single_eval": (
        "#####",
        "#R..#",
        "###.#",
        "#G..#",
        "#####",
    ),
    "u_maze_eval_1f2f3f": (
        "#####",
        "#RGG#",
        "###G#",
        "#...#",
        "#####",
    ),
    "u_maze_eval_1f2f3f4f": (
        "#####",
        "#RGG#",
        "###G#",
        "#..G#",
        "#####",
    ),
    "u_maze_eval_1f2f3f4f5f": (
        "#####",
        "#RGG#",
        "###G#",
        "#.GG#",
        "#####",
    ),
    "u_maze_eval_5f6f": (
        "#####",
        "#R..#",
        "###.#",
        "#GG.#",
        "#####",
    ),
    "u2_maze": (
        "######",
        "#RGGG#",
        "####G#",
        "#GGGG#",
        "######",
    ),
    "u2_maze_eval": (
        "######",
        "#R...#",
        "####.#",
        "#GGGG#",
        "######",
    ),
    "u3_maze": (
        "#######",
        "#RGGGG#",
        "#####G#",
        "#GGGGG#",
        "#######",
    ),
    "u3_maze_eval": (
        "#######",
        "#R....#",
        "#####.#",
        "#GGGGG#",
        "#######",
    ),
    "u3_maze_single_eval": (
        "#######",
        "#R....#",
        "#####.#",
        "#G....#",
        "#######",
    ),
    "u4_maze": (
        "#####",
        "#GGG#",
        "#R#G#",
        "###G#",
        "#G#G#",
        "#GGG#",
        "#####",
    ),
    "u4_maze_eval": (
        "#####",
        "#...#",
        "#R#.#",
        "###.#",
        "#G#.#",
        "#GGG#",
        "#####",
    ),
    "u5_maze": (
        "########",
        "#GGGGGG#",
        "#R####G#",
        "######G#",
        "#G####G#",
        "#GGGGGG#",
        "########",
    ),
    "u5_maze_eval": (
        "########",
        "#......#",
        "#R####.#",
        "######.#",
        "#G####G#",
        "#GGGGGG#",
        "########",
    ),
    "u5_maze_single_eval": (
        "########",
        "#......#",
        "#R####.#",
        "######.#",
        "#G####.#",
        "#......#",
        "########",
    ),
    "u6_maze": (
        "#######",
        "#GGGGG#",
        "#R###G#",
        "#####G#",
        "#G###G#",
        "#GGGGG#",
        "#######",
    ),
    "u6_maze_eval": (
        "#######",
        "#.....#",
        "#R###.#",
        "#####.#",
        "#G###G#",
        "#GGGGG#",
        "#######",
    ),
    "u7_maze": (
        "######",
        "#GGGG#",
        "#R##G#",
        "####G#",
        "#G##G#",
        "#GGGG#",
        "######",
    ),
    "u7_maze_eval": (
        "######",
        "#....#",
        "#R##.#",
        "####.#",
        "#G##G#",
        "#GGGG#",
        "######",
    ),
    "big_maze": (
        "########",
        "#RG##GG#",
        "#GG#GGG#",
        "##GGG###",
        "#GG#GGG#",
        "#G#GG#G#",
        "#GGG#GG#",
        "########",
    ),
    # The paper repo's ant version: cell (2, 5) is not a goal, unlike everyone
    # else's big_maze_eval (JG_LAYOUTS below).
    "big_maze_eval": (
        "########",
        "#R.##GG#",
        "#..#..G#",
        "##...###",
        "#..#...#",
        "#.#G.#G#",
        "#.GG#GG#",
        "########",
    ),
    "hardest_maze": (
        "############",
        "#RGGG#GGGGG#",
        "#G##G#G#G#G#",
        "#GGGGGG#GGG#",
        "#G####G###G#",
        "#GG#G#GGGGG#",
        "##G#G#G#G###",
        "#GG#GGG#GGG#",
        "############",
    ),
}

# The grids of JaxGCRL (its ant, humanoid and point-mass mazes) and of the paper
# repo's humanoid mazes: the ant grids, except big_maze_eval where (2, 5) is a goal.
JG_LAYOUTS: dict[str, Layout] = {
    name: ANT_LAYOUTS[name] for name in ("u_maze", "u_maze_eval", "big_maze", "hardest_maze")
}
JG_LAYOUTS["big_maze_eval"] = (
    "########",
    "#R.##GG#",
    "#..#.GG#",
    "##...###",
    "#..#...#",
    "#.#G.#G#",
    "#.GG#GG#",
    "########",
)

# JaxGCRL's ant-ball grids: B marks the cells the ball can start on.
BALL_LAYOUTS: dict[str, Layout] = {
    "u_maze": (
        "#####",
        "#RGB#",
        "###G#",
        "#GGG#",
        "#####",
    ),
    "big_maze": (
        "########",
        "#R.##GG#",
        "#..#GGG#",
        "##BGB###",
        "#GG#GGG#",
        "#G#GG#G#",
        "#GGG#GG#",
        "########",
    ),
}

# Single-corridor versions for the stitching variant: R and G mark the two ends.
GEN_LAYOUTS: dict[str, Layout] = {
    "u_maze": (
        "#####",
        "#R..#",
        "###.#",
        "#G..#",
        "#####",
    ),
    "u2_maze": (
        "######",
        "#R...#",
        "####.#",
        "#G...#",
        "######",
    ),
    "u3_maze": (
        "#######",
        "#R....#",
        "#####.#",
        "#G....#",
        "#######",
    ),
    "u4_maze": (
        "#####",
        "#...#",
        "#R#.#",
        "###.#",
        "#G#.#",
        "#...#",
        "#####",
    ),
    "u5_maze": (
        "########",
        "#......#",
        "#R####.#",
        "######.#",
        "#G####.#",
        "#......#",
        "########",
    ),
}


# -- grid queries -----------------------------------------------------------------------


def validate(layout: Layout) -> None:
    """Raises ValueError unless the grid is rectangular, known-symbol, wall-bordered."""
    if not layout or any(len(row) != len(layout[0]) for row in layout):
        raise ValueError("maze layout must be a non-empty rectangle of strings")
    unknown = set("".join(layout)) - _SYMBOLS
    if unknown:
        raise ValueError(f"unknown maze symbols {sorted(unknown)}")
    border = layout[0] + layout[-1] + "".join(row[0] + row[-1] for row in layout)
    if set(border) != {WALL}:
        raise ValueError("maze layout border must be all walls")


def cells(layout: Layout, symbols: str) -> list[tuple[int, int]]:
    """(row, column) of every cell whose symbol is in `symbols`, row-major."""
    return [(i, j) for i, row in enumerate(layout) for j, c in enumerate(row) if c in symbols]


def cell_centers(layout: Layout, symbols: str, cell_size: float) -> np.ndarray:
    """World xy of those cells' centres, shape [n, 2], row-major order."""
    return cell_size * np.array(cells(layout, symbols), dtype=np.float32).reshape(-1, 2)


def start_xy(layout: Layout, cell_size: float) -> np.ndarray:
    """Centre of the layout's single R cell."""
    starts = cell_centers(layout, START, cell_size)
    if len(starts) != 1:
        raise ValueError(f"maze layout needs exactly one R cell, found {len(starts)}")
    return starts[0]


def goal_xys(layout: Layout, cell_size: float) -> np.ndarray:
    """Centres of the G cells, [n_goals, 2]; a goal is drawn uniformly among them."""
    goals = cell_centers(layout, GOAL, cell_size)
    if len(goals) == 0:
        raise ValueError("maze layout has no G cell")
    return goals


def wall_boxes(layout: Layout, cell_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Centres [n, 3] and half-sizes [n, 3] of the wall boxes, one per `#`."""
    ij = np.array(cells(layout, WALL), dtype=np.float32)
    n = len(ij)
    centers = np.column_stack([cell_size * ij, np.full(n, 0.25 * cell_size)])
    half_sizes = np.tile([0.5 * cell_size, 0.5 * cell_size, 0.25 * cell_size], (n, 1))
    return centers.astype(np.float32), half_sizes.astype(np.float32)


# -- MJCF -------------------------------------------------------------------------------


def add_walls(tree: ET.ElementTree, layout: Layout, cell_size: float) -> None:
    """Appends the layout's wall boxes as geoms of the world body.

    Geoms (not bodies) so the link list, and thus q, qd and "the target is the
    last link", are unchanged. contype = conaffinity = 1: walls collide with any
    geom that has either bit set, and never with each other or the floor since
    they all belong to the world body.
    """
    validate(layout)
    worldbody = tree.getroot().find("worldbody")
    centers, half_sizes = wall_boxes(layout, cell_size)
    for (i, j), pos, size in zip(cells(layout, WALL), centers, half_sizes):
        ET.SubElement(
            worldbody,
            "geom",
            name=f"wall_{i}_{j}",
            type="box",
            pos=" ".join(f"{v:g}" for v in pos),
            size=" ".join(f"{v:g}" for v in size),
            contype="1",
            conaffinity="1",
            rgba=WALL_RGBA,
        )


def limit_contact_pairs(tree: ET.ElementTree, max_pairs: int) -> None:
    """Lets MJX collide only the `max_pairs` nearest pairs of each geom-type group.

    Sets MJX's `max_geom_pairs` custom numeric: per group of same-type pairs
    (e.g. every sphere-box pair), the pairs are ranked by the gap between
    their bounding spheres and only the nearest `max_pairs` are collided;
    plane pairs are never culled. Without it every robot geom is collided
    with every wall block on every physics step, which makes big mazes an
    order of magnitude slower. It is exact as long as `max_pairs` is at least
    the number of pairs whose bounding spheres can overlap at once: a wall
    block's bounding radius (0.75 x cell size) spans only the blocks next to
    the robot's cell, so about 3 blocks per robot geom.
    """
    root = tree.getroot()
    custom = root.find("custom")
    if custom is None:
        custom = ET.SubElement(root, "custom")
    # MJX reads this numeric as `numeric_data[id]`, not `numeric_data[adr[id]]`,
    # so it is only read correctly when it is the first numeric (id 0, adr 0).
    numeric = ET.Element("numeric", name="max_geom_pairs", data=str(int(max_pairs)))
    custom.insert(0, numeric)


# -- maze envs --------------------------------------------------------------------------


def pick_layout(layouts: dict[str, Layout], name: str, kind: str) -> Layout:
    """`layouts[name]`, or a ValueError naming the valid layouts of this `kind` of maze."""
    if name not in layouts:
        raise ValueError(f"unknown {kind} maze layout {name!r}; valid: {sorted(layouts)}")
    return layouts[name]


def registry(prefix: str, env_class, layout_names) -> dict:
    """`<prefix>_<layout>` -> constructor of `env_class` on that layout."""
    return {f"{prefix}_{name}": functools.partial(env_class, layout=name) for name in layout_names}


class MazeTask:
    """Mixin for maze envs: the layout, its start cell and a uniform goal-cell draw.

    `_set_layout` (called before the env builds its asset) stores `layout`,
    `layout_name`, `cell_size`, `start_xy` (R cell centre) and
    `goal_candidates` (G cell centres, [n, 2]); `_sample_goal` draws one of
    the latter uniformly.
    """

    def _set_layout(self, name: str, layout: Layout, cell_size: float) -> None:
        validate(layout)
        self.layout_name = name
        self.layout = layout
        self.cell_size = cell_size
        self._start_xy = start_xy(layout, cell_size)
        self._goal_xys = jp.asarray(goal_xys(layout, cell_size))

    @property
    def start_xy(self) -> np.ndarray:
        """World xy of the R cell centre."""
        return self._start_xy

    @property
    def goal_candidates(self) -> jax.Array:
        """World xy of every goal the reset can draw, [n, 2]."""
        return self._goal_xys

    def _sample_goal(self, rng: jax.Array) -> jax.Array:
        return self._goal_xys[jax.random.randint(rng, (), 0, self._goal_xys.shape[0])]


# -- stitching variant -----------------------------------------------------------------

# Neighbour order when walking a corridor: +column, +row, -column, -row.
_STEPS = ((0, 1), (1, 0), (0, -1), (-1, 0))


def forward_path(layout: Layout) -> list[tuple[int, int]]:
    """Cells from R to G along a single corridor, both ends included.

    At each cell the walk enters the first non-wall neighbour (in `_STEPS`
    order) other than the cell it came from. Raises ValueError if the walk
    dead-ends or revisits a cell before reaching G, i.e. the free cells are
    not one corridor from R to G.
    """
    validate(layout)
    starts, ends = cells(layout, START), cells(layout, GOAL)
    if len(starts) != 1 or len(ends) != 1:
        raise ValueError("a corridor layout needs exactly one R and one G")
    (path_start,), (path_end,) = starts, ends
    path, previous = [path_start], None
    while path[-1] != path_end:
        i, j = path[-1]
        options = [
            (i + di, j + dj)
            for di, dj in _STEPS
            if layout[i + di][j + dj] != WALL and (i + di, j + dj) != previous
        ]
        if not options or options[0] in path:
            raise ValueError("maze layout is not a single corridor from R to G")
        previous = path[-1]
        path.append(options[0])
    return path


def parse_gen_config(config: str) -> tuple[int, ...]:
    """'1f2f3f' -> (1, 2, 3): the start-goal distances (in cells) to train on."""
    if not re.fullmatch(r"(\d+f)+", config):
        raise ValueError(f"generalization config must look like '1f2f3f', got {config!r}")
    return tuple(int(k) for k in re.findall(r"(\d+)f", config))


def distance_pairs(
    layout: Layout, distances: tuple[int, ...], cell_size: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start xy [n, 2], goal xy [n, 2] and sampling probability [n] of the pairs.

    For each distance k, the pairs are (path[i], path[i + k]) for every valid i,
    always forward along `forward_path`. Each listed k gets the same total
    probability, split evenly over its pairs. A repeated k counts once.
    """
    path = cell_size * np.array(forward_path(layout), dtype=np.float32)
    distances = tuple(sorted(set(distances)))
    if not distances or min(distances) < 1 or max(distances) >= len(path):
        raise ValueError(f"distances {distances} must lie in 1..{len(path) - 1} for a {len(path)}-cell path")
    starts, goals, probs = [], [], []
    for k in distances:
        n = len(path) - k
        starts.append(path[:n])
        goals.append(path[k:])
        probs.append(np.full(n, 1.0 / (n * len(distances))))
    return np.concatenate(starts), np.concatenate(goals), np.concatenate(probs).astype(np.float32)
