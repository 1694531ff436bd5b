#!/usr/bin/env bash
# Installs what building and testing need, when it is missing, and says what it does:
# the wasm32-wasip2 Rust target (for the component) and nats-server (for the demo and tests).
set -euo pipefail

say() { printf '==> %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
  say "cargo is missing: install Rust with rustup (https://rustup.rs), then run this again"
  exit 1
fi

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  say "installing the Rust target wasm32-wasip2 (the component is built for it)"
  rustup target add wasm32-wasip2
fi

if ! command -v nats-server >/dev/null 2>&1; then
  say "installing nats-server (Debian package)"
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq nats-server
fi
say "nats-server: $(nats-server --version 2>/dev/null || echo unknown); $(cargo --version)"
