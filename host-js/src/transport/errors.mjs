// @ts-check
/**
 * NATS client failures as the WIT `transport-error`: the same classes, and the same texts
 * where they name the subject or the call, as the Rust host's `transport/error.rs`. The
 * component decides what each means to the caller (`guest/src/failure.rs`).
 * @module
 */
import { errors } from "@nats-io/nats-core";
import { JetStreamApiError } from "@nats-io/jetstream";

/**
 * @typedef {{ tag: "connection" | "timed-out" | "no-responders" | "denied" | "refused" | "invalid" | "other", val: string }
 *   | { tag: "jetstream", val: { status: number, code: number, description: string } }} TransportError
 */

/** A transport failure on its way to the component: jco gives `payload` to the guest as `Err`. */
export class TransportFailure {
  /** @param {TransportError} error */
  constructor(error) {
    this.payload = error;
  }
}

/**
 * @param {TransportError["tag"]} tag
 * @param {string} text
 */
export function failure(tag, text) {
  return new TransportFailure(/** @type {TransportError} */ ({ tag, val: text }));
}

/**
 * @param {{ code: number, err_code: number, description: string }} api
 */
export function apiFailure(api) {
  return new TransportFailure({
    tag: "jetstream",
    val: { status: api.code ?? 0, code: api.err_code ?? 0, description: api.description ?? "" },
  });
}

/** @param {unknown} err */
function isNoResponders(err) {
  for (let cause = err; cause; cause = /** @type {any} */ (cause).cause) {
    if (cause instanceof errors.NoRespondersError) return true;
    if (cause instanceof errors.RequestError && cause.isNoResponders()) return true;
  }
  return false;
}

/** @param {unknown} err */
function text(err) {
  if (err instanceof Error) {
    let message = err.message;
    for (let cause = /** @type {any} */ (err).cause; cause instanceof Error; cause = /** @type {any} */ (cause).cause) {
      if (!message.includes(cause.message)) message += `: ${cause.message}`;
    }
    return message;
  }
  return String(err);
}

/** @param {unknown} err */
function isClosed(err) {
  return err instanceof errors.ClosedConnectionError || err instanceof errors.DrainingConnectionError || err instanceof errors.ConnectionError;
}

/** @param {unknown} err */
function isDenied(err) {
  return err instanceof errors.PermissionViolationError || err instanceof errors.AuthorizationError || err instanceof errors.UserAuthenticationExpiredError;
}

/**
 * A failed JetStream API request (stream lookup, consumer info or create).
 * @param {string} what the call, as a message names it
 * @param {unknown} err
 */
export function requestFailure(what, err) {
  if (err instanceof TransportFailure) return err;
  if (err instanceof JetStreamApiError) return apiFailure(/** @type {any} */ (err.apiError()));
  if (isNoResponders(err)) return failure("no-responders", `${what}: JetStream did not answer (is JetStream enabled?)`);
  if (err instanceof errors.TimeoutError) return failure("timed-out", `${what}: timed out`);
  if (isDenied(err)) return failure("denied", `${what}: ${text(err)}`);
  if (isClosed(err)) return failure("connection", `${what}: ${text(err)}`);
  if (err instanceof errors.InvalidSubjectError) return failure("invalid", `${what}: ${text(err)}`);
  return failure("other", `${what}: ${text(err)}`);
}

/**
 * A failed publish; `subject` is named because it is what the user chose.
 * @param {string} subject
 * @param {unknown} err
 */
export function publishFailure(subject, err) {
  if (err instanceof TransportFailure) return err;
  if (isNoResponders(err)) return failure("no-responders", `no stream answered for subject ${subject}`);
  if (err instanceof errors.TimeoutError) return failure("timed-out", `publish to ${subject}: no acknowledgement in time`);
  if (isClosed(err)) return failure("connection", `publish to ${subject}: connection lost`);
  if (isDenied(err)) return failure("denied", `publish to ${subject}: ${text(err)}`);
  if (err instanceof JetStreamApiError) return apiFailure(/** @type {any} */ (err.apiError()));
  const message = text(err);
  if (/max_payload|max payload/i.test(message)) {
    return failure("invalid", `publish to ${subject}: message larger than the server's max_payload (${message}; headers count)`);
  }
  return failure("other", `publish to ${subject}: ${message}`);
}
