// @ts-check
/**
 * One instance of the component in a worker of its own, seen from the host's thread: the
 * calls the host makes on it (`request`), and the imports it calls (served here, against
 * the NATS client and the application's handler). The state behind its resources lives
 * here, by id: connections, subscriptions, and the PubAcks of its sends.
 * @module
 */
import { Worker } from "node:worker_threads";
import { openChannel, reply } from "./bridge.mjs";
import { TransportFailure, publishFailure } from "./transport/errors.mjs";
import { HostConnection } from "./transport/connection.mjs";
import { deliverInOrder, deliverBatch } from "./delivery.mjs";

const WORKER = new URL("./component/worker.mjs", import.meta.url);

/**
 * What every instance of one `PubSub` shares.
 * @typedef {object} HostContext
 * @property {import("./transport/connect.mjs").ClientPool} pool
 * @property {import("./log.mjs").Logger} logger
 * @property {import("./limits.mjs").Limits} limits
 * @property {{ maxMessages: number, waitMs: number }} pump
 */

/** A failure the component reported (its `error` variant), or a trap. */
export class ComponentFailure extends Error {
  /**
   * @param {string} kind `invalid-metadata`, `terminal`, `retriable`, or `trap`
   * @param {string} text the component's text
   */
  constructor(kind, text) {
    super(text);
    this.kind = kind;
  }
}

export class ComponentInstance {
  /**
   * Starts an instance in a new worker.
   * @param {import("./runtime.mjs").Component} component
   * @param {HostContext} host
   * @param {import("./delivery.mjs").Handler} [handler] the application, for a subscription's instance
   */
  static async start(component, host, handler) {
    const instance = new ComponentInstance(component, host, handler);
    await instance.ready;
    return instance;
  }

  /**
   * @param {import("./runtime.mjs").Component} component
   * @param {HostContext} host
   * @param {import("./delivery.mjs").Handler} [handler]
   */
  constructor(component, host, handler) {
    this.host = host;
    this.handler = handler;
    const channel = openChannel();
    this.end = channel.host;
    /** @type {Map<number, any>} resources by id: connections and subscriptions */
    this.handles = new Map();
    /** @type {Map<number, Promise<any> | Promise<any>[]>} PubAcks to come, by pending-ack or pending-batch id */
    this.pending = new Map();
    /** @type {Map<number, { resolve: (v: any) => void, reject: (e: any) => void }>} */
    this.requests = new Map();
    this.nextRequest = 1;
    this.worker = new Worker(WORKER, {
      workerData: { end: channel.worker, limits: host.limits, modules: component.modules, glue: component.glue, pump: host.pump },
      transferList: channel.transfer,
    });
    this.ready = new Promise((resolve, reject) => {
      this.started = resolve;
      this.worker.once("error", reject);
    });
    this.worker.on("error", (err) => this.lost(err));
    this.worker.on("exit", (code) => this.lost(new Error(`the component's worker exited (${code})`)));
    this.end.fromWorker.on("message", (message) => this.receive(message));
  }

  /** @param {Error} err */
  lost(err) {
    this.gone = err;
    for (const { reject } of this.requests.values()) reject(new ComponentFailure("trap", err.message));
    this.requests.clear();
  }

  /**
   * Calls one of the worker's methods (an export of the component, or the pump).
   * @param {string} method
   * @param {...unknown} args
   * @returns {Promise<any>}
   */
  request(method, ...args) {
    if (this.gone) return Promise.reject(new ComponentFailure("trap", this.gone.message));
    const request = this.nextRequest++;
    return new Promise((resolve, reject) => {
      this.requests.set(request, { resolve, reject });
      this.worker.postMessage({ request, method, args });
    });
  }

  /** @param {any} message */
  receive(message) {
    if (message.ready) {
      this.started?.(undefined);
    } else if (message.response !== undefined) {
      const waiting = this.requests.get(message.response);
      this.requests.delete(message.response);
      if (!waiting) return;
      if (message.error) waiting.reject(new ComponentFailure(message.error.kind, message.error.message));
      else waiting.resolve(message.value);
    } else if (message.call !== undefined) {
      this.serve(message.call, message.op, message.args);
    } else {
      this.posted(message.op, message.args);
    }
  }

  /**
   * Serves a blocking import call, and wakes the worker with its outcome.
   * @param {number} call
   * @param {string} op
   * @param {any[]} args
   */
  async serve(call, op, args) {
    try {
      reply(this.end, call, { value: await this.calls[op](...args) });
    } catch (err) {
      if (err instanceof TransportFailure) {
        reply(this.end, call, { error: { payload: err.payload } });
      } else {
        this.host.logger.error(`host error in ${op}: ${/** @type {any} */ (err)?.stack ?? err}`);
        reply(this.end, call, { error: `host error in ${op}: ${/** @type {any} */ (err)?.message ?? err}` });
      }
    }
  }

  /**
   * @param {number} id
   * @param {string} what
   */
  handle(id, what) {
    const handle = this.handles.get(id);
    if (!handle) throw new Error(`no ${what} has handle ${id}`);
    return handle;
  }

  /** The blocking imports. @type {Record<string, (...args: any[]) => any>} */
  calls = {
    connect: async (id, options) => {
      this.handles.set(id, new HostConnection(await this.host.pool.get(options), options));
    },
    streamBySubject: (id, subject) => this.handle(id, "connection").streamBySubject(subject),
    consumerInfo: (id, stream, consumer) => this.handle(id, "connection").consumerInfo(stream, consumer),
    createConsumer: (id, stream, config) => this.handle(id, "connection").createConsumer(stream, config),
    subscribe: (id, subId, deliverSubject, queueGroup) => {
      this.handles.set(subId, this.handle(id, "connection").subscribe(deliverSubject, queueGroup, this.host.limits));
    },
    flush: (id) => this.handle(id, "connection").flush(),
    nextBatch: (id, max, waitMs) => this.handle(id, "subscription").nextBatch(max, waitMs),
    unsubscribe: (id) => this.handle(id, "subscription").unsubscribe(),
    deliverInOrder: (id, topic, subjectKey, messages) => deliverInOrder(this.handle(id, "subscription"), topic, subjectKey, messages, this.app()),
    deliverBatch: (id, topic, subjectKey, messages, max) => deliverBatch(this.handle(id, "subscription"), topic, subjectKey, messages, max, this.app()),
  };

  app() {
    if (!this.handler) throw new Error("this instance has no application to deliver to");
    return { handler: this.handler, logger: this.host.logger };
  }

  /**
   * Serves an import that needs no answer.
   * @param {string} op
   * @param {any[]} args
   */
  posted(op, args) {
    switch (op) {
      case "send": {
        const [conn, id, subject, headers, payload] = args;
        const sent = this.sendOn(conn, subject, (c) => c.send(subject, headers, payload));
        sent.catch(() => {});
        this.pending.set(id, sent);
        break;
      }
      case "sendBatch": {
        const [conn, id, subject, entries] = args;
        const sent = entries.map((/** @type {any} */ entry) =>
          entry.failed
            ? Promise.reject(new TransportFailure(entry.failed))
            : this.sendOn(conn, subject, (c) => c.send(subject, entry.headers, entry.payload)),
        );
        for (const s of sent) s.catch(() => {});
        this.pending.set(id, sent);
        break;
      }
      case "keepAlive":
        this.handles.get(args[0])?.keepAlive(args[1]);
        break;
      case "handBack":
        this.handles.get(args[0])?.handBack(args[1], args[2]);
        break;
      case "log":
        this.host.logger[/** @type {"debug" | "info" | "warn" | "error"} */ (args[0])]?.(`component: ${args[1]}`);
        break;
      case "drop": {
        const [kind, id] = args;
        if (kind === "pending") this.pending.delete(id);
        else {
          const handle = this.handles.get(id);
          this.handles.delete(id);
          if (kind === "subscription" && handle?.state === "active") handle.drop();
        }
        break;
      }
      default:
        this.host.logger.error(`host error: unknown post ${op}`);
    }
  }

  /**
   * @param {number} conn
   * @param {string} subject
   * @param {(c: HostConnection) => Promise<any>} send
   */
  sendOn(conn, subject, send) {
    const connection = this.handles.get(conn);
    if (!connection) return Promise.reject(publishFailure(subject, new Error("the connection is gone")));
    return send(connection);
  }

  /**
   * The PubAck(s) of a pending ack or batch the component handed back; the host takes them.
   * @param {number} id
   */
  take(id) {
    const pending = this.pending.get(id);
    this.pending.delete(id);
    if (!pending) throw new ComponentFailure("trap", `no pending ack has handle ${id}`);
    return pending;
  }

  /** Every subscription of this instance: `next-batch` returns at once from now on. */
  stopListening() {
    for (const handle of this.handles.values()) handle.stop?.();
  }

  async terminate() {
    this.end.fromWorker.close();
    await this.worker.terminate();
    // Whatever the instance held and never answered goes back to the server.
    for (const handle of this.handles.values()) if (handle.state === "active") await handle.drop();
    this.handles.clear();
  }
}
