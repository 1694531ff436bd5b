#!/usr/bin/env bash
# The whole test suite: formatting, lints (host, and the component for wasm32-wasip2),
# unit tests of the component's logic, and the integration tests against real
# nats-server processes (each test starts its own on a free port).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
say() { printf '==> %s\n' "$*" >&2; }

say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy (native, all targets)"
cargo clippy --locked --workspace --all-targets -- -D warnings
say "cargo clippy (component, wasm32-wasip2)"
cargo clippy --locked -p jetstream-pubsub-guest --target wasm32-wasip2 -- -D warnings
say "cargo test (unit and integration)"
cargo test --locked --workspace

say "host-js: the Node.js host (npm ci from the lock file, then node --test against real nats-server processes)"
if ! command -v npm >/dev/null 2>&1; then
  say "installing Node.js and npm (Debian packages)"
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq nodejs npm
fi
say "node: $(node --version), npm: $(npm --version)"
# The scenario list runs against both CLIs: the Rust one is the binary `cargo test` built.
(cd host-js && npm ci --no-audit --no-fund && JETSTREAM_PUBSUB_BIN="$PWD/../target/debug/jetstream-pubsub" npm test)
