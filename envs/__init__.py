"""Goal-conditioned environments and their registry.

`make(env_id, **kwargs)` builds an env; kwargs go to its constructor (e.g.
`backend=`, `timestep=`, `goal_distance=`). Adding an env is one entry in
`_REGISTRY`.
"""

from __future__ import annotations

from typing import Callable

from envs.ant import Ant
from envs.ant_maze import registry as _ant_maze_registry
from envs.arm import (
    ArmBinpickEasy,
    ArmBinpickHard,
    ArmGrasp,
    ArmPushEasy,
    ArmPushHard,
    ArmReach,
)
from envs.base import GoalEnv, goal_metrics
from envs.reacher import Reacher
from envs.simple_maze import registry as _simple_maze_registry

_REGISTRY: dict[str, Callable[..., GoalEnv]] = {
    "ant": Ant,
    "reacher": Reacher,
    # Mazes other than humanoid's (layouts in envs/maze.py): ant_<layout>,
    # ant_<layout>_gen_<cfg> (envs/ant_maze.py), simple_<layout> (envs/simple_maze.py).
    **_ant_maze_registry(),
    **_simple_maze_registry(),
    # Manipulation (Panda-like arm, mjx only; envs/arm.py).
    "arm_binpick_easy": ArmBinpickEasy,
    "arm_binpick_hard": ArmBinpickHard,
    "arm_grasp": ArmGrasp,
    "arm_push_easy": ArmPushEasy,
    "arm_push_hard": ArmPushHard,
    "arm_reach": ArmReach,
}

ENV_IDS: tuple[str, ...] = tuple(sorted(_REGISTRY))


def check_id(env_id: str) -> None:
    """Raises ValueError naming the valid ids if `env_id` is not registered."""
    if env_id not in _REGISTRY:
        raise ValueError(f"unknown env_id {env_id!r}; valid ids: {', '.join(ENV_IDS)}")


def make(env_id: str, **kwargs) -> GoalEnv:
    """Builds the environment registered under `env_id`."""
    check_id(env_id)
    return _REGISTRY[env_id](**kwargs)


__all__ = ["ENV_IDS", "GoalEnv", "check_id", "goal_metrics", "make"]
