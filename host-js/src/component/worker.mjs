// @ts-check
/**
 * The component's thread: one instance of the component (jco, synchronous mode), its
 * imports bridged to the host's thread, and the calls the host makes on it. A subscription's
 * instance also runs its pump here, so the caller's event loop never runs wasm.
 * @module
 */
import { parentPort, workerData } from "node:worker_threads";
import { HostLink } from "../bridge.mjs";
import { transportImports } from "./transport.mjs";
import { appImports } from "./app.mjs";
import { logImports } from "./log.mjs";
import { wasiImports } from "./wasi.mjs";

const port = /** @type {import("node:worker_threads").MessagePort} */ (parentPort);
const { end, limits, modules, glue, pump: pumpSettings } = workerData;
const link = new HostLink(end);
const transport = transportImports(link, limits);
const { instantiate } = await import(glue);
const root = await instantiate((/** @type {string} */ path) => modules[path], {
  "dapr:jetstream/transport": transport.imports,
  "dapr:jetstream/app": appImports(link),
  "dapr:jetstream/log": logImports(link),
  "dapr:jetstream/types": {},
  ...wasiImports(link),
});
const pubsub = root.pubsub;

/** Subscriptions whose pump the host asked to stop. */
const stopping = new Set();

/**
 * Calls `pump` until the host stops the subscription or the component reports an error.
 * @param {bigint} id
 */
async function run(id) {
  while (!stopping.has(id)) {
    pubsub.pump(id, pumpSettings.maxMessages, pumpSettings.waitMs);
    // Lets the host's messages in (a stop) between two pumps.
    await new Promise((resolve) => setImmediate(resolve));
  }
  stopping.delete(id);
  pubsub.unsubscribe(id);
}

/** @type {Record<string, (...args: any[]) => unknown>} */
const methods = {
  init: (metadata) => pubsub.init(metadata),
  connectionOptions: (metadata) => pubsub.connectionOptions(metadata),
  features: () => pubsub.features(),
  publish: (request) => transport.takeBack(pubsub.publish(request)),
  bulkPublish: (request) => {
    const { sent, refused } = pubsub.bulkPublish(request);
    return { sent: sent === undefined ? undefined : transport.takeBack(sent), refused };
  },
  publishFailed: (topic, failure) => pubsub.publishFailed(topic, failure),
  subscribe: (request) => {
    const id = pubsub.subscribe(request);
    return { id, consumer: pubsub.consumer(id) };
  },
  run,
  stop: (id) => {
    stopping.add(id);
  },
  close: () => pubsub.close(),
};

port.on("message", async ({ request, method, args }) => {
  /** @type {{ value?: unknown, error?: { kind: string, message: string } }} */
  let outcome;
  try {
    outcome = { value: await methods[method](...args) };
  } catch (err) {
    const payload = /** @type {any} */ (err)?.payload;
    outcome = payload && typeof payload.tag === "string"
      ? { error: { kind: payload.tag, message: String(payload.val) } }
      : { error: { kind: "trap", message: /** @type {any} */ (err)?.stack ?? String(err) } };
  }
  link.toHost.postMessage({ response: request, ...outcome });
});
link.toHost.postMessage({ ready: true });
