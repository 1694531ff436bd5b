// @ts-check
/**
 * What the component may make the host do: the part of the Rust host's `SandboxLimits` and
 * subject rules that the Node host enforces (batch sizes, pending acks, subscriptions, the
 * subjects a publish or a deliver subject may use). Not enforced here: the CPU budget per
 * call, the memory cap of the instance, the server and file policy, the log budget.
 * @module
 */

/**
 * @typedef {object} Limits
 * @property {number} maxBatch most messages one `next-batch` or `send-batch` carries, and
 *   most pending acks an instance may hold. Default 1024, as in the Rust host.
 * @property {number} maxBatchBytes most payload bytes one `next-batch` takes (at least one
 *   message). Default 8 MiB: an eighth of the Rust host's 64 MiB memory cap.
 * @property {number} maxSubscriptions subscriptions one instance may hold. Default 16.
 */

/** @type {Limits} */
export const DEFAULT_LIMITS = Object.freeze({ maxBatch: 1024, maxBatchBytes: 8 << 20, maxSubscriptions: 16 });

/**
 * The limits with `overrides` applied; a bad value names its key.
 * @param {Partial<Limits>} [overrides]
 * @returns {Limits}
 */
export function limits(overrides = {}) {
  const out = { ...DEFAULT_LIMITS };
  for (const [key, value] of Object.entries(overrides)) {
    if (!(key in DEFAULT_LIMITS)) throw new TypeError(`unknown limit ${JSON.stringify(key)}`);
    if (!Number.isSafeInteger(value) || /** @type {number} */ (value) < 1) {
      throw new TypeError(`limit ${key} must be a positive integer, got ${JSON.stringify(value)}`);
    }
    /** @type {any} */ (out)[key] = value;
  }
  return out;
}

/** @param {string} subject */
function isLiteral(subject) {
  return subject.length > 0 && !/[*> \t\r\n]/.test(subject);
}

/** @param {string} subject */
function isReserved(subject) {
  return subject.startsWith("$JS.") || subject.startsWith("$SYS.") || subject.startsWith("$KV.") || subject.startsWith("$O.");
}

/**
 * Why a publish to `subject` is not allowed, as a WIT `transport-error`; undefined when it is.
 * @param {string} subject
 */
export function publishRefusal(subject) {
  if (!isLiteral(subject)) return { tag: "invalid", val: `cannot publish to ${JSON.stringify(subject)}: not a literal subject` };
  if (isReserved(subject) || subject.startsWith("_INBOX.")) {
    return { tag: "refused", val: `publishing to ${JSON.stringify(subject)} is not allowed to the component` };
  }
  return undefined;
}

/**
 * Why the host will not listen on (or configure) deliver subject `subject`; undefined when it will.
 * @param {string} subject
 */
export function deliverSubjectRefusal(subject) {
  if (!isLiteral(subject)) return { tag: "refused", val: `deliver subject ${JSON.stringify(subject)} must be a literal subject` };
  if (isReserved(subject)) return { tag: "refused", val: `deliver subject ${JSON.stringify(subject)} is reserved to the server` };
  return undefined;
}

/**
 * Why headers cannot go out, as the Rust host's `convert.rs` refuses them; undefined when they can.
 * @param {[string, string][]} headers
 */
export function headerRefusal(headers) {
  for (const [name, value] of headers) {
    if (name.length === 0 || /[^\x21-\x39\x3b-\x7e]/.test(name)) return { tag: "invalid", val: `invalid header name ${JSON.stringify(name)}` };
    if (/[\r\n]/.test(value)) return { tag: "invalid", val: `header ${name} has a line break in its value` };
  }
  return undefined;
}
