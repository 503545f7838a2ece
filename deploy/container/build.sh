#!/bin/sh
# Builds the image of one profile from its built static binary:
#   deploy/container/build.sh core|full|coord [VERSION] [REVISION]
# Tags ghcr.io/hakiri-dev/hakiri-<profile>:<version>, :<major>.<minor> and
# :latest. Uses podman (daemonless) if present, else docker; HAKIRI_CONTAINER_TOOL
# chooses.
set -eu
profile="${1:?usage: build.sh core|full|coord [version] [revision]}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$HOME/.cache/hakiri/target}"
# The stripped copy `cargo gates check` measures (release/ keeps symbols).
binary="$target_dir/x86_64-unknown-linux-musl/release/shipped/hakiri-$profile"
version="${2:-$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)}"
revision="${3:-$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}"
image="${HAKIRI_IMAGE_REPO:-ghcr.io/hakiri-dev}/hakiri-$profile"
case "$profile" in
  full) listen='ENV HAKIRI_MCP__LISTEN=0.0.0.0:7878\nEXPOSE 7878' ;;
  coord) listen='ENV HAKIRI_COORD_API__LISTEN=0.0.0.0:7979\nEXPOSE 7979' ;;
  core) listen='' ;;
  *) echo "build.sh: unknown profile \`$profile\` (core, full or coord)" >&2; exit 1 ;;
esac
[ -x "$binary" ] || { echo "build.sh: $binary is not built; run \`cargo gates check\` first" >&2; exit 1; }
certs=/etc/ssl/certs/ca-certificates.crt
[ -f "$certs" ] || { echo "build.sh: no CA bundle at $certs (Debian: apt-get install ca-certificates)" >&2; exit 1; }
# HAKIRI_CONTAINER_TOOL picks one (CI pushes with the docker it logged in).
tool="${HAKIRI_CONTAINER_TOOL:-}"
if [ -z "$tool" ]; then
  if command -v podman >/dev/null 2>&1; then tool=podman; elif command -v docker >/dev/null 2>&1; then tool=docker; fi
fi
case "$tool" in
  podman|docker) command -v "$tool" >/dev/null 2>&1 || { echo "build.sh: $tool is not installed" >&2; exit 1; } ;;
  "") echo "build.sh: needs podman or docker" >&2; exit 1 ;;
  *) echo "build.sh: HAKIRI_CONTAINER_TOOL must be podman or docker, not \`$tool\`" >&2; exit 1 ;;
esac
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
trap 'exit 130' INT TERM
cp "$binary" "$context/hakiri"
cp "$certs" "$context/ca-certificates.crt"
mkdir "$context/data"
sed "s|^#LISTEN\$|$listen|" "$here/Containerfile" >"$context/Containerfile"
minor="$(echo "$version" | cut -d. -f1-2)"
"$tool" build --quiet -f "$context/Containerfile" \
  --build-arg PROFILE="hakiri-$profile" --build-arg VERSION="$version" --build-arg REVISION="$revision" \
  -t "$image:$version" -t "$image:$minor" -t "$image:latest" "$context" >/dev/null
echo "$image:$version"
