// @ts-check
/**
 * The `app` imports, on the component's thread: a batch of mapped messages, with the
 * answer to each status the component decided, goes to the host's thread in one call, where
 * the handlers run and each message is answered as its handler finishes.
 * @module
 */

/** @param {import("../bridge.mjs").HostLink} link */
export function appImports(link) {
  return {
    /**
     * @param {{ id: number }} source
     * @param {string} topic
     * @param {string} subjectKey
     * @param {any[]} messages
     */
    deliverInOrder(source, topic, subjectKey, messages) {
      link.call("deliverInOrder", [source.id, topic, subjectKey, messages]);
    },
    /**
     * @param {{ id: number }} source
     * @param {string} topic
     * @param {string} subjectKey
     * @param {any[]} messages
     * @param {number} maxInFlight
     */
    deliverBatch(source, topic, subjectKey, messages, maxInFlight) {
      link.call("deliverBatch", [source.id, topic, subjectKey, messages, maxInFlight]);
    },
  };
}
