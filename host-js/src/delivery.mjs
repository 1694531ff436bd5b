// @ts-check
/**
 * The `app` imports on the host's thread: how the component's deliveries reach the
 * application's handler, in order or in parallel, and how each is answered as its handler
 * finishes with the answer the component decided ahead (as the Rust host's `delivery.rs`).
 * @module
 */

/**
 * What the application's handler gets.
 * @typedef {object} Message
 * @property {string} topic the topic subscribed to (a pattern when it has wildcards)
 * @property {string} subject the concrete subject the message was published on
 * @property {Uint8Array} data the payload, as published
 * @property {string | undefined} contentType its MIME type, when the message carries one
 * @property {[string, string][]} metadata `Topic` and the NATS headers, as Dapr's `NewMessage` has them
 * @property {{ streamSequence: number, consumerSequence: number, delivered: number }} delivery
 *   where the message is in the stream and how many times it has been delivered (1 the first time)
 */

/**
 * The application's answer: `success` acknowledges, `retry` has the message redelivered
 * (after the component's delay), `drop` terminates it. Returning nothing is `success`.
 * @typedef {"success" | "retry" | "drop"} AppStatus
 */

/**
 * @callback Handler
 * @param {Message} message
 * @returns {AppStatus | void | Promise<AppStatus | void>}
 */

const STATUSES = new Set(["success", "retry", "drop"]);

/**
 * Runs the handler; a throw, a rejection, or an unknown status is a `retry`, logged.
 * @param {{ handler: Handler, logger: import("./log.mjs").Logger }} app
 * @param {Message} message
 * @returns {Promise<AppStatus>}
 */
async function handle(app, message) {
  try {
    const status = (await app.handler(message)) ?? "success";
    if (STATUSES.has(status)) return status;
    app.logger.error(`a message handler returned ${JSON.stringify(status)} (expected "success", "retry" or "drop"); the message on ${message.subject} is retried`);
  } catch (err) {
    app.logger.error(`a message handler failed on ${message.subject}: ${/** @type {any} */ (err)?.message ?? err}; the message is retried`);
  }
  return "retry";
}

/**
 * The messages the component mapped, with the topic, and the subjects and payloads the
 * host kept (each subject first in its message's metadata, under `subjectKey`). A token
 * that is not an unanswered delivery of the subscription is a component bug: the call
 * traps.
 * @param {import("./transport/subscription.mjs").HostSubscription} subscription
 * @param {string} topic
 * @param {string} subjectKey
 * @param {any[]} messages WIT `new-message` records
 */
function ready(subscription, topic, subjectKey, messages) {
  return messages.map((m) => {
    const pending = subscription.unanswered.get(m.delivery);
    if (!pending) throw new Error(`the component delivered token ${m.delivery}, which is not an unanswered delivery of its subscription`);
    const subject = pending.msg.subject;
    /** @type {Message} */
    const message = {
      topic,
      subject,
      data: pending.msg.data,
      contentType: m.contentType,
      metadata: [[subjectKey, subject], ...m.metadata],
      delivery: {
        streamSequence: pending.sequences.stream,
        consumerSequence: pending.sequences.consumer,
        delivered: pending.sequences.delivered,
      },
    };
    return { token: m.delivery, answers: m.answers, message, pending };
  });
}

/**
 * Delivers one at a time, in order; each message is answered as its handler finishes.
 * @param {import("./transport/subscription.mjs").HostSubscription} subscription
 * @param {string} topic
 * @param {string} subjectKey the metadata key the component puts each message's subject under
 * @param {any[]} messages
 * @param {{ handler: Handler, logger: import("./log.mjs").Logger }} app
 */
export async function deliverInOrder(subscription, topic, subjectKey, messages, app) {
  for (const { token, answers, message } of ready(subscription, topic, subjectKey, messages)) {
    const status = await handle(app, message);
    subscription.answer(token, answers[status]);
  }
}

/**
 * Starts each message's handler as soon as one of the subscription's slots is free, and
 * returns once all have started; each is answered as its handler finishes.
 * @param {import("./transport/subscription.mjs").HostSubscription} subscription
 * @param {string} topic
 * @param {string} subjectKey the metadata key the component puts each message's subject under
 * @param {any[]} messages
 * @param {number} maxInFlight
 * @param {{ handler: Handler, logger: import("./log.mjs").Logger }} app
 */
export async function deliverBatch(subscription, topic, subjectKey, messages, maxInFlight, app) {
  for (const { token, answers, message, pending } of ready(subscription, topic, subjectKey, messages)) {
    const release = await subscription.takeSlot(maxInFlight);
    pending.handling = true;
    const running = handle(app, message).then((status) => subscription.answer(token, answers[status]));
    subscription.track(running.finally(release));
  }
}
