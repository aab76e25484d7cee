"""Deterministic inputs shared by the fixture script (authors' venv) and tests/test_reference.py.

Pure numpy integer arithmetic (splitmix64), so both sides get bit-identical float32 values under
any numpy version without storing megabytes of parameters: a value is a function of its name
and position only.
"""

from __future__ import annotations

import zlib

import numpy as np

_M = (1 << 64) - 1


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def uniform(name: str, shape, lo: float, hi: float) -> np.ndarray:
    """float32 values in [lo, hi), a fixed function of (name, index)."""
    n = int(np.prod(shape, dtype=np.int64))
    seed = np.uint64((zlib.crc32(name.encode()) << 32) & _M)
    with np.errstate(over="ignore"):
        bits = _splitmix64(np.arange(n, dtype=np.uint64) + seed)
    u = (bits >> np.uint64(40)).astype(np.float64) / float(1 << 24)  # 24 bits: exact in float32
    return (lo + (hi - lo) * u).astype(np.float32).reshape(shape)


def param(name: str, shape) -> np.ndarray:
    """A parameter of the authors' tree, named '<net>/<Module_i>/<leaf>': Dense kernels uniform in
    +-1/sqrt(fan_in) (the scale of both inits), biases +-0.1, LayerNorm scales 0.8-1.2 (non-zero
    biases and non-unit scales, so a dropped or misplaced one shows)."""
    leaf = name.rsplit("/", 1)[-1]
    if leaf == "kernel":
        lim = 1.0 / np.sqrt(shape[0])
        return uniform(name, shape, -lim, lim)
    if leaf == "scale":
        return uniform(name, shape, 0.8, 1.2)
    return uniform(name, shape, -0.1, 0.1)


def params_from_spec(prefix: str, spec: dict) -> dict:
    """{leaf name: array} for a spec {leaf name: shape} (names relative to the network)."""
    return {k: param(f"{prefix}/{k}", tuple(v)) for k, v in spec.items()}


def checksum(arrays: dict) -> float:
    return float(sum(np.abs(a.astype(np.float64)).sum() for a in arrays.values()))


def calm_actor(actor: dict, depth: int) -> dict:
    """The actor of the loss and SGD fixtures: its log-std head (authors' Dense_{depth//4*4+2}) scaled
    to kernel x 0.1, bias 0, so log_std ~ -1.5 +- 0.2 (std ~0.2), as a trained policy's, and actions
    do not saturate tanh (where both sides' float32 log(1 - tanh(u)^2 + 1e-6) is ill-conditioned).
    `actor` is flat {'params/<Module_i>/<leaf>': array}."""
    head = f"params/Dense_{depth // 4 * 4 + 2}"
    out = dict(actor)
    out[f"{head}/kernel"] = (actor[f"{head}/kernel"] * np.float32(0.1)).astype(np.float32)
    out[f"{head}/bias"] = np.zeros_like(actor[f"{head}/bias"])
    return out
