"""Test-session settings.

A persistent XLA compilation cache shared by the in-process tests and the
subprocess runs they start: identical programs (the tiny trainer and the tiny
CLI run) are compiled once per session. Caching executables never changes the
numbers they compute. wandb is kept offline and quiet.
"""

import os
import tempfile

_cache = os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="crl-jax-cache-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
