// Runs the operator as a real process (node operator/main.ts), the way the chart's Deployment runs
// it: same args and env, except addresses moved to free loopback ports and a kubeconfig file.
import { spawn, type ChildProcess } from "node:child_process";
import { openSync, closeSync, readFileSync } from "node:fs";
import { join } from "node:path";

import { freePort } from "../../core/testing/server-process.ts";

const MAIN = new URL("../../operator/main.ts", import.meta.url).pathname;
const running = new Set<ChildProcess>();

// Never leave an operator behind: on exit (also after a failed test or a signal the harness re-raises).
process.on("exit", () => {
  for (const c of running) c.kill("SIGKILL");
});

export { freePort };

export interface OperatorProcess {
  readonly pid: number;
  readonly healthPort: number;
  readonly metricsPort: number;
  readonly ingestPort: number;
  /** The admission webhook's HTTPS port (served with --webhook-enabled). */
  readonly webhookPort: number;
  readonly logFile: string;
  logs(): string;
  metrics(): Promise<string>;
  ready(): Promise<boolean>;
  /** SIGTERM and wait for exit (graceful: releases the lease). */
  stop(): Promise<number | null>;
  /** SIGKILL: a crash, the lease is not released. */
  kill(): Promise<void>;
}

export async function startOperator(opts: {
  kubeconfigPath: string;
  args: string[];
  env: Record<string, string>;
  dir: string;
  name: string;
  /** The gRPC ingest port (default: any free one; a restarted operator passes the same). */
  ingestPort?: number;
  /** The webhook port (default: any free one; a restarted operator passes the same, as a Service would). */
  webhookPort?: number;
}): Promise<OperatorProcess> {
  const healthPort = await freePort();
  const metricsPort = await freePort();
  const ingestPort = opts.ingestPort ?? (await freePort());
  const webhookPort = opts.webhookPort ?? (await freePort());
  const args = opts.args
    .filter((a) => !/^--(health|metrics|ingest|webhook)-addr=/.test(a))
    .concat([
      `--health-addr=127.0.0.1:${healthPort}`,
      `--metrics-addr=127.0.0.1:${metricsPort}`,
      `--ingest-addr=127.0.0.1:${ingestPort}`,
      `--webhook-addr=127.0.0.1:${webhookPort}`,
    ]);
  const logFile = join(opts.dir, `${opts.name}.log`);
  const fd = openSync(logFile, "a");
  const child = spawn(process.execPath, [MAIN, ...args], {
    env: { PATH: process.env.PATH ?? "", ...opts.env, KUBECONFIG: opts.kubeconfigPath },
    stdio: ["ignore", fd, fd],
  });
  closeSync(fd);
  running.add(child);
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => {
      running.delete(child);
      resolve(code);
    });
  });
  const get = async (port: number, path: string): Promise<Response> =>
    fetch(`http://127.0.0.1:${port}${path}`);
  return {
    pid: child.pid ?? -1,
    healthPort,
    metricsPort,
    ingestPort,
    webhookPort,
    logFile,
    logs: () => readFileSync(logFile, "utf8"),
    metrics: async () => (await get(metricsPort, "/metrics")).text(),
    ready: async () => {
      try {
        return (await get(healthPort, "/readyz")).status === 200;
      } catch {
        return false;
      }
    },
    stop: async () => {
      child.kill("SIGTERM");
      return exited;
    },
    kill: async () => {
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/** Polls `check` every 200 ms until it returns a value, or fails after `timeoutMs` with `what`. */
export async function eventually<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined> | T | undefined,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ""}`,
  );
}
