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
