// @ts-check
// One scenario list, driven against both CLIs: the Rust `jetstream-pubsub` and the Node
// host's `bin/jetstream-pubsub.mjs`. Each scenario runs the same commands on both and
// checks the same output, so a behaviour cannot diverge silently; the last test has one
// CLI subscribe to what the other published and compares the lines both print.
//
// The Rust CLI is `target/debug/jetstream-pubsub` (built by `cargo test`), or
// JETSTREAM_PUBSUB_BIN; HOST_JS_ONLY=1 leaves it out (then only the Node CLI is checked).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { NatsServer } from "./support/nats-server.mjs";
import { sleep } from "./support/recorder.mjs";

const NODE_CLI = fileURLToPath(new URL("../bin/jetstream-pubsub.mjs", import.meta.url));
const RUST_CLI = process.env.JETSTREAM_PUBSUB_BIN ?? fileURLToPath(new URL("../../target/debug/jetstream-pubsub", import.meta.url));

/** @type {{ name: string, command: string[] }[]} */
const HOSTS = [{ name: "node", command: [process.execPath, NODE_CLI] }];
if (process.env.HOST_JS_ONLY !== "1") HOSTS.push({ name: "rust", command: [RUST_CLI] });

/** @type {NatsServer} */
let server;
let streams = 0;
before(async () => {
  if (process.env.HOST_JS_ONLY !== "1" && !existsSync(RUST_CLI)) {
    throw new Error(`no Rust CLI at ${RUST_CLI}: run \`cargo build -p jetstream-pubsub-host\` (or set JETSTREAM_PUBSUB_BIN; HOST_JS_ONLY=1 checks the Node CLI alone)`);
  }
  server = await NatsServer.start();
});
after(async () => {
  await server?.stop();
});

/**
 * Runs a CLI to the end.
 * @param {string[]} command
 * @param {string[]} args
 * @param {string} [input]
 * @returns {Promise<{ code: number | null, stdout: string, stderr: string }>}
 */
function run(command, args, input) {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0], [...command.slice(1), ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? "");
  });
}

/** A fresh stream covering `subject` and `subject.>`. */
async function fresh() {
  const n = ++streams;
  await server.stream(`CLI${n}`, [`cli${n}`, `cli${n}.>`]);
  return { stream: `CLI${n}`, subject: `cli${n}` };
}

/** @param {string} stdout */
const lines = (stdout) => stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));

/**
 * A subscribe line with what differs between two runs (event ids) taken out.
 * @param {any} line
 */
function normalised(line) {
  const out = structuredClone(line);
  if (out.cloudevent) out.cloudevent.id = "ID";
  if (out.metadata?.["Nats-Msg-Id"]) out.metadata["Nats-Msg-Id"] = "ID";
  if (typeof out.data === "string" && out.content_type === "application/cloudevents+json") {
    const event = JSON.parse(out.data);
    event.id = "ID";
    out.data = event;
  }
  return out;
}

/**
 * @typedef {{ name: string, command: string[] }} Host
 * @type {{ name: string, run: (host: Host) => Promise<void> }[]}
 */
const SCENARIOS = [
  {
    name: "publish prints the PubAck line",
    async run(host) {
      const { stream, subject } = await fresh();
      const out = await run(host.command, ["publish", "--metadata", `natsURL=${server.url}`, "--topic", subject, "--data", "hello"]);
      assert.equal(out.code, 0, out.stderr);
      assert.equal(out.stdout, `{"stream":"${stream}","sequence":1,"duplicate":false}\n`);
    },
  },
  {
    name: "publish --lines prints one PubAck per line, in order, and a summary",
    async run(host) {
      const { stream, subject } = await fresh();
      const out = await run(host.command, ["publish", "--metadata", `natsURL=${server.url}`, "--topic", subject, "--lines"], "a\nb\nc\n");
      assert.equal(out.code, 0, out.stderr);
      assert.deepEqual(lines(out.stdout), [1, 2, 3].map((sequence) => ({ stream, sequence, duplicate: false })));
      assert.match(out.stderr, /published 3 lines: 3 stored, 0 duplicates, 0 failed/);
    },
  },
  {
    name: "subscribe prints one line per message and acknowledges each",
    async run(host) {
      const { stream, subject } = await fresh();
      const md = ["--metadata", `natsURL=${server.url}`];
      await run(host.command, ["publish", ...md, "--topic", subject, "--data", '{"n":1}']);
      await run(host.command, ["publish", ...md, "--topic", subject, "--data", "plain", "--content-type", "text/plain"]);
      const out = await run(host.command, ["subscribe", ...md, "--metadata", "durableName=reader", "--topic", subject, "--count", "2", "--timeout", "10"]);
      assert.equal(out.code, 0, out.stderr);
      const got = lines(out.stdout).map(normalised);
      const event = (/** @type {string} */ type, /** @type {unknown} */ data) => ({
        specversion: "1.0", id: "ID", type: "com.dapr.event.sent", source: "jetstream-pubsub", datacontenttype: type, data,
        topic: subject, pubsubname: "pubsub", traceid: "", traceparent: "", tracestate: "",
      });
      const metadata = { "Content-Type": "application/cloudevents+json", "Nats-Msg-Id": "ID", Topic: subject };
      assert.deepEqual(got, [
        { topic: subject, subject, data: event("application/json", { n: 1 }), content_type: "application/cloudevents+json", metadata, cloudevent: event("application/json", { n: 1 }) },
        { topic: subject, subject, data: event("text/plain", "plain"), content_type: "application/cloudevents+json", metadata, cloudevent: event("text/plain", "plain") },
      ]);
      const { nc, jsm } = await server.client();
      const info = await jsm.consumers.info(stream, "reader");
      await nc.close();
      assert.equal(info.ack_floor.stream_seq, 2, "both acknowledged");
      assert.equal(info.num_ack_pending, 0);
    },
  },
  {
    name: "a wildcard topic reports the pattern and each subject",
    async run(host) {
      const { subject } = await fresh();
      const md = ["--metadata", `natsURL=${server.url}`];
      await run(host.command, ["publish", ...md, "--topic", `${subject}.created`, "--data", "c", "--raw"]);
      await run(host.command, ["publish", ...md, "--topic", `${subject}.paid`, "--data", "p", "--raw"]);
      const out = await run(host.command, ["subscribe", ...md, "--topic", `${subject}.*`, "--count", "2", "--timeout", "10"]);
      assert.equal(out.code, 0, out.stderr);
      assert.deepEqual(lines(out.stdout).map((l) => [l.topic, l.subject, l.data]), [
        [`${subject}.*`, `${subject}.created`, "c"],
        [`${subject}.*`, `${subject}.paid`, "p"],
      ]);
    },
  },
  {
    name: "request metadata travels as headers and comes back as metadata",
    async run(host) {
      const { subject } = await fresh();
      const md = ["--metadata", `natsURL=${server.url}`];
      await run(host.command, ["publish", ...md, "--topic", subject, "--data", "x", "--raw", "--request-metadata", "tenant=acme"]);
      const out = await run(host.command, ["subscribe", ...md, "--topic", subject, "--count", "1", "--timeout", "10"]);
      assert.equal(out.code, 0, out.stderr);
      assert.deepEqual(lines(out.stdout)[0].metadata, { Topic: subject, tenant: "acme" });
    },
  },
  {
    name: "the same CloudEvent id is stored once (Nats-Msg-Id)",
    async run(host) {
      const { stream, subject } = await fresh();
      const md = ["--metadata", `natsURL=${server.url}`];
      const event = '{"specversion":"1.0","id":"evt-1","type":"t","source":"s"}';
      const first = await run(host.command, ["publish", ...md, "--topic", subject, "--data", event]);
      const second = await run(host.command, ["publish", ...md, "--topic", subject, "--data", event]);
      assert.equal(first.stdout, `{"stream":"${stream}","sequence":1,"duplicate":false}\n`);
      assert.equal(second.stdout, `{"stream":"${stream}","sequence":1,"duplicate":true}\n`);
      assert.equal(second.stderr, `duplicate: stream ${stream} already holds id "evt-1" (sequence 1); nothing new was stored\n`);
    },
  },
  {
    name: "competing subscribers on one durable and queue group share the messages",
    async run(host) {
      const { subject } = await fresh();
      const md = ["--metadata", `natsURL=${server.url}`, "--metadata", "durableName=workers", "--metadata", "queueGroupName=workers"];
      const a = run(host.command, ["subscribe", ...md, "--topic", subject, "--timeout", "4"]);
      const b = run(host.command, ["subscribe", ...md, "--topic", subject, "--timeout", "4"]);
      await sleep(1500);
      const input = Array.from({ length: 100 }, (_, i) => `w-${i}`).join("\n") + "\n";
      const published = await run(host.command, ["publish", "--metadata", `natsURL=${server.url}`, "--topic", subject, "--lines", "--raw"], input);
      assert.equal(published.code, 0, published.stderr);
      const [outA, outB] = await Promise.all([a, b]);
      const got = [...lines(outA.stdout), ...lines(outB.stdout)].map((l) => l.data);
      assert.equal(got.length, 100, "each message to exactly one subscriber");
      assert.equal(new Set(got).size, 100);
      assert.ok(lines(outA.stdout).length > 0 && lines(outB.stdout).length > 0, "both got work");
      assert.equal(outA.code, 0, outA.stderr);
      assert.equal(outB.code, 0, outB.stderr);
    },
  },
  {
    name: "metadata the component rejects exits 2 with its text",
    async run(host) {
      const out = await run(host.command, ["subscribe", "--metadata", `natsURL=${server.url}`, "--metadata", "maxDeliver=abc", "--topic", "x", "--timeout", "1"]);
      assert.equal(out.code, 2);
      assert.equal(out.stderr, "error: invalid metadata: 1 error(s) decoding:\n\n* cannot parse 'maxDeliver' as int: strconv.ParseInt: parsing \"abc\": invalid syntax\n");
    },
  },
  {
    name: "a topic no stream covers exits 1 naming it",
    async run(host) {
      const out = await run(host.command, ["subscribe", "--metadata", `natsURL=${server.url}`, "--topic", "no.stream.here", "--timeout", "1"]);
      assert.equal(out.code, 1);
      assert.equal(out.stderr, "error: no stream matches subject no.stream.here\n");
    },
  },
  {
    name: "--timeout without --count and no message exits 3",
    async run(host) {
      const { subject } = await fresh();
      const out = await run(host.command, ["subscribe", "--metadata", `natsURL=${server.url}`, "--topic", subject, "--timeout", "1"]);
      assert.equal(out.code, 3);
      assert.equal(out.stderr, "no message received in 1s\n");
    },
  },
  {
    name: "--count not reached by --timeout exits 1",
    async run(host) {
      const { subject } = await fresh();
      await run(host.command, ["publish", "--metadata", `natsURL=${server.url}`, "--topic", subject, "--data", "only-one"]);
      const out = await run(host.command, ["subscribe", "--metadata", `natsURL=${server.url}`, "--topic", subject, "--count", "2", "--timeout", "1.5"]);
      assert.equal(out.code, 1);
      assert.equal(lines(out.stdout).length, 1);
      assert.equal(out.stderr, "error: timed out after 1.5s: received 1 of 2 messages\n");
    },
  },
  {
    name: "--timeout without --count after messages exits 0",
    async run(host) {
      const { subject } = await fresh();
      await run(host.command, ["publish", "--metadata", `natsURL=${server.url}`, "--topic", subject, "--data", "one"]);
      const out = await run(host.command, ["subscribe", "--metadata", `natsURL=${server.url}`, "--topic", subject, "--timeout", "1"]);
      assert.equal(out.code, 0, out.stderr);
      assert.equal(lines(out.stdout).length, 1);
    },
  },
];

for (const scenario of SCENARIOS) {
  for (const host of HOSTS) {
    test(`${host.name} CLI: ${scenario.name}`, () => scenario.run(host));
  }
}

test("each CLI prints the same line for a message the other published", { skip: HOSTS.length < 2 }, async () => {
  const [node, rust] = HOSTS;
  const md = ["--metadata", `natsURL=${server.url}`];
  /** @type {any[][]} */
  const seen = [];
  for (const [publisher, subscriber] of [[node, rust], [rust, node]]) {
    const { subject } = await fresh();
    await run(publisher.command, ["publish", ...md, "--topic", subject, "--data", '{"amount": 19.90, "big": 123456789012345678901234567890}', "--request-metadata", "tenant=acme"]);
    const out = await run(subscriber.command, ["subscribe", ...md, "--topic", subject, "--count", "1", "--timeout", "10"]);
    assert.equal(out.code, 0, out.stderr);
    // Numbers to the digit: the raw line, not only its parse.
    assert.match(out.stdout, /"data":\{"amount": 19\.90, "big": 123456789012345678901234567890\}/);
    seen.push(lines(out.stdout).map(normalised).map((l) => ({ ...l, topic: "T", subject: "T", metadata: { ...l.metadata, Topic: "T" }, cloudevent: { ...l.cloudevent, topic: "T" }, data: { ...l.data, topic: "T" } })));
  }
  assert.deepEqual(seen[0], seen[1]);
});
