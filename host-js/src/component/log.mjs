// @ts-check
/**
 * The `log` import, on the component's thread: lines go to the host's logger, posted, never waited for.
 * @module
 */

/** @param {import("../bridge.mjs").HostLink} link */
export function logImports(link) {
  return {
    /**
     * @param {"debug" | "info" | "warn" | "error"} level
     * @param {string} message
     */
    log(level, message) {
      link.post("log", [level, message]);
    },
  };
}
