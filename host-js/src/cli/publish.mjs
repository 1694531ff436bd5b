// @ts-check
/**
 * `publish`: what an application's publish through the Dapr sidecar does, with the Rust
 * CLI's flags and output: one PubAck JSON line per message (`{"stream","sequence","duplicate"}`).
 * Each payload is wrapped in a CloudEvent with a fresh id first, as daprd wraps it (unless
 * it already is one, or `--raw` asks for the bytes unchanged).
 * @module
 */
import { createInterface } from "node:readline";
import { Envelope } from "../cloudevent.mjs";
import { COMPONENT_FLAGS, failed, pair, parse, start, usage } from "./args.mjs";

/** Lines published per pipelined batch with `--lines`. */
const LINES_PER_BATCH = 256;
const DEFAULT_SOURCE = "jetstream-pubsub";
const MESSAGE_ID_KEY = "nats-msg-id";

const FLAGS = {
  ...COMPONENT_FLAGS,
  topic: { type: "string" },
  data: { type: "string" },
  lines: { type: "boolean" },
  "content-type": { type: "string" },
  raw: { type: "boolean" },
  source: { type: "string" },
  "request-metadata": { type: "string", multiple: true },
};

/** @param {Uint8Array} payload */
function jsonId(payload) {
  try {
    const value = JSON.parse(new TextDecoder().decode(payload));
    return value && typeof value === "object" && !Array.isArray(value) && typeof value.id === "string" && value.id !== "" ? value.id : undefined;
  } catch {
    return undefined;
  }
}

/**
 * @param {import("../pubsub.mjs").PublishAck} ack
 * @param {string | undefined} id
 * @param {string} [line]
 */
function duplicateNote(ack, id, line) {
  const what = line === undefined ? "" : `line ${line}: `;
  const which = id === undefined ? "this message id" : `id ${JSON.stringify(id)}`;
  return `${what}duplicate: stream ${ack.stream} already holds ${which} (sequence ${ack.sequence}); nothing new was stored`;
}

/** @param {import("../pubsub.mjs").PublishAck} ack */
const ackLine = (ack) => JSON.stringify({ stream: ack.stream, sequence: ack.sequence, duplicate: ack.duplicate });

/** @param {string[]} argv */
export async function run(argv) {
  const flags = parse(argv, FLAGS);
  if (flags.topic === undefined) throw usage("the following required arguments were not provided: --topic <TOPIC>");
  if (flags.data !== undefined && flags.lines) throw usage("the argument '--data <DATA>' cannot be used with '--lines'");
  if (flags.data === undefined && !flags.lines) throw usage("the following required arguments were not provided: --data <DATA>");
  if (flags.raw && flags.source !== undefined) throw usage("the argument '--source <SOURCE>' cannot be used with '--raw'");
  const requestMetadata = (flags["request-metadata"] ?? []).map(pair);
  const topic = flags.topic;
  const { name, pubsub } = await start(flags);
  const envelope = new Envelope(flags.source ?? DEFAULT_SOURCE, name);
  const chosen = [...requestMetadata].reverse().find(([key]) => key.toLowerCase() === MESSAGE_ID_KEY)?.[1];
  /** @param {Uint8Array} payload */
  const outgoing = (payload) => {
    if (flags.raw) return { data: payload, contentType: flags["content-type"], dedupId: chosen ?? jsonId(payload) };
    const wrapped = envelope.wrap(topic, payload, flags["content-type"]);
    return { data: wrapped.data, contentType: wrapped.contentType, dedupId: chosen ?? wrapped.id };
  };
  try {
    if (flags.data !== undefined) {
      const out = outgoing(new TextEncoder().encode(flags.data));
      let ack;
      try {
        ack = await pubsub.publish({ topic, data: out.data, contentType: out.contentType, metadata: requestMetadata });
      } catch (err) {
        throw failed(/** @type {any} */ (err).message);
      }
      process.stdout.write(`${ackLine(ack)}\n`);
      if (ack.duplicate) process.stderr.write(`${duplicateNote(ack, out.dedupId)}\n`);
    } else {
      await publishLines(pubsub, topic, requestMetadata, outgoing);
    }
  } finally {
    await pubsub.close();
  }
}

/**
 * Reads stdin in batches and publishes each batch pipelined; acks print in line order.
 * @param {import("../pubsub.mjs").PubSub} pubsub
 * @param {string} topic
 * @param {[string, string][]} requestMetadata
 * @param {(payload: Uint8Array) => { data: Uint8Array, contentType?: string, dedupId?: string }} outgoing
 */
async function publishLines(pubsub, topic, requestMetadata, outgoing) {
  let failures = 0;
  let duplicates = 0;
  let lineNumber = 0;
  /** @type {{ entryId: string, data: Uint8Array, contentType?: string, metadata: [string, string][] }[]} */
  let batch = [];
  /** @type {(string | undefined)[]} */
  let ids = [];
  const flush = async () => {
    if (batch.length === 0) return;
    let results;
    try {
      results = await pubsub.bulkPublish(topic, batch);
    } catch (err) {
      throw failed(/** @type {any} */ (err).message);
    }
    let out = "";
    results.forEach((result, i) => {
      if (result.ack) {
        out += `${ackLine(result.ack)}\n`;
        if (result.ack.duplicate) {
          duplicates++;
          process.stderr.write(`${duplicateNote(result.ack, ids[i], result.entryId)}\n`);
        }
      } else {
        failures++;
        process.stderr.write(`line ${result.entryId}: ${result.error?.message}\n`);
      }
    });
    process.stdout.write(out);
    batch = [];
    ids = [];
  };
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    lineNumber++;
    const out = outgoing(new TextEncoder().encode(line));
    ids.push(out.dedupId);
    batch.push({ entryId: String(lineNumber), data: out.data, contentType: out.contentType, metadata: requestMetadata });
    if (batch.length === LINES_PER_BATCH) await flush();
  }
  await flush();
  const stored = lineNumber - failures - duplicates;
  process.stderr.write(`published ${lineNumber} lines: ${stored} stored, ${duplicates} duplicates, ${failures} failed\n`);
  if (failures > 0) throw failed(`${failures} of ${lineNumber} lines were not published`);
}
