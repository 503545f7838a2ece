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
for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done
# zig is the musl C/C++ toolchain DuckDB needs; cargo-zigbuild drives it.
if ! need cargo-zigbuild || ! python3 -c 'import ziglang' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check ziglang cargo-zigbuild
fi

# The one build every command shares: release, musl, all profiles together.
MUSL=(--release --target "$HAKIRI_TARGET" --workspace --exclude hakiri-gates)
