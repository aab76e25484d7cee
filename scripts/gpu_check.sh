#!/usr/bin/env bash
# The GPU check: one command, about 10 minutes on one H100 or H200 (scripts/gpu_check.py says
# what it measures). On a GPU node without internet access that has jax, flax, optax and orbax
# but no brax, mujoco or tyro, it first installs the wheels that scripts/prepare_gpu_wheels.sh
# downloaded into .gpu_wheels/ on a machine that has internet access (copy the folder along).
#
#   bash scripts/gpu_check.sh                    # GPU: figures to $OUT (or gpu_check_out/)
#   uv run bash scripts/gpu_check.sh --tiny      # CPU: same code paths, tiny sizes
#
# The wheels go into a --target folder on PYTHONPATH rather than a venv: the machine's python3
# is itself a venv (/opt/torch/.venv), and a venv made from it with --system-site-packages would
# see the base interpreter's packages, not that venv's jax.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
OUT_DIR=${OUT:-gpu_check_out}
mkdir -p "$OUT_DIR"
if ! "$PYTHON" -c "import brax, mujoco.mjx, tyro" 2>/dev/null; then
    if [ ! -d .gpu_wheels ]; then
        echo "brax/mujoco/tyro missing and no .gpu_wheels/: run scripts/prepare_gpu_wheels.sh here and carry .gpu_wheels" >&2
        exit 1
    fi
    site=${GPU_CHECK_SITE:-/tmp/gpu_check_site}
    "$PYTHON" -m pip install -q --no-index --find-links .gpu_wheels --no-deps --no-compile \
        --no-cache-dir --upgrade --target "$site" .gpu_wheels/*.whl || exit 1
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
exec "$PYTHON" scripts/gpu_check.py --out "$OUT_DIR/gpu_check.json" "$@"
