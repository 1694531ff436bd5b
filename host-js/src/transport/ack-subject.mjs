// @ts-check
/**
 * What a JetStream delivery's reply (ack) subject says about it, read as the Rust host's
 * `transport/ack_subject.rs` reads it: `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`
 * (v1) or `$JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>...` (v2, ADR-15).
 * @module
 */

/** @typedef {{ delivered: number, stream: number, consumer: number }} Sequences */

const DIGITS = /^\d+$/;

/**
 * The numbers of the delivery with this reply subject; undefined when it is no ack subject.
 * @param {string | undefined} reply
 * @returns {Sequences | undefined}
 */
export function sequences(reply) {
  if (!reply || !reply.startsWith("$JS.ACK.")) return undefined;
  const tokens = reply.slice(8).split(".");
  const first = tokens.length === 7 ? 2 : tokens.length >= 9 ? 4 : -1;
  if (first < 0) return undefined;
  const numbers = tokens.slice(first, first + 4);
  if (!numbers.every((t) => DIGITS.test(t))) return undefined;
  const [delivered, stream, consumer] = numbers.map(Number);
  if (![delivered, stream, consumer].every(Number.isSafeInteger)) return undefined;
  return { delivered, stream, consumer };
}
