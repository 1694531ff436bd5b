// @ts-check
// The host's pure pieces, table-driven, with the Rust host's vectors where it has them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { sequences } from "../src/transport/ack-subject.mjs";
import { toJetStream, fromJetStream } from "../src/transport/consumer-config.mjs";
import { Envelope } from "../src/cloudevent.mjs";
import { parseManifest } from "../src/manifest.mjs";
import { publishRefusal, deliverSubjectRefusal, headerRefusal, limits } from "../src/limits.mjs";
import { redactedServers, clientOptions } from "../src/transport/connect.mjs";
import { ackBody } from "../src/transport/subscription.mjs";

test("ack subjects, v1 and v2, and what is no ack subject", () => {
  assert.deepEqual(sequences("$JS.ACK.events.durable.3.100.7.1790230470084404000.42"), { delivered: 3, stream: 100, consumer: 7 });
  assert.equal(sequences("$JS.ACK._.hash.events.durable.3.100.7.1790230470084404000.42")?.delivered, 3);
  assert.equal(sequences("$JS.ACK.hub.hash.events.durable.3.100.7.1790230470084404000.42.rnd")?.delivered, 3);
  for (const bad of ["", "_INBOX.x", "$JS.ACK.a.b.c", "$JS.ACK.s.c.x.1.2.3.4", "$JS.ACK.s.c.1.2.3.4", "$JS.ACK.s.c.1.x.2.3.4", "$JS.ACK.s.c.-1.2.3.4.5", "$JS.ACK.s.c.99999999999999999999.2.3.4.5", "$JS.ACK.s.c..2.3.4.5"]) {
    assert.equal(sequences(bad), undefined, bad);
  }
});

const CONFIG = {
  durableName: "d", deliverSubject: undefined, deliverGroup: "g", deliverPolicy: { tag: "by-start-time", val: 1_700_000_000_123_456_789n },
  ackPolicy: "explicit", ackWaitNs: 5_000_000_000n, maxDeliver: 3n, backoffNs: BigUint64Array.from([300_000_000n, 900_000_000n]),
  maxAckPending: 10n, filterSubject: "orders.*", rateLimitBps: 0n, idleHeartbeatNs: 0n, flowControl: false, numReplicas: 0, memoryStorage: true,
};

test("a consumer config goes out field for field, zero values left out, and comes back the same", () => {
  const wire = toJetStream(CONFIG, "_INBOX.x");
  assert.deepEqual(wire, {
    deliver_subject: "_INBOX.x", ack_policy: "explicit", replay_policy: "instant", durable_name: "d", deliver_group: "g",
    deliver_policy: "by_start_time", opt_start_time: "2023-11-14T22:13:20.123456789Z", ack_wait: 5e9, max_deliver: 3,
    backoff: [3e8, 9e8], max_ack_pending: 10, filter_subject: "orders.*", mem_storage: true,
  });
  const back = fromJetStream({ stream_name: "S", name: "d", config: wire, push_bound: true, num_pending: 2, num_ack_pending: 1 });
  assert.deepEqual(back.config, { ...CONFIG, deliverSubject: "_INBOX.x" });
  assert.equal(back.pushBound, true);
  assert.equal(back.numPending, 2n);
  assert.throws(() => toJetStream({ ...CONFIG, surprise: 1 }, "x"), /surprise/);
});

test("deliver policies with their start option", () => {
  const seq = toJetStream({ ...CONFIG, deliverPolicy: { tag: "by-start-sequence", val: 42n } }, "x");
  assert.equal(seq.deliver_policy, "by_start_sequence");
  assert.equal(seq.opt_start_seq, 42);
  assert.equal(toJetStream({ ...CONFIG, deliverPolicy: { tag: "last-per-subject" } }, "x").deliver_policy, "last_per_subject");
  assert.equal(toJetStream({ ...CONFIG, deliverPolicy: { tag: "by-start-time", val: -1n } }, "x").opt_start_time, "1969-12-31T23:59:59.999999999Z");
});

test("answers on the wire", () => {
  const text = (/** @type {any} */ kind) => new TextDecoder().decode(ackBody(kind));
  assert.equal(text({ tag: "ack" }), "+ACK");
  assert.equal(text({ tag: "nak", val: undefined }), "-NAK");
  assert.equal(text({ tag: "nak", val: 1_000_000_000n }), '-NAK {"delay":1000000000}');
  assert.equal(text({ tag: "in-progress" }), "+WPI");
  assert.equal(text({ tag: "term" }), "+TERM");
});

test("a payload is wrapped as daprd wraps it; a CloudEvent is sent as it is", () => {
  const envelope = new Envelope("orders-service", "pubsub");
  const wrapped = envelope.wrap("orders.created", new TextEncoder().encode('{"id":"o-1","total":42}'));
  const event = JSON.parse(new TextDecoder().decode(wrapped.data));
  assert.equal(event.id, wrapped.id);
  assert.deepEqual({ ...event, id: "ID" }, {
    specversion: "1.0", id: "ID", type: "com.dapr.event.sent", source: "orders-service", datacontenttype: "application/json",
    data: { id: "o-1", total: 42 }, topic: "orders.created", pubsubname: "pubsub", traceid: "", traceparent: "", tracestate: "",
  });
  const text = (/** @type {string} */ s, /** @type {string | undefined} */ ct) => JSON.parse(new TextDecoder().decode(envelope.wrap("t", new TextEncoder().encode(s), ct).data));
  assert.deepEqual([text("hello").datacontenttype, text("hello").data], ["text/plain", "hello"]);
  assert.equal(text("{not json", "application/json").data, "{not json");
  assert.equal(text('{"a":1}', "text/plain").data, '{"a":1}');
  const binary = JSON.parse(new TextDecoder().decode(envelope.wrap("t", Uint8Array.from([0, 159, 146, 150]), "application/octet-stream").data));
  assert.equal(binary.data_base64, "AJ+Slg==");
  const lossy = JSON.parse(new TextDecoder().decode(envelope.wrap("t", Uint8Array.from([0xff, 0xfe]), "text/plain").data));
  assert.equal(lossy.data_base64, "//4=");
  const numbers = new TextDecoder().decode(envelope.wrap("t", new TextEncoder().encode(' {"amount": 19.90, "big": 123456789012345678901234567890}\n')).data);
  assert.match(numbers, /"data":\{"amount": 19\.90, "big": 123456789012345678901234567890\}/);
  const ce = new TextEncoder().encode('{"specversion":"1.0","id":"evt-1","type":"t","source":"s"}');
  assert.deepEqual(envelope.wrap("t", ce), { data: ce, contentType: "application/cloudevents+json", id: "evt-1", wrapped: false });
  const a = envelope.wrap("t", new TextEncoder().encode('{"id":"same"}'));
  const b = envelope.wrap("t", new TextEncoder().encode('{"id":"same"}'));
  assert.notEqual(a.id, b.id, "two publishes, two events");
});

const MANIFEST = `
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: orders
spec:
  type: pubsub.jetstream
  version: v1
  metadata:
  - name: natsURL
    value: "nats://localhost:4222"
  - name: maxDeliver
    value: 5
  - name: flowControl
    value: false
  - name: token
    secretKeyRef:
      name: nats-secrets
      key: token
`;

test("a manifest: scalars become strings, overrides satisfy a secretKeyRef, errors name the entry", () => {
  assert.throws(() => parseManifest("c.yaml", MANIFEST, []), {
    message: 'c.yaml: metadata "token": secretKeyRef to secret "nats-secrets" cannot be resolved: this host has no secret store; give the value with --metadata token=...',
  });
  const read = parseManifest("c.yaml", MANIFEST, [["token", "s3cret"]]);
  assert.equal(read.name, "orders");
  assert.deepEqual(read.metadata, [["natsURL", "nats://localhost:4222"], ["maxDeliver", "5"], ["flowControl", "false"], ["token", "s3cret"]]);
  assert.throws(() => parseManifest("c.yaml", MANIFEST.replace("kind: Component", "kind: Secret"), []), { message: 'c.yaml: kind is "Secret", expected "Component"' });
  assert.throws(() => parseManifest("c.yaml", MANIFEST.replace("pubsub.jetstream", "pubsub.redis"), []), { message: 'c.yaml: spec.type is "pubsub.redis", this host runs "pubsub.jetstream"' });
  assert.throws(() => parseManifest("c.yaml", MANIFEST.replace("version: v1", "version: v2"), []), { message: 'c.yaml: spec.version is "v2", pubsub.jetstream has only "v1"' });
  assert.throws(() => parseManifest("c.yaml", "kind: [", []), /c\.yaml: malformed manifest: /);
});

test("subject rules: what a component may publish to and listen on", () => {
  for (const subject of ["$JS.API.STREAM.DELETE.x", "$SYS.REQ.SERVER.PING", "_INBOX.abc", "orders.*", "a >", ""]) {
    assert.ok(publishRefusal(subject), `${JSON.stringify(subject)} must be refused`);
  }
  assert.equal(publishRefusal("orders.created"), undefined);
  assert.deepEqual(publishRefusal("$JS.API.X"), { tag: "refused", val: 'publishing to "$JS.API.X" is not allowed to the component' });
  assert.ok(deliverSubjectRefusal("$JS.API.CONSUMER.CREATE.x"));
  assert.equal(deliverSubjectRefusal("_INBOX.x1"), undefined);
  assert.deepEqual(headerRefusal([["ok", "a\r\nb"]]), { tag: "invalid", val: "header ok has a line break in its value" });
  assert.deepEqual(headerRefusal([["bad name", "v"]]), { tag: "invalid", val: 'invalid header name "bad name"' });
  assert.equal(headerRefusal([["Nats-Msg-Id", "x"]]), undefined);
  assert.throws(() => limits({ maxBatch: 0 }), { message: "limit maxBatch must be a positive integer, got 0" });
  assert.throws(() => limits({ /** @type {any} */ bogus: 1 }), { message: 'unknown limit "bogus"' });
});

test("no secret in what is shown of servers and credentials", () => {
  assert.equal(redactedServers(["nats://alice:s3cret@host:4222", "tls://host2:4222"]), "nats://***@host:4222, tls://host2:4222");
  assert.throws(
    () => clientOptions({ servers: ["nats://h:1"], name: "", auth: { tag: "credentials", val: { tag: "file", val: "/no/such/s3cret.creds" } }, tls: { required: false }, apiPrefix: "$JS.API", requestTimeoutMs: 1000 }),
    (/** @type {any} */ err) => err.payload.tag === "invalid" && /credentials file \/no\/such\/s3cret\.creds/.test(err.payload.val),
  );
  const options = clientOptions({ servers: ["nats://h:1"], name: "n", auth: { tag: "token", val: "tok-s3cret" }, tls: { required: false }, apiPrefix: "$JS.API", requestTimeoutMs: 1000 });
  assert.equal(options.token, "tok-s3cret");
  assert.equal(options.tls, undefined);
  assert.throws(() => clientOptions({ servers: ["ws://u:p@h:1"], name: "", auth: { tag: "none" }, tls: { required: false }, apiPrefix: "", requestTimeoutMs: 1 }), (/** @type {any} */ err) => err.payload.tag === "refused" && !err.payload.val.includes("u:p"));
});
