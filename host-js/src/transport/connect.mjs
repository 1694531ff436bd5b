// @ts-check
/**
 * Opening NATS connections from the WIT `connect-options`, and sharing them: every
 * instance of one `PubSub` with the same options uses one client, as the Rust host's
 * `ClientPool` does. Credentials go to the client and nowhere else: errors name servers
 * with their user info masked, and never a credential.
 * @module
 */
import { readFileSync } from "node:fs";
import { connect } from "@nats-io/transport-node";
import { credsAuthenticator, jwtAuthenticator, nkeyAuthenticator } from "@nats-io/nats-core";
import { jetstream } from "@nats-io/jetstream";
import { failure, requestFailure, TransportFailure } from "./errors.mjs";

/**
 * Server URLs with user info masked, for messages.
 * @param {string[]} servers
 */
export function redactedServers(servers) {
  return servers.map((server) => server.replace(/^([a-z]+:\/\/)?[^/@]*@/i, (_, scheme) => `${scheme ?? ""}***@`)).join(", ");
}

/**
 * @param {any} source a WIT `secret-source`
 * @param {string} what which credential, for a message that never shows its value
 * @returns {string}
 */
function secretText(source, what) {
  if (source.tag === "inline") return source.val;
  try {
    return readFileSync(source.val, "utf8");
  } catch (err) {
    throw failure("invalid", `cannot read the ${what} file ${source.val}: ${/** @type {any} */ (err).code ?? err}`);
  }
}

/**
 * The nats.js options for WIT `connect-options`.
 * @param {any} options
 */
export function clientOptions(options) {
  const { servers, name, auth, tls, apiPrefix: _prefix, requestTimeoutMs } = options;
  for (const server of servers) {
    if (/^wss?:\/\//i.test(server)) {
      throw failure("refused", `server ${redactedServers([server])}: the Node host connects over TCP only (nats:// or tls://)`);
    }
  }
  /** @type {import("@nats-io/transport-node").NodeConnectionOptions} */
  const out = {
    servers,
    name: name || undefined,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    timeout: Math.max(requestTimeoutMs, 2000),
  };
  const encoder = new TextEncoder();
  switch (auth.tag) {
    case "none":
      break;
    case "token":
      out.token = auth.val;
      break;
    case "user-password":
      [out.user, out.pass] = auth.val;
      break;
    case "jwt":
      out.authenticator = jwtAuthenticator(auth.val.jwt, encoder.encode(auth.val.seed));
      break;
    case "nkey":
      out.authenticator = nkeyAuthenticator(encoder.encode(auth.val));
      break;
    case "credentials":
      out.authenticator = credsAuthenticator(encoder.encode(secretText(auth.val, "credentials")));
      break;
    default:
      throw failure("invalid", `unknown auth ${auth.tag}`);
  }
  const secureScheme = servers.some((/** @type {string} */ s) => /^tls:\/\//i.test(s));
  if (tls.required || tls.clientCert || tls.clientKey || tls.ca || secureScheme) {
    /** @type {Record<string, string>} */
    const t = {};
    if (tls.clientCert) t.cert = secretText(tls.clientCert, "client certificate");
    if (tls.clientKey) t.key = secretText(tls.clientKey, "client key");
    if (tls.ca) t.ca = secretText(tls.ca, "CA");
    out.tls = t;
  }
  return out;
}

/** One shared client, with the JetStream contexts of the API prefixes used on it. */
export class SharedClient {
  /**
   * @param {import("@nats-io/nats-core").NatsConnection} nc
   */
  constructor(nc) {
    this.nc = nc;
    /** @type {Map<string, import("@nats-io/jetstream").JetStreamClient>} */
    this.contexts = new Map();
  }

  /**
   * @param {string} apiPrefix
   * @param {number} timeout
   */
  jetstream(apiPrefix, timeout) {
    const key = `${apiPrefix}\n${timeout}`;
    let js = this.contexts.get(key);
    if (!js) {
      js = jetstream(this.nc, { apiPrefix, timeout });
      this.contexts.set(key, js);
    }
    return js;
  }
}

/** The clients of one `PubSub`, keyed by their options. */
export class ClientPool {
  constructor() {
    /** @type {Map<string, Promise<SharedClient>>} */
    this.clients = new Map();
  }

  /**
   * The client for `options`, connecting on first use.
   * @param {any} options WIT `connect-options`
   * @returns {Promise<SharedClient>}
   */
  get(options) {
    const { apiPrefix: _p, requestTimeoutMs: _t, ...connection } = options;
    const key = JSON.stringify(connection, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
    let client = this.clients.get(key);
    if (!client) {
      client = (async () => {
        const settings = clientOptions(options);
        try {
          return new SharedClient(await connect(settings));
        } catch (err) {
          this.clients.delete(key);
          throw connectFailure(options.servers, err);
        }
      })();
      this.clients.set(key, client);
    }
    return client;
  }

  /** Drains every client: queued publishes and answers reach the server first. */
  async close() {
    const clients = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(
      clients.map(async (pending) => {
        try {
          const client = await pending;
          await client.nc.drain();
        } catch {
          // A client that never connected has nothing to drain.
        }
      }),
    );
  }
}

/**
 * @param {string[]} servers
 * @param {unknown} err
 */
function connectFailure(servers, err) {
  if (err instanceof TransportFailure) return err;
  const shown = redactedServers(servers);
  const name = /** @type {any} */ (err)?.name ?? "";
  const message = /** @type {any} */ (err)?.message ?? String(err);
  if (/Authorization|Authentication/i.test(name) || /authorization|authentication/i.test(message)) {
    return failure("denied", `connecting to ${shown}: the server refused the credentials`);
  }
  const wrapped = requestFailure(`connecting to ${shown}`, err);
  const masked = String(wrapped.payload.val).replace(/\/\/[^/@\s]*@/g, "//***@");
  return failure(wrapped.payload.tag === "timed-out" ? "timed-out" : "connection", masked);
}
