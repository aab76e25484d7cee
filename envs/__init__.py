"""Goal-conditioned environments and their registry.

`make(env_id, **kwargs)` builds an env; kwargs go to its constructor (e.g.
`backend=`, `timestep=`, `goal_distance=`). Adding an env is one entry in
`_REGISTRY`.
"""

from __future__ import annotations

from typing import Callable, Optional

from envs.ant import Ant
from envs.ant_maze import registry as _ant_maze_registry
from envs.ant_variants import AntBall, AntPush, AntRandomStart
from envs.ant_variants import ball_maze_registry as _ant_ball_maze_registry
from envs.arm import parse_id as _arm_parse_id
from envs.arm import registry as _arm_registry
from envs.arm import use_cpu_fusion_emitters
from envs.base import GoalEnv, goal_metrics
from envs.cheetah import Cheetah
from envs.humanoid import Humanoid
from envs.humanoid import maze_registry as _humanoid_maze_registry
from envs.pusher import Pusher, Pusher2, PusherHard, PusherReacher
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
    **_arm_registry(),
    # Locomotion and pushing beyond ant/reacher: humanoid (+ its mazes), pusher
    # family, cheetah, ant variants (envs/humanoid.py, pusher.py, cheetah.py,
    # ant_variants.py).
    "humanoid": Humanoid,
    **_humanoid_maze_registry(),
    "pusher_easy": Pusher,
    "pusher_hard": PusherHard,
    "pusher_reacher": PusherReacher,
    "pusher2": Pusher2,
    "cheetah": Cheetah,
    "ant_random_start": AntRandomStart,
    "ant_ball": AntBall,
    "ant_push": AntPush,
    **_ant_ball_maze_registry(),
}

ENV_IDS: tuple[str, ...] = tuple(sorted(_REGISTRY))


# Families whose ids carry a parameter (e.g. `arm_grasp_0.1`, the cube noise): each
# parser returns the env's constructor for an id it owns, else None.
_ID_PARSERS: tuple[Callable[[str], Optional[Callable[..., GoalEnv]]], ...] = (_arm_parse_id,)


def _lookup(env_id: str) -> Optional[Callable[..., GoalEnv]]:
    if env_id in _REGISTRY:
        return _REGISTRY[env_id]
    for parse in _ID_PARSERS:
        factory = parse(env_id)
        if factory is not None:
            return factory
    return None


def check_id(env_id: str) -> None:
    """Raises ValueError naming the valid ids if `env_id` is not registered."""
    if _lookup(env_id) is None:
        raise ValueError(f"unknown env_id {env_id!r}; valid ids: {', '.join(ENV_IDS)}")


def make(env_id: str, **kwargs) -> GoalEnv:
    """Builds the environment registered under `env_id`."""
    check_id(env_id)
    return _lookup(env_id)(**kwargs)


__all__ = ["ENV_IDS", "GoalEnv", "check_id", "goal_metrics", "make", "use_cpu_fusion_emitters"]
