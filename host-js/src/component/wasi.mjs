// @ts-check
/**
 * The WASI the component imports, and no more than the Rust host gives it: no environment,
 * no arguments, no files; stdout is discarded; stderr (where a Rust panic writes) goes to
 * the host's logger, one line per write; the insecure seed comes from `crypto`.
 * @module
 */
import { randomBytes } from "node:crypto";

/** @param {import("../bridge.mjs").HostLink} link */
export function wasiImports(link) {
  class Error {}
  class Pollable {
    block() {}
  }
  class InputStream {}
  class OutputStream {
    /** @param {boolean} keep */
    constructor(keep) {
      this.keep = keep;
    }
    checkWrite() {
      return 1n << 20n;
    }
    /** @param {Uint8Array} contents */
    write(contents) {
      if (this.keep) link.post("log", ["error", `component stderr: ${new TextDecoder().decode(contents).trimEnd()}`]);
    }
    blockingFlush() {}
    subscribe() {
      return new Pollable();
    }
  }
  class TerminalInput {}
  class TerminalOutput {}
  const stdout = new OutputStream(false);
  const stderr = new OutputStream(true);
  return {
    "wasi:cli/environment": { getEnvironment: () => [] },
    "wasi:cli/exit": {
      /** @param {{ tag: string }} status */
      exit(status) {
        throw new globalThis.Error(`the component called exit (${status.tag})`);
      },
    },
    "wasi:cli/stderr": { getStderr: () => stderr },
    "wasi:cli/stdin": { getStdin: () => new InputStream() },
    "wasi:cli/stdout": { getStdout: () => stdout },
    "wasi:cli/terminal-input": { TerminalInput },
    "wasi:cli/terminal-output": { TerminalOutput },
    "wasi:cli/terminal-stderr": { getTerminalStderr: () => undefined },
    "wasi:cli/terminal-stdin": { getTerminalStdin: () => undefined },
    "wasi:cli/terminal-stdout": { getTerminalStdout: () => undefined },
    "wasi:io/error": { Error },
    "wasi:io/poll": { Pollable },
    "wasi:io/streams": { InputStream, OutputStream },
    "wasi:random/insecure-seed": {
      insecureSeed() {
        const bytes = randomBytes(16);
        return [bytes.readBigUInt64LE(0), bytes.readBigUInt64LE(8)];
      },
    },
  };
}
