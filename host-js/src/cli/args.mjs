// @ts-check
/**
 * What the CLI's subcommands share: flags parsed as the Rust CLI parses them, the
 * component started from a manifest or `--metadata`, and failures with their exit codes
 * (2 usage, 1 failed, 3 nothing happened).
 * @module
 */
import { parseArgs } from "node:util";
import { readManifest, ManifestError } from "../manifest.mjs";
import { PubSub, PubSubError } from "../pubsub.mjs";

/** A failure of a subcommand, with the exit code it maps to. */
export class Failure extends Error {
  /**
   * @param {1 | 2 | 3} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/** @param {string} message */
export const usage = (message) => new Failure(2, message);
/** @param {string} message */
export const failed = (message) => new Failure(1, message);

/** The pub/sub's name when no manifest gives one (`pubsubname` in the CloudEvents the CLI makes). */
const DEFAULT_PUBSUB_NAME = "pubsub";

/** The flags every command that runs the component takes. */
export const COMPONENT_FLAGS = /** @type {const} */ ({
  component: { type: "string" },
  metadata: { type: "string", multiple: true },
  "generated-dir": { type: "string" },
});

/**
 * @template {Record<string, any>} O
 * @param {string[]} argv
 * @param {O} options
 * @returns {Record<string, any>}
 */
export function parse(argv, options) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw usage(/** @type {any} */ (err).message);
  }
}

/**
 * `KEY=VALUE` as a pair.
 * @param {string} text
 * @returns {[string, string]}
 */
export function pair(text) {
  const at = text.indexOf("=");
  if (at <= 0) throw usage(`expected KEY=VALUE, got ${JSON.stringify(text)}`);
  return [text.slice(0, at), text.slice(at + 1)];
}

/**
 * The manifest (its name and entries, with the overrides applied), or the overrides alone.
 * @param {{ component?: string, metadata?: string[] }} flags
 */
export function manifest(flags) {
  const overrides = (flags.metadata ?? []).map(pair);
  let component;
  if (flags.component !== undefined) {
    try {
      component = readManifest(flags.component, overrides);
    } catch (err) {
      if (err instanceof ManifestError) throw usage(err.message);
      throw err;
    }
  } else if (overrides.length === 0) {
    throw usage("give --component FILE or --metadata natsURL=...");
  } else {
    component = { name: "", metadata: overrides };
  }
  return { name: component.name || DEFAULT_PUBSUB_NAME, metadata: component.metadata };
}

/**
 * An initialised component. Metadata the component rejects is a usage error (exit 2).
 * @param {{ component?: string, metadata?: string[], "generated-dir"?: string }} flags
 */
export async function start(flags) {
  const { name, metadata } = manifest(flags);
  try {
    const pubsub = await PubSub.create(metadata, { component: flags["generated-dir"] });
    return { name, pubsub };
  } catch (err) {
    if (err instanceof PubSubError && err.kind === "invalid-metadata") throw usage(err.message);
    throw failed(/** @type {any} */ (err).message);
  }
}
