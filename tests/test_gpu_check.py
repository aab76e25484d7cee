"""The prepared GPU check (scripts/gpu_check.py): its tiny CPU run, its handling of a failing or
slow item, and the list of wheels the GPU machine needs."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import gpu_check  # noqa: E402
from tests.test_train import PLUMBING_XLA_FLAGS  # noqa: E402


def finite_numbers(tree, path=""):
    """(path, value) of every number in a JSON tree."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from finite_numbers(v, f"{path}/{k}")
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from finite_numbers(v, f"{path}/{i}")
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield path, tree


def test_tiny_run_fills_every_section_and_prints_the_table(tmp_path):
    # The same script and code paths as on the GPU, at tiny sizes on the CPU: one command. It checks
    # the plumbing (every item runs, every key and table is filled), not figures: opt level 0.
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable, "XLA_FLAGS": PLUMBING_XLA_FLAGS}
    proc = subprocess.run(["bash", "scripts/gpu_check.sh", "--tiny"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=2400)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["meta"]["mode"] == "tiny"
    planned = {i["name"]: i["section"] for i in gpu_check.plan(tiny=True)}
    assert set(report["sections"]) == set(gpu_check.SECTIONS)
    for name, section in planned.items():
        entry = report["sections"][section][name]
        assert entry["status"] == "ok", (name, entry.get("error"))
        assert entry["result"], name
    for path, value in finite_numbers(report):
        assert math.isfinite(value), path

    ceilings = report["sections"]["ceilings"]["ceilings"]["result"]
    for key in ("bf16_matmul_tflops", "fp32_matmul_tflops", "fp32_highest_matmul_tflops", "copy_gbps"):
        assert ceilings[key] > 0, key
    for name in ("humanoid_d4", "humanoid_d16", "humanoid_d64", "bf16_d64", "deep_remat_false",
                 "deep_remat_true"):  # fmt: skip
        r = report["sections"][planned[name]][name]["result"]
        for key in ("compile_s", "collect_sps", "sgd_steps_per_s", "train_sps", "update_tflops",
                    "update_share_of_peak", "peak_rss_gib"):  # fmt: skip
            assert r[key] > 0, (name, key)
    assert report["sections"]["bf16"]["bf16_d64"]["result"]["matmul_dtype"] == "bfloat16"
    deep = report["sections"]["deep"]
    assert deep["deep_remat_true"]["result"]["remat"] and not deep["deep_remat_false"]["result"]["remat"]
    # Remat trades memory for compute: XLA's scratch shrinks even at the tiny depth.
    assert deep["deep_remat_true"]["result"]["temp_gib"] < deep["deep_remat_false"]["result"]["temp_gib"]
    learn = report["sections"]["learn"]["learn"]["result"]
    assert len(learn["curve"]) == 2 and learn["env_steps"] > 0 and learn["success_after"] >= 0

    comparisons = report["comparisons"]
    assert comparisons["vs_paper_a100"]["depth_4"]["reference_device"] == gpu_check.PAPER_DEVICE
    assert comparisons["vs_paper_a100"]["depth_4"]["ratio"] > 0
    assert comparisons["bf16_vs_fp32_d64"]["sgd_steps_per_s"] > 0
    assert comparisons["remat_vs_plain_deep"]["temp_gib"] < 1
    seeds = report["sections"]["seeds"]["seeds_d4_n2"]["result"]
    assert seeds["num_seeds"] == 2 and seeds["train_sps"] > 0
    assert comparisons["seeds_vs_runs_in_turn"]["speedup"] > 0
    assert "| 2 |" in (tmp_path / "gpu_check.md").read_text()

    table = (tmp_path / "gpu_check.md").read_text()
    assert table in proc.stdout
    # The cross-device column names both devices, and the footer says the A100 is not side by side.
    assert f"cpu / {gpu_check.PAPER_DEVICE}" in table
    assert "side by side in one sitting" in table
    for name in planned:
        assert f"| {name} | ok |" in table, name
    assert (tmp_path / "gpu_check.log").stat().st_size > 0


def test_a_failing_and_a_slow_item_are_recorded_and_the_check_goes_on(tmp_path, monkeypatch):
    # The driver's handling without JAX: children that are plain Python one-liners.
    log = open(tmp_path / "log", "w")
    part = str(tmp_path / "part")
    write = f"import json; json.dump({{'compile_s': 1.5}}, open({part!r}, 'w'))"
    slow = gpu_check.run_child([sys.executable, "-c", f"{write}; import time; time.sleep(60)"], part, 3, log)
    assert slow["status"] == "timeout" and slow["seconds"] < 30
    assert slow["result"] == {"compile_s": 1.5}  # figures written before the kill survive
    failing = gpu_check.run_child([sys.executable, "-c", f"{write}; raise SystemExit('boom')"], part, 30, log)
    assert failing["status"] == "error" and "boom" in failing["error"]
    assert failing["result"] == {"compile_s": 1.5}
    ok = gpu_check.run_child([sys.executable, "-c", write], part, 30, log)
    assert ok["status"] == "ok" and "error" not in ok


def test_the_driver_records_an_injected_failure_and_runs_the_next_item(tmp_path):
    # The real child path: the ceilings item fails after its first figure; the run continues.
    out = tmp_path / "check.json"
    proc = subprocess.run(
        [sys.executable, "scripts/gpu_check.py", "--tiny", "--only", "ceilings", "--fail", "ceilings",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    entry = json.loads(out.read_text())["sections"]["ceilings"]["ceilings"]
    assert entry["status"] == "error" and "injected failure in ceilings" in entry["error"]
    assert entry["result"]["bf16_matmul_tflops"] > 0  # the figure measured before the failure
    assert "| ceilings | ceilings | error |" in proc.stdout


def owning_distributions(modules_of: str) -> set[str]:
    """Distributions whose files a fresh `import ...` loads (by file, so namespace packages such
    as google.* and mujoco.* resolve to the distribution that really provides each module)."""
    code = f"""
import importlib.metadata as md, json, os, sys, sysconfig
{modules_of}
owner = {{}}  # a file two distributions ship (mujoco's __init__.py) counts for both
for dist in md.distributions():
    for f in dist.files or []:
        owner.setdefault(os.path.realpath(dist.locate_file(f)), set()).add(dist.metadata["Name"])
stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
found = set()
for m in list(sys.modules.values()):
    path = getattr(m, "__file__", None)
    if path and not os.path.realpath(path).startswith(stdlib):
        found |= owner.get(os.path.realpath(path), set())
print(json.dumps(sorted(found)))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return set(json.loads(out.strip().splitlines()[-1]))


def normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def test_the_carried_wheels_are_exactly_what_train_imports_and_the_gpu_image_lacks():
    # The GPU machine cannot download: whatever `import train, bench` loads from a distribution
    # that its image lacks must travel as a wheel (scripts/gpu_wheels.txt), and nothing more.
    loaded = {normalize(d) for d in owning_distributions("import train, bench")}
    image = {normalize(d) for d in gpu_check.DEVICE_IMAGE.split()}
    carried = {normalize(line.split("#")[0].strip()) for line in (ROOT / "scripts/gpu_wheels.txt").read_text().splitlines()
               if line.split("#")[0].strip()}  # fmt: skip
    assert loaded - image == carried
    # Optional features stay optional: logging and video must not be needed to train.
    assert not loaded & {"wandb", "imageio", "imageio-ffmpeg"}
