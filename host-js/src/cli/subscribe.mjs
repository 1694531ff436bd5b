// @ts-check
/**
 * `subscribe`: one JSON line per message on stdout, with the Rust CLI's fields
 * (`topic`, `subject`, `data` or `data_base64`, `content_type`, `metadata`, `cloudevent`),
 * `--count` and `--timeout` with its exit codes.
 * @module
 */
import { fromRawPayload, isJsonObject } from "../cloudevent.mjs";
import { COMPONENT_FLAGS, Failure, failed, parse, start, usage } from "./args.mjs";

const FLAGS = {
  ...COMPONENT_FLAGS,
  topic: { type: "string" },
  count: { type: "string" },
  timeout: { type: "string" },
  raw: { type: "boolean" },
};

const strict = new TextDecoder("utf-8", { fatal: true });

/**
 * The printed line of one message.
 * @param {import("../delivery.mjs").Message} message
 * @param {string | undefined} rawPayload the pub/sub's name, for a raw subscription
 */
export function line(message, rawPayload) {
  let text;
  try {
    text = strict.decode(message.data);
  } catch {
    text = undefined;
  }
  /** @type {Record<string, unknown>} */
  const out = { topic: message.topic, subject: message.metadata.find(([k]) => k === "Topic")?.[1] ?? message.topic };
  if (text !== undefined) out.data = text;
  else out.data_base64 = Buffer.from(message.data).toString("base64");
  if (message.contentType !== undefined) out.content_type = message.contentType;
  const metadata = [...message.metadata].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  out.metadata = Object.fromEntries(metadata);
  // The cloudevent is spliced in as written, so a number in the event is shown to the digit.
  let cloudevent;
  if (rawPayload !== undefined) cloudevent = fromRawPayload(message.topic, rawPayload, message.data);
  else if (isJsonObject(message.data)) cloudevent = /** @type {string} */ (text).trim();
  let json = JSON.stringify(out);
  if (cloudevent !== undefined) json = `${json.slice(0, -1)},"cloudevent":${cloudevent}}`;
  return json;
}

/**
 * @param {string | undefined} value
 * @param {string} flag
 * @param {(n: number) => boolean} ok
 */
function number(value, flag, ok) {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || !ok(n)) throw usage(`invalid value '${value}' for '${flag}'`);
  return n;
}

/** @param {number} secs */
const shown = (secs) => `${secs}s`;

/** @param {string[]} argv */
export async function run(argv) {
  const flags = parse(argv, FLAGS);
  if (flags.topic === undefined) throw usage("the following required arguments were not provided: --topic <TOPIC>");
  const count = number(flags.count, "--count <COUNT>", (n) => Number.isSafeInteger(n) && n >= 0);
  const timeout = number(flags.timeout, "--timeout <SECS>", (n) => n >= 0);
  const { name, pubsub } = await start(flags);
  const rawPayload = flags.raw ? name : undefined;
  let taken = 0;
  let acked = 0;
  /** @type {(v?: unknown) => void} */
  let done = () => {};
  const reached = new Promise((resolve) => (done = resolve));
  /** @param {import("../delivery.mjs").Message} message */
  const handler = (message) => {
    // A delivery takes a slot before it is handled and gives it back unless it is
    // acknowledged; beyond the count, messages go back to the server (retry).
    if (count !== undefined) {
      if (taken >= count) return "retry";
      taken++;
    }
    try {
      process.stdout.write(`${line(message, rawPayload)}\n`);
    } catch {
      if (count !== undefined) taken--;
      return "retry";
    }
    acked++;
    if (count !== undefined && acked >= count) done();
    return "success";
  };
  let subscription;
  try {
    subscription = await pubsub.subscribe(flags.topic, handler);
  } catch (err) {
    await pubsub.close();
    throw failed(/** @type {any} */ (err).message);
  }
  /** @type {(() => void)[]} */
  const cleanups = [];
  const signalled = new Promise((resolve) => {
    for (const signal of /** @type {const} */ (["SIGINT", "SIGTERM"])) {
      const on = () => resolve(undefined);
      process.once(signal, on);
      cleanups.push(() => process.off(signal, on));
    }
  });
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const timedOut = timeout === undefined ? new Promise(() => {}) : new Promise((resolve) => (timer = setTimeout(resolve, timeout * 1000)));
  const ended = subscription.finished.then(() => undefined, (err) => err);
  const what = "received";
  /** @type {Failure | undefined} */
  let outcome;
  const first = await Promise.race([
    count !== undefined ? reached.then(() => "count") : new Promise(() => {}),
    timedOut.then(() => "timeout"),
    signalled.then(() => "signal"),
    ended.then((err) => ({ err })),
  ]);
  clearTimeout(timer);
  for (const cleanup of cleanups) cleanup();
  if (first === "timeout") {
    if (count !== undefined) outcome = failed(`timed out after ${shown(/** @type {number} */ (timeout))}: ${what} ${acked} of ${count} messages`);
    else if (acked === 0) outcome = new Failure(3, `no message ${what} in ${shown(/** @type {number} */ (timeout))}`);
  } else if (typeof first === "object" && first.err) {
    outcome = failed(first.err.message);
  }
  // Graceful in every case: messages taken are handled and acknowledged first.
  let stopped;
  try {
    await subscription.stop();
  } catch (err) {
    stopped = failed(/** @type {any} */ (err).message);
  }
  await pubsub.close();
  if (outcome) throw outcome;
  if (stopped) throw stopped;
}
