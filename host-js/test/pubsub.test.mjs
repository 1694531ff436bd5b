// @ts-check
// The Node host's API against real nats-server processes and the real component: the
// scenarios of tests/roundtrip.rs and the core of tests/delivery.rs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { headers as natsHeaders } from "@nats-io/nats-core";
import { jetstream } from "@nats-io/jetstream";
import { PubSub, PubSubError } from "../src/index.mjs";
import { NatsServer } from "./support/nats-server.mjs";
import { Recorder, settled, sleep } from "./support/recorder.mjs";

/** @type {NatsServer} */
let server;
let streams = 0;

before(async () => {
  server = await NatsServer.start();
});
/** Whatever a test opened, closed even when it failed half-way (closing twice is fine). */
/** @type {{ close(): Promise<unknown> }[]} */
const opened = [];
after(async () => {
  await Promise.allSettled(opened.map((o) => o.close()));
  await server?.stop();
});

/**
 * @template {{ close(): Promise<unknown> }} T
 * @param {T} thing
 */
function closing(thing) {
  opened.push(thing);
  return thing;
}

/** Silent logger that keeps the lines, for tests that look at them. */
function quietLogger() {
  /** @type {string[]} */
  const lines = [];
  const keep = (/** @type {string} */ level) => (/** @type {string} */ m) => lines.push(`${level} ${m}`);
  return { lines, debug: keep("debug"), info: keep("info"), warn: keep("warn"), error: keep("error") };
}

/**
 * A fresh stream on `prefix.>`-free subjects and a PubSub on the test server.
 * @param {[string, string][]} [metadata]
 */
async function setup(metadata = []) {
  const n = ++streams;
  const subject = `s${n}`;
  await server.stream(`S${n}`, [subject, `${subject}.>`]);
  const pubsub = closing(await PubSub.create([["natsURL", server.url], ...metadata], { logger: quietLogger() }));
  return { pubsub, subject, stream: `S${n}` };
}

test("a published message reaches the handler unchanged, with its PubAck", async () => {
  const { pubsub, subject, stream } = await setup();
  const recorder = new Recorder();
  const sub = await pubsub.subscribe(subject, recorder.handler());
  const ack = await pubsub.publish({ topic: subject, data: "hello", contentType: "text/plain" });
  assert.deepEqual(ack, { stream, sequence: 1, duplicate: false });
  await recorder.waitUntil(5000, "the message", (m) => m.length === 1);
  const got = recorder.messages[0].message;
  assert.equal(recorder.messages[0].text, "hello");
  assert.equal(got.subject, subject);
  assert.equal(got.contentType, "text/plain");
  assert.deepEqual(got.delivery, { streamSequence: 1, consumerSequence: 1, delivered: 1 });
  assert.ok(got.metadata.some(([k, v]) => k === "Topic" && v === subject), JSON.stringify(got.metadata));
  // Acknowledged: nothing pending on the server.
  const info = await settled(server, sub.consumer);
  assert.equal(info.delivered.consumer_seq, 1);
  await sub.stop();
  await pubsub.close();
});

test("the same CloudEvent id is stored and delivered once (Nats-Msg-Id)", async () => {
  const { pubsub, subject } = await setup();
  const recorder = new Recorder();
  const sub = await pubsub.subscribe(subject, recorder.handler());
  const event = '{"specversion":"1.0","id":"evt-1","type":"t","source":"s"}';
  const first = await pubsub.publish(subject, event);
  const second = await pubsub.publish(subject, event);
  assert.ok(!first.duplicate && second.duplicate, JSON.stringify([first, second]));
  assert.equal(first.sequence, second.sequence);
  await pubsub.publish(subject, "raw");
  await pubsub.publish(subject, "raw");
  await recorder.waitUntil(5000, "the raw pair", () => recorder.countOf("raw") === 2);
  assert.equal(recorder.countOf(event), 1, "the event is delivered once");
  const idHeader = recorder.messages[0].message.metadata.find(([k]) => k === "Nats-Msg-Id");
  assert.deepEqual(idHeader, ["Nats-Msg-Id", "evt-1"]);
  await pubsub.close();
  void sub;
});

test("retry redelivers the message after the backOff delay", async () => {
  const { pubsub, subject } = await setup([["backOff", "300ms, 900ms"], ["maxDeliver", "3"]]);
  const recorder = new Recorder();
  const sub = await pubsub.subscribe(subject, recorder.handler(() => "retry"));
  await pubsub.publish(subject, "flaky");
  await recorder.waitUntil(8000, "three deliveries", (m) => m.length >= 3);
  const info = await settled(server, sub.consumer);
  const at = recorder.messages.map((m) => m.at);
  assert.equal(info.delivered.consumer_seq, 3, "maxDeliver 3 ends it");
  assert.deepEqual(recorder.messages.map((m) => m.message.delivery.delivered), [1, 2, 3]);
  assert.ok(at[1] - at[0] >= 280, `first retry after ~300ms: ${at[1] - at[0]}`);
  assert.ok(at[2] - at[1] >= 850, `second retry after ~900ms: ${at[2] - at[1]}`);
  await sleep(300);
  assert.equal(recorder.messages.length, 3);
  await pubsub.close();
});

test("retry then success: delivered twice, then acknowledged", async () => {
  const { pubsub, subject } = await setup();
  const recorder = new Recorder();
  const sub = await pubsub.subscribe(subject, recorder.handler((_, nth) => (nth === 1 ? "retry" : "success")));
  await pubsub.publish(subject, "job-1");
  await recorder.waitUntil(5000, "a redelivery", (m) => m.length >= 2);
  const info = await settled(server, sub.consumer);
  assert.equal(info.delivered.consumer_seq, 2);
  assert.deepEqual(recorder.payloads(), ["job-1", "job-1"]);
  await pubsub.close();
});

test("drop is +TERM: never redelivered, and the server announces it", async () => {
  const { pubsub, subject, stream } = await setup([["ackWait", "1s"]]);
  const { nc } = await server.client();
  closing(nc);
  const advisories = nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.${stream}.>`, { max: 1 });
  await nc.flush();
  const recorder = new Recorder();
  const sub = await pubsub.subscribe(subject, recorder.handler((m) => (recorder.messages.at(-1)?.text === "poison" ? "drop" : "success")));
  await pubsub.publish(subject, "poison");
  await pubsub.publish(subject, "fine");
  await recorder.waitUntil(5000, "both messages", (m) => m.length >= 2);
  const info = await settled(server, sub.consumer);
  assert.equal(info.delivered.consumer_seq, 2, "no redelivery");
  await sleep(1200);
  assert.equal(recorder.countOf("poison"), 1);
  const advisory = await Promise.race([
    (async () => {
      for await (const m of advisories) return m.json();
    })(),
    sleep(5000).then(() => assert.fail("no MSG_TERMINATED advisory within 5 s")),
  ]);
  assert.equal(advisory.stream, stream);
  assert.equal(advisory.stream_seq, 1, "the poison message is the terminated one");
  await nc.close();
  await pubsub.close();
});

test("competing consumers on one durable and queue group share the work", async () => {
  const { pubsub, subject } = await setup([["durableName", "workers"], ["queueGroupName", "workers"]]);
  const a = new Recorder();
  const b = new Recorder();
  const subA = await pubsub.subscribe(subject, a.handler());
  const subB = await pubsub.subscribe(subject, b.handler());
  assert.equal(subA.consumer.name, "workers");
  assert.equal(subB.consumer.name, "workers");
  const entries = Array.from({ length: 200 }, (_, n) => ({ entryId: String(n), data: `w-${n}` }));
  const results = await pubsub.bulkPublish(subject, entries);
  assert.ok(results.every((r) => r.ack), JSON.stringify(results.find((r) => !r.ack)));
  const total = () => a.messages.length + b.messages.length;
  const deadline = performance.now() + 10_000;
  while (total() < 200 && performance.now() < deadline) await sleep(10);
  const all = [...a.payloads(), ...b.payloads()];
  assert.equal(all.length, 200, "each message to exactly one subscriber");
  assert.equal(new Set(all).size, 200);
  assert.ok(a.messages.length > 0 && b.messages.length > 0, `both work: ${a.messages.length} / ${b.messages.length}`);
  await pubsub.close();
});

test("a second durable subscriber without a queue group is refused", async () => {
  const { pubsub, subject } = await setup([["durableName", "solo"]]);
  const first = await pubsub.subscribe(subject, () => "success");
  await assert.rejects(pubsub.subscribe(subject, () => "success"), (err) => {
    assert.ok(err instanceof PubSubError);
    assert.equal(err.kind, "terminal");
    assert.match(err.message, /solo/);
    return true;
  });
  await first.stop();
  await pubsub.close();
});

test("wildcard topics report the pattern and the concrete subject", async () => {
  const { pubsub, subject } = await setup();
  const recorder = new Recorder();
  await pubsub.subscribe(`${subject}.*`, recorder.handler());
  await pubsub.publish(`${subject}.created`, "c");
  await pubsub.publish(`${subject}.paid`, "p");
  await recorder.waitUntil(5000, "both", (m) => m.length === 2);
  assert.deepEqual(recorder.messages.map((m) => [m.message.topic, m.message.subject]), [
    [`${subject}.*`, `${subject}.created`],
    [`${subject}.*`, `${subject}.paid`],
  ]);
  await pubsub.close();
});

test("headers both ways: request metadata goes out as headers, message headers come in as metadata", async () => {
  const { pubsub, subject } = await setup();
  const { nc } = await server.client();
  closing(nc);
  const raw = nc.subscribe(subject, { max: 1 });
  await nc.flush();
  const recorder = new Recorder();
  await pubsub.subscribe(subject, recorder.handler());
  await pubsub.publish({ topic: subject, data: "x", metadata: [["tenant", "acme"], ["trace", "t-1"]] });
  for await (const m of raw) {
    assert.equal(m.headers?.get("tenant"), "acme");
    assert.equal(m.headers?.get("trace"), "t-1");
  }
  const h = natsHeaders();
  h.append("origin", "raw-client");
  h.append("multi", "1");
  h.append("multi", "2");
  await jetstream(nc).publish(subject, "from-raw", { headers: h });
  await recorder.waitUntil(5000, "both", (m) => m.length === 2);
  const [mine, theirs] = recorder.messages.map((m) => m.message.metadata);
  assert.ok(mine.some(([k, v]) => k === "tenant" && v === "acme"), JSON.stringify(mine));
  assert.ok(theirs.some(([k, v]) => k === "origin" && v === "raw-client"), JSON.stringify(theirs));
  assert.ok(theirs.some(([k]) => k === "multi"), JSON.stringify(theirs));
  await nc.close();
  await pubsub.close();
});

test("Topic is the subject, first and once; a message without headers has Topic alone", async () => {
  const { pubsub, subject } = await setup();
  const { nc } = await server.client();
  closing(nc);
  const recorder = new Recorder();
  await pubsub.subscribe(`${subject}.>`, recorder.handler());
  const h = natsHeaders();
  h.append("Topic", "spoofed");
  h.append("Content-Type", "text/plain");
  h.append("X-Trace", "t-1");
  await jetstream(nc).publish(`${subject}.a`, "with headers", { headers: h });
  await jetstream(nc).publish(`${subject}.b`, "without");
  await recorder.waitUntil(5000, "both", (m) => m.length === 2);
  const [withHeaders, without] = recorder.messages.map((m) => m.message);
  assert.deepEqual(withHeaders.metadata[0], ["Topic", `${subject}.a`]);
  assert.deepEqual(
    withHeaders.metadata.slice(1).sort(),
    [["Content-Type", "text/plain"], ["X-Trace", "t-1"]],
  );
  assert.equal(withHeaders.contentType, "text/plain");
  assert.deepEqual(without.metadata, [["Topic", `${subject}.b`]]);
  assert.equal(without.contentType, undefined);
  await nc.close();
  await pubsub.close();
});

test("a metadata error reaches the caller with the component's exact text", async () => {
  await assert.rejects(PubSub.create([["natsURL", server.url], ["maxDeliver", "abc"]], { logger: quietLogger() }), (err) => {
    assert.ok(err instanceof PubSubError);
    assert.equal(err.kind, "invalid-metadata");
    assert.equal(err.text, "1 error(s) decoding:\n\n* cannot parse 'maxDeliver' as int: strconv.ParseInt: parsing \"abc\": invalid syntax");
    assert.equal(err.message, `invalid metadata: ${err.text}`);
    return true;
  });
  await assert.rejects(PubSub.create([["natsURL", ""]], { logger: quietLogger() }), (err) => {
    assert.equal(/** @type {any} */ (err).kind, "invalid-metadata");
    assert.match(/** @type {any} */ (err).text, /nats URL/);
    return true;
  });
});

test("subscribing where no stream covers the topic names the topic", async () => {
  const pubsub = closing(await PubSub.create([["natsURL", server.url]], { logger: quietLogger() }));
  await assert.rejects(pubsub.subscribe("nothing.here", () => "success"), (err) => {
    assert.ok(err instanceof PubSubError);
    assert.equal(err.message, "no stream matches subject nothing.here");
    return true;
  });
  await pubsub.close();
});

test("publishing where no stream covers the subject is a retriable error naming it", async () => {
  const pubsub = closing(await PubSub.create([["natsURL", server.url]], { logger: quietLogger() }));
  await assert.rejects(pubsub.publish("nowhere.at.all", "x"), (err) => {
    assert.ok(err instanceof PubSubError);
    assert.equal(err.kind, "retriable", err.message);
    assert.match(err.message, /nowhere\.at\.all/);
    return true;
  });
  await pubsub.close();
});

test("the host refuses publishes to reserved subjects (the sandbox's subject rules)", async () => {
  const pubsub = closing(await PubSub.create([["natsURL", server.url]], { logger: quietLogger() }));
  await assert.rejects(pubsub.publish("$JS.API.STREAM.DELETE.X", "x"), (err) => {
    assert.ok(err instanceof PubSubError);
    assert.match(err.message, /not allowed to the component/);
    return true;
  });
  await assert.rejects(pubsub.publish("_INBOX.abc", "x"), /not allowed to the component/);
  await pubsub.close();
});

test("bulk publish reports each entry, in order", async () => {
  const { pubsub, subject } = await setup();
  const results = await pubsub.bulkPublish(subject, [
    { entryId: "a", data: "1" },
    { entryId: "b", data: "2", metadata: [["bad header", "x"]] },
    { entryId: "c", data: "3" },
  ]);
  assert.deepEqual(results.map((r) => r.entryId), ["a", "b", "c"]);
  assert.equal(results[0].ack?.sequence, 1);
  assert.ok(results[1].error, "a header name with a space cannot be sent");
  assert.match(String(results[1].error?.message), /header/);
  assert.equal(results[2].ack?.sequence, 2);
  await pubsub.close();
});

test("the host's batch limit refuses an oversized bulk publish, naming both numbers", async () => {
  const n = ++streams;
  await server.stream(`S${n}`, [`s${n}`]);
  const pubsub = closing(await PubSub.create([["natsURL", server.url]], { logger: quietLogger(), limits: { maxBatch: 4 } }));
  const results = await pubsub.bulkPublish(`s${n}`, Array.from({ length: 5 }, (_, i) => ({ entryId: String(i), data: "x" })));
  assert.ok(results.every((r) => r.error), JSON.stringify(results));
  assert.match(String(results[0].error?.message), /5 messages exceeds the host limit of 4/);
  await pubsub.close();
});

test("parallel mode runs handlers concurrently, bounded by maxAckPending", async () => {
  const { pubsub, subject } = await setup([["concurrencyMode", "parallel"], ["maxAckPending", "4"]]);
  let running = 0;
  let most = 0;
  const recorder = new Recorder();
  const record = recorder.handler();
  await pubsub.subscribe(subject, async (m) => {
    running++;
    most = Math.max(most, running);
    await sleep(50);
    running--;
    return record(m);
  });
  await pubsub.bulkPublish(subject, Array.from({ length: 16 }, (_, i) => ({ entryId: String(i), data: `p-${i}` })));
  await recorder.waitUntil(10_000, "all 16", (m) => m.length === 16);
  assert.equal(most, 4, "at most maxAckPending at once, and that many");
  await pubsub.close();
});

test("single mode delivers one at a time, in order", async () => {
  const { pubsub, subject } = await setup();
  let running = 0;
  let most = 0;
  const recorder = new Recorder();
  const record = recorder.handler();
  await pubsub.subscribe(subject, async (m) => {
    running++;
    most = Math.max(most, running);
    await sleep(5);
    running--;
    return record(m);
  });
  await pubsub.bulkPublish(subject, Array.from({ length: 20 }, (_, i) => ({ entryId: String(i), data: `o-${i}` })));
  await recorder.waitUntil(10_000, "all 20", (m) => m.length === 20);
  assert.equal(most, 1);
  assert.deepEqual(recorder.payloads(), Array.from({ length: 20 }, (_, i) => `o-${i}`));
  await pubsub.close();
});

test("a handler that throws has its message retried", async () => {
  const { pubsub, subject } = await setup();
  const recorder = new Recorder();
  await pubsub.subscribe(subject, recorder.handler((_, nth) => {
    if (nth === 1) throw new Error("boom");
    return "success";
  }));
  await pubsub.publish(subject, "once-failed");
  await recorder.waitUntil(5000, "the redelivery", (m) => m.length === 2);
  assert.equal(recorder.messages[1].message.delivery.delivered, 2);
  await pubsub.close();
});

test("stop waits for the running handler and leaves the durable", async () => {
  const { pubsub, subject, stream } = await setup([["durableName", "keeper"]]);
  let finished = false;
  /** @type {(v?: unknown) => void} */
  let began = () => {};
  const started = new Promise((resolve) => (began = resolve));
  const sub = await pubsub.subscribe(subject, async () => {
    began();
    await sleep(300);
    finished = true;
    return "success";
  });
  await pubsub.publish(subject, "slow");
  await started;
  await sub.stop();
  assert.ok(finished, "stop returned after the handler finished");
  const { nc, jsm } = await server.client();
  const info = await jsm.consumers.info(stream, "keeper");
  assert.equal(info.num_ack_pending, 0, "its answer reached the server");
  await nc.close();
  await pubsub.close();
});

test("the caller's event loop stays free while the component waits for messages", async () => {
  const { pubsub, subject } = await setup();
  await pubsub.subscribe(subject, () => "success");
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  await sleep(500);
  clearInterval(timer);
  assert.ok(ticks >= 50, `the interval fired ${ticks} times in 500 ms`);
  await pubsub.close();
});

test("messages buffered at stop go back long before the ack wait (the component's untaken answer)", async () => {
  const { pubsub, subject, stream } = await setup([["durableName", "buffered"], ["ackWait", "60s"]]);
  /** @type {(v?: unknown) => void} */
  let began = () => {};
  const started = new Promise((resolve) => (began = resolve));
  const sub = await pubsub.subscribe(subject, async () => {
    began();
    await sleep(500);
    return "success";
  });
  await pubsub.publish(subject, "in-flight");
  await started;
  // Sent by the server while the handler runs: buffered, never taken.
  for (let n = 1; n <= 5; n++) await pubsub.publish(subject, `buffered-${n}`);
  const { nc, jsm } = await server.client();
  closing(nc);
  const deadline = performance.now() + 5000;
  while ((await jsm.consumers.info(stream, "buffered")).delivered.stream_seq !== 6) {
    assert.ok(performance.now() < deadline, "the server never pushed them");
    await sleep(10);
  }
  await sub.stop();
  const recorder = new Recorder();
  const stopAt = performance.now();
  await pubsub.subscribe(subject, recorder.handler());
  // Handed back, they come again within seconds; left alone, only after the 60 s ack wait.
  await recorder.waitUntil(20_000, "the buffered messages", (m) => m.length >= 5);
  assert.deepEqual(recorder.payloads().sort(), [1, 2, 3, 4, 5].map((n) => `buffered-${n}`));
  assert.ok(recorder.messages[0].at - stopAt < 10_000);
  await pubsub.close();
});

test("a handler longer than the ack wait is not redelivered (the component's keep-alive)", async () => {
  const { pubsub, subject } = await setup([["ackWait", "1s"]]);
  let calls = 0;
  let finished = 0;
  const sub = await pubsub.subscribe(subject, async () => {
    calls++;
    await sleep(2500);
    finished++;
    return "success";
  });
  await pubsub.publish(subject, "takes-2.5s");
  const deadline = performance.now() + 10_000;
  while (finished === 0) {
    assert.ok(performance.now() < deadline, "the handler never finished");
    await sleep(10);
  }
  // Two and a half ack waits passed while it ran; the server counts one delivery.
  const info = await settled(server, sub.consumer);
  assert.deepEqual([info.delivered.consumer_seq, calls], [1, 1], "in-progress kept the message from being redelivered");
  await pubsub.close();
});

test("ackPolicy none sends no answers, and a failed message is not redelivered", async () => {
  const { pubsub, subject, stream } = await setup([["ackPolicy", "none"], ["durableName", "fire"], ["ackWait", "1s"]]);
  const { nc: watcher } = await server.client();
  closing(watcher);
  /** @type {string[]} */
  const answers = [];
  watcher.subscribe(`$JS.ACK.${stream}.>`, { callback: (_err, m) => answers.push(m.string()) });
  await watcher.flush();
  const recorder = new Recorder();
  const sub = await pubsub.subscribe(subject, recorder.handler(() => "retry"));
  await pubsub.publish(subject, "once");
  await recorder.waitUntil(5000, "the message", (m) => m.length > 0);
  const info = await settled(server, sub.consumer);
  await sleep(1500);
  assert.deepEqual([info.delivered.consumer_seq, recorder.countOf("once")], [1, 1]);
  assert.deepEqual(answers, [], "no answer went to the server");
  const { nc, jsm } = await server.client();
  closing(nc);
  assert.equal((await jsm.consumers.info(stream, "fire")).config.ack_policy, "none");
  await pubsub.close();
});

test("a consumer deleted under the subscription is recreated", async () => {
  const { pubsub, subject, stream } = await setup([["durableName", "phoenix"]]);
  const recorder = new Recorder();
  const sub = await pubsub.subscribe(subject, recorder.handler());
  await pubsub.publish(subject, "before");
  await recorder.waitUntil(5000, "the first message", (m) => m.length > 0);
  const { nc, jsm } = await server.client();
  closing(nc);
  await jsm.consumers.delete(stream, "phoenix");
  await pubsub.publish(subject, "after");
  await recorder.waitUntil(20_000, "the message published after the deletion", () => recorder.countOf("after") > 0);
  assert.equal((await jsm.consumers.info(stream, "phoenix")).name, "phoenix", "the durable exists again");
  await sub.stop();
  await pubsub.close();
});

test("a deleted stream ends the subscription with the component's clear error", async () => {
  const { pubsub, subject, stream } = await setup();
  const sub = await pubsub.subscribe(subject, () => "success");
  const { nc, jsm } = await server.client();
  closing(nc);
  await jsm.streams.delete(stream);
  const ended = await Promise.race([sub.finished.then(() => "stopped", (err) => err), sleep(20_000).then(() => "still running")]);
  assert.ok(ended instanceof PubSubError, String(ended));
  assert.equal(ended.message, `stream "${stream}" no longer exists: the subscription to ${subject} ended`);
  await assert.rejects(sub.stop(), { message: ended.message });
  await pubsub.close();
});
