"""Building brax systems from the MJCF files that ship with brax.

Goal-conditioned tasks reuse brax's robots and add a few bodies (a target marker,
later balls, blocks and maze walls). Those edits are made here on an
ElementTree so that the shipped XML files stay the single source of truth.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from brax import System
from brax.io import mjcf
from etils import epath

_BRAX_ASSETS = epath.resource_path("brax") / "envs/assets"


def brax_asset_path(name: str) -> epath.Path:
    """Path of an MJCF file shipped in brax's `envs/assets` folder."""
    return _BRAX_ASSETS / name


def load_brax_asset_tree(name: str) -> ET.ElementTree:
    """Parses a shipped brax MJCF file so it can be edited before loading."""
    return ET.ElementTree(ET.fromstring(brax_asset_path(name).read_text()))


def tree_to_system(tree: ET.ElementTree) -> System:
    return mjcf.loads(ET.tostring(tree.getroot(), encoding="unicode"))


def extend_init_qpos(tree: ET.ElementTree, n_extra: int) -> None:
    """Appends zeros to brax's `init_qpos` custom numeric for newly added joints.

    brax reads `init_qpos` as the system's `init_q`, so its length must match
    the q size once extra jointed bodies are appended.
    """
    numeric = tree.getroot().find("./custom/numeric[@name='init_qpos']")
    if numeric is None:
        raise ValueError("asset has no init_qpos custom numeric")
    numeric.set("data", numeric.get("data").strip() + " 0" * n_extra)


def add_target_body(
    tree: ET.ElementTree, xy_range: float, radius: float = 0.9, z: float = 0.01
) -> None:
    """Appends a visual goal marker as the last body of the worldbody.

    The marker moves on two slide joints (x then y), so its position is part of
    q and survives auto-reset. It has no collisions and the slides are
    horizontal, so gravity does not move it and it stays where reset puts it.
    Being the last body, it is also brax's last link (envs read the goal from
    `x.pos[-1]`). `init_qpos` is extended with two zeros.
    """
    worldbody = tree.getroot().find("worldbody")
    target = ET.SubElement(worldbody, "body", name="target", pos=f"0 0 {z}")
    for axis_name, axis in (("x", "1 0 0"), ("y", "0 1 0")):
        ET.SubElement(
            target,
            "joint",
            name=f"target_{axis_name}",
            type="slide",
            axis=axis,
            pos="0 0 0",
            limited="true",
            range=f"{-xy_range} {xy_range}",
            armature="0",
            damping="0",
        )
    ET.SubElement(
        target,
        "geom",
        name="target",
        type="sphere",
        pos="0 0 0",
        size=f"{radius}",
        contype="0",
        conaffinity="0",
        mass="1",
        rgba="0.2 0.8 0.2 1",
    )
    extend_init_qpos(tree, 2)
