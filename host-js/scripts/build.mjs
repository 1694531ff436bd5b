// @ts-check
// Builds what the package runs: the component the Rust build embeds, then its jco
// transpilation into `generated/` (not committed). The guest is built by exactly the cargo
// command `host/build.rs` runs, and only when the .wasm is missing or older than the
// guest's sources; jco runs only when its output is older than the .wasm. Nothing in the
// guest is patched; one line of jco's JS glue is (see `hoistDebugCheck`).
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, "..");
const workspace = resolve(pkg, "..");
const targetDir = join(workspace, "target", "guest-wasm");
export const wasmPath = join(targetDir, "wasm32-wasip2", "guest-release", "jetstream_pubsub_guest.wasm");
const out = join(pkg, "generated");
const glue = join(out, "jetstream.js");

/** The newest modification time under `path` (a file or a directory), in ms. */
function newest(path) {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let latest = stat.mtimeMs;
  for (const entry of readdirSync(path)) latest = Math.max(latest, newest(join(path, entry)));
  return latest;
}

function run(command, args, env) {
  console.error(`> ${command} ${args.join(" ")}`);
  const done = spawnSync(command, args, { cwd: workspace, stdio: "inherit", env: { ...process.env, ...env } });
  if (done.status !== 0) {
    console.error(`error: ${command} exited with ${done.status ?? done.signal}`);
    process.exit(1);
  }
}

const sources = Math.max(
  newest(join(workspace, "guest")),
  newest(join(workspace, "wit")),
  newest(join(workspace, "Cargo.lock")),
);
if (newest(wasmPath) < sources) {
  run(
    "cargo",
    ["build", "--profile", "guest-release", "--locked", "-p", "jetstream-pubsub-guest", "--target", "wasm32-wasip2"],
    { CARGO_TARGET_DIR: targetDir },
  );
}
if (newest(glue) < newest(wasmPath) || newest(glue) < statSync(fileURLToPath(import.meta.url)).mtimeMs) {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const jco = join(pkg, "node_modules", "@bytecodealliance", "jco", "dist", "jco.js");
  run(process.execPath, [jco, "transpile", wasmPath, "-o", out, "--name", "jetstream", "--instantiation", "async", "--no-typescript", "--quiet"]);
  hoistDebugCheck(glue);
  writeFileSync(join(out, "package.json"), JSON.stringify({ type: "module" }) + "\n");
}

/**
 * jco 1.35's glue reads `process.env.JCO_DEBUG` inside `_debugLog`, which runs on every
 * internal call: 39% of the self time of a no-op import call was there. The check moves to
 * module load (JCO_DEBUG still works, read once). When jco's output no longer has the line,
 * nothing is changed and a note says so.
 * @param {string} file
 */
function hoistDebugCheck(file) {
  const text = readFileSync(file, "utf8");
  const line = "if (!globalThis?.process?.env?.JCO_DEBUG) { return; }";
  if (!text.includes(line)) {
    console.error("note: jco's _debugLog check was not found; the glue is left as generated");
    return;
  }
  const patched = "const __jcoDebug = !!globalThis?.process?.env?.JCO_DEBUG;\n" + text.replaceAll(line, "if (!__jcoDebug) { return; }");
  writeFileSync(file, patched);
}
