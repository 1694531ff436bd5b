#!/usr/bin/env node
// @ts-check
/**
 * Per-message cost through the Node host against `@nats-io/jetstream` used directly, in
 * the same run, on a nats-server of its own (a free port, a temporary store):
 *
 *   awaited publish    one publish at a time, each PubAck awaited before the next
 *   pipelined publish  all publishes in flight, then every PubAck awaited
 *   consume with ack   N stored messages read by a new consumer, each acknowledged
 *
 * Each round runs direct then component for every scenario; the figure is the median of
 * the rounds. Consumption is timed from the first message handled to the last (the
 * instance's start, about 150 ms, is not per message). Ratio = direct µs / component µs,
 * so 1.0 is parity and 0.5 is half the direct throughput.
 *
 *   node bench/bench.mjs [--messages N] [--rounds R] [--size BYTES]
 */
import { parseArgs } from "node:util";
import { jetstream } from "@nats-io/jetstream";
import { PubSub } from "../src/index.mjs";
import { NatsServer } from "../test/support/nats-server.mjs";

const { values } = parseArgs({
  options: { messages: { type: "string", default: "10000" }, rounds: { type: "string", default: "3" }, size: { type: "string", default: "16" } },
});
const N = Number(values.messages);
const ROUNDS = Number(values.rounds);
const payload = new Uint8Array(Number(values.size)).fill(120);

const server = await NatsServer.start();
const { nc, jsm } = await server.client();
const js = jetstream(nc);
let streams = 0;
async function fresh() {
  const n = ++streams;
  await jsm.streams.add({ name: `B${n}`, subjects: [`b${n}`] });
  return { stream: `B${n}`, subject: `b${n}` };
}
const quiet = { debug() {}, info() {}, warn: console.error, error: console.error };
const pubsub = await PubSub.create([["natsURL", server.url]], { logger: quiet });

/** @param {string} subject */
async function fill(subject) {
  const acks = [];
  for (let i = 0; i < N; i++) acks.push(js.publish(subject, payload));
  await Promise.all(acks);
}

/**
 * Milliseconds `work` takes on a fresh stream's subject.
 * @param {(subject: string) => Promise<void>} work
 */
async function timed(work) {
  const { subject } = await fresh();
  const t = performance.now();
  await work(subject);
  return performance.now() - t;
}

/** @type {Record<string, { direct: () => Promise<number>, component: () => Promise<number> }>} */
const scenarios = {
  "awaited publish": {
    direct: () => timed(async (subject) => {
      for (let i = 0; i < N; i++) await js.publish(subject, payload);
    }),
    component: () => timed(async (subject) => {
      for (let i = 0; i < N; i++) await pubsub.publish(subject, payload);
    }),
  },
  "pipelined publish": {
    direct: () => timed(fill),
    component: () => timed(async (subject) => {
      const acks = [];
      for (let i = 0; i < N; i++) acks.push(pubsub.publish(subject, payload));
      await Promise.all(acks);
    }),
  },
  "pipelined bulkPublish (256 a call)": {
    direct: () => timed(fill),
    component: () => timed(async (subject) => {
      const calls = [];
      for (let i = 0; i < N; i += 256) {
        const entries = [];
        for (let j = i; j < Math.min(N, i + 256); j++) entries.push({ entryId: String(j), data: payload });
        calls.push(pubsub.bulkPublish(subject, entries));
      }
      await Promise.all(calls);
    }),
  },
  "consume with ack": {
    async direct() {
      const { stream, subject } = await fresh();
      await fill(subject);
      await jsm.consumers.add(stream, { durable_name: "d", ack_policy: "explicit", filter_subject: subject });
      const consumer = await js.consumers.get(stream, "d");
      const messages = await consumer.consume();
      let seen = 0;
      let first = 0;
      for await (const m of messages) {
        if (seen === 0) first = performance.now();
        m.ack();
        if (++seen === N) break;
      }
      await nc.flush();
      const elapsed = performance.now() - first;
      await messages.close();
      return (elapsed * N) / (N - 1);
    },
    async component() {
      const { subject } = await fresh();
      await fill(subject);
      let seen = 0;
      let first = 0;
      let last = 0;
      /** @type {(v?: unknown) => void} */
      let done = () => {};
      const all = new Promise((resolve) => (done = resolve));
      const sub = await pubsub.subscribe(subject, () => {
        if (seen === 0) first = performance.now();
        if (++seen === N) {
          last = performance.now();
          done();
        }
        return "success";
      });
      await all;
      await sub.stop();
      return ((last - first) * N) / (N - 1);
    },
  },
};

/** @param {number[]} xs */
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
/** @type {Record<string, { direct: number[], component: number[] }>} */
const results = {};
for (let round = 1; round <= ROUNDS; round++) {
  for (const [name, run] of Object.entries(scenarios)) {
    results[name] ??= { direct: [], component: [] };
    results[name].direct.push(await run.direct());
    results[name].component.push(await run.component());
    process.stderr.write(`round ${round}/${ROUNDS}: ${name}\n`);
  }
}
const us = (/** @type {number} */ ms) => (ms * 1000) / N;
console.log(`node ${process.version}, ${N} messages of ${payload.length} bytes, median of ${ROUNDS} rounds`);
console.log(`| scenario | direct @nats-io/jetstream µs/msg | through the component µs/msg | ratio (direct/component) |`);
console.log(`|---|---:|---:|---:|`);
for (const [name, r] of Object.entries(results)) {
  const d = us(median(r.direct));
  const c = us(median(r.component));
  console.log(`| ${name} | ${d.toFixed(1)} | ${c.toFixed(1)} | ${(d / c).toFixed(2)} |`);
}
await pubsub.close();
await nc.close();
await server.stop();
