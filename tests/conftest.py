"""Test-session settings.

A persistent XLA compilation cache shared by the in-process tests and the
subprocess runs they start: identical programs (the tiny trainer and the tiny
CLI run) are compiled once per session. Caching executables never changes the
numbers they compute. wandb is kept offline and quiet.
"""

import os
import tempfile

# XLA's CPU backend at LLVM optimisation level 0, for this process and every subprocess the tests
# start (they inherit XLA_FLAGS; the few that set their own say so). Most tests compile far more
# than they run, and level 0 compiles brax physics 2-5x faster (an ant maze rollout: about 150 s
# -> 30 s on 2 cores); compiled code runs somewhat slower, and results may differ from the
# default level's in the last bits, never more (every comparison between two runs uses one level).
# CRL_TEST_XLA_OPT=default runs the suite with XLA's default level instead.
if os.environ.get("CRL_TEST_XLA_OPT", "0") != "default":
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()

_cache = os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="crl-jax-cache-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

# The longest tests start first, so that the two xdist workers finish together instead of one
# of them starting a several-minute test near the end (fresh-clone CI durations).
SLOWEST_FIRST = (
    "test_gpu_check.py::test_tiny_run_fills_every_section_and_prints_the_table",
    "test_sweeps.py::test_one_command_per_sweep_really_trains",
    "test_multiprocess.py::test_two_processes_train_like_one",
    "test_train.py::test_reacher_learns_clearly_better_than_a_random_policy",
    "test_baselines.py::test_tiny_run_and_exact_resume_after_epoch_1",
    "test_resume.py::test_a_failed_save_stops_with_one_line_and_keeps_the_last_checkpoint",
    "test_slurm_cluster.py::",
    "test_bench.py::test_compile_only_reports_the_memory_plan_and_remat_shrinks_it",
    "test_checkpoint_families.py::test_each_family_stops_on_a_signal_and_resumes_exactly[arm]",
    "test_checkpoint_families.py::test_each_family_stops_on_a_signal_and_resumes_exactly[ant ball/push]",
)


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        return next((i for i, name in enumerate(SLOWEST_FIRST) if name in item.nodeid), len(SLOWEST_FIRST))

    items.sort(key=rank)
