"""Building brax systems from the MJCF files that ship with brax.

Goal-conditioned tasks reuse brax's robots and add a few bodies (a target marker,
balls, blocks and maze walls). Those edits are made on an ElementTree with
the helpers here (maze walls: `envs/maze.py`), so that the shipped XML files
stay the single source of truth.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import mujoco
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


def init_qpos(tree: ET.ElementTree) -> ET.Element:
    """brax's `init_qpos` custom numeric (its `sys.init_q`), created from MuJoCo's
    compiled default pose `qpos0` if the file has none."""
    root = tree.getroot()
    numeric = root.find("./custom/numeric[@name='init_qpos']")
    if numeric is None:
        qpos0 = mujoco.MjModel.from_xml_string(ET.tostring(root, encoding="unicode")).qpos0
        custom = root.find("custom")
        if custom is None:
            custom = ET.SubElement(root, "custom")
        numeric = ET.SubElement(custom, "numeric", name="init_qpos", data=" ".join(f"{v:g}" for v in qpos0))
    return numeric


def extend_init_qpos(tree: ET.ElementTree, n_extra: int) -> None:
    """Appends zeros to brax's `init_qpos` custom numeric for newly added joints.

    brax reads `init_qpos` as the system's `init_q`, so its length must match
    the q size once extra jointed bodies are appended.
    """
    numeric = init_qpos(tree)
    numeric.set("data", numeric.get("data").strip() + " 0" * n_extra)


def set_init_qpos(tree: ET.ElementTree, start: int, values) -> None:
    """Overwrites `init_qpos[start : start + len(values)]` (e.g. a start position)."""
    numeric = init_qpos(tree)
    data = numeric.get("data").split()
    data[start : start + len(values)] = (f"{float(v):g}" for v in values)
    numeric.set("data", " ".join(data))


def set_geom_attributes(tree: ET.ElementTree, names, **attributes: str) -> None:
    """Sets XML attributes on the named geoms (e.g. `conaffinity="1"`)."""
    root = tree.getroot()
    for name in names:
        geom = root.find(f".//geom[@name='{name}']")
        if geom is None:
            raise ValueError(f"asset has no geom named {name!r}")
        for key, value in attributes.items():
            geom.set(key, value)


def set_floor_size(tree: ET.ElementTree, half_extent: float) -> None:
    """Resizes the floor plane in x and y (cosmetic: brax/MJX planes are infinite)."""
    floor = tree.getroot().find("./worldbody/geom[@name='floor']")
    size = floor.get("size").split()
    floor.set("size", " ".join([f"{half_extent}", f"{half_extent}", *size[2:]]))


def add_slide_joints(
    body: ET.Element, prefix: str, axes: str, xy_range: float | None = None, **attributes: str
) -> None:
    """Adds one slide joint per axis letter ("xy", "xyz") to `body`, named `<prefix>_<axis>`.

    `xy_range` limits them to [-xy_range, xy_range] (no range: the file's
    joint defaults decide); `attributes` go on every joint.
    """
    for axis_name in axes:
        axis = {"x": "1 0 0", "y": "0 1 0", "z": "0 0 1"}[axis_name]
        joint = ET.SubElement(
            body, "joint", name=f"{prefix}_{axis_name}", type="slide", axis=axis, pos="0 0 0"
        )
        if xy_range is not None:
            joint.set("range", f"{-xy_range} {xy_range}")
        for key, value in attributes.items():
            joint.set(key, value)


def add_target_body(
    tree: ET.ElementTree,
    xy_range: float,
    radius: float = 0.9,
    z: float = 0.01,
    axes: str = "xy",
    **joint_attributes: str,
) -> None:
    """Appends a visual goal marker as the last body of the worldbody.

    The marker moves on slide joints (`axes`, default x then y), so its
    position is part of q and survives auto-reset. It has no collisions and
    the slides are horizontal, so gravity does not move it and it stays where
    reset puts it. Being the last body, it is also brax's last link (envs read
    the goal from `x.pos[-1]`). `init_qpos` is extended with one zero per
    slide; `joint_attributes` go on the slides (e.g. `stiffness="0"` where the
    file's joint default has a spring).
    """
    init_qpos(tree)  # created from the model without the target, if missing
    worldbody = tree.getroot().find("worldbody")
    target = ET.SubElement(worldbody, "body", name="target", pos=f"0 0 {z}")
    add_slide_joints(
        target, "target", axes, xy_range, limited="true", armature="0", damping="0", **joint_attributes
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
    extend_init_qpos(tree, len(axes))
