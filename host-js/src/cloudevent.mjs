// @ts-check
/**
 * CloudEvents envelopes, made where Dapr's sidecar makes them, as the Rust host's
 * `cloudevent.rs` makes them: a payload that already is a CloudEvent is sent as it is (its
 * `id` is the application's deliberate deduplication key); any other payload is wrapped in
 * a new event with a fresh UUID, so business JSON with an `id` field is never deduplicated
 * by accident.
 * @module
 */
import { randomUUID } from "node:crypto";

export const CONTENT_TYPE = "application/cloudevents+json";
export const EVENT_TYPE = "com.dapr.event.sent";
export const DEFAULT_SOURCE = "Dapr";
export const DEFAULT_DATA_CONTENT_TYPE = "text/plain";

const decoder = new TextDecoder("utf-8", { fatal: true });

/** @param {Uint8Array} data */
function utf8(data) {
  try {
    return decoder.decode(data);
  } catch {
    return undefined;
  }
}

/** @param {string | undefined} text */
function parseJson(text) {
  if (text === undefined) return { ok: false, value: undefined };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, value: undefined };
  }
}

/** @param {string} contentType */
const essence = (contentType) => contentType.split(";")[0].trim().toLowerCase();

/**
 * Whether `payload` is a JSON object: what daprd takes for a CloudEvent when it delivers.
 * @param {Uint8Array} payload
 */
export function isJsonObject(payload) {
  const text = utf8(payload);
  if (text === undefined || text.trimStart()[0] !== "{") return false;
  return parseJson(text).ok;
}

/**
 * @typedef {object} Wrapped
 * @property {Uint8Array} data what to publish
 * @property {string} contentType `application/cloudevents+json`
 * @property {string | undefined} id the event's id, the stream's deduplication key for it
 * @property {boolean} wrapped false when the payload already was a CloudEvent
 */

export class Envelope {
  /**
   * @param {string} source the event source (daprd uses the app id)
   * @param {string} pubsubName the component's name
   */
  constructor(source, pubsubName) {
    this.source = source;
    this.pubsubName = pubsubName;
  }

  /**
   * Dapr's publish (see the module doc; the rules are the Rust host's, to the letter).
   * @param {string} topic
   * @param {Uint8Array} data
   * @param {string} [contentType]
   * @returns {Wrapped}
   */
  wrap(topic, data, contentType) {
    const declared = contentType !== undefined && essence(contentType).startsWith(CONTENT_TYPE);
    const text = utf8(data);
    const parsed = parseJson(text);
    const object = parsed.ok && parsed.value !== null && typeof parsed.value === "object" && !Array.isArray(parsed.value) && /** @type {string} */ (text).trimStart()[0] === "{";
    if (object) {
      const v = parsed.value;
      /** @param {unknown} x */
      const str = (x) => (typeof x === "string" ? x : undefined);
      const complete = [v.specversion, v.id, v.source, v.type].every((x) => typeof x === "string");
      if (declared || complete) return { id: str(v.id), data, contentType: CONTENT_TYPE, wrapped: false };
    }
    const id = randomUUID();
    const json = parsed.ok;
    const given = contentType !== undefined && contentType.trim() !== "" ? contentType : undefined;
    const type = given ?? (json ? "application/json" : DEFAULT_DATA_CONTENT_TYPE);
    const kind = essence(type);
    /** @type {Record<string, unknown>} */
    const event = { specversion: "1.0", id, type: EVENT_TYPE, source: this.source, datacontenttype: type };
    const marker = `jetstream-pubsub-data-${id}`;
    /** @type {string | undefined} */
    let raw;
    if (kind.startsWith("application/json") && json) {
      event.data = marker;
      raw = /** @type {string} */ (text).trim();
    } else if (kind.startsWith("application/octet-stream") || text === undefined) {
      event.data_base64 = Buffer.from(data).toString("base64");
    } else {
      event.data = text;
    }
    Object.assign(event, { topic, pubsubname: this.pubsubName, traceid: "", traceparent: "", tracestate: "" });
    let serialized = JSON.stringify(event);
    if (raw !== undefined) serialized = serialized.replace(`"${marker}"`, () => /** @type {string} */ (raw));
    return { data: new TextEncoder().encode(serialized), contentType: CONTENT_TYPE, id, wrapped: true };
  }
}

/**
 * A raw subscription's delivery as daprd makes it: a new CloudEvent carrying the bytes as `data_base64`.
 * @param {string} topic
 * @param {string} pubsubName
 * @param {Uint8Array} payload
 */
export function fromRawPayload(topic, pubsubName, payload) {
  return JSON.stringify({
    specversion: "1.0",
    id: randomUUID(),
    type: EVENT_TYPE,
    source: DEFAULT_SOURCE,
    datacontenttype: "application/octet-stream",
    data_base64: Buffer.from(payload).toString("base64"),
    topic,
    pubsubname: pubsubName,
  });
}
