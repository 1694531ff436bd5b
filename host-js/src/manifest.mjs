// @ts-check
/**
 * Reading a Dapr `Component` manifest into component metadata, as the Rust host's
 * `manifest.rs`: only the envelope is checked (kind, type, version, well-formed entries);
 * scalar values become strings, as Dapr does (`maxDeliver: 5` is `"5"`).
 * @module
 */
import { readFileSync } from "node:fs";
import { parse } from "yaml";

export const COMPONENT_TYPE = "pubsub.jetstream";
export const COMPONENT_VERSION = "v1";

/** Why a manifest cannot be used; the message is one line and names what is wrong. */
export class ManifestError extends Error {}

/**
 * Reads a manifest file; `overrides` (`--metadata key=value`) replace or add entries, and
 * satisfy a `secretKeyRef` of the same name.
 * @param {string} path
 * @param {[string, string][]} overrides
 * @returns {{ name: string, metadata: [string, string][] }}
 */
export function readManifest(path, overrides) {
  let text;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ManifestError(`cannot read ${path}: ${/** @type {any} */ (err).message}`);
  }
  return parseManifest(path, text, overrides);
}

/**
 * @param {string} path names the source in errors
 * @param {string} text
 * @param {[string, string][]} overrides
 */
export function parseManifest(path, text, overrides) {
  const malformed = (/** @type {string} */ reason) => new ManifestError(`${path}: malformed manifest: ${reason}`);
  let doc;
  try {
    doc = parse(text);
  } catch (err) {
    throw malformed(String(/** @type {any} */ (err).message).split("\n").map((l) => l.trim()).filter(Boolean).join(" "));
  }
  if (!doc || typeof doc !== "object") throw malformed("not a mapping");
  const kind = scalar(doc.kind) ?? "";
  if (kind !== "Component") throw new ManifestError(`${path}: kind is ${JSON.stringify(kind)}, expected "Component"`);
  const spec = doc.spec;
  if (!spec || typeof spec !== "object") throw malformed("no spec");
  const type = scalar(spec.type) ?? "";
  if (type !== COMPONENT_TYPE) throw new ManifestError(`${path}: spec.type is ${JSON.stringify(type)}, this host runs "pubsub.jetstream"`);
  const version = scalar(spec.version) ?? "";
  if (version !== COMPONENT_VERSION) throw new ManifestError(`${path}: spec.version is ${JSON.stringify(version)}, pubsub.jetstream has only "v1"`);
  /** @type {[string, string][]} */
  const metadata = [];
  for (const [index, entry] of (spec.metadata ?? []).entries()) {
    const name = scalar(entry?.name);
    if (!name) throw malformed(`spec.metadata[${index}] has no name`);
    if (overrides.some(([key]) => key === name)) continue;
    const entryError = (/** @type {string} */ reason) => new ManifestError(`${path}: metadata ${JSON.stringify(name)}: ${reason}`);
    const hasValue = entry.value !== undefined && entry.value !== null;
    const ref = entry.secretKeyRef;
    if (hasValue && ref) throw entryError("has both value and secretKeyRef");
    if (ref) {
      const secret = scalar(ref.name) ?? "?";
      throw entryError(`secretKeyRef to secret ${JSON.stringify(secret)} cannot be resolved: this host has no secret store; give the value with --metadata ${name}=...`);
    }
    metadata.push([name, hasValue ? scalar(entry.value) ?? "" : ""]);
  }
  metadata.push(...overrides);
  return { name: scalar(doc.metadata?.name) ?? "", metadata };
}

/** @param {unknown} value */
function scalar(value) {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "object") return undefined;
  return String(value);
}
