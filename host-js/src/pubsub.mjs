// @ts-check
/**
 * The embedder's face, shaped like the Rust host's `PubSub`: create from metadata pairs,
 * `publish`, `bulkPublish`, `subscribe(topic, handler)`, `close`. Every semantic is the
 * component's: this file only moves requests to its instances and PubAcks back.
 * @module
 */
import { ClientPool } from "./transport/connect.mjs";
import { TransportFailure } from "./transport/errors.mjs";
import { ComponentInstance, ComponentFailure } from "./instance.mjs";
import { loadComponent } from "./runtime.mjs";
import { limits as makeLimits } from "./limits.mjs";
import { stderrLogger } from "./log.mjs";

/** Component metadata: the `spec.metadata` name/value pairs of a Dapr Component. @typedef {[string, string][]} Metadata */

/** What the stream answered for a published message. @typedef {{ stream: string, sequence: number, duplicate: boolean }} PublishAck */

/**
 * @typedef {object} PublishRequest
 * @property {string} topic the subject
 * @property {Uint8Array | string} data the payload (a string is sent as UTF-8)
 * @property {string} [contentType] its MIME type
 * @property {Metadata} [metadata] request metadata: keys the component does not reserve become NATS headers
 */

/**
 * @typedef {object} BulkEntry
 * @property {string} entryId the caller's id, returned with the entry's result
 * @property {Uint8Array | string} data
 * @property {string} [contentType]
 * @property {Metadata} [metadata] merged over the request metadata
 */

/** @typedef {{ entryId: string, ack?: PublishAck, error?: PubSubError }} BulkEntryResult */

/**
 * @typedef {object} Options
 * @property {import("./log.mjs").Logger} [logger] where host and component lines go (default: stderr, from `warn`)
 * @property {Partial<import("./limits.mjs").Limits>} [limits] sandbox limits (see `limits.mjs`)
 * @property {string} [component] a directory holding another jco transpilation of the component
 */

/**
 * Why an operation failed. `kind` is the component's error class (`invalid-metadata`,
 * `terminal`, `retriable`) or the host's (`trap`: the component trapped or its worker
 * died; `usage`: bad arguments). `text` is the component's own text; `message` adds
 * `invalid metadata: ` in front of a metadata error, as the Rust host prints it.
 */
export class PubSubError extends Error {
  /**
   * @param {"invalid-metadata" | "terminal" | "retriable" | "trap" | "usage"} kind
   * @param {string} text
   */
  constructor(kind, text) {
    super(kind === "invalid-metadata" ? `invalid metadata: ${text}` : kind === "trap" ? `the component trapped: ${text}` : text);
    this.name = "PubSubError";
    this.kind = kind;
    this.text = text;
  }

  /** True when retrying the same call may succeed. */
  get retriable() {
    return this.kind === "retriable";
  }
}

/** @param {unknown} err */
function fromComponent(err) {
  if (err instanceof PubSubError) return err;
  if (err instanceof ComponentFailure) return new PubSubError(/** @type {any} */ (err.kind), err.message);
  return new PubSubError("trap", /** @type {any} */ (err)?.message ?? String(err));
}

/** @param {{ tag: string, val: string }} error a WIT `error` */
function fromVariant(error) {
  return new PubSubError(/** @type {any} */ (error.tag), error.val);
}

/**
 * @param {unknown} metadata
 * @param {string} what
 * @returns {Metadata}
 */
function checkMetadata(metadata, what) {
  if (metadata === undefined) return [];
  const pairs = metadata instanceof Map || (metadata && typeof metadata === "object" && !Array.isArray(metadata))
    ? Object.entries(metadata instanceof Map ? Object.fromEntries(metadata) : metadata)
    : metadata;
  if (!Array.isArray(pairs)) throw new PubSubError("usage", `${what} must be [key, value] pairs or an object, got ${typeof metadata}`);
  return pairs.map((pair, i) => {
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== "string" || typeof pair[1] !== "string") {
      throw new PubSubError("usage", `${what}[${i}] must be a [key, value] pair of strings`);
    }
    return [pair[0], pair[1]];
  });
}

const encoder = new TextEncoder();
/** @param {Uint8Array | string} data */
const bytes = (data) => (typeof data === "string" ? encoder.encode(data) : data);

/** The default pump: as the Rust host's (`pump(id, 1024, 1000 ms)`). */
const PUMP = Object.freeze({ maxMessages: 1024, waitMs: 1000 });

export class PubSub {
  /**
   * Loads the component, starts its publisher instance and calls `init` with `metadata`.
   * Metadata the component rejects fails with kind `invalid-metadata` and its exact text.
   * @param {Metadata | Record<string, string>} metadata
   * @param {Options} [options]
   * @returns {Promise<PubSub>}
   */
  static async create(metadata, options = {}) {
    const pairs = checkMetadata(metadata, "metadata");
    const component = await loadComponent(options.component);
    const host = { pool: new ClientPool(), logger: options.logger ?? stderrLogger(), limits: makeLimits(options.limits), pump: PUMP };
    const publisher = await ComponentInstance.start(component, host);
    try {
      await publisher.request("init", pairs);
    } catch (err) {
      await publisher.terminate();
      await host.pool.close();
      throw fromComponent(err);
    }
    return new PubSub(component, host, publisher, pairs);
  }

  /**
   * @param {import("./runtime.mjs").Component} component
   * @param {import("./instance.mjs").HostContext} host
   * @param {ComponentInstance} publisher
   * @param {Metadata} metadata
   */
  constructor(component, host, publisher, metadata) {
    this.component = component;
    this.host = host;
    this.publisher = publisher;
    this.metadata = metadata;
    /** @type {Set<Subscription>} */
    this.subscriptions = new Set();
    this.closed = false;
  }

  /**
   * Publishes one message and resolves with its PubAck. A CloudEvent payload with a string
   * `id` gets that id as `Nats-Msg-Id` (the component's rule), so a republished event is
   * stored once.
   * @param {PublishRequest | string} request a request, or the topic
   * @param {Uint8Array | string} [data] the payload, when the first argument is the topic
   * @returns {Promise<PublishAck>}
   */
  async publish(request, data) {
    const req = typeof request === "string" ? { topic: request, data: data ?? new Uint8Array() } : request;
    const wit = {
      topic: req.topic,
      data: bytes(req.data),
      contentType: req.contentType,
      metadata: checkMetadata(req.metadata, "request metadata"),
    };
    let id;
    try {
      id = await this.publisher.request("publish", wit);
    } catch (err) {
      throw fromComponent(err);
    }
    try {
      return await /** @type {Promise<PublishAck>} */ (this.publisher.take(id));
    } catch (err) {
      throw await this.failed(req.topic, err);
    }
  }

  /**
   * What a failed PubAck means to the caller: the component's verdict.
   * @param {string} topic
   * @param {unknown} err
   */
  async failed(topic, err) {
    if (!(err instanceof TransportFailure)) return fromComponent(err);
    try {
      return fromVariant(await this.publisher.request("publishFailed", topic, err.payload));
    } catch (trap) {
      const val = /** @type {any} */ (err.payload.val);
      return new PubSubError("retriable", String(val?.description ?? val));
    }
  }

  /**
   * Publishes many entries to one topic, pipelined, and gives one result per entry, in
   * entry order: its PubAck, or why it was not stored.
   * @param {string} topic
   * @param {BulkEntry[]} entries
   * @param {Metadata} [metadata] applied to every entry
   * @returns {Promise<BulkEntryResult[]>}
   */
  async bulkPublish(topic, entries, metadata) {
    const request = {
      topic,
      entries: entries.map((e, i) => ({ data: bytes(e.data), contentType: e.contentType, metadata: checkMetadata(e.metadata, `entries[${i}].metadata`) })),
      metadata: checkMetadata(metadata, "metadata"),
    };
    let sent;
    try {
      sent = await this.publisher.request("bulkPublish", request);
    } catch (err) {
      throw fromComponent(err);
    }
    /** @type {Map<number, PubSubError>} */
    const refused = new Map(sent.refused.map((/** @type {[number, any]} */ [i, e]) => [i, fromVariant(e)]));
    const acks = sent.sent === undefined ? [] : /** @type {Promise<PublishAck>[]} */ (this.publisher.take(sent.sent));
    const settled = await Promise.allSettled(acks);
    /** @type {Map<string, PubSubError>} one verdict per distinct failure */
    const verdicts = new Map();
    const results = [];
    let next = 0;
    for (let i = 0; i < entries.length; i++) {
      const entryId = entries[i].entryId;
      const refusal = refused.get(i);
      if (refusal) {
        results.push({ entryId, error: refusal });
        continue;
      }
      const outcome = settled[next++];
      if (!outcome) {
        results.push({ entryId, error: new PubSubError("retriable", "the host lost this entry's acknowledgement") });
      } else if (outcome.status === "fulfilled") {
        results.push({ entryId, ack: outcome.value });
      } else {
        const key = JSON.stringify(outcome.reason?.payload ?? String(outcome.reason));
        let verdict = verdicts.get(key);
        if (!verdict) {
          verdict = await this.failed(topic, outcome.reason);
          verdicts.set(key, verdict);
        }
        results.push({ entryId, error: verdict });
      }
    }
    return results;
  }

  /**
   * Subscribes `handler` to `topic` (wildcards allowed) on an instance of its own, which
   * finds the stream, creates or binds the consumer, and pumps messages to the handler
   * until the subscription is stopped.
   * @param {string} topic
   * @param {import("./delivery.mjs").Handler} handler
   * @returns {Promise<Subscription>}
   */
  async subscribe(topic, handler) {
    if (this.closed) throw new PubSubError("terminal", "the component is closed");
    if (typeof handler !== "function") throw new PubSubError("usage", "subscribe needs a handler function");
    const instance = await ComponentInstance.start(this.component, this.host, handler);
    let started;
    try {
      await instance.request("init", this.metadata);
      started = await instance.request("subscribe", { topic, metadata: [], resumeConsumer: undefined });
    } catch (err) {
      instance.stopListening();
      await instance.terminate();
      throw fromComponent(err);
    }
    const subscription = new Subscription(instance, started.id, started.consumer, this.host.logger);
    this.subscriptions.add(subscription);
    subscription.finished.finally(() => this.subscriptions.delete(subscription)).catch(() => {});
    return subscription;
  }

  /**
   * Stops every subscription made from this `PubSub` (each after its running handlers),
   * closes the component and drains the NATS connections. Durable consumers stay on the
   * server. Closing twice is fine.
   */
  async close() {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.subscriptions].map((s) => s.stop()));
    try {
      await this.publisher.request("close");
    } catch {
      // Closing is best effort: the worker goes away below.
    }
    await this.publisher.terminate();
    await this.host.pool.close();
  }
}

/** A running subscription. */
export class Subscription {
  /**
   * @param {ComponentInstance} instance
   * @param {bigint} id
   * @param {any} consumer WIT consumer-info
   * @param {import("./log.mjs").Logger} logger
   */
  constructor(instance, id, consumer, logger) {
    this.instance = instance;
    this.id = id;
    /** The consumer it is bound to, as the server reported it. */
    this.consumer = { stream: consumer.streamName, name: consumer.name, durable: consumer.config.durableName, deliverGroup: consumer.config.deliverGroup };
    /**
     * Settles when the subscription has ended: fulfilled once stopped, rejected with the
     * component's error when it ended by itself (the stream deleted, the component trapped).
     * @type {Promise<void>}
     */
    this.finished = instance.request("run", id).then(
      () => instance.terminate(),
      async (err) => {
        const error = fromComponent(err);
        if (!this.stopping) logger.error(`subscription ended: ${error.message}`);
        instance.stopListening();
        await instance.terminate();
        throw error;
      },
    );
    this.finished.catch(() => {});
  }

  /**
   * Stops the subscription: messages taken are handled and answered first, messages
   * buffered but not taken go back to the server (the component's `untaken` answer), the
   * consumer stays. Resolves once all that is done; rejects with the error that had
   * already ended the subscription, if one did.
   */
  async stop() {
    this.stopping = true;
    this.instance.stopListening();
    this.instance.request("stop", this.id).catch(() => {});
    await this.finished;
  }
}
