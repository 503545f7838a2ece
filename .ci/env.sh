# shellcheck shell=bash
# Sourced by every .ci script: installs what the build needs (idempotently)
# and fixes the flags that tests, clippy and the gates share, so DuckDB,
# Polars and Wasmtime compile once per machine.
set -euo pipefail

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hakiri/target}"
export HAKIRI_TARGET=x86_64-unknown-linux-musl
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$CARGO_TARGET_DIR"

need() { command -v "$1" >/dev/null 2>&1; }

if ! need cargo; then
  echo "cargo not found: install Rust with rustup (https://rustup.rs)" >&2
  exit 1
fi
if ! rustup target list --installed 2>/dev/null | grep -qx "$HAKIRI_TARGET"; then
  rustup target add "$HAKIRI_TARGET"
fi
# WebAssembly connectors (the SDK, its example, the test guests) build for WASI 0.2.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi
for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done
# Python tools go where python3 accepts them, else into a project venv:
# Debian's own python3 refuses system-wide pip installs (PEP 668). A venv
# made on an earlier run stays in use.
HAKIRI_VENV="${HAKIRI_VENV:-$HOME/.cache/hakiri/venv}"
if [ -x "$HAKIRI_VENV/bin/python3" ]; then export PATH="$HAKIRI_VENV/bin:$PATH"; fi
venv_on() {
  if [ ! -x "$HAKIRI_VENV/bin/python3" ] && ! python3 -m venv "$HAKIRI_VENV" 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && need apt-get; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$HAKIRI_VENV" && python3 -m venv "$HAKIRI_VENV"
    else
      echo "python3 -m venv failed: install python3-venv (Debian: apt-get install python3-venv)" >&2
      return 1
    fi
  fi
  export PATH="$HAKIRI_VENV/bin:$PATH"
}
pip_install() {
  python3 -m pip install --quiet --disable-pip-version-check "$@" 2>/dev/null && return 0
  venv_on && python3 -m pip install --quiet --disable-pip-version-check "$@"
}

# Build scripts link with the host's `cc`, and the gates strip with binutils:
# a fresh Debian has neither.
if ! need cc || ! need strip; then
  if [ "$(id -u)" = 0 ] && need apt-get; then
    apt-get update -qq && apt-get install -y -qq gcc binutils >/dev/null
  else
    echo "a C compiler (cc) and binutils are needed: apt-get install gcc binutils (or your system's equivalent)" >&2
    exit 1
  fi
fi

# zig is the musl C/C++ toolchain DuckDB needs; cargo-zigbuild drives it.
if ! need cargo-zigbuild || ! python3 -c 'import ziglang' 2>/dev/null; then
  pip_install ziglang==0.17.1 cargo-zigbuild==0.24.1
fi

# The one build every command shares: release, musl, all profiles together.
# shellcheck disable=SC2034 # used by the scripts that source this file
MUSL=(--release --target "$HAKIRI_TARGET" --workspace --exclude hakiri-gates)
