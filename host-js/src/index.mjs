// @ts-check
/**
 * A Node.js host for Dapr's `pubsub.jetstream` WebAssembly component: the same `.wasm` the
 * Rust host embeds, transpiled by jco, with its transport over the official NATS client.
 *
 * ```js
 * import { PubSub } from "@dapr-jetstream/host-js";
 * const pubsub = await PubSub.create([["natsURL", "nats://127.0.0.1:4222"]]);
 * const sub = await pubsub.subscribe("orders.*", (message) => {
 *   console.log(message.subject, new TextDecoder().decode(message.data));
 *   return "success";
 * });
 * console.log(await pubsub.publish("orders.created", '{"id":1}'));
 * await pubsub.close();
 * ```
 * @module
 */
export { PubSub, PubSubError, Subscription } from "./pubsub.mjs";
export { stderrLogger } from "./log.mjs";
export { DEFAULT_LIMITS } from "./limits.mjs";
