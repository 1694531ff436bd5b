#!/usr/bin/env bash
# The main job: builds the host (release) and round-trips 10,000 messages through the
# sandboxed component against the nats-server at 127.0.0.1:4222, or a temporary one it
# starts when none answers. Extra arguments go to `jetstream-pubsub demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
printf '==> building jetstream-pubsub (release; about 6 minutes the first time)\n' >&2
cargo build --release --locked -p jetstream-pubsub-host --bin jetstream-pubsub
exec ./target/release/jetstream-pubsub demo "$@"
