// @ts-check
/**
 * Loading the component: jco's transpiled glue and its core modules, compiled once per
 * process and shared by every instance's worker (a compiled `WebAssembly.Module` crosses
 * to a worker without being compiled again).
 * @module
 */
import { readFile, readdir } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/** Where `npm run build` puts jco's output. */
export const GENERATED = fileURLToPath(new URL("../generated/", import.meta.url));

/**
 * @typedef {object} Component
 * @property {string} glue file URL of jco's JS glue
 * @property {Record<string, WebAssembly.Module>} modules the core modules by file name
 */

/** @type {Map<string, Promise<Component>>} */
const loaded = new Map();

/**
 * The component transpiled into `dir` (default: the package's `generated/`).
 * @param {string} [dir]
 * @returns {Promise<Component>}
 */
export function loadComponent(dir = GENERATED) {
  let component = loaded.get(dir);
  if (!component) {
    component = (async () => {
      const glue = join(dir, "jetstream.js");
      if (!existsSync(glue)) {
        throw new Error(`no transpiled component at ${dir}: run \`npm run build\` in host-js first`);
      }
      /** @type {Record<string, WebAssembly.Module>} */
      const modules = {};
      for (const file of await readdir(dir)) {
        if (file.endsWith(".wasm")) modules[file] = await WebAssembly.compile(await readFile(join(dir, file)));
      }
      return { glue: pathToFileURL(glue).href, modules };
    })();
    loaded.set(dir, component);
    component.catch(() => loaded.delete(dir));
  }
  return component;
}
