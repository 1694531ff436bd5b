// @ts-check
/**
 * Records what a subscription's handler got, and waits for it.
 * @module
 */
const decoder = new TextDecoder();

export class Recorder {
  constructor() {
    /** @type {{ message: import("../../src/delivery.mjs").Message, text: string, at: number }[]} */
    this.messages = [];
  }

  /**
   * A handler that records each message and answers with `decide(message, nth)` (nth
   * counts the deliveries of the same payload, from 1).
   * @param {(message: import("../../src/delivery.mjs").Message, nth: number) => any} [decide]
   */
  handler(decide = () => "success") {
    return (/** @type {import("../../src/delivery.mjs").Message} */ message) => {
      const text = decoder.decode(message.data);
      this.messages.push({ message, text, at: performance.now() });
      return decide(message, this.countOf(text));
    };
  }

  payloads() {
    return this.messages.map((m) => m.text);
  }

  /** @param {string} text */
  countOf(text) {
    return this.messages.filter((m) => m.text === text).length;
  }

  /**
   * @param {number} ms
   * @param {string} what
   * @param {(messages: Recorder["messages"]) => boolean} done
   */
  async waitUntil(ms, what, done) {
    const deadline = performance.now() + ms;
    while (!done(this.messages)) {
      if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}: got ${JSON.stringify(this.payloads())}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

/** @param {number} ms */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The consumer's info once nothing is pending acknowledgement any more.
 * @param {import("./nats-server.mjs").NatsServer} server
 * @param {{ stream: string, name: string }} consumer
 */
export async function settled(server, consumer) {
  const { nc, jsm } = await server.client();
  try {
    const deadline = performance.now() + 5000;
    for (;;) {
      const info = await jsm.consumers.info(consumer.stream, consumer.name);
      if (info.num_ack_pending === 0 && info.num_pending === 0) return info;
      if (performance.now() > deadline) throw new Error(`consumer not settled: ${JSON.stringify(info)}`);
      await sleep(20);
    }
  } finally {
    await nc.close();
  }
}
