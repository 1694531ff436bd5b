// @ts-check
/**
 * `transport.subscription` on the host's thread: messages pushed by a consumer, buffered
 * until the component takes them with `next-batch`, and the component's answers sent back,
 * as the Rust host's `transport/subscription.rs`. Payloads stay here: the component gets a
 * token per delivery, and the handler gets the payload from this buffer.
 * @module
 */
import { sequences } from "./ack-subject.mjs";
import { failure } from "./errors.mjs";

const encoder = new TextEncoder();
const ACK = encoder.encode("+ACK");
const NAK = encoder.encode("-NAK");
const WPI = encoder.encode("+WPI");
const TERM = encoder.encode("+TERM");
const EMPTY = new Uint8Array(0);

/**
 * The wire body of an answer (JetStream's ack protocol).
 * @param {{ tag: string, val?: bigint }} kind a WIT `ack-kind`
 */
export function ackBody(kind) {
  switch (kind.tag) {
    case "ack":
      return ACK;
    case "nak":
      return kind.val === undefined ? NAK : encoder.encode(`-NAK {"delay":${kind.val}}`);
    case "in-progress":
      return WPI;
    case "term":
      return TERM;
    default:
      throw new Error(`unknown ack kind ${kind.tag}`);
  }
}

/**
 * @typedef {object} Pending a delivery handed out and not answered yet
 * @property {import("@nats-io/nats-core").Msg} msg
 * @property {import("./ack-subject.mjs").Sequences} sequences
 * @property {boolean} handling a handler on its own runs for it (parallel mode)
 */

/** Where a subscription is in its life. */
const ACTIVE = "active";
const CLOSED = "closed";

export class HostSubscription {
  /**
   * @param {import("@nats-io/nats-core").NatsConnection} nc
   * @param {string} deliverSubject
   * @param {string | undefined} queueGroup
   * @param {import("../limits.mjs").Limits} limits
   */
  constructor(nc, deliverSubject, queueGroup, limits) {
    this.nc = nc;
    this.deliverSubject = deliverSubject;
    this.limits = limits;
    /** @type {"active" | "closed"} */
    this.state = ACTIVE;
    /** Set by the host when the pump must finish: `next-batch` then returns at once. */
    this.stopping = false;
    /** @type {import("@nats-io/nats-core").Msg[]} */
    this.buffer = [];
    this.head = 0;
    /** @type {(() => void) | undefined} */
    this.wake = undefined;
    /** @type {Map<bigint, Pending>} */
    this.unanswered = new Map();
    this.nextToken = 1n;
    /** @type {{ untaken?: any, suspect?: any }} */
    this.handBackAnswers = {};
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.keepAliveTimer = undefined;
    /** Parallel mode's slots, fixed by the first `deliver-batch`. */
    this.slots = /** @type {{ size: number, free: number, waiting: (() => void)[] } | undefined} */ (undefined);
    this.running = 0;
    /** @type {(() => void)[]} */
    this.idle = [];
    this.sub = nc.subscribe(deliverSubject, {
      queue: queueGroup,
      callback: (err, msg) => {
        if (err) {
          this.ended = err;
        } else {
          this.arrive(msg);
        }
        this.wake?.();
      },
    });
    this.sub.closed.then(() => {
      if (this.state === ACTIVE && !this.draining) this.ended ??= new Error("the server ended the subscription");
      this.wake?.();
    });
  }

  /** @param {import("@nats-io/nats-core").Msg} msg */
  arrive(msg) {
    const status = msg.headers?.code ?? 0;
    if (status !== 0 && msg.data.length === 0) {
      // An idle heartbeat, or a flow-control request whose reply must be answered.
      if (status === 100 && msg.reply) this.nc.publish(msg.reply, EMPTY);
      return;
    }
    this.buffer.push(msg);
  }

  /** The host wants the pump to finish. */
  stop() {
    this.stopping = true;
    this.wake?.();
  }

  get buffered() {
    return this.buffer.length - this.head;
  }

  /**
   * Waits up to `waitMs` for the first message, then returns it with the ones already
   * buffered, at most `max` (and at most the byte limit). Empty: nothing arrived in time,
   * or the host is stopping the subscription.
   * @param {number} max
   * @param {number} waitMs
   */
  async nextBatch(max, waitMs) {
    if (this.state !== ACTIVE) throw failure("other", "the subscription is closed");
    if (this.buffered === 0 && !this.stopping && !this.ended && waitMs > 0) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, waitMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve(undefined);
        };
      });
      this.wake = undefined;
    }
    if (this.stopping) return [];
    if (this.buffered === 0 && this.ended) {
      this.state = CLOSED;
      throw failure("connection", "the server ended the subscription");
    }
    const limit = Math.max(1, Math.min(max, this.limits.maxBatch));
    const batch = [];
    let bytes = 0;
    while (batch.length < limit && bytes < this.limits.maxBatchBytes && this.head < this.buffer.length) {
      const msg = this.buffer[this.head++];
      const numbers = sequences(msg.reply);
      if (!numbers) continue;
      bytes += msg.data.length;
      const token = this.nextToken++;
      this.unanswered.set(token, { msg, sequences: numbers, handling: false });
      batch.push({ token, headers: headerPairs(msg), delivered: BigInt(numbers.delivered) });
    }
    if (this.head === this.buffer.length) {
      this.buffer = [];
      this.head = 0;
    }
    return batch;
  }

  /**
   * Answers delivery `token`; undefined leaves it unanswered (`ackPolicy: none`). The
   * answer is queued on the client, not waited for, as a plain NATS consumer acknowledges.
   * @param {bigint} token
   * @param {any} kind a WIT `ack-kind`, or undefined
   */
  answer(token, kind) {
    const pending = this.unanswered.get(token);
    if (!pending) return;
    if (kind?.tag !== "in-progress") this.unanswered.delete(token);
    if (kind === undefined) return;
    try {
      this.nc.publish(/** @type {string} */ (pending.msg.reply), ackBody(kind));
    } catch {
      // The connection is closed for good: the server redelivers after its ack wait.
    }
  }

  /**
   * Sends in-progress for every unanswered delivery every `intervalMs`; 0 turns it off.
   * @param {number} intervalMs
   */
  keepAlive(intervalMs) {
    clearInterval(this.keepAliveTimer);
    this.keepAliveTimer = undefined;
    if (intervalMs > 0) {
      this.keepAliveTimer = setInterval(() => {
        for (const pending of this.unanswered.values()) {
          try {
            this.nc.publish(/** @type {string} */ (pending.msg.reply), WPI);
          } catch {
            // As for an answer: the server redelivers.
          }
        }
      }, intervalMs);
      this.keepAliveTimer.unref();
    }
  }

  /**
   * @param {any} untaken
   * @param {any} suspect
   */
  handBack(untaken, suspect) {
    this.handBackAnswers = { untaken, suspect };
  }

  /**
   * Takes a slot for a parallel handler (the first call fixes how many there are).
   * @param {number} size
   */
  async takeSlot(size) {
    this.slots ??= { size: Math.max(1, size), free: Math.max(1, size), waiting: [] };
    const slots = this.slots;
    while (slots.free === 0) await new Promise((resolve) => slots.waiting.push(() => resolve(undefined)));
    slots.free--;
    return () => {
      slots.free++;
      slots.waiting.shift()?.();
    };
  }

  /**
   * Runs `handling` as a handler of this subscription: `unsubscribe` waits for it.
   * @param {Promise<unknown>} handling
   */
  track(handling) {
    this.running++;
    handling.finally(() => {
      if (--this.running === 0) for (const resolve of this.idle.splice(0)) resolve();
    });
  }

  handlersFinished() {
    return this.running === 0 ? Promise.resolve() : new Promise((resolve) => this.idle.push(() => resolve(undefined)));
  }

  /** Stops listening, and returns the messages never taken. */
  async stopListening() {
    if (this.state === ACTIVE) {
      this.state = CLOSED;
      this.draining = true;
      try {
        await this.sub.drain();
      } catch {
        this.sub.unsubscribe();
      }
    }
    const untaken = this.buffer.slice(this.head);
    this.buffer = [];
    this.head = 0;
    return untaken;
  }

  /**
   * @param {import("@nats-io/nats-core").Msg[]} messages
   * @param {any} kind
   */
  sendBack(messages, kind) {
    if (!kind) return;
    const body = ackBody(kind);
    for (const msg of messages) {
      if (!msg.reply || !sequences(msg.reply)) continue;
      try {
        this.nc.publish(msg.reply, body);
      } catch {
        // The server redelivers after its ack wait.
      }
    }
  }

  /**
   * Stops listening; messages never taken get the component's `untaken` answer. Returns
   * once the handlers still running have answered, and the answers are flushed.
   */
  async unsubscribe() {
    const untaken = await this.stopListening();
    this.sendBack(untaken, this.handBackAnswers.untaken);
    await this.handlersFinished();
    clearInterval(this.keepAliveTimer);
    try {
      await this.nc.flush();
    } catch {
      // A closed connection has nothing left to flush.
    }
  }

  /**
   * The component dropped the subscription (or its instance went away) without
   * unsubscribing: what it held and never answered gets `suspect`, what it never took
   * gets `untaken`. Deliveries whose handlers still run are answered by them.
   */
  async drop() {
    const untaken = await this.stopListening();
    const held = [...this.unanswered.entries()].filter(([, p]) => !p.handling);
    for (const [token] of held) this.unanswered.delete(token);
    this.sendBack(held.map(([, p]) => p.msg), this.handBackAnswers.suspect);
    this.sendBack(untaken, this.handBackAnswers.untaken);
    this.handlersFinished().then(() => clearInterval(this.keepAliveTimer));
  }
}

/**
 * NATS headers as WIT pairs; a name with several values gives several pairs.
 * @param {import("@nats-io/nats-core").Msg} msg
 * @returns {[string, string][] | undefined} undefined for a message without headers (WIT `none`)
 */
function headerPairs(msg) {
  const h = /** @type {any} */ (msg.headers);
  if (!h) return undefined;
  /** @type {[string, string][]} */
  const pairs = [];
  for (const [name, values] of h) for (const value of values) pairs.push([name, value]);
  return pairs.length === 0 ? undefined : pairs;
}
