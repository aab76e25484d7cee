"""Run management for train.py: everything a long experiment needs that is not the algorithm.

    flags              RunSettings, the run-management flags that train.Config extends
    run directory      runs/<env>__<exp>__s<seed>__<time>/ (or --run_dir): config.json, metrics.jsonl
    checkpoints        orbax, checkpoints/epoch_<n>/{params, train, meta}; resume and config checks
    metrics            metrics.jsonl, wandb (offline by default; never stops a run), the epoch's log line
    stop signals       SIGUSR1 / SIGTERM (SLURM's warning) and Ctrl-C: checkpoint, exit 75 to requeue
    guards             NaN guard, "already finished", extending a finished run's budget
    progress           live lines during compile, prefill and inside an epoch
    start-up           main (the command line's exit statuses), compilation cache, jax.distributed
    devices            data-parallel shardings over all devices, set at the jit boundary

train.py calls a small interface: `Run(config)`, `run.restore(template)`, `run.end_epoch(...)`,
`run.log_epoch(...)`, `run.close()`, and the `Progress` whose `training_step` the epoch calls after
each step. This module never imports train.py: the config is any dataclass that extends
`RunSettings`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import cli
from cli import Bool, grouped_help  # noqa: F401

log = logging.getLogger("crl")

# sysexits.h EX_TEMPFAIL, "try again later": job.slurm requeues the job on this status.
EXIT_REQUEUE = 75


class ConfigError(ValueError):
    """A configuration that cannot run; the message says what to change."""


class RunDirError(ConfigError):
    """A run directory that cannot be started or resumed as asked."""


class Preempted(Exception):
    """A stop signal ended the run; any checkpoint it asked for is on disk."""


class CheckpointError(Exception):
    """A checkpoint could not be written; the ones saved before it are intact."""


# =============================================================================
# Command-line conventions for the config dataclass
# =============================================================================


# The command line's conventions (booleans take a value, grouped --help) are cli.py's, shared by
# every script; runs.Bool and runs.grouped_help stay importable from here.


@dataclasses.dataclass
class RunSettings:
    """The flags that manage a run rather than define its experiment: where it lives, what it logs,
    when it checkpoints. train.Config extends this class; these fields may change when a run is
    resumed, and plots and reports ignore them when they pool seeds."""

    # --- performance (same numbers, different speed and memory)
    compilation_cache_dir: Optional[str] = None
    """Persistent XLA compilation cache; a later run of the same config (or a requeued job)
    loads its compiled programs instead of compiling again. None = no cache."""

    # --- run directory and multi-process jobs
    run_root: str = "runs"
    """Directory under which each run gets its own folder (config, metrics, checkpoints)."""
    run_dir: Optional[str] = None
    """This run's folder; None = a new one under run_root named env__exp_name__seed__time. A folder
    that already holds a checkpoint is resumed, so a requeued job passes the same --run_dir."""
    resume: Optional[str] = None
    """Run folder to continue from its latest checkpoint, with its saved config; flags given next to
    it must agree with that config (run-management flags such as logging may change)."""
    distributed: Literal["auto", "on", "off"] = "auto"
    """Multi-process (multi-node) JAX: auto = initialise jax.distributed when SLURM started more
    than one task; on = always (SLURM, or JAX_COORDINATOR_ADDRESS etc. set); off = never."""

    # --- logging
    track: Bool = True
    """Log to wandb (offline unless wandb_mode says otherwise)."""
    wandb_project_name: str = "deep-crl"
    """wandb project."""
    wandb_entity: Optional[str] = None
    """wandb entity (team or user); None uses your wandb default."""
    wandb_mode: Literal["offline", "online", "disabled"] = "offline"
    """offline never touches the network (sync later with `wandb sync`); online streams."""
    wandb_group: Optional[str] = None
    """wandb group, e.g. to gather seeds of one configuration."""
    wandb_dir: Optional[str] = None
    """Where wandb writes its files; None = the run directory."""

    # --- checkpoints and artefacts
    checkpoint: Bool = True
    """Save the full training state every checkpoint_every epochs, at the end, and when SLURM
    warns of preemption (SIGUSR1/SIGTERM) or on Ctrl-C."""
    checkpoint_every: int = 10
    """Epochs between checkpoints."""
    checkpoint_keep: int = 3
    """Checkpoints kept on disk; older ones are deleted only after a newer one is complete."""
    capture_vis: Bool = True
    """After training, save HTML and MP4 renders of the evaluation policy and, on mazes, the critic's
    value map (qvalue_heatmap.png) in the run directory (render.py)."""
    vis_length: int = 1000
    """Steps per rendered rollout."""
    num_render: int = 1
    """Rollouts (different goals) rendered when capture_vis is on."""


def run_management_fields(config_cls: type) -> frozenset[str]:
    """The fields of `config_cls` that come from RunSettings."""
    if not issubclass(config_cls, RunSettings):
        return frozenset()
    return frozenset(f.name for f in dataclasses.fields(RunSettings))


# Fields that may grow when a finished run is continued to a larger budget (`extend`).
BUDGET_FIELDS = ("total_env_steps", "num_epochs")


def config_mismatch(saved, given) -> list[str]:
    """The experiment-defining fields in which two configs differ, as 'name: saved -> given'."""
    skip = run_management_fields(type(given)) | set(BUDGET_FIELDS)
    return [
        f"{f.name}: {getattr(saved, f.name)!r} -> {getattr(given, f.name)!r}"
        for f in dataclasses.fields(given)
        if f.name not in skip and getattr(saved, f.name) != getattr(given, f.name)
    ]


# =============================================================================
# Data parallelism over all devices
# =============================================================================


def data_parallel(num_devices: int, init_fn: Callable, num_seeds: int = 1):
    """Shardings of (TrainingState, env_state, buffer) for data parallelism over all devices.

    Envs and the buffer's env axis are split across devices (one mesh axis, "data"); parameters
    and optimizer states are replicated. The code stays written for one global batch: XLA
    propagates these shardings from the jit boundary inwards and adds the collectives (gathering
    goal encodings for the InfoNCE logits, averaging gradients). Random draws do not depend on
    the split, so 1 and N devices compute the same numbers up to floating-point reassociation.
    With num_seeds > 1, init_fn takes a key per seed and every array has a leading seed axis, kept whole.
    """
    mesh = jax.make_mesh((num_devices,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))

    def spec(*axes):
        return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(*axes))

    lead = (None,) if num_seeds > 1 else ()
    key = jax.random.PRNGKey(0)
    ts, env_state, buf = jax.eval_shape(init_fn, jnp.stack([key] * num_seeds) if lead else key)
    by_env = jax.tree.map(lambda x: spec(*lead, "data") if x.ndim > len(lead) else spec(), env_state)
    by_buffer_env = jax.tree.map(lambda x: spec(*lead, None, "data") if x.ndim >= 2 + len(lead) else spec(), buf)
    return jax.tree.map(lambda _: spec(), ts), by_env, by_buffer_env


# =============================================================================
# Stop signals: SLURM's warning, preemption, Ctrl-C
# =============================================================================


class StopSignals:
    """SIGUSR1 / SIGTERM (SLURM's warning before preemption or the time limit) and a first Ctrl-C
    only set a flag: the phase in flight finishes, a checkpoint is written when there is something
    to save, and the run exits with EXIT_REQUEUE. A second Ctrl-C aborts at once.

    train.py blocks these signals before its slow imports, so one that arrives during start-up waits,
    pending, until this handler is in place (entering unblocks them), and then counts like any other.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)

    def __init__(self, restore: bool = True):
        self.received: Optional[str] = None
        self.restore = restore  # False for the command line: the process is about to exit
        self.closing = False
        self._previous = {}

    def _handle(self, signum, _frame):
        if self.closing:  # the run is already on its way out; a default handler would kill it
            return
        name = signal.Signals(signum).name
        if name == "SIGINT" and self.received == "SIGINT":
            raise KeyboardInterrupt
        self.received = self.received or name
        how = " (Ctrl-C again to abort without saving)" if name == "SIGINT" else ""
        log.warning("%s received: stopping at the end of this phase and saving what there is%s", name, how)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        signal.pthread_sigmask(signal.SIG_UNBLOCK, self.SIGNALS)  # pending ones are handled now
        return self

    def __exit__(self, *exc):
        self.closing = True
        if self.restore:
            for s, handler in self._previous.items():
                signal.signal(s, handler)

    def check(self, phase: str, checkpoint: Optional[Path]) -> None:
        """Raises Preempted when a stop signal came; `phase` says where the run was."""
        if self.received:
            saved = (
                f"checkpoint {checkpoint}"
                if checkpoint
                else "no checkpoint yet (a requeued job starts afresh)"
            )
            raise Preempted(f"{self.received}: stopped {phase}; {saved}")


# =============================================================================
# Start-up: compilation cache, multi-process jobs, logging
# =============================================================================


def use_compilation_cache(directory: str) -> None:
    jax.config.update("jax_compilation_cache_dir", directory)
    # Cache every program that took over a second to compile: the epoch, prefill, evaluation.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def initialize_distributed(mode: str) -> None:
    """Joins the processes of a multi-node job before JAX touches any device.

    Under SLURM (srun), jax.distributed.initialize() finds the coordinator and the ranks
    itself; elsewhere they come from JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
    JAX_PROCESS_ID. Only process 0 prints the run's log lines.
    """
    if mode == "off" or (mode == "auto" and int(os.environ.get("SLURM_NTASKS", "1")) <= 1):
        return
    ranks = {}
    if "JAX_NUM_PROCESSES" in os.environ:
        ranks = dict(
            coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
            num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
            process_id=int(os.environ["JAX_PROCESS_ID"]),
        )
    # Cross-process collectives for CPU processes (tests, debugging); GPUs use NCCL.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**ranks)
    log.info(
        "process %d of %d, %d devices in all", jax.process_index(), jax.process_count(), jax.device_count()
    )
    if jax.process_index() != 0:
        log.setLevel(logging.WARNING)


# =============================================================================
# Checkpoints: orbax, one folder per epoch (checkpoints/epoch_<n>) holding params (all
# evaluation needs), train (optimizer states, RNG key, env states, replay buffer) and meta
# (epoch, env steps, wandb id, config). Orbax writes a folder under a temporary name and
# renames it when complete, and prunes old ones only after that, so a crash never leaves a
# half checkpoint behind.
#
# Zero-size arrays are not written: orbax refuses them, and the MJX physics state (arm_* and
# ant_push) holds about twenty (e.g. `act` of a model without actuator activations, `sensordata`
# without sensors). They carry no data, so restore rebuilds them with the template's shapes,
# dtypes and shardings; every other leaf is restored from disk.
# =============================================================================


def _is_empty(x) -> bool:
    return hasattr(x, "shape") and math.prod(x.shape) == 0


def _without_empty(tree):
    """`tree` with its zero-size arrays replaced by None (an empty subtree for orbax)."""
    return jax.tree.map(lambda x: None if _is_empty(x) else x, tree)


def _with_empty(template, restored):
    """`restored` (restored from `_without_empty(template)`) with the template's zero-size
    arrays back in place, as fresh arrays of the same shape, dtype and sharding."""

    def empty_like(t):
        if isinstance(t, np.ndarray):
            return np.zeros(t.shape, t.dtype)
        return jnp.zeros(t.shape, t.dtype, device=getattr(t, "sharding", None))

    is_none = lambda x: x is None  # noqa: E731 -- None nodes of the template stay None
    leaves, treedef = jax.tree.flatten(template, is_leaf=is_none)
    got = treedef.flatten_up_to(restored)
    return treedef.unflatten([empty_like(t) if _is_empty(t) else r for t, r in zip(leaves, got)])


def checkpoint_manager(run_dir: Path, keep: Optional[int] = None) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=keep is not None, step_prefix="epoch", enable_async_checkpointing=False
    )
    return ocp.CheckpointManager((Path(run_dir) / "checkpoints").absolute(), options=options)


def latest_checkpoint(run_dir: Path) -> Optional[int]:
    """The newest complete checkpoint's epoch in run_dir, or None."""
    if not (Path(run_dir) / "checkpoints").is_dir():
        return None
    return checkpoint_manager(run_dir).latest_step()


def checkpoint_meta(run_dir: Path, epoch: Optional[int] = None) -> dict:
    """The meta record (epoch, env_steps, wandb_id, has_buffer, config) of a run's latest
    (or given) checkpoint."""
    latest = latest_checkpoint(run_dir)
    manager = checkpoint_manager(run_dir) if latest is not None else None
    epoch = latest if epoch is None else epoch
    if manager is None or epoch not in manager.all_steps():
        raise FileNotFoundError(f"no checkpoint under {run_dir} (expected {run_dir}/checkpoints/epoch_<n>)")
    return manager.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta


def save_checkpoint(manager, params: dict, train_state: dict, meta: dict) -> Path:
    """Writes checkpoints/epoch_<meta["epoch"]> and returns its path. A save that fails raises
    CheckpointError with its cause in one line; its half-written folder is removed and the
    checkpoints saved before it are left as they were (orbax prunes only after a complete save).
    The manager is closed then: it is not used again after a failure."""
    epoch = meta["epoch"]
    path = Path(manager.directory) / f"epoch_{epoch}"
    try:
        manager.save(
            epoch,
            args=ocp.args.Composite(
                params=ocp.args.StandardSave(_without_empty(params)),
                train=ocp.args.StandardSave(_without_empty(train_state)),
                meta=ocp.args.JsonSave(meta),
            ),
            force=True,
        )
        manager.wait_until_finished()
    except Exception as e:  # noqa: BLE001 -- disk full, permissions, unsavable leaf: all end alike
        # Orbax's writer threads may still be busy with the failed save; left running, they meet
        # the interpreter's shutdown and print tracebacks after the run's error line.
        with contextlib.suppress(Exception):
            manager.close()
        for thread in threading.enumerate():
            if type(thread).__module__.startswith("orbax.") and thread is not threading.current_thread():
                thread.join(timeout=60)
        for tmp in Path(manager.directory).glob(f"epoch_{epoch}.orbax-checkpoint-tmp*"):
            shutil.rmtree(tmp, ignore_errors=True)
        cause = (str(e).strip().splitlines() or [""])[0][:300].rstrip(".")
        raise CheckpointError(f"could not write checkpoint {path}: {type(e).__name__}: {cause}") from e
    return path


def restore_checkpoint(run_dir: Path, epoch: int, params: dict, train_state: dict) -> tuple[dict, dict]:
    """(params, train_state) of a checkpoint, restored into arrays shaped and sharded like the
    given templates."""
    restored = checkpoint_manager(run_dir).restore(
        epoch,
        args=ocp.args.Composite(
            params=ocp.args.StandardRestore(_without_empty(params)),
            train=ocp.args.StandardRestore(_without_empty(train_state)),
        ),
    )
    return _with_empty(params, restored.params), _with_empty(train_state, restored.train)


def load_params(path: str | Path) -> tuple[dict, dict]:
    """(saved config as a dict, payload) of a checkpoint: a run directory (its latest one) or a
    checkpoints/epoch_<n> folder. The payload holds the saved parameters, epoch and env_steps;
    only the parameters are read, never the replay buffer."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    run_dir, epoch = path, None
    if path.name.startswith("epoch_") and path.parent.name == "checkpoints":
        run_dir, epoch = path.parent.parent, int(path.name.removeprefix("epoch_"))
    meta = checkpoint_meta(run_dir, epoch)
    params = (
        checkpoint_manager(run_dir)
        .restore(meta["epoch"], args=ocp.args.Composite(params=ocp.args.StandardRestore()))
        .params
    )
    return meta["config"], {**params, "epoch": meta["epoch"], "env_steps": meta["env_steps"]}


# =============================================================================
# Metrics: metrics.jsonl and wandb
# =============================================================================


def atomic_write(path: Path, data: bytes) -> None:
    """Write-then-rename: a crash leaves either the old file or the new one, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def start_wandb(config, run_dir: Path, wandb_id: Optional[str]):
    """wandb must never stop training: failures are logged and the run goes on without it."""
    try:
        import wandb  # imported only when tracking: an optional feature

        return wandb.init(
            project=config.wandb_project_name,
            entity=config.wandb_entity,
            group=config.wandb_group,
            name=run_dir.name,
            id=wandb_id,
            resume="allow" if wandb_id else None,
            reinit="create_new",  # several seeds in one process (--num_seeds): one wandb run each
            mode=config.wandb_mode,
            dir=config.wandb_dir or str(run_dir),
            config=described(config),
        )
    except Exception as e:  # noqa: BLE001 -- any wandb failure must not end the run
        log.warning("wandb disabled for this run: %s", e)
        return None


class MetricsLog:
    """metrics.jsonl in the run directory, plus wandb when tracking.

    A resumed run first drops the records of epochs after its checkpoint (they
    will be run again) and continues the same wandb run. Only process 0 writes.
    """

    def __init__(self, run_dir: Path, config, start_epoch: int, wandb_id: Optional[str]):
        self.path = run_dir / "metrics.jsonl" if jax.process_index() == 0 else None
        if self.path is not None and self.path.exists():
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if json.loads(line)["epoch"] <= start_epoch
            ]
            atomic_write(self.path, "".join(line + "\n" for line in kept).encode())
        self.wandb = start_wandb(config, run_dir, wandb_id) if config.track and self.path else None

    @property
    def wandb_id(self) -> Optional[str]:
        return None if self.wandb is None else self.wandb.id

    def write(self, record: dict) -> None:
        if self.path is None:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.wandb is not None:
            self.wandb.log(record, step=record["training/envsteps"])

    def close(self) -> None:
        if self.wandb is not None:
            self.wandb.finish()


def check_finite(metrics: dict, epoch: int, last_checkpoint: Optional[Path]) -> None:
    bad = [k for k, v in metrics.items() if not np.isfinite(v)]
    if bad:
        losses = [k for k in bad if k.endswith("loss")] or bad
        others = (
            f" (also non-finite: {', '.join(k for k in bad if k not in losses)})" if bad != losses else ""
        )
        raise FloatingPointError(
            f"non-finite {', '.join(losses)} at epoch {epoch}{others}; stopping. Last good checkpoint "
            f"(intact): {last_checkpoint or 'none saved yet'}"
        )


# =============================================================================
# Progress: a user never stares at silence
# =============================================================================


def format_eta(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    h, m = divmod(minutes, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Progress:
    """Live progress on stderr: a ticking phase line during compile and prefill, and inside an
    epoch the env steps done, sps and the run's ETA.

    On a terminal the line is redrawn in place; in a log file (SLURM) a plain line is printed at
    most every `every` seconds. The epoch reports after each training step (train.training_epoch).
    """

    def __init__(self, total_steps: int, every: Optional[float] = None, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = every if every is not None else (0.5 if self.tty else 30.0)
        self.enabled = jax.process_index() == 0 and log.isEnabledFor(logging.INFO)
        self.total_steps = total_steps
        self._base = (0, time.time())
        self.epoch_steps = (0, 0)  # (first env step of the epoch, env steps per training step)
        self._last = 0.0
        self._lock = threading.Lock()
        self._phase: Optional[tuple[str, float]] = None
        self._ticker: Optional[threading.Thread] = None

    def _emit(self, text: str, final: bool = False) -> None:
        if not self.enabled:
            return
        with self._lock:
            if self.tty:
                self.stream.write("\r\033[K" + text + ("\n" if final else ""))
            else:
                self.stream.write(time.strftime("%H:%M:%S ") + text + "\n")
            self.stream.flush()

    # -- phases without steps to count (compile, prefill, restore, render)
    def begin_phase(self, name: str) -> None:
        """'<name> ... 12 s' ticks until end_phase(), or until the epoch's first step reports."""
        self.end_phase()
        self._phase = (name, time.time())
        self._emit(f"{name} ...")
        if self.enabled:
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()

    def end_phase(self) -> None:
        phase, self._phase = self._phase, None
        if phase is not None:
            self._emit(f"{phase[0]}: done in {time.time() - phase[1]:.1f} s", final=True)

    @contextlib.contextmanager
    def phase(self, name: str):
        self.begin_phase(name)
        try:
            yield
        finally:
            self.end_phase()

    def _tick(self) -> None:
        while (phase := self._phase) is not None:
            time.sleep(min(max(self.every, 0.1), 1.0))
            if self._phase is phase and time.time() - self._last >= self.every:
                self._last = time.time()
                self._emit(f"{phase[0]} ... {time.time() - phase[1]:.0f} s")

    # -- inside an epoch
    def start_epoch(self, epoch: int, num_epochs: int, env_steps: int, env_steps_per_training_step: int):
        self.epoch, self.num_epochs = epoch, num_epochs
        self._base = (0, time.time())  # (training steps, time) from which the speed is measured
        self.epoch_steps = (env_steps, env_steps_per_training_step)

    def training_step(self, done) -> None:
        """Called by the epoch after each training step: `done` training steps of this epoch have finished."""
        now, done = time.time(), int(done)
        if self._phase is not None:  # the first step ends the compile phase; speed counts from here
            self.end_phase()
            self._base = (done, now)
        if not self.enabled or now - self._last < self.every:
            return
        self._last = now
        first, per_step = self.epoch_steps
        steps = first + done * per_step
        sps = (done - self._base[0]) * per_step / max(now - self._base[1], 1e-9)
        eta = (self.total_steps - steps) / sps if sps > 0 else float("inf")
        eta_text = format_eta(eta) if np.isfinite(eta) else "?"
        self._emit(
            f"epoch {self.epoch}/{self.num_epochs} | env steps {steps:,}/{self.total_steps:,} "
            f"({100 * steps / self.total_steps:.0f}%) | {sps:,.0f} sps | ETA {eta_text}"
        )

    def clear(self) -> None:
        """Makes room for a log line: on a terminal, wipes the in-place line."""
        if self.enabled and self.tty:
            with self._lock:
                self.stream.write("\r\033[K")
                self.stream.flush()


# =============================================================================
# The run: directory, resume, checkpoints, metrics, signals, as one object for train.py
# =============================================================================


class Run:
    """One experiment's directory and bookkeeping, opened from its config.

    `first_epoch`, `env_steps` and `wandb_id` say where training starts (0 for a new run, the
    checkpoint's epoch on resume). The loop calls `begin` once, `end_epoch` after each epoch and
    `close` at the end. `budget(config)` is (prefill env steps, env steps per epoch).
    """

    def __init__(self, config, stop: StopSignals, budget: Callable[[Any], tuple[int, int]]):
        self.config, self.stop = config, stop
        self.dir = open_run_dir(config)
        self.meta: Optional[dict] = None
        if latest_checkpoint(self.dir) is not None:
            self.meta = checkpoint_meta(self.dir)
            saved = type(config)(**self.meta["config"])
            differing = config_mismatch(saved, config)
            if budget(saved)[1] != budget(config)[1]:
                differing.append(f"env steps per epoch: {budget(saved)[1]:,} -> {budget(config)[1]:,}")
            if differing:
                raise RunDirError(
                    f"{self.dir} holds a run with a different config ({'; '.join(differing)}); resume it "
                    f"with the same settings (a larger --total_env_steps alone continues it), or start a "
                    f"new run with another --run_dir"
                )
        self.first_epoch = self.meta["epoch"] if self.meta else 0
        self.env_steps = self.meta["env_steps"] if self.meta else budget(config)[0]
        self.last_checkpoint = self.dir / "checkpoints" / f"epoch_{self.first_epoch}" if self.meta else None
        self.checkpoints = (
            checkpoint_manager(self.dir, keep=config.checkpoint_keep) if config.checkpoint else None
        )
        self.start = time.time()
        self.epoch_times: list[float] = []
        self.metrics: Optional[MetricsLog] = None
        self.record: dict = {}
        self.eta = 0.0
        self.stopping = False
        self.label = ""  # "seed 3 | " when one process trains several seeds

    @property
    def finished(self) -> bool:
        return self.first_epoch >= self.config.num_epochs

    def restore(self, params: dict, train_state: dict) -> Optional[tuple[dict, dict]]:
        """None for a new run; else (params, train_state) restored into the templates (train_state
        without "buffer" when the checkpoint was saved without it)."""
        if self.meta is None:
            return None
        if not self.meta["has_buffer"]:
            train_state = {k: v for k, v in train_state.items() if k != "buffer"}
        restored = restore_checkpoint(self.dir, self.first_epoch, params, train_state)
        log.info(
            "resuming %s from epoch %d (%s env steps)", self.dir, self.first_epoch, f"{self.env_steps:,}"
        )
        return restored

    def begin(self) -> None:
        """Start-up is over: stop if a signal came during it, else open metrics.jsonl and wandb."""
        self.stop.check("before the first epoch", self.last_checkpoint)
        self.metrics = MetricsLog(
            self.dir, self.config, self.first_epoch, self.meta and self.meta["wandb_id"]
        )

    def end_epoch(
        self, epoch: int, epoch_env_steps: int, record: dict, state: Callable[[], tuple[dict, dict]],
        stopping: Optional[bool] = None,
    ):
        """Checks the epoch's record for NaNs, writes it, and saves a checkpoint when due or asked for
        by a stop signal (`state()` gives the (params, train_state) to save). `stopping`: whether a
        stop signal came, when the caller read the flag once for several runs (Seeds)."""
        c = self.config
        self.env_steps += epoch_env_steps
        check_finite(
            {k: v for k, v in record.items() if k.startswith("training/")}, epoch, self.last_checkpoint
        )
        self.epoch_times.append(record["training/epoch_time"] + record["eval/epoch_eval_time"])
        self.record = {"epoch": epoch, "training/envsteps": self.env_steps, **record,
                       "training/walltime": time.time() - self.start}  # fmt: skip
        self.metrics.write(self.record)
        recent = self.epoch_times[-5:]
        self.eta = (c.num_epochs - epoch) * sum(recent) / len(recent)
        # Read the signal flag once: one that lands after this line waits for the next epoch, so the
        # stop below never finds a signal that this checkpoint decision did not see.
        self.stopping = bool(self.stop.received) if stopping is None else stopping
        due = epoch % c.checkpoint_every == 0 or epoch == c.num_epochs or self.stopping
        if self.checkpoints is not None and due:
            params, train_state = state()
            if not c.save_buffer:
                train_state = {k: v for k, v in train_state.items() if k != "buffer"}
            meta = {"epoch": epoch, "env_steps": self.env_steps, "wandb_id": self.metrics.wandb_id,
                    "has_buffer": c.save_buffer, "config": dataclasses.asdict(c)}  # fmt: skip
            try:
                self.last_checkpoint = save_checkpoint(self.checkpoints, params, train_state, meta)
            except CheckpointError as e:
                # The run stops (exit 1) rather than training on: every later epoch would be lost
                # at the next preemption or crash, and a cause such as a full disk or a bad path
                # needs a person. Not EXIT_REQUEUE: a requeued job would fail the same way.
                last = (
                    f"Last good checkpoint (intact): {self.last_checkpoint}; the same command resumes from it"
                    if self.last_checkpoint
                    else "No checkpoint saved yet: the same command starts afresh"
                )
                raise CheckpointError(f"{e}; stopping after epoch {epoch}. {last}") from e

    def check_stop(self, epoch: int) -> None:
        if self.stopping and epoch < self.config.num_epochs:
            self.stop.check(f"after epoch {epoch}", self.last_checkpoint)

    def log_epoch(self, epoch: int) -> None:
        """The epoch's line on the terminal: losses, temperature, evaluation score, ETA."""
        r, c = self.record, self.config
        log.info(
            "%sepoch %d/%d | env steps %s | %s sps | critic %.4f actor %.4f alpha %.4f | eval success "
            "%.1f/%d steps, any %.2f, dist %.2f per step | ETA %s",
            self.label, epoch, c.num_epochs, f"{self.env_steps:,}", f"{r['training/sps']:,.0f}",
            r["training/critic_loss"], r["training/actor_loss"], r["training/alpha"],
            r["eval/episode_success"], c.episode_length, r["eval/episode_success_any"],
            r["eval/episode_dist"] / max(r["eval/avg_episode_length"], 1.0), format_eta(self.eta),
        )  # fmt: skip

    def close(self) -> dict:
        if self.metrics is not None:
            self.metrics.close()
        return {**self.record, "run_dir": str(self.dir)}


class Seeds:
    """The runs one process trains together (train.py --num_seeds): a Run per seed, each with its own
    directory, config.json, metrics, checkpoints and wandb run, driven in lockstep. With several
    seeds every array of the training state carries a leading seed axis (`pick`, `stack`).

    A stop signal is read once per epoch for all seeds, so all of them checkpoint at the same epoch. A
    seed whose metrics turn non-finite stops alone: its checkpoints stay as they were, the others
    train on, and the process then ends with an error that names it."""

    def __init__(self, configs: list, stop: StopSignals, budget: Callable[[Any], tuple[int, int]]):
        self.runs = [Run(c, stop, budget) for c in configs]
        self.stop, self.several = stop, len(configs) > 1
        self.failed: dict[int, str] = {}  # seed index -> why it stopped
        self.stopping = False
        if self.several:
            for r in self.runs:
                r.label = f"seed {r.config.seed} | "
        starts = {str(r.dir): r.first_epoch for r in self.runs}
        if len(set(starts.values())) > 1:  # a kill between the seeds' saves of one epoch
            raise RunDirError(
                "the seeds' latest checkpoints are of different epochs ("
                + ", ".join(f"{d}: {e}" for d, e in starts.items())
                + "); bring each seed to the same epoch with --resume <its folder> and the same flags, "
                "then continue them together"
            )
        self.first_epoch, self.finished = self.runs[0].first_epoch, self.runs[0].finished

    @property
    def env_steps(self) -> int:
        return self.runs[0].env_steps

    def pick(self, tree, k: int):
        """Seed k's part of a tree of arrays with a seed axis (the tree itself for a single seed)."""
        return jax.tree.map(lambda x: x[k], tree) if self.several else tree

    def stack(self, trees: list):
        return jax.tree.map(lambda *xs: jnp.stack(xs), *trees) if self.several else trees[0]

    def restore(self, params: dict, train_state: dict) -> Optional[tuple[dict, dict]]:
        """Run.restore for every seed, stacked and placed like the templates; None for a new run."""
        restored = [r.restore(*self.pick((params, train_state), k)) for k, r in enumerate(self.runs)]
        if restored[0] is None or not self.several:
            return restored[0]
        stacked = self.stack(restored)
        templates = (params, {k: v for k, v in train_state.items() if k in stacked[1]})
        return jax.tree.map(lambda x, t: jax.device_put(x, t.sharding), stacked, templates)

    def begin(self) -> None:
        for r in self.runs:
            r.begin()

    def end_epoch(self, epoch: int, epoch_env_steps: int, records: list[dict],
                  state: Callable[[int], tuple[dict, dict]]) -> None:  # fmt: skip
        """Run.end_epoch for each seed still training: records[k] and state(k) are seed k's."""
        self.stopping = bool(self.stop.received)
        for k, r in enumerate(self.runs):
            if k in self.failed:
                continue
            try:
                r.end_epoch(epoch, epoch_env_steps, records[k], lambda k=k: state(k), self.stopping)
            except FloatingPointError as e:
                if not self.several:
                    raise
                self.failed[k] = f"seed {r.config.seed}: {e}"
                log.error("%s; the other seeds train on", self.failed[k])
        if len(self.failed) == len(self.runs):
            raise FloatingPointError("; ".join(self.failed.values()))

    def check_stop(self, epoch: int) -> None:
        if not self.several:
            return self.runs[0].check_stop(epoch)
        if self.stopping and epoch < self.runs[0].config.num_epochs:
            self.stop.check(f"after epoch {epoch}", f"epoch_{epoch} of each seed's run directory")

    def log_epoch(self, epoch: int) -> None:
        for k, r in enumerate(self.runs):
            if k not in self.failed:
                r.log_epoch(epoch)

    def close(self) -> dict | list[dict]:
        """The last records: a list, one per seed, with several."""
        results = [r.close() for r in self.runs]
        return results if self.several else results[0]

    def check_failed(self) -> None:
        """After close, on the way out of a run that ended normally: raises if a seed stopped on NaNs
        (a stop signal's exit status, which requeues the job, is not overridden by it)."""
        if self.failed:
            finished = [str(r.dir) for k, r in enumerate(self.runs) if k not in self.failed]
            raise FloatingPointError(
                "; ".join(self.failed.values()) + ". The other seeds finished: " + ", ".join(finished)
            )


def open_run_dir(config) -> Path:
    """This run's directory: the one to resume, the one asked for, or a new timestamped one."""
    if config.resume:
        run_dir = Path(config.resume)
        if latest_checkpoint(run_dir) is None:
            raise RunDirError(f"--resume {run_dir}: no checkpoint there to resume from")
        return run_dir
    if config.run_dir:
        run_dir = Path(config.run_dir)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = base = (
            Path(config.run_root) / f"{config.env_id}__{config.exp_name}__s{config.seed}__{stamp}"
        )
        n = 1
        while run_dir.exists():  # two runs started in the same second
            run_dir, n = Path(f"{base}-{n}"), n + 1
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    if latest_checkpoint(run_dir) is None and jax.process_index() == 0:
        (run_dir / "config.json").write_text(json.dumps(described(config), indent=2))
    return run_dir


def described(config) -> dict:
    """A run's config as config.json and wandb record it: its fields, and which script's
    algorithm it configures (train.py: crl; sac.py, td3.py: sac, td3), so that reports and
    wandb tell the algorithms apart whatever the run's exp_name."""
    return {"algorithm": config.algorithm, **dataclasses.asdict(config)}


def parse_config(
    config_cls: type, args: Optional[list[str]], schedule: Callable[[Any], tuple[int, int]], epilog: str = ""
):
    """The command line's config. With --resume the saved config is the default, so only flags given
    next to it may differ; a larger --total_env_steps continues the run at the same epoch size
    (num_epochs grows to match, unless given)."""
    config = cli.parse(config_cls, args, epilog)
    if config.resume is not None:
        try:
            saved = config_cls(**checkpoint_meta(Path(config.resume))["config"])
        except FileNotFoundError as e:
            raise RunDirError(f"--resume {config.resume}: {e}") from None
        config = cli.parse(config_cls, args, epilog, default=saved)
    elif config.run_dir is not None and latest_checkpoint(Path(config.run_dir)) is not None:
        saved = config_cls(**checkpoint_meta(Path(config.run_dir))["config"])  # a requeued job
    else:
        return config
    return extend(saved, config, schedule)


def extend(saved, config, schedule: Callable[[Any], tuple[int, int]]):
    """`config` with num_epochs fitted to a changed total_env_steps, so that every epoch keeps the
    saved run's size; a budget change that would resize epochs is refused. `schedule(config)` is
    (prefill env steps, env steps per epoch)."""
    if (config.total_env_steps, config.num_epochs) == (saved.total_env_steps, saved.num_epochs):
        return config
    prefill, per_epoch = schedule(saved)
    if config.num_epochs == saved.num_epochs:
        num_epochs = max((config.total_env_steps - prefill) // per_epoch, 1)
        config = dataclasses.replace(config, num_epochs=num_epochs)
        log.info("continuing to %d epochs of %s env steps each", num_epochs, f"{per_epoch:,}")
    if schedule(config)[1] != per_epoch:
        raise RunDirError(
            f"--total_env_steps {config.total_env_steps:,} with --num_epochs {config.num_epochs} changes the "
            f"size of an epoch ({per_epoch:,} env steps in the saved run); give only --total_env_steps, "
            f"and the number of epochs follows"
        )
    return config


def main(parse_config: Callable[[], Any], train: Callable[[Any, StopSignals], Any]) -> None:
    """The command line around a training run: no traceback for what a user can fix. Exit 0 when
    done, 75 when a stop signal ended it (job.slurm requeues), 1 with one line for a config that
    cannot run, a NaN, a checkpoint that could not be written or a second Ctrl-C."""
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", force=True
    )
    log.setLevel(logging.INFO)
    try:
        # Not restored on the way out: a signal during the exit must not kill the process either.
        with StopSignals(restore=False) as stop:
            config = parse_config()
            stop.check("before start-up", None)
            initialize_distributed(config.distributed)
            train(config, stop)
    except (ConfigError, FloatingPointError, CheckpointError) as e:
        sys.exit(f"error: {e}")
    except Preempted as e:
        log.warning("%s", e)
        sys.exit(EXIT_REQUEUE)
    except KeyboardInterrupt:
        sys.exit("aborted (second Ctrl-C): nothing saved since the last checkpoint")
