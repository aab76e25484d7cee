"""MJCF generator for the Panda-like arm scenes of the `arm_*` tasks.

No Panda model ships with brax or MuJoCo, so the arm is authored here from
the kinematic and inertial numbers of the reference task files (Franka Emika
Panda as adapted from MuJoCo Menagerie): body frames, joint axes and ranges,
explicit inertials, joint armature/damping (as the reference's brax 0.10.1
physics compiled them, see `_LINKS`) and the affine position
actuators. The link geoms are visual-only capsules that neither collide nor
carry mass (every arm body has an explicit `<inertial>`). As in the
reference, contacts come only from an explicit `<contact><pair>` list.

Collision model (chosen for MJX speed, see `envs/arm.py`):

* hand: capsule (reference shape); table: plane; cube and bin walls: boxes.
* each finger pad is a capsule of radius 0.005 running down the middle of
  the reference's 3 x 1 x 8 cm finger box, its inner surface where the box's
  inner face was. Against the cube that is a 2-point line contact (capsule-box)
  instead of a 4-point face contact (box-box), and against the table a cheap
  primitive (plane-capsule) instead of a convex test.
* no finger-finger pair: the finger joints stop at 0, where the pads are
  1 mm apart, so that pair can never touch.
* every pair is collided exactly. (MJX's `max_geom_pairs` culling was not
  used for the bin walls: it ranks pairs by bounding-sphere gap, and a
  wall's long bounding sphere can outrank the finger-cube pairs of the same
  capsule-box group, which would silently drop the grasp contacts.)

The goal is not a body: it lives in MJX's `userdata` (3 numbers), which the
physics never changes and brax's auto-reset restores with the rest of the
pipeline state. The reference instead carried a free, gravity-compensated
marker body, i.e. 6 extra degrees of freedom in every solver call.

`scene_xml(...)` returns the MJCF text of one arm scene and `eef_scene_xml()`
the floating-gripper scene; `envs/arm.py` loads them with
`brax.io.mjcf.loads`, which fuses the jointless bodies (link0 into the world,
the hand into link7).
"""

from __future__ import annotations

import numpy as np

# (name, parent position in parent frame, quat w x y z as written, joint and
#  actuator control range, mass, centre of mass, full inertia ixx iyy izz ixy
#  ixz iyz, visual capsule end point in the link frame or None).
#
# Joints 1-7 have no damping, no armature, and 1, 3, 5, 7 no limits, because
# that is what the reference's physics runs: its XML gives them damping 5,
# armature 0.1 and range +-2.8973 only through the `panda` default class set
# on the jointless link0, and brax 0.10.1's loader fuses link0 into the world
# and drops that class with it (its compiled model: docs/parity.md). The
# actuators and fingers name their class themselves and keep it: control
# range +-2.8973, finger damping 5 and armature 0.1.
_UNLIMITED_JOINTS = (1, 3, 5, 7)
_LINKS = (
    ("link1", "0 0 0.333", "1 0 0 0", "-2.8973 2.8973", 4.970684,
     "0.003875 0.002081 -0.04762",
     "0.70337 0.70661 0.009117 -0.000139 0.006772 0.019169", None),
    ("link2", "0 0 0", "1 -1 0 0", "-1.7628 1.7628", 0.646926,
     "-0.003141 -0.02872 0.003495",
     "0.007962 0.02811 0.025995 -0.003925 0.010254 0.000704", "0 -0.316 0"),
    ("link3", "0 -0.316 0", "1 1 0 0", "-2.8973 2.8973", 3.228604,
     "0.027518 0.039252 -0.066502",
     "0.037242 0.036155 0.01083 -0.004761 -0.011396 -0.012805", "0.0825 0 0"),
    ("link4", "0.0825 0 0", "1 1 0 0", "-3.0718 -0.0698", 3.587895,
     "-0.05317 0.104419 0.027454",
     "0.025853 0.019552 0.028323 0.007796 -0.001332 0.008641", "-0.0825 0.384 0"),
    ("link5", "-0.0825 0.384 0", "1 -1 0 0", "-2.8973 2.8973", 1.225946,
     "-0.011953 0.041065 -0.038437",
     "0.035549 0.029474 0.008627 -0.002117 -0.004037 0.000229", None),
    ("link6", "0 0 0", "1 1 0 0", "-0.0175 3.7525", 1.666555,
     "0.060149 -0.014117 -0.010517",
     "0.001964 0.004354 0.005433 0.000109 -0.001158 0.000341", "0.088 0 0"),
    ("link7", "0.088 0 0", "1 1 0 0", "-2.8973 2.8973", 0.735522,
     "0.010517 -0.004252 0.061597",
     "0.012516 0.010027 0.004815 -0.000428 -0.001196 -0.000741", "0 0 0.107"),
)  # fmt: skip

# joint -> (gain, kp, kv, force limit), reference values (actuators 3-7 have
# gain != kp on purpose in the reference; kept).
_ARM_ACTUATORS = (
    (4500, 4500, 450, 87),
    (4500, 4500, 450, 87),
    (2000, 3500, 350, 87),
    (2000, 3500, 350, 87),
    (1000, 2000, 200, 12),
    (1000, 2000, 200, 12),
    (1000, 2000, 200, 12),
)

FINGER_RANGE = 0.08  # SCRL slide range of each finger joint (JG: 0.05)
EEF_FINGER_RANGE = 0.05  # the floating-gripper scene's range (both repos)
FINGER_CTRL_OPEN = 255.0
_FINGER_KP = 500.0  # finger servo: force = gain * ctrl - 500 q - 50 qd
FINGERTIP_OFFSET = (0.0, 0.005, 0.07)  # fingertip point in a finger's frame
CUBE_HALF = 0.03
CUBE_START_Z = 0.07
NUSERDATA = 3  # the goal xyz, see the module docstring

# Floating gripper: hand orientation (gripper pointing down) and slide ranges.
EEF_HAND_QUAT = (0.0, -1.0, 1.0, 0.0)
EEF_RANGES = ((-0.4, 0.4), (0.35, 0.85), (0.0, 0.3))


def _finger_gain(finger_range: float) -> float:
    """Gain that makes ctrl 255 settle at `finger_range` (0.15686 for 0.08)."""
    return round(finger_range * _FINGER_KP / FINGER_CTRL_OPEN, 5)


def _quat_mul(a, b) -> np.ndarray:
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
    ])  # fmt: skip


def _rotate(v, q) -> np.ndarray:
    q = np.asarray(q, float) / np.linalg.norm(q)
    qv = np.concatenate([[0.0], v])
    conj = q * np.array([1.0, -1.0, -1.0, -1.0])
    return _quat_mul(_quat_mul(q, qv), conj)[1:]


def _fmt(v) -> str:
    return " ".join(f"{x:.7g}" for x in np.asarray(v, float))


def _gripper(
    frame_pos=(0.0, 0.0, 0.0), frame_quat=(1.0, 0.0, 0.0, 0.0), *, fingers: bool, hand_mass: bool
) -> str:
    """Hand capsule and the two finger bodies, placed with the hand frame at
    (frame_pos, frame_quat) in the enclosing body."""
    frame_quat = np.asarray(frame_quat, float) / np.linalg.norm(frame_quat)

    def place(pos, quat):
        return _fmt(np.asarray(frame_pos) + _rotate(pos, frame_quat)), _fmt(_quat_mul(frame_quat, quat))

    pos, quat = place((0.0, 0.0, 0.035), np.array([1.0, 1.0, 0.0, 0.0]) / np.sqrt(2.0))
    mass = "" if hand_mass else ' mass="0"'
    parts = [
        f'<geom name="hand_geom" type="capsule" size="0.04 0.06" pos="{pos}" quat="{quat}"'
        f' contype="0" conaffinity="0"{mass} rgba="0.9 0.9 0.9 1"/>'
    ]
    if fingers:
        for n, side, quat in ((1, "left", (1.0, 0.0, 0.0, 0.0)), (2, "right", (0.0, 0.0, 0.0, 1.0))):
            pos_f, quat_f = place((0.0, 0.0, 0.0584), quat)
            parts += [
                f'<body name="{side}_finger" pos="{pos_f}" quat="{quat_f}">',
                '<inertial pos="0 0 0" mass="0.015" diaginertia="2.375e-6 2.375e-6 7.5e-7"/>',
                f'<joint name="finger_joint{n}" class="finger"/>',
                f'<geom name="{side}_finger_geom" type="capsule" size="0.005"'
                ' fromto="0 0.0055 0 0 0.0055 0.07" contype="0" conaffinity="0" mass="0"'
                ' rgba="0.3 0.3 0.3 1"/>',
                "</body>",
            ]
    return "\n".join(parts)


def _arm_body(fingers: bool) -> str:
    """link0 (fixed base) and the chain link1..link7 with the hand (+ two fingers)
    inside link7, nested."""
    opened, closed = [], []
    for i, (name, pos, quat, rng, mass, com, inertia, vis) in enumerate(_LINKS):
        body = [
            f'<body name="{name}" pos="{pos}" quat="{quat}">',
            f'<inertial pos="{com}" mass="{mass}" fullinertia="{inertia}"/>',
            f'<joint name="joint{i + 1}" class="panda"'
            + ("/>" if i + 1 in _UNLIMITED_JOINTS else f' range="{rng}"/>'),
        ]
        if vis is not None:
            body.append(f'<geom class="visual" type="capsule" size="0.05" fromto="0 0 0 {vis}"/>')
        opened.append("\n".join(body))
        closed.append("</body>")
    # The hand is a jointless body in the reference; brax would fuse it into
    # link7, so it is authored fused: its geoms and fingers sit in link7's frame.
    hand = _gripper((0.0, 0.0, 0.107), (0.9238795, 0.0, 0.0, -0.3826834), fingers=fingers, hand_mass=False)
    base = '<body name="link0"><geom class="visual" type="capsule" size="0.06" fromto="0 0 0 0 0 0.333"/>'
    return "\n".join([base, *opened, hand, *closed, "</body>"])


def _position_servo(name: str, joint: str, gain: float, kp: float, kv: float, ctrl, force: float) -> str:
    return (
        f'<general name="{name}" joint="{joint}" gainprm="{gain:g}" biastype="affine"'
        f' biasprm="0 -{kp:g} -{kv:g}" ctrlrange="{ctrl[0]:g} {ctrl[1]:g}" forcerange="-{force:g} {force:g}"/>'
    )


def _finger_actuators(finger_range: float) -> list[str]:
    gain = _finger_gain(finger_range)
    return [
        _position_servo(
            f"finger_actuator{n}", f"finger_joint{n}", gain, _FINGER_KP, 50, (0, FINGER_CTRL_OPEN), 500
        )
        for n in (1, 2)
    ]


def _bin_walls(centres: tuple[float, ...], half_inner: float) -> list[tuple[str, str, str]]:
    """(name, pos, size) of the 4 walls of each open bin (full height 0.066,
    full thickness 0.01, wall centre planes at +-half_inner from the bin centre)."""
    walls = []
    h, t = 0.033, 0.005
    length = half_inner + t
    for b, cx in enumerate(centres):
        cy = 0.6
        walls += [
            (f"bin{b}_wall_xm", f"{cx - half_inner:g} {cy:g} {h:g}", f"{t:g} {length:g} {h:g}"),
            (f"bin{b}_wall_xp", f"{cx + half_inner:g} {cy:g} {h:g}", f"{t:g} {length:g} {h:g}"),
            (f"bin{b}_wall_ym", f"{cx:g} {cy - half_inner:g} {h:g}", f"{length:g} {t:g} {h:g}"),
            (f"bin{b}_wall_yp", f"{cx:g} {cy + half_inner:g} {h:g}", f"{length:g} {t:g} {h:g}"),
        ]
    return walls


def _cube(cube_xy: tuple[float, float]) -> str:
    return (
        f'<body name="cube" pos="{cube_xy[0]:g} {cube_xy[1]:g} {CUBE_START_Z:g}">'
        '<freejoint name="cube_joint"/>'
        f'<geom name="cube_geom" type="box" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}"'
        ' density="1000" contype="0" conaffinity="0" rgba="0.9 0.5 0.1 1"/></body>'
    )


def _table() -> str:
    return (
        '<geom name="table" type="plane" pos="0 0.2 0" size="1.4 1.2 0.05"'
        ' friction="0.2 0.005 0.0001" contype="0" conaffinity="0" rgba="0.8 0.8 0.75 1"/>'
    )


def _walls_xml(walls, rgba: str = "0.5 0.5 0.8 1") -> list[str]:
    return [
        f'<geom name="{name}" type="box" pos="{pos}" size="{size}" contype="0" conaffinity="0" rgba="{rgba}"/>'
        for name, pos, size in walls
    ]


def _document(
    *,
    world: list[str],
    pairs: list[tuple[str, str]],
    actuators: list[str],
    finger_range: float | None,
    impratio: float | None,
    max_geom_pairs: int | None,
) -> str:
    imp = f' impratio="{impratio:g}"' if impratio is not None else ""
    contact = "\n".join(f'<pair geom1="{a}" geom2="{b}"/>' for a, b in pairs)
    # MJX reads custom numerics by id as if each were the first one (see
    # envs/maze.py), so max_geom_pairs must be the only/first numeric.
    custom = ""
    if max_geom_pairs is not None:
        custom = f'<custom><numeric name="max_geom_pairs" data="{max_geom_pairs}"/></custom>'
    equality = finger_default = ""
    if finger_range is not None:
        equality = (
            '<equality><joint joint1="finger_joint1" joint2="finger_joint2"'
            ' solimp="0.95 0.99 0.001" solref="0.005 1"/></equality>'
        )
        finger_default = (
            f'<default class="finger"><joint type="slide" axis="0 1 0" range="0 {finger_range:g}"'
            ' armature="0.1" damping="5"/></default>'
        )
    world_xml = "\n".join(world)
    actuator_xml = "\n".join(actuators)
    return f"""<mujoco model="panda_scene">
<compiler angle="radian" autolimits="true"/>
<option timestep="0.002" iterations="6" ls_iterations="12" integrator="implicitfast"{imp}/>
<size nuserdata="{NUSERDATA}"/>
{custom}
<default>
  <default class="panda">
    <joint type="hinge" axis="0 0 1"/>
  </default>
  {finger_default}
  <default class="visual">
    <geom contype="0" conaffinity="0" group="2" mass="0" rgba="0.95 0.95 0.95 1"/>
  </default>
</default>
<worldbody>
<light pos="0 0 3" dir="0 0 -1"/>
{world_xml}
</worldbody>
<contact>
{contact}
</contact>
{equality}
<actuator>
{actuator_xml}
</actuator>
</mujoco>
"""


def scene_xml(
    *,
    fingers: bool,
    cube_xy: tuple[float, float] | None,
    bins: tuple[tuple[float, ...], float] | None = None,
    impratio: float | None = None,
) -> str:
    """MJCF text of one arm scene.

    fingers: add the two slide fingers (+ their actuators and equality tie).
    cube_xy: XML position of the free cube (None: no cube).
    bins: (bin centre x positions, wall offset from the centre), bins at y 0.6.
    """
    walls = _bin_walls(*bins) if bins is not None else []
    world = [_table(), _arm_body(fingers), *_walls_xml(walls)]
    if cube_xy is not None:
        world.append(_cube(cube_xy))

    grippers = ["hand_geom"] + (["left_finger_geom", "right_finger_geom"] if fingers else [])
    pairs = [("table", g) for g in grippers]
    if cube_xy is not None:
        pairs += [("cube_geom", g) for g in ["table", *grippers]]
        pairs += [("cube_geom", w[0]) for w in walls]
    pairs += [(g, w[0]) for g in grippers for w in walls]

    actuators = []
    for i, (gain, kp, kv, force) in enumerate(_ARM_ACTUATORS):
        low, high = (float(x) for x in _LINKS[i][3].split())
        actuators.append(
            _position_servo(f"actuator{i + 1}", f"joint{i + 1}", gain, kp, kv, (low, high), force)
        )
    if fingers:
        actuators += _finger_actuators(FINGER_RANGE)
    return _document(
        world=world,
        pairs=pairs,
        actuators=actuators,
        finger_range=FINGER_RANGE if fingers else None,
        impratio=impratio,
        max_geom_pairs=None,
    )


def eef_scene_xml(cube_xy: tuple[float, float], bins: tuple[tuple[float, ...], float]) -> str:
    """Floating gripper (no arm) over the two bins, `arm_binpick_easy_EEF`.

    A gravity-compensated body at the world origin with slide joints along
    world x, y, z (so its q is the hand's world position) carries the hand
    capsule and the two fingers, pointing down (hand quat (0, -1, 1, 0)); the
    fingers open along world x. Three position servos drive the slides
    (gain = kp = 1000, kv = 100, force +-87). Four tall invisible walls around
    the workspace (y = 0.35 / 0.85, x = +-0.4) keep the cube in reach; they
    collide with the cube only, the gripper is held in by its slide ranges.
    """
    walls = _bin_walls(*bins)
    fence = [
        ("fence_ym", "0 0.35 0.15", "0.41 0.01 0.15"),
        ("fence_yp", "0 0.85 0.15", "0.41 0.01 0.15"),
        ("fence_xm", "-0.4 0.6 0.15", "0.01 0.24 0.15"),
        ("fence_xp", "0.4 0.6 0.15", "0.01 0.24 0.15"),
    ]
    slides = [
        f'<joint name="hand_{axis}" type="slide" axis="{_fmt(np.eye(3)[k])}" range="{lo:g} {hi:g}"/>'
        for k, (axis, (lo, hi)) in enumerate(zip("xyz", EEF_RANGES))
    ]
    hand = "\n".join([
        '<body name="hand" gravcomp="1">',
        *slides,
        _gripper(frame_quat=EEF_HAND_QUAT, fingers=True, hand_mass=True),
        "</body>",
    ])  # fmt: skip
    world = [_table(), hand, *_walls_xml(walls), *_walls_xml(fence, rgba="1 1 1 0"), _cube(cube_xy)]
    grippers = ["hand_geom", "left_finger_geom", "right_finger_geom"]
    pairs = [("cube_geom", g) for g in ["table", *grippers]]
    pairs += [("cube_geom", w[0]) for w in walls + fence]
    pairs += [("table", g) for g in grippers]
    pairs += [(g, w[0]) for g in grippers for w in walls]
    actuators = [
        _position_servo(f"hand_actuator_{axis}", f"hand_{axis}", 1000, 1000, 100, (-2.8973, 2.8973), 87)
        for axis in "xyz"
    ]
    actuators += _finger_actuators(EEF_FINGER_RANGE)
    return _document(
        world=world,
        pairs=pairs,
        actuators=actuators,
        finger_range=EEF_FINGER_RANGE,
        impratio=10.0,
        max_geom_pairs=None,
    )
