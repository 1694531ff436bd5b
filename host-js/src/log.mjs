// @ts-check
/**
 * Where the host and the component's `log` import write.
 * @module
 */

/**
 * A logger: the console, or any object with these four methods (pino, winston, ...).
 * @typedef {object} Logger
 * @property {(message: string) => void} debug
 * @property {(message: string) => void} info
 * @property {(message: string) => void} warn
 * @property {(message: string) => void} error
 */

const LEVELS = ["debug", "info", "warn", "error"];

/**
 * A logger on stderr that writes from `level` up (`JETSTREAM_PUBSUB_LOG`, default `warn`).
 * @param {string} [level]
 * @returns {Logger}
 */
export function stderrLogger(level = process.env.JETSTREAM_PUBSUB_LOG || "warn") {
  const from = Math.max(0, LEVELS.indexOf(level));
  /** @param {string} name */
  const at = (name) => (LEVELS.indexOf(name) >= from ? (/** @type {string} */ message) => process.stderr.write(`${name.toUpperCase()} ${message}\n`) : () => {});
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}
