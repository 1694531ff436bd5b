// @ts-check
/**
 * The `transport` imports, on the component's thread. Each WIT resource is a class whose
 * objects hold an id; the state behind it (the NATS client, the buffered messages, the
 * PubAcks to come) is on the host's thread (`../transport/`), reached through the bridge.
 *
 * `send` and `send-batch` never wait: the checks the host makes before sending (subject,
 * headers, batch size, pending acks) are made here, the message is posted, and the pending
 * ack is a handle whose PubAck the host awaits after the component's call has returned.
 * @module
 */
import { publishRefusal, deliverSubjectRefusal, headerRefusal } from "../limits.mjs";

/**
 * @param {import("../bridge.mjs").HostLink} link
 * @param {import("../limits.mjs").Limits} limits
 */
export function transportImports(link, limits) {
  let nextId = 1;
  /** Pending acks and batches the instance holds, by id, with their weight in acks. */
  const held = new Map();
  let heldWeight = 0;

  /** @param {any} error */
  const refuse = (error) => {
    throw { payload: error };
  };

  /** @param {number} weight */
  function checkPendingAcks(weight) {
    if (heldWeight + weight > limits.maxBatch) {
      refuse({ tag: "refused", val: `the instance holds ${heldWeight} pending acks; the host limit is ${limits.maxBatch}` });
    }
  }

  /**
   * @param {PendingAck | PendingBatch} handle
   * @param {number} weight
   */
  function hold(handle, weight) {
    held.set(handle.id, weight);
    heldWeight += weight;
  }

  class PendingAck {
    /** @param {number} id */
    constructor(id) {
      this.id = id;
    }
    [Symbol.dispose]() {
      if (release(this.id)) link.post("drop", ["pending", this.id]);
    }
  }

  class PendingBatch {
    /** @param {number} id */
    constructor(id) {
      this.id = id;
    }
    [Symbol.dispose]() {
      if (release(this.id)) link.post("drop", ["pending", this.id]);
    }
  }

  /**
   * The instance no longer holds pending ack or batch `id` (handed back, or dropped).
   * @param {number} id
   */
  function release(id) {
    const weight = held.get(id);
    if (weight === undefined) return false;
    held.delete(id);
    heldWeight -= weight;
    return true;
  }

  class Subscription {
    /** @param {number} id */
    constructor(id) {
      this.id = id;
    }
    /**
     * @param {number} max
     * @param {number} waitMs
     */
    nextBatch(max, waitMs) {
      return link.call("nextBatch", [this.id, max, waitMs]);
    }
    /** @param {number} intervalMs */
    keepAlive(intervalMs) {
      link.post("keepAlive", [this.id, intervalMs]);
    }
    /**
     * @param {any} untaken
     * @param {any} suspect
     */
    handBack(untaken, suspect) {
      link.post("handBack", [this.id, untaken, suspect]);
    }
    unsubscribe() {
      link.call("unsubscribe", [this.id]);
    }
    [Symbol.dispose]() {
      subscriptions--;
      link.post("drop", ["subscription", this.id]);
    }
  }

  let subscriptions = 0;

  class Connection {
    /** @param {number} id */
    constructor(id) {
      this.id = id;
    }
    /** @param {any} options */
    static connect(options) {
      const id = nextId++;
      link.call("connect", [id, options]);
      return new Connection(id);
    }
    /** @param {any} message */
    send(message) {
      checkPendingAcks(1);
      const refusal = publishRefusal(message.subject) ?? headerRefusal(message.headers);
      if (refusal) refuse(refusal);
      const pending = new PendingAck(nextId++);
      hold(pending, 1);
      link.post("send", [this.id, pending.id, message.subject, message.headers, message.payload]);
      return pending;
    }
    /**
     * @param {string} subject
     * @param {any[]} messages
     */
    sendBatch(subject, messages) {
      if (messages.length > limits.maxBatch) {
        refuse({ tag: "refused", val: `a batch of ${messages.length} messages exceeds the host limit of ${limits.maxBatch}` });
      }
      const weight = Math.max(1, messages.length);
      checkPendingAcks(weight);
      const refusal = publishRefusal(subject);
      if (refusal) refuse(refusal);
      // A message the host cannot send fails alone, as its PubAck would.
      const entries = messages.map((m) => {
        const bad = headerRefusal(m.headers);
        return bad ? { failed: bad } : { headers: m.headers, payload: m.payload };
      });
      const batch = new PendingBatch(nextId++);
      hold(batch, weight);
      link.post("sendBatch", [this.id, batch.id, subject, entries]);
      return batch;
    }
    /** @param {string} subject */
    streamBySubject(subject) {
      return link.call("streamBySubject", [this.id, subject]) ?? undefined;
    }
    /**
     * @param {string} stream
     * @param {string} consumer
     */
    consumerInfo(stream, consumer) {
      return link.call("consumerInfo", [this.id, stream, consumer]) ?? undefined;
    }
    /**
     * @param {string} stream
     * @param {any} config
     */
    createConsumer(stream, config) {
      if (config.deliverSubject !== undefined) {
        const refusal = deliverSubjectRefusal(config.deliverSubject);
        if (refusal) refuse(refusal);
      }
      return link.call("createConsumer", [this.id, stream, config]);
    }
    /**
     * @param {string} deliverSubject
     * @param {string | undefined} queueGroup
     */
    subscribe(deliverSubject, queueGroup) {
      const refusal = deliverSubjectRefusal(deliverSubject);
      if (refusal) refuse(refusal);
      if (subscriptions >= limits.maxSubscriptions) {
        refuse({ tag: "refused", val: `the instance holds ${subscriptions} subscriptions; the host limit is ${limits.maxSubscriptions}` });
      }
      const id = nextId++;
      link.call("subscribe", [this.id, id, deliverSubject, queueGroup]);
      subscriptions++;
      return new Subscription(id);
    }
    flush() {
      link.call("flush", [this.id]);
    }
    [Symbol.dispose]() {
      link.post("drop", ["connection", this.id]);
    }
  }

  return {
    imports: { Connection, PendingAck, PendingBatch, Subscription },
    /**
     * A pending ack or batch the component handed back from an export: the host takes it.
     * @param {PendingAck | PendingBatch} handle
     */
    takeBack(handle) {
      release(handle.id);
      return handle.id;
    },
  };
}
