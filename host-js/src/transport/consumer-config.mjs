// @ts-check
/**
 * The WIT `consumer-config` as JetStream's JSON and back, field for field, as the Rust
 * host's `transport/convert.rs` maps it to async-nats. Zero values mean "server default"
 * and are left out of the request, as on the wire.
 * @module
 */

const POLICIES = /** @type {const} */ ({ all: "all", last: "last", new: "new", "last-per-subject": "last_per_subject" });

/**
 * Nanoseconds since the epoch as RFC 3339 with nanoseconds.
 * @param {bigint} ns
 */
function rfc3339(ns) {
  const seconds = ns / 1_000_000_000n - (ns % 1_000_000_000n < 0n ? 1n : 0n);
  const fraction = ns - seconds * 1_000_000_000n;
  const date = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  return `${date}.${fraction.toString().padStart(9, "0")}Z`;
}

/**
 * RFC 3339 as nanoseconds since the epoch, to the nanosecond.
 * @param {string} text
 */
function nanosOf(text) {
  const match = /^(.*?:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(text);
  if (!match) return BigInt(Date.parse(text)) * 1_000_000n;
  const seconds = BigInt(Date.parse(`${match[1]}${match[3]}`) / 1000);
  const fraction = BigInt((match[2] ?? "").padEnd(9, "0").slice(0, 9) || "0");
  return seconds * 1_000_000_000n + fraction;
}

/**
 * The request body's `config` for a WIT consumer configuration.
 * @param {any} config the WIT record
 * @param {string} deliverSubject the subject the host listens on
 */
export function toJetStream(config, deliverSubject) {
  const {
    durableName, deliverSubject: _given, deliverGroup, deliverPolicy, ackPolicy, ackWaitNs, maxDeliver, backoffNs,
    maxAckPending, filterSubject, rateLimitBps, idleHeartbeatNs, flowControl, numReplicas, memoryStorage, ...rest
  } = config;
  if (Object.keys(rest).length > 0) throw new Error(`consumer-config has fields this host does not know: ${Object.keys(rest)}`);
  /** @type {Record<string, unknown>} */
  const out = { deliver_subject: deliverSubject, ack_policy: ackPolicy, replay_policy: "instant" };
  if (durableName !== undefined) out.durable_name = durableName;
  if (deliverGroup !== undefined) out.deliver_group = deliverGroup;
  switch (deliverPolicy.tag) {
    case "by-start-sequence":
      out.deliver_policy = "by_start_sequence";
      out.opt_start_seq = Number(deliverPolicy.val);
      break;
    case "by-start-time":
      out.deliver_policy = "by_start_time";
      out.opt_start_time = rfc3339(deliverPolicy.val);
      break;
    default:
      out.deliver_policy = POLICIES[/** @type {keyof typeof POLICIES} */ (deliverPolicy.tag)];
  }
  if (ackWaitNs > 0n) out.ack_wait = Number(ackWaitNs);
  if (maxDeliver !== 0n) out.max_deliver = Number(maxDeliver);
  if (backoffNs.length > 0) out.backoff = Array.from(backoffNs, Number);
  if (maxAckPending !== 0n) out.max_ack_pending = Number(maxAckPending);
  if (filterSubject !== "") out.filter_subject = filterSubject;
  if (rateLimitBps > 0n) out.rate_limit_bps = Number(rateLimitBps);
  if (idleHeartbeatNs > 0n) out.idle_heartbeat = Number(idleHeartbeatNs);
  if (flowControl) out.flow_control = true;
  if (numReplicas > 0) out.num_replicas = numReplicas;
  if (memoryStorage) out.mem_storage = true;
  return out;
}

/** @param {unknown} n */
const big = (n) => BigInt(Math.trunc(Number(n ?? 0)));

/**
 * What the server reported about a consumer, as the WIT `consumer-info`.
 * @param {any} info JetStream's consumer info JSON
 */
export function fromJetStream(info) {
  const c = info.config ?? {};
  /** @type {any} */
  let deliverPolicy;
  switch (c.deliver_policy) {
    case "by_start_sequence":
      deliverPolicy = { tag: "by-start-sequence", val: big(c.opt_start_seq) };
      break;
    case "by_start_time":
      deliverPolicy = { tag: "by-start-time", val: nanosOf(c.opt_start_time) };
      break;
    case "last":
      deliverPolicy = { tag: "last" };
      break;
    case "new":
      deliverPolicy = { tag: "new" };
      break;
    case "last_per_subject":
      deliverPolicy = { tag: "last-per-subject" };
      break;
    default:
      deliverPolicy = { tag: "all" };
  }
  return {
    streamName: info.stream_name,
    name: info.name,
    config: {
      durableName: c.durable_name || undefined,
      deliverSubject: c.deliver_subject || undefined,
      deliverGroup: c.deliver_group || undefined,
      deliverPolicy,
      ackPolicy: c.ack_policy === "none" || c.ack_policy === "all" ? c.ack_policy : "explicit",
      ackWaitNs: big(c.ack_wait),
      maxDeliver: big(c.max_deliver),
      backoffNs: BigUint64Array.from((c.backoff ?? []).map(big)),
      maxAckPending: big(c.max_ack_pending),
      filterSubject: c.filter_subject ?? "",
      rateLimitBps: big(c.rate_limit_bps),
      idleHeartbeatNs: big(c.idle_heartbeat),
      flowControl: !!c.flow_control,
      numReplicas: Number(c.num_replicas ?? 0),
      memoryStorage: !!c.mem_storage,
    },
    pushBound: !!info.push_bound,
    numPending: big(info.num_pending),
    numAckPending: big(info.num_ack_pending),
  };
}
