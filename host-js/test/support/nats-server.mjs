// @ts-check
/**
 * A nats-server of the test's own: a free port, its own store directory, killed by PID and
 * its directory removed when stopped (as the Rust suites' harness does).
 * @module
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";

export class NatsServer {
  /**
   * Starts a JetStream server on a free port.
   * @param {string[]} [extraArgs]
   */
  static async start(extraArgs = []) {
    const store = mkdtempSync(join(tmpdir(), "host-js-nats-"));
    const child = spawn("nats-server", ["-a", "127.0.0.1", "-p", "-1", "-js", "-sd", store, ...extraArgs], { stdio: ["ignore", "ignore", "pipe"] });
    const url = await new Promise((resolve, reject) => {
      let log = "";
      const timer = setTimeout(() => reject(new Error(`nats-server did not start:\n${log}`)), 10_000);
      child.stderr.on("data", (chunk) => {
        log += chunk;
        const found = /Listening for client connections on ([\d.]+:\d+)/.exec(log);
        if (found) {
          clearTimeout(timer);
          resolve(`nats://${found[1]}`);
        }
      });
      child.on("exit", (code) => reject(new Error(`nats-server exited (${code}):\n${log}`)));
    });
    child.stderr.resume();
    return new NatsServer(child, store, /** @type {string} */ (url));
  }

  /**
   * @param {import("node:child_process").ChildProcess} child
   * @param {string} store
   * @param {string} url
   */
  constructor(child, store, url) {
    this.child = child;
    this.store = store;
    this.url = url;
  }

  /** A plain client, for setting up streams and checking what the server holds. */
  async client() {
    const nc = await connect({ servers: this.url });
    const jsm = await jetstreamManager(nc);
    return { nc, jsm };
  }

  /**
   * Creates a stream.
   * @param {string} name
   * @param {string[]} subjects
   */
  async stream(name, subjects) {
    const { nc, jsm } = await this.client();
    await jsm.streams.add({ name, subjects });
    await nc.close();
  }

  async stop() {
    if (this.child.exitCode === null) {
      const exited = new Promise((resolve) => this.child.once("exit", resolve));
      process.kill(/** @type {number} */ (this.child.pid), "SIGTERM");
      await exited;
    }
    rmSync(this.store, { recursive: true, force: true });
  }
}
