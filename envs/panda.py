"""MJCF generator for the Panda-like arm scenes of the `arm_*` tasks.

No Panda model ships with brax or MuJoCo, so the arm is authored here from
the kinematic and inertial numbers of the reference task files (Franka Emika
Panda as adapted from MuJoCo Menagerie): body frames, joint axes and ranges,
explicit inertials, joint armature/damping and the affine position
actuators. All collision geometry is primitive (a capsule for the hand, boxes
for the fingers, the cube and the bin walls, a plane for the table) and, as in
the reference, contacts come only from an explicit `<contact><pair>` list; the
link geoms are visual-only capsules that neither collide nor carry mass (every
arm body has an explicit `<inertial>`).

`scene_xml(...)` returns the MJCF text of one task scene; `envs/arm.py` loads
it with `brax.io.mjcf.loads`, which fuses the jointless bodies (link0 into the
world, the hand into link7, the bins and the table into the world).
"""

from __future__ import annotations

# (name, parent position in parent frame, quat w x y z as written, joint range,
#  mass, centre of mass, full inertia ixx iyy izz ixy ixz iyz, visual capsule end
#  point in the link frame or None).
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
)

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
FINGER_CTRL_OPEN = 255.0
_FINGER_GAIN = 0.15686  # 255 * gain / kp = 0.08 = FINGER_RANGE
FINGERTIP_OFFSET = (0.0, 0.005, 0.07)  # fingertip point in a finger's frame
CUBE_HALF = 0.03
CUBE_START_Z = 0.07


def _arm_body(fingers: bool) -> str:
    """The kinematic chain link1..link7 + hand (+ two fingers), nested."""
    opened, closed = [], []
    for i, (name, pos, quat, rng, mass, com, inertia, vis) in enumerate(_LINKS):
        body = [f'<body name="{name}" pos="{pos}" quat="{quat}">',
                f'<inertial pos="{com}" mass="{mass}" fullinertia="{inertia}"/>',
                f'<joint name="joint{i + 1}" class="panda" range="{rng}"/>']
        if vis is not None:
            body.append(f'<geom class="visual" type="capsule" size="0.05" fromto="0 0 0 {vis}"/>')
        opened.append("\n".join(body))
        closed.append("</body>")
    hand = [
        '<body name="hand" pos="0 0 0.107" quat="0.9238795 0 0 -0.3826834">',
        '<geom name="hand_geom" type="capsule" size="0.04 0.06" pos="0 0 0.035"'
        ' quat="1 1 0 0" contype="0" conaffinity="0" mass="0" rgba="0.9 0.9 0.9 1"/>',
    ]
    if fingers:
        for side, quat in (("left", "1 0 0 0"), ("right", "0 0 0 1")):
            n = 1 if side == "left" else 2
            hand += [
                f'<body name="{side}_finger" pos="0 0 0.0584" quat="{quat}">',
                '<inertial pos="0 0 0" mass="0.015" diaginertia="2.375e-6 2.375e-6 7.5e-7"/>',
                f'<joint name="finger_joint{n}" class="finger"/>',
                f'<geom name="{side}_finger_geom" type="box" size="0.015 0.005 0.04"'
                ' pos="0 0.0055 0.035" friction="10 0.005 0.0001" contype="0"'
                ' conaffinity="0" mass="0" rgba="0.3 0.3 0.3 1"/>',
                "</body>",
            ]
    hand.append("</body>")
    base = ('<body name="link0"><geom class="visual" type="capsule" size="0.06"'
            ' fromto="0 0 0 0 0 0.333"/>')
    return "\n".join([base, *opened, *hand, *closed, "</body>"])


def _actuators(fingers: bool) -> str:
    lines = []
    for i, (gain, kp, kv, force) in enumerate(_ARM_ACTUATORS):
        rng = _LINKS[i][3]
        lines.append(
            f'<general name="actuator{i + 1}" joint="joint{i + 1}" gainprm="{gain}"'
            f' biastype="affine" biasprm="0 -{kp} -{kv}" ctrlrange="{rng}"'
            f' forcerange="-{force} {force}"/>'
        )
    if fingers:
        for n in (1, 2):
            lines.append(
                f'<general name="finger_actuator{n}" joint="finger_joint{n}"'
                f' gainprm="{_FINGER_GAIN}" biastype="affine" biasprm="0 -500 -50"'
                f' ctrlrange="0 {FINGER_CTRL_OPEN:g}" forcerange="-500 500"/>'
            )
    return "\n".join(lines)


def _bin_walls(centres: tuple[float, ...], half_inner: float) -> list[tuple[str, str, str]]:
    """(name, pos, size) of the 4 walls of each open bin (full height 0.066,
    full thickness 0.01, wall centre planes at +-half_inner from the bin centre)."""
    walls = []
    h, t = 0.033, 0.005
    length = half_inner + t
    for b, cx in enumerate(centres):
        cy = 0.6
        walls += [
            (f"bin{b}_wall_xm", f"{cx - half_inner} {cy} {h}", f"{t} {length} {h}"),
            (f"bin{b}_wall_xp", f"{cx + half_inner} {cy} {h}", f"{t} {length} {h}"),
            (f"bin{b}_wall_ym", f"{cx} {cy - half_inner} {h}", f"{length} {t} {h}"),
            (f"bin{b}_wall_yp", f"{cx} {cy + half_inner} {h}", f"{length} {t} {h}"),
        ]
    return walls


def scene_xml(
    *,
    fingers: bool,
    cube_xy: tuple[float, float] | None,
    goal_marker: bool,
    bins: tuple[tuple[float, ...], float] | None = None,
    impratio: float | None = None,
) -> str:
    """MJCF text of one arm scene.

    fingers: add the two slide fingers (+ their actuators and equality tie).
    cube_xy: XML position of the free cube (None: no cube).
    goal_marker: add a free, gravity-compensated, non-colliding goal marker whose
      q is overwritten with the goal (so the goal survives brax's auto-reset).
    bins: (bin centre x positions, wall offset from the centre), bins at y 0.6.
    """
    imp = f' impratio="{impratio}"' if impratio is not None else ""
    world = [
        '<geom name="table" type="plane" pos="0 0.2 0" size="1.4 1.2 0.05"'
        ' friction="0.2 0.005 0.0001" contype="0" conaffinity="0" rgba="0.8 0.8 0.75 1"/>',
        _arm_body(fingers),
    ]
    walls = _bin_walls(*bins) if bins is not None else []
    for name, pos, size in walls:
        world.append(f'<geom name="{name}" type="box" pos="{pos}" size="{size}"'
                     ' contype="0" conaffinity="0" rgba="0.5 0.5 0.8 1"/>')
    if cube_xy is not None:
        world.append(
            f'<body name="cube" pos="{cube_xy[0]} {cube_xy[1]} {CUBE_START_Z}">'
            '<freejoint name="cube_joint"/>'
            f'<geom name="cube_geom" type="box" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}"'
            ' density="1000" contype="0" conaffinity="0" rgba="0.9 0.5 0.1 1"/></body>'
        )
    if goal_marker:
        world.append(
            '<body name="goal_marker" pos="0 0.6 0.03" gravcomp="1">'
            '<freejoint name="goal_joint"/>'
            '<geom name="goal_geom" type="box" size="0.03 0.03 0.03" contype="0"'
            ' conaffinity="0" mass="0.01" rgba="0.2 0.8 0.2 0.4"/></body>'
        )

    pairs = [("table", "hand_geom")]
    movers = ["hand_geom"]
    if fingers:
        pairs += [("table", "left_finger_geom"), ("table", "right_finger_geom"),
                  ("left_finger_geom", "right_finger_geom")]
        movers += ["left_finger_geom", "right_finger_geom"]
    if cube_xy is not None:
        pairs += [("cube_geom", g) for g in ["table", *movers]]
        pairs += [("cube_geom", w[0]) for w in walls]
    pairs += [(g, w[0]) for g in movers for w in walls]
    contact = "\n".join(f'<pair geom1="{a}" geom2="{b}"/>' for a, b in pairs)

    equality = ""
    if fingers:
        equality = ('<equality><joint joint1="finger_joint1" joint2="finger_joint2"'
                    ' solimp="0.95 0.99 0.001" solref="0.005 1"/></equality>')

    return f"""<mujoco model="panda_scene">
<compiler angle="radian" autolimits="true"/>
<option timestep="0.002" iterations="6" ls_iterations="12" integrator="implicitfast"{imp}/>
<default>
  <default class="panda">
    <joint type="hinge" axis="0 0 1" armature="0.1" damping="5"/>
  </default>
  <default class="finger">
    <joint type="slide" axis="0 1 0" range="0 {FINGER_RANGE}"/>
  </default>
  <default class="visual">
    <geom contype="0" conaffinity="0" group="2" mass="0" rgba="0.95 0.95 0.95 1"/>
  </default>
</default>
<worldbody>
<light pos="0 0 3" dir="0 0 -1"/>
{chr(10).join(world)}
</worldbody>
<contact>
{contact}
</contact>
{equality}
<actuator>
{_actuators(fingers)}
</actuator>
</mujoco>
"""
