// @ts-check
/**
 * `transport.connection` on the host's thread: publishing, stream lookup and consumer
 * management on one shared nats.js client, as the Rust host's `transport/connection.rs`.
 * @module
 */
import { createInbox, headers as makeHeaders } from "@nats-io/nats-core";
import { requestFailure, publishFailure, apiFailure, failure } from "./errors.mjs";
import { toJetStream, fromJetStream } from "./consumer-config.mjs";
import { HostSubscription } from "./subscription.mjs";

/** @typedef {{ stream: string, sequence: number, duplicate: boolean }} PublishAck */

/**
 * NATS headers from WIT pairs (already checked by the component's thread).
 * @param {[string, string][]} pairs
 */
function natsHeaders(pairs) {
  if (pairs.length === 0) return undefined;
  const h = makeHeaders();
  for (const [name, value] of pairs) h.append(name, value);
  return h;
}

export class HostConnection {
  /**
   * @param {import("./connect.mjs").SharedClient} client
   * @param {any} options WIT connect-options
   */
  constructor(client, options) {
    this.client = client;
    this.nc = client.nc;
    this.apiPrefix = options.apiPrefix;
    this.timeout = Math.max(1, options.requestTimeoutMs);
    this.js = client.jetstream(this.apiPrefix, this.timeout);
  }

  /**
   * Sends one message; the promise is its PubAck (or the `transport-error` it failed with).
   * The message is written to the client when this returns, so sends keep their order.
   * @param {string} subject
   * @param {[string, string][]} headers
   * @param {Uint8Array} payload
   * @returns {Promise<PublishAck>}
   */
  send(subject, headers, payload) {
    let sent;
    try {
      sent = this.js.publish(subject, payload, { headers: natsHeaders(headers), timeout: this.timeout });
    } catch (err) {
      return Promise.reject(publishFailure(subject, err));
    }
    return sent.then(
      (ack) => ({ stream: ack.stream, sequence: ack.seq, duplicate: !!ack.duplicate }),
      (err) => {
        throw publishFailure(subject, err);
      },
    );
  }

  /**
   * A JetStream API request: the parsed answer, or the API's error as `jetstream`.
   * @param {string} what names the call in messages
   * @param {string} subject after the API prefix
   * @param {unknown} [body]
   */
  async api(what, subject, body) {
    let answer;
    try {
      const data = body === undefined ? undefined : new TextEncoder().encode(JSON.stringify(body));
      const reply = await this.nc.request(`${this.apiPrefix}.${subject}`, data, { timeout: this.timeout });
      answer = reply.json();
    } catch (err) {
      throw requestFailure(what, err);
    }
    if (answer?.error) throw apiFailure(answer.error);
    return answer;
  }

  /**
   * The one stream whose subjects cover `subject`; undefined when none does.
   * @param {string} subject
   */
  async streamBySubject(subject) {
    const answer = await this.api("stream lookup", "STREAM.NAMES", { subject });
    return answer.streams?.[0] ?? undefined;
  }

  /**
   * A consumer's info; undefined when it does not exist (JetStream code 10014).
   * @param {string} stream
   * @param {string} consumer
   */
  async consumerInfo(stream, consumer) {
    try {
      return fromJetStream(await this.api(`consumer info for ${consumer} on stream ${stream}`, `CONSUMER.INFO.${stream}.${consumer}`));
    } catch (err) {
      if (/** @type {any} */ (err)?.payload?.tag === "jetstream" && /** @type {any} */ (err).payload.val.code === 10014) return undefined;
      throw err;
    }
  }

  /**
   * Creates the consumer, or updates a durable in place where the server allows it (the
   * request carries no `action`, so the server creates or updates).
   * @param {string} stream
   * @param {any} config WIT consumer-config
   */
  async createConsumer(stream, config) {
    const deliverSubject = config.deliverSubject ?? createInbox();
    const body = { stream_name: stream, config: toJetStream(config, deliverSubject) };
    const name = config.durableName;
    const filter = config.filterSubject;
    const subject = name === undefined
      ? `CONSUMER.CREATE.${stream}`
      : filter && filter !== ">" ? `CONSUMER.CREATE.${stream}.${name}.${filter}` : `CONSUMER.CREATE.${stream}.${name}`;
    return fromJetStream(await this.api(`creating a consumer on stream ${stream}`, subject, body));
  }

  /**
   * Listens on a push consumer's deliver subject.
   * @param {string} deliverSubject
   * @param {string | undefined} queueGroup
   * @param {import("../limits.mjs").Limits} limits
   */
  subscribe(deliverSubject, queueGroup, limits) {
    try {
      return new HostSubscription(this.nc, deliverSubject, queueGroup, limits);
    } catch (err) {
      throw failure("connection", `subscribing to ${deliverSubject}: ${/** @type {any} */ (err)?.message ?? err}`);
    }
  }

  /** Flushes pending publishes and acknowledgements. */
  async flush() {
    try {
      await this.nc.flush();
    } catch (err) {
      throw failure("connection", `flush: ${/** @type {any} */ (err)?.message ?? err}`);
    }
  }
}
