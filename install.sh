#!/bin/sh
# Installs one Hakiri profile as `hakiri`.
#
#   curl -fsSL https://github.com/hakiri-dev/hakiri/releases/latest/download/install.sh | sh
#   curl -fsSL …/install.sh | sh -s -- --profile=core --version=0.1.0 --prefix=/usr/local/bin
#   sh install.sh --uninstall [--prefix=…]
#
# Profiles: full (default: the daemon), core (Lambda, edge, CI), coord (Raft
# coordinator). The tarball's SHA-256 is checked against the release's
# checksum file before anything is installed, and the binary is moved into
# place in one rename, so an interrupted install leaves no partial `hakiri`.
# HAKIRI_INSTALL_BASE_URL replaces the release URL (mirrors, tests).
set -eu

base="${HAKIRI_INSTALL_BASE_URL:-https://github.com/hakiri-dev/hakiri/releases}"
profile=full
version=latest
prefix=
uninstall=no

say() { printf '%s\n' "hakiri install: $*" >&2; }
die() { say "$*"; exit 1; }

usage() {
  cat <<'EOF'
usage: install.sh [--profile=full|core|coord] [--version=X.Y.Z|latest] [--prefix=DIR] [--uninstall]
EOF
}

for arg in "$@"; do
  case "$arg" in
    --profile=*) profile="${arg#*=}" ;;
    --version=*) version="${arg#*=}" ;;
    --prefix=*) prefix="${arg#*=}" ;;
    --uninstall) uninstall=yes ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument \`$arg\`" ;;
  esac
done

case "$profile" in
  full | core | coord) ;;
  *) die "unknown profile \`$profile\`: choose full (the daemon), core (Lambda, edge, CI) or coord (Raft coordinator)" ;;
esac

if [ -z "$prefix" ]; then
  if [ "$(id -u)" = 0 ]; then prefix=/usr/local/bin; else prefix="$HOME/.local/bin"; fi
fi

if [ "$uninstall" = yes ]; then
  if [ -e "$prefix/hakiri" ]; then
    rm -f "$prefix/hakiri"
    say "removed $prefix/hakiri"
  else
    say "nothing to remove: no $prefix/hakiri"
  fi
  exit 0
fi

os="$(uname -s)"
arch="$(uname -m)"
case "$os" in
  Linux) ;;
  *) die "no build for $os yet: Hakiri ships static Linux binaries (x86_64); build from source elsewhere" ;;
esac
case "$arch" in
  x86_64 | amd64) target=x86_64-unknown-linux-musl ;;
  *) die "no build for $arch yet: Hakiri ships x86_64 Linux binaries; build from source elsewhere" ;;
esac

if command -v curl >/dev/null 2>&1; then
  fetch() { curl -fsSL "$1" -o "$2"; }
elif command -v wget >/dev/null 2>&1; then
  fetch() { wget -q "$1" -O "$2"; }
else
  die "needs curl or wget"
fi
if command -v sha256sum >/dev/null 2>&1; then
  sha256() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then
  sha256() { shasum -a 256 "$1" | cut -d' ' -f1; }
else
  die "needs sha256sum or shasum to verify the download"
fi

work="$(mktemp -d)"
partial="$prefix/.hakiri.partial.$$"
trap 'rm -rf "$work"; rm -f "$partial"' EXIT
trap 'exit 130' INT TERM

if [ "$version" = latest ]; then
  fetch "$base/latest/download/VERSION" "$work/VERSION" \
    || die "cannot find the latest version at $base/latest/download/VERSION; pass --version=X.Y.Z"
  version="$(tr -d ' \n\r' <"$work/VERSION")"
fi
version="${version#v}"

name="hakiri-$profile-$version-$target"
tarball="$name.tar.gz"
sums="hakiri-$profile-$version-SHA256SUMS"
url="$base/download/v$version"
fetch "$url/$sums" "$work/$sums" || die "cannot download $url/$sums: is $version a released version?"
fetch "$url/$tarball" "$work/$tarball" || die "cannot download $url/$tarball"

expected="$(awk -v f="$tarball" '$2 == f || $2 == "*" f || $2 == "./" f { print $1 }' "$work/$sums")"
[ -n "$expected" ] || die "$sums does not list $tarball"
actual="$(sha256 "$work/$tarball")"
[ "$expected" = "$actual" ] \
  || die "checksum mismatch for $tarball: expected $expected, got $actual; nothing was installed"

tar -xzf "$work/$tarball" -C "$work"
[ -x "$work/$name/hakiri" ] || die "$tarball holds no executable hakiri"
mkdir -p "$prefix"
# Copy next to the destination, then rename: never a half-written hakiri.
cp "$work/$name/hakiri" "$partial"
chmod 0755 "$partial"
mv -f "$partial" "$prefix/hakiri"

say "installed hakiri-$profile $version as $prefix/hakiri"
case ":$PATH:" in
  *":$prefix:"*) ;;
  *) say "$prefix is not on your PATH; add it, e.g. export PATH=\"$prefix:\$PATH\"" ;;
esac
