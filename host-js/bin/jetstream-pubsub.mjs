#!/usr/bin/env node
// @ts-check
/**
 * `jetstream-pubsub` for Node.js: the Rust CLI's `publish` and `subscribe`, with the same
 * flags, output lines and exit codes, running the same component.
 */
import { Failure } from "../src/cli/args.mjs";

const USAGE = `Usage: jetstream-pubsub <COMMAND> [OPTIONS]

Commands:
  publish    Publish a message (or one per line of stdin with --lines); prints each PubAck
  subscribe  Subscribe and print one JSON line per message

Component options (both commands):
  --component FILE        a Dapr Component manifest (spec.type: pubsub.jetstream)
  --metadata KEY=VALUE    adds or overrides one metadata entry (repeatable)
  --generated-dir DIR     another jco transpilation of the component

publish:    --topic T (--data D | --lines) [--content-type M] [--raw] [--source S] [--request-metadata K=V]...
subscribe:  --topic T [--count N] [--timeout SECS] [--raw]
`;

const commands = {
  publish: () => import("../src/cli/publish.mjs"),
  subscribe: () => import("../src/cli/subscribe.mjs"),
};

const [command, ...argv] = process.argv.slice(2);
if (command === "--help" || command === "-h" || command === "help") {
  process.stdout.write(USAGE);
  process.exit(0);
}
const load = commands[/** @type {keyof typeof commands} */ (command)];
if (!load) {
  process.stderr.write(`error: ${command === undefined ? "a subcommand is required" : `unrecognized subcommand '${command}'`}\n\n${USAGE}`);
  process.exit(2);
}
try {
  await (await load()).run(argv);
  process.exitCode = 0;
} catch (err) {
  if (err instanceof Failure) {
    process.stderr.write(err.code === 3 ? `${err.message}\n` : `error: ${err.message}\n`);
    process.exitCode = err.code;
  } else {
    process.stderr.write(`error: ${/** @type {any} */ (err)?.stack ?? err}\n`);
    process.exitCode = 1;
  }
}
