// @ts-check
/**
 * The channel between a component's thread (a worker, where the component runs in jco's
 * synchronous mode) and the host's thread (the caller's, where the NATS client, the
 * handlers and their payloads live).
 *
 * The WIT imports are synchronous and the NATS client is not, so an import that needs an
 * answer posts its call and blocks its thread on `Atomics.wait` over a SharedArrayBuffer;
 * the host thread serves the call on its event loop, posts the reply on a port of its
 * own, then wakes the worker (`Atomics.notify`). An import that needs no answer (a send,
 * a log line, an answer to a delivery) is only posted, and never waits.
 *
 * Everything the worker says goes through one port, in order: a publish's send reaches
 * the host before the reply to the call that made it.
 *
 * @module
 */
import { MessageChannel, receiveMessageOnPort } from "node:worker_threads";

/** The ports and flag a worker is given; made by the host with {@link openChannel}. */
/**
 * @typedef {object} WorkerEnd
 * @property {import("node:worker_threads").MessagePort} toHost every message of the worker
 * @property {import("node:worker_threads").MessagePort} replies replies to blocking calls
 * @property {SharedArrayBuffer} flag 0 while a call waits, 1 once its reply is posted
 */

/**
 * @typedef {object} HostEnd
 * @property {import("node:worker_threads").MessagePort} fromWorker
 * @property {import("node:worker_threads").MessagePort} replies
 * @property {Int32Array} flag
 */

/**
 * Makes both ends of a channel. The worker end is transferable (pass `transfer`).
 * @returns {{ host: HostEnd, worker: WorkerEnd, transfer: import("node:worker_threads").MessagePort[] }}
 */
export function openChannel() {
  const messages = new MessageChannel();
  const replies = new MessageChannel();
  const flag = new SharedArrayBuffer(4);
  return {
    host: { fromWorker: messages.port1, replies: replies.port1, flag: new Int32Array(flag) },
    worker: { toHost: messages.port2, replies: replies.port2, flag },
    transfer: [messages.port2, replies.port2],
  };
}

/**
 * The host's answer to one blocking call: wakes the worker.
 * @param {HostEnd} end
 * @param {number} call
 * @param {{ value?: unknown, error?: unknown }} outcome
 */
export function reply(end, call, outcome) {
  end.replies.postMessage({ call, ...outcome });
  Atomics.store(end.flag, 0, 1);
  Atomics.notify(end.flag, 0);
}

/** The worker's side: blocking calls and posts to the host. */
export class HostLink {
  /** @param {WorkerEnd} end */
  constructor(end) {
    this.toHost = end.toHost;
    this.replies = end.replies;
    this.flag = new Int32Array(end.flag);
    this.nextCall = 1;
  }

  /**
   * Calls `op` on the host and blocks this thread until it answers. A transport failure
   * comes back as `{ payload }`, which jco turns into the import's `Err`; any other
   * failure of the host is thrown as an Error, which traps the component call.
   * @param {string} op
   * @param {unknown[]} args
   * @returns {any}
   */
  call(op, args) {
    const call = this.nextCall++;
    Atomics.store(this.flag, 0, 0);
    this.toHost.postMessage({ call, op, args });
    for (;;) {
      Atomics.wait(this.flag, 0, 0);
      const received = receiveMessageOnPort(this.replies);
      if (received) {
        const answer = received.message;
        if (answer.call !== call) throw new Error(`host bridge: reply ${answer.call} to call ${call} (${op})`);
        if ("error" in answer) {
          if (answer.error && typeof answer.error === "object" && "payload" in answer.error) throw answer.error;
          throw new Error(String(answer.error));
        }
        return answer.value;
      }
      // Woken without a reply: the flag was set before the reply arrived; wait again.
      Atomics.store(this.flag, 0, 0);
    }
  }

  /**
   * Posts `op` without waiting for anything.
   * @param {string} op
   * @param {unknown[]} args
   */
  post(op, args) {
    this.toHost.postMessage({ op, args });
  }
}
