#!/usr/bin/env bash
# Download, for a GPU node without internet access, the wheels of the packages train.py imports at
# module level that its image lacks (an image with jax 0.11.2 + CUDA 13, flax, optax, orbax, numpy,
# scipy, matplotlib, rich, absl, etils ... but no brax, mujoco or tyro).
#
#   bash scripts/prepare_gpu_wheels.sh     # -> .gpu_wheels/ (ignored by git), prints the sizes
#
# Python 3.12 (the machine's python3), manylinux x86_64, --no-deps: exactly the list below, at the
# versions uv.lock pins. The list (scripts/gpu_wheels.txt) is what `import train, bench` loads and
# the image lacks (tests/test_gpu_check.py checks it); the requirements those packages declare
# but never import at module level (brax: flask, ml-collections, tensorboardX ...; mujoco:
# mujoco-studio, pyopengl; tyro: typeguard) stay behind, which keeps the upload small.
# The whole working tree that travels to the machine is limited to 64 MiB, so this fails above
# GPU_WHEELS_LIMIT_MIB (default 48, leaving room for the repository itself).
set -euo pipefail
cd "$(dirname "$0")/.."

DEST=${GPU_WHEELS_DIR:-.gpu_wheels}
LIMIT_MIB=${GPU_WHEELS_LIMIT_MIB:-48}
# One name per line in scripts/gpu_wheels.txt; '#' starts a comment.
mapfile -t PACKAGES < <(sed 's/#.*//; s/[[:space:]]//g; /^$/d' scripts/gpu_wheels.txt)

# Versions as uv.lock pins them (one version per name; numpy, the only name pinned twice, is not
# carried).
pins=$(uv run --no-sync python - "${PACKAGES[@]}" <<'PY'
import sys, tomllib
lock = tomllib.load(open("uv.lock", "rb"))
versions = {}
for p in lock["package"]:
    versions.setdefault(p["name"], set()).add(p["version"])
for name in sys.argv[1:]:
    found = versions.get(name)
    if not found or len(found) != 1:
        sys.exit(f"uv.lock pins {name} {sorted(found or [])}: expected exactly one version")
    print(f"{name}=={found.pop()}")
PY
)

rm -rf "$DEST"
mkdir -p "$DEST"
# pip matches manylinux tags exactly, so name every glibc level a wheel may be tagged with.
platforms=()
for tag in manylinux2014_x86_64 manylinux1_x86_64 manylinux_2_17_x86_64 manylinux_2_24_x86_64 \
    manylinux_2_27_x86_64 manylinux_2_28_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64 \
    manylinux_2_35_x86_64; do
    platforms+=(--platform "$tag")
done
# shellcheck disable=SC2086  # one pin per word
${PIP:-python3 -m pip} download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" -d "$DEST" $pins

echo "wheels for the GPU machine in $DEST:"
ls -l "$DEST" | awk 'NR > 1 {printf "  %8.2f MiB  %s\n", $5 / 2^20, $9}'
total=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
count=$(ls "$DEST"/*.whl | wc -l)
printf 'total: %d wheels, %.2f MiB (limit %d MiB)\n' "$count" "$(echo "$total / 1048576" | bc -l)" "$LIMIT_MIB"
if [ "$count" -ne "${#PACKAGES[@]}" ]; then
    echo "expected ${#PACKAGES[@]} wheels, got $count" >&2
    exit 1
fi
if [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then
    echo "the wheels exceed $LIMIT_MIB MiB: the working tree sent to the GPU machine is limited to 64 MiB" >&2
    exit 1
fi
