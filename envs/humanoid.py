"""Goal-conditioned humanoid: bring the torso to a target hovering at z 1.25.

Ids: `humanoid` (open floor) and `humanoid_<layout>` mazes (`HumanoidMaze`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import jax
from brax import actuator, base
from jax import numpy as jp

from envs import maze
from envs.assets import add_target_body, load_brax_asset_tree, set_floor_size, tree_to_system
from envs.base import BRAX_MJX_OPT, GoalEnv, Physics, out_of_range

# Motor gears for the soft (spring/positional) pipelines, in actuator order:
# 350 on the 3 abdomen and 8 leg motors, 100 on the 6 arm motors (spec 6.1).
_SPRING_GEARS = (350.0,) * 11 + (100.0,) * 6


def _backends(soft_timestep: float) -> dict[str, Physics]:
    """Humanoid backends; spring and positional step at `soft_timestep`."""
    soft = Physics(n_frames=10, timestep=soft_timestep, gear=_SPRING_GEARS)
    return {
        "spring": soft,
        "positional": soft,
        "generalized": Physics(n_frames=5),  # the XML's 0.003
        "mjx": Physics(n_frames=5, opt=BRAX_MJX_OPT),
    }


_TORSO = 0  # brax link index; the target is the last link
TARGET_Z = 1.25  # height of the commanded torso position


def humanoid_tree(target_xy_range: float = 20.0, floor_size: float = 40.0) -> ET.ElementTree:
    """brax's `humanoid.xml` with the goal-conditioned changes of spec 6.1.

    * geom default contype 1 (conaffinity stays 0): every body part touches
      the floor and walls (conaffinity 1), still no self-collision;
    * floor `floor_size` x `floor_size` (40 for `humanoid`, 100 for mazes);
    * a non-colliding target sphere (r 0.5, mass 1) at z 1.25 on x/y slides
      of range +-`target_xy_range`, appended as the last body.

    Maze walls (world geoms) can be appended afterwards: they add no link,
    so the target stays the last one.
    """
    tree = load_brax_asset_tree("humanoid.xml")
    tree.getroot().find("default/geom").set("contype", "1")
    set_floor_size(tree, floor_size)
    # The file has no init_qpos: this makes one from the default pose (torso at z 1.4).
    add_target_body(tree, target_xy_range, radius=0.5, z=TARGET_Z)
    return tree


class Humanoid(GoalEnv):
    """17-motor humanoid that must bring its torso to a 3-D target (`humanoid`).

    Asset: `humanoid_tree()` (brax's humanoid.xml, geoms collide with the
    floor, floor 40x40, target on slides of range +-20 as the last body).
    q = body (24) + target (2); qd = body (23) + target (2); 12 links.

    Observation (271), brax's own humanoid observation on the 12-link model
    with current positions kept, then the goal:
    q (26, target xy included) | qd (25) | per link, inertia about the
    whole-body COM in world axes (9) and mass (1) (120) | per link, COM
    velocity x mass / total mass (3) and angular velocity (3) (72) |
    actuator generalized forces of this step's rescaled action, zero at reset
    (25) | goal (target x, target y, 1.25). State = first 268 entries, the
    goal is the torso position `state[0:3]`. The target link's unit mass is
    part of the COM features and of `distance_from_origin` (the COM norm), as
    in the reference. On spring/positional, the COM features use unit
    inertia, as brax does (spring_inertia_scale 1).

    Action: [-1, 1] mapped affinely onto the motors' ctrlrange [-0.4, 0.4].
    Reset: default pose (torso at z 1.4), zero velocity, no noise; target at
    distance U(1, 5) and angle U(0, 2*pi) from the origin.
    Success: 3-D torso-goal distance < 0.5 (so the torso must also be near
    z 1.25); success_easy < 2.0. Done = 1 when the torso z leaves [1.0, 2.0].
    Reward `-dist` (logged only).

    Backends (`backend=`, table `_backends`) and timesteps (`timestep=`
    overrides any):

    * "spring" (default; both reference repos): n_frames 10, gears 350
      (abdomen, legs) / 100 (arms). Default timestep **0.003** (env dt 0.03):
      the paper's Table 1 "Humanoid" ran this, because its brax 0.10.1 stack
      ignored the intended `opt.timestep` 0.0015 on spring (spec 12.3), so
      this default keeps results comparable with that table.
      `timestep=0.0015` (env dt 0.015) gives the intended setting, which the
      reference humanoid mazes did run.
    * "positional": as spring.
    * "generalized": XML timestep 0.003, n_frames 5, XML gears.
    * "mjx": as generalized plus Newton, 1 iteration, 4 line-search
      iterations, Euler damping off (brax's humanoid settings).

    Speed on the shared 2-core dev CPU (128 vmapped envs, 62-step scan,
    uniform random actions): spring ~4.9k env steps/s at either timestep (the
    cost is per substep and n_frames stays 10); ~40 s to compile reset +
    rollout. Spring at 0.003 stayed finite over 1000 bang-bang steps x 32
    envs (the spec had only checked 20 steps).

    `tree=` replaces the asset (used by `HumanoidMaze`).
    """

    obs_dim = 268
    goal_start = 0
    goal_end = 3
    success_radius = 0.5
    success_easy_radius = 2.0
    healthy_z_range = (1.0, 2.0)
    # Spring/positional at 0.003: paper Table 1 Humanoid (spec 12.3).
    backends = _backends(0.003)

    def __init__(self, backend: str = "spring", tree: ET.ElementTree | None = None, **kwargs):
        sys = tree_to_system(humanoid_tree() if tree is None else tree)
        super().__init__(sys=sys, backend=backend, **kwargs)

    # -- reset ------------------------------------------------------------------

    def _sample_goal(self, rng: jax.Array) -> jax.Array:
        rng_d, rng_a = jax.random.split(rng)
        distance = jax.random.uniform(rng_d, minval=1.0, maxval=5.0)
        angle = 2 * jp.pi * jax.random.uniform(rng_a)
        return distance * jp.array([jp.cos(angle), jp.sin(angle)])

    def _initial_q_qd(self, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
        q = self.sys.init_q.at[-2:].set(self._sample_goal(rng))
        return q, jp.zeros(self.sys.qd_size())

    # -- observation, metrics, termination ---------------------------------------

    def _ctrl(self, action: jax.Array) -> jax.Array:
        low, high = self.sys.actuator.ctrl_range[:, 0], self.sys.actuator.ctrl_range[:, 1]
        return low + (action + 1) * (high - low) * 0.5

    def _com(self, pipeline_state: base.State):
        """Whole-body COM, the inertia used for the COM features, total mass, link COM frames."""
        inertia = self.sys.link.inertia
        if self.backend in ("spring", "positional"):
            # Soft pipelines store rescaled inertias; brax's humanoid observes
            # the same transformed values.
            diag = jax.vmap(jp.diagonal)(inertia.i) ** (1 - self.sys.spring_inertia_scale)
            inertia = inertia.replace(
                i=jax.vmap(jp.diag)(diag),
                mass=inertia.mass ** (1 - self.sys.spring_mass_scale),
            )
        mass_sum = jp.sum(inertia.mass)
        x_i = pipeline_state.x.vmap().do(inertia.transform)
        com = jp.sum(inertia.mass[:, None] * x_i.pos, axis=0) / mass_sum
        return com, inertia, mass_sum, x_i

    def _step_obs(self, pipeline_state: base.State, ctrl: jax.Array) -> jax.Array:
        com, inertia, mass_sum, x_i = self._com(pipeline_state)
        cinr = x_i.replace(pos=x_i.pos - com).vmap().do(inertia)
        com_inertia = jp.hstack([cinr.i.reshape((cinr.i.shape[0], -1)), inertia.mass[:, None]])
        xd_i = base.Transform.create(pos=x_i.pos - pipeline_state.x.pos).vmap().do(pipeline_state.xd)
        com_velocity = jp.hstack([inertia.mass[:, None] * xd_i.vel / mass_sum, xd_i.ang])
        qfrc_actuator = actuator.to_tau(self.sys, ctrl, pipeline_state.q, pipeline_state.qd)
        # The target's z is fixed by definition; its link can sag on spring.
        goal = jp.append(pipeline_state.x.pos[-1, :2], TARGET_Z)
        return jp.concatenate(
            [
                pipeline_state.q,
                pipeline_state.qd,
                com_inertia.ravel(),
                com_velocity.ravel(),
                qfrc_actuator,
                goal,
            ]
        )

    def _get_obs(self, pipeline_state: base.State) -> jax.Array:
        return self._step_obs(pipeline_state, jp.zeros(self.sys.act_size()))

    def _metrics(self, pipeline_state: base.State, obs: jax.Array) -> dict[str, jax.Array]:
        metrics = super()._metrics(pipeline_state, obs)
        com, *_ = self._com(pipeline_state)
        metrics["distance_from_origin"] = jp.linalg.norm(com)
        return metrics

    def _done(self, pipeline_state: base.State) -> jax.Array:
        return out_of_range(pipeline_state.x.pos[_TORSO, 2], self.healthy_z_range)


# -- mazes --------------------------------------------------------------------------

MAZE_CELL_SIZE = 2.0
MAZE_LAYOUTS = ("u_maze", "u_maze_eval", "big_maze", "big_maze_eval", "hardest_maze")
# Wall pairs MJX collides per geom-type group: the largest group is the 12
# capsules, each near at most 3 wall blocks at once (`maze.limit_contact_pairs`).
MAX_WALL_PAIRS = 36


def humanoid_maze_tree(layout: maze.Layout) -> ET.ElementTree:
    """`humanoid_tree` on a 100 x 100 floor, target slides +-100, plus the walls.

    Walls: one box per `#`, cell size 2.0, 1.0 high (`envs.maze`); the
    humanoid's geoms (contype 1) collide with them.
    """
    tree = humanoid_tree(target_xy_range=100.0, floor_size=100.0)
    maze.add_walls(tree, layout, MAZE_CELL_SIZE)
    maze.limit_contact_pairs(tree, MAX_WALL_PAIRS)
    return tree


class HumanoidMaze(maze.MazeTask, Humanoid):
    """Humanoid that must reach a goal cell of a maze (`humanoid_<layout>`).

    Observation, success (3-D, goal z 1.25), termination and actions as
    `humanoid`. Layouts (`maze.JG_LAYOUTS`, which are also the paper repo's
    humanoid grids): u_maze, u_maze_eval, big_maze, big_maze_eval,
    hardest_maze. Asset: `humanoid_maze_tree`.

    Reset: default pose with the torso xy exactly on the R cell centre
    ((2, 2) in every layout), zero velocity; target = centre of a uniformly
    drawn G cell.

    Timestep: spring 0.0015 x 10 (env dt 0.015), what the paper's humanoid
    mazes ran (spec 12.3); `timestep=` overrides it.

    Speed (dev CPU, 128 envs, 62-step scan, random actions): u_maze ~0.7-1.0k,
    big_maze ~0.65k env steps/s, ~50 s to compile. Wall contacts dominate:
    without the pair limit (`MAX_WALL_PAIRS`, exact by the bound above) u_maze
    ran at 178 env steps/s; a limit of 8 gave 2.3k but can drop contacts when
    the body lies along a wall. Finite over 1000 bang-bang steps x 32 envs.
    """

    backends = _backends(0.0015)

    def __init__(self, layout: str = "u_maze", **kwargs):
        grid = maze.pick_layout({name: maze.JG_LAYOUTS[name] for name in MAZE_LAYOUTS}, layout, "humanoid")
        self._set_layout(layout, grid, MAZE_CELL_SIZE)
        super().__init__(tree=humanoid_maze_tree(grid), **kwargs)

    def _initial_q_qd(self, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
        q, qd = super()._initial_q_qd(rng)
        return q.at[0:2].set(self._start_xy), qd


def maze_registry() -> dict:
    """Env id -> constructor for every humanoid maze id."""
    return maze.registry("humanoid", HumanoidMaze, MAZE_LAYOUTS)
