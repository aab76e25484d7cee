#!/usr/bin/env bash
# Fetch, once, the JavaScript libraries brax's 3-D viewer draws with and the brax wheel does not
# ship (three.js with its add-ons, lil-gui), at the versions brax's viewer page imports, so that
# render.py can put them inside every render_<i>.html: the saved page then opens offline.
#
#   bash scripts/fetch_viewer_libs.sh          # -> $CRL_VIEWER_CACHE, else ~/.cache/deep-crl/viewer
#   bash scripts/fetch_viewer_libs.sh DIR      # -> DIR (then set CRL_VIEWER_CACHE=DIR for the runs)
#
# It runs `npm pack` (npm's default registry) and unpacks each package into DIR/<name>@<version>/.
# On a cluster whose compute nodes have no internet, run it on a login node: the cache is in the
# home directory (or wherever CRL_VIEWER_CACHE points), which the compute nodes share.
# ($XDG_CACHE_HOME/deep-crl/viewer replaces ~/.cache/deep-crl/viewer when XDG_CACHE_HOME is set.)
# The versions below are those of brax's visualizer/index.html import map (tests/test_render.py
# checks that they still are).
set -euo pipefail

PACKAGES=(three@0.150.1 lil-gui@0.18.0)

die() { echo "fetch_viewer_libs.sh: $*" >&2; exit 1; }

(( $# <= 1 )) || die "usage: bash scripts/fetch_viewer_libs.sh [DIR]"
DEST=${1:-${CRL_VIEWER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/deep-crl/viewer}}
command -v npm >/dev/null 2>&1 || die "npm not found: install Node.js and npm (Debian: apt-get install npm)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "${PACKAGES[@]}" >/dev/null) \
  || die "npm pack ${PACKAGES[*]} failed (no access to the npm registry?); see npm's message above"

mkdir -p "$DEST"
for spec in "${PACKAGES[@]}"; do
  name=${spec%@*}
  version=${spec##*@}
  tarball="$tmp/${name}-${version}.tgz"
  [[ -f $tarball ]] || die "npm pack did not write $(basename "$tarball")"
  mkdir -p "$tmp/unpacked/$spec"
  tar -xzf "$tarball" -C "$tmp/unpacked/$spec" --strip-components=1
  # three's package also holds its sources and the examples' models and textures (~30 MB):
  # the viewer needs build/ and examples/jsm/ only.
  rm -rf "$tmp/unpacked/$spec/src"
  if [[ -d $tmp/unpacked/$spec/examples ]]; then
    find "$tmp/unpacked/$spec/examples" -mindepth 1 -maxdepth 1 ! -name jsm -exec rm -rf {} +
  fi
  rm -rf "${DEST:?}/$spec"
  mv "$tmp/unpacked/$spec" "$DEST/$spec"
  echo "$DEST/$spec ($(du -sh "$DEST/$spec" | cut -f1))"
done
