"""runs.py as train.py uses it: stop signals at any moment (start-up included), Ctrl-C, finished
and extended runs, live progress, grouped --help."""

import io
import os
import signal
import subprocess
import sys
import time

import jax
import pytest

import runs
import train
from tests.test_resume import records, tiny_run
from tests.test_train import ROOT, TINY, cli_args


def start(args, **env):
    return subprocess.Popen(
        [sys.executable, "train.py", *args], cwd=ROOT, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **env},
    )  # fmt: skip


def test_a_signal_during_start_up_ends_in_exit_75_without_a_traceback(tmp_path):
    """SIGUSR1 while train.py is still importing (and, in a second run, while it compiles): a clean
    requeue exit that says no checkpoint exists yet, never the default kill (exit 138)."""
    config = {**TINY, "run_dir": str(tmp_path / "run"), "checkpoint": True}
    during_imports = start(cli_args(config))
    time.sleep(0.5)  # the interpreter is up; jax, brax and mujoco are still importing
    during_imports.send_signal(signal.SIGUSR1)
    err = during_imports.stderr.read()
    assert during_imports.wait(timeout=300) == runs.EXIT_REQUEUE, err[-3000:]
    assert "Traceback" not in err and "SIGUSR1: stopped" in err and "no checkpoint yet" in err, err[-3000:]

    during_compile = start(cli_args(config))
    seen = []
    for line in during_compile.stderr:
        seen.append(line)
        if "compiling and prefilling" in line:  # once, and again as the phase ends: both are handled
            during_compile.send_signal(signal.SIGTERM)
    assert during_compile.wait(timeout=300) == runs.EXIT_REQUEUE, "".join(seen[-30:])
    assert not any("Traceback" in line for line in seen)
    assert any("SIGTERM: stopped before the first epoch" in line for line in seen), "".join(seen[-30:])


def test_first_ctrl_c_checkpoints_and_stops_second_aborts(tmp_path):
    # Without the buffer in the checkpoint, the resumed run refills it: a phase long enough for the
    # second Ctrl-C to land while the first has been handled and the run has not yet stopped.
    config = {**TINY, "num_epochs": 40, "total_env_steps": 160 + 40 * 2 * 40, "checkpoint": True,
              "checkpoint_every": 1000, "run_dir": str(tmp_path / "run"), "save_buffer": False}  # fmt: skip
    proc = start(cli_args(config))
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "epoch 1/40 |" in line and "env steps" in line:
            proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=300) == runs.EXIT_REQUEUE, "".join(seen[-30:])
    text = "".join(seen)
    assert "Traceback" not in text and "SIGINT received" in text and "Ctrl-C again to abort" in text
    stopped = records(tmp_path / "run")[-1]["epoch"]
    assert runs.latest_checkpoint(tmp_path / "run") == stopped < 40

    proc = start(["--resume", str(tmp_path / "run")])
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "resuming" in line or "compiling and prefilling" in line:
            proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=300) == 1, "".join(seen[-30:])
    text = "".join(seen)
    assert "Traceback" not in text and "aborted (second Ctrl-C)" in text, text[-3000:]
    assert runs.latest_checkpoint(tmp_path / "run") == stopped  # the saved checkpoint is intact


def test_a_finished_run_says_so_and_continues_to_a_larger_budget(tmp_path, caplog):
    config = tiny_run(tmp_path, "run")  # 4 epochs of 80 env steps after a 160-step prefill
    train.train(config)
    run_dir = tmp_path / "run"
    assert [r["epoch"] for r in records(run_dir)] == [1, 2, 3, 4]

    with caplog.at_level("INFO", logger="crl"):
        out = train.train(train.parse_config(["--resume", str(run_dir)]))
    assert "already finished (epoch 4 of 4)" in caplog.text and out["run_dir"] == str(run_dir)
    assert len(records(run_dir)) == 4

    longer = train.parse_config(["--resume", str(run_dir), "--total_env_steps", str(160 + 6 * 80)])
    assert (longer.num_epochs, longer.total_env_steps) == (6, 640)  # the same 80 env steps per epoch
    assert train.train(longer)["epoch"] == 6
    steps = [r["training/envsteps"] for r in records(run_dir)]
    assert steps == [240, 320, 400, 480, 560, 640]

    # The same run, uninterrupted to 6 epochs, gives the same numbers.
    whole = tiny_run(tmp_path, "whole", num_epochs=6, total_env_steps=640)
    train.train(whole)
    assert records(tmp_path / "whole") == records(run_dir)

    with pytest.raises(runs.RunDirError, match="changes the size of an epoch"):
        train.parse_config(["--resume", str(run_dir), "--total_env_steps", "2000", "--num_epochs", "7"])


def test_progress_reports_phases_and_steps_inside_an_epoch():
    stream = io.StringIO()
    progress = runs.Progress(total_steps=1000, every=0.0, stream=stream)
    progress.enabled = True
    with progress.phase("prefilling"):
        time.sleep(0.05)
    progress.start_epoch(1, 5, 200, 40)
    progress.begin_phase("compiling the training epoch")
    progress.training_step(1)  # ends the compile phase; speed counts from here
    time.sleep(0.05)
    progress.training_step(3)
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("prefilling ...") and any("prefilling: done in" in line for line in lines)
    assert any("compiling the training epoch: done in" in line for line in lines)
    last = lines[-1]
    assert "epoch 1/5 | env steps 320/1,000 (32%)" in last and "sps" in last and "ETA" in last


def test_the_epoch_reports_each_training_step_to_the_host_from_cacheable_programs():
    heard = []
    trainer = train.build(train.Config(**TINY), report=lambda n: heard.append(int(n)))
    ts, env_state, buf = trainer.prefill(*trainer.init(jax.random.PRNGKey(0)))
    # The compiled programs hold no host callback: JAX would never write them to the persistent
    # compilation cache (--compilation_cache_dir), and a requeued job would compile them again.
    for name, program in [("init", trainer.init.lower(jax.random.PRNGKey(0))),
                          ("prefill", trainer.prefill.lower(ts, env_state, buf)),
                          ("training_step", trainer.training_step.lower(ts, env_state, buf))]:  # fmt: skip
        assert "callback" not in program.as_text(), name
    trainer.training_epoch(ts, env_state, buf)
    assert heard == list(range(1, trainer.derived.training_steps_per_epoch + 1))


def test_help_groups_the_flags_and_lists_env_ids():
    text = runs.grouped_help(train.Config, "train.py", "env ids: reacher")
    headings = [
        line for line in text.splitlines() if line and not line.startswith(" ") and line.endswith(":")
    ]
    assert headings[:3] == ["experiment:", "environment:", "schedule:"]
    assert {"networks:", "optimisation:", "logging:", "checkpoints and artefacts:"} <= set(headings)
    assert text.index("--critic_depth") > text.index("networks:") > text.index("--batch_size")
    assert "--contrastive_loss_fn {infonce,infonce_backward," in text
    assert text.rstrip().endswith("env ids: reacher")


def test_run_management_fields_are_marked_in_the_config():
    fields = runs.run_management_fields(train.Config)
    assert {"run_dir", "resume", "track", "wandb_mode", "checkpoint_every", "capture_vis"} <= fields
    assert not fields & {"seed", "env_id", "critic_depth", "batch_size", "save_buffer"}
    saved, given = train.Config(**TINY), train.Config(**{**TINY, "track": True, "gamma": 0.9})
    assert runs.config_mismatch(saved, given) == ["gamma: 0.99 -> 0.9"]


def test_train_blocks_during_its_imports_exactly_the_signals_that_stop_signals_handles():
    # train.py masks the stop signals before its slow imports (it cannot import runs that early);
    # a signal handled by StopSignals but not masked there would kill a run during start-up.
    import ast

    source = (ROOT / "train.py").read_text()
    call = next(
        node for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "signal.pthread_sigmask"
    )  # fmt: skip
    blocked = {getattr(signal, a.attr) for a in call.args[1].elts}
    assert blocked == set(runs.StopSignals.SIGNALS)
