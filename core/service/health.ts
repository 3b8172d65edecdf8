/**
 * The probe and metrics HTTP server (controller-runtime's health-probe and metrics servers).
 *
 * - `/healthz` (alias `/livez`): liveness. 200 once started, unless a registered liveness check fails
 *   (500). Keep liveness checks for "this process is wedged", never for "the apiserver is down": a
 *   liveness failure restarts the pod.
 * - `/readyz`: readiness. 503 until every readiness check passes (the manager registers "informers
 *   synced"). Leadership is deliberately not a readiness check: a standby replica is ready.
 * - `/metrics`: the Prometheus text exposition of our registry.
 *
 * Bodies follow kube-apiserver's healthz format: "ok", or with `?verbose` / on failure one line per
 * check (`[+]name ok`, `[-]name failed: reason`) and a summary line. Checks throw to fail and are bounded
 * by `checkTimeoutMs`.
 */
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import type { Logger } from "./log.ts";
import { silentLogger } from "./log.ts";
import { parseListenAddress } from "./listen-address.ts";

/** Resolves (or returns) when healthy; throws with the reason when not. */
export type HealthCheck = () => void | Promise<void>;

export interface HealthServerOptions {
  /** e.g. ":8081", "127.0.0.1:0". */
  address: string;
  registry?: Registry;
  logger?: Logger;
  /** Serve /healthz and /readyz (default true). */
  probes?: boolean;
  /** Serve /metrics (default true when a registry is given). */
  metrics?: boolean;
  checkTimeoutMs?: number;
}

export class HealthServer {
  readonly #options: HealthServerOptions;
  readonly #log: Logger;
  readonly #liveness = new Map<string, HealthCheck>();
  readonly #readiness = new Map<string, HealthCheck>();
  #server: Server | undefined;
  #started = false;

  constructor(options: HealthServerOptions) {
    parseListenAddress(options.address); // fail at construction, naming the address
    this.#options = options;
    this.#log = (options.logger ?? silentLogger()).child({ component: "health" });
  }

  addLivenessCheck(name: string, check: HealthCheck): void {
    this.#liveness.set(name, check);
  }

  addReadinessCheck(name: string, check: HealthCheck): void {
    this.#readiness.set(name, check);
  }

  async start(): Promise<void> {
    if (this.#server !== undefined) return;
    const { host, port } = parseListenAddress(this.#options.address);
    const server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        this.#log.error({ err }, "health request failed");
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
        res.end("internal error\n");
      });
    });
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host, port }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.#started = true;
    this.#log.info({ address: this.url() }, "serving");
  }

  /** The bound address (port resolved when 0 was requested). */
  address(): AddressInfo {
    const a = this.#server?.address();
    if (a === null || a === undefined || typeof a === "string")
      throw new Error("health server not listening");
    return a;
  }

  url(): string {
    const a = this.address();
    const host = a.family === "IPv6" ? `[${a.address}]` : a.address;
    return `http://${host}:${a.port}`;
  }

  /** Stops accepting connections; open keep-alive connections are closed after `deadlineMs`. */
  async shutdown(deadlineMs = 5_000): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    this.#started = false;
    const closed = new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
    });
    server.closeIdleConnections();
    const timer = setTimeout(() => {
      server.closeAllConnections();
    }, deadlineMs);
    await closed;
    clearTimeout(timer);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (req.method !== "GET" && req.method !== "HEAD") {
      send(res, 405, "method not allowed\n", { allow: "GET, HEAD" });
      return;
    }
    const probes = this.#options.probes ?? true;
    const metrics = this.#options.metrics ?? this.#options.registry !== undefined;
    switch (url.pathname) {
      case "/healthz":
      case "/livez":
        if (!probes) break;
        await this.#probe(res, "healthz", this.#liveness, 500, url.searchParams.has("verbose"), req.method);
        return;
      case "/readyz":
        if (!probes) break;
        await this.#probe(res, "readyz", this.#readiness, 503, url.searchParams.has("verbose"), req.method);
        return;
      case "/metrics": {
        const registry = this.#options.registry;
        if (!metrics || registry === undefined) break;
        const text = await registry.metrics();
        send(res, 200, req.method === "HEAD" ? "" : text, { "content-type": registry.contentType });
        return;
      }
    }
    send(res, 404, "not found\n");
  }

  async #probe(
    res: ServerResponse,
    name: string,
    checks: Map<string, HealthCheck>,
    failStatus: number,
    verbose: boolean,
    method: string,
  ): Promise<void> {
    if (!this.#started) {
      send(res, failStatus, `[-]started failed: not started\n${name} check failed\n`);
      return;
    }
    const results = await Promise.all(
      [...checks].map(async ([check, fn]) => ({ check, error: await this.#run(fn) })),
    );
    const failed = results.some((r) => r.error !== undefined);
    let body: string;
    if (!failed && !verbose) {
      body = "ok";
    } else {
      const lines = results.map((r) =>
        r.error === undefined ? `[+]${r.check} ok` : `[-]${r.check} failed: ${r.error}`,
      );
      body = `${lines.join("\n")}${lines.length > 0 ? "\n" : ""}${name} check ${failed ? "failed" : "passed"}\n`;
    }
    send(res, failed ? failStatus : 200, method === "HEAD" ? "" : body);
  }

  async #run(check: HealthCheck): Promise<string | undefined> {
    const timeoutMs = this.#options.checkTimeoutMs ?? 5_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.resolve().then(check),
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => {
            reject(new Error(`timed out after ${timeoutMs} ms`));
          }, timeoutMs);
        }),
      ]);
      return undefined;
    } catch (err: unknown) {
      return (err instanceof Error ? err.message : String(err)).replace(/\s+/g, " ");
    } finally {
      clearTimeout(timer);
    }
  }
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    "x-content-type-options": "nosniff",
    ...headers,
  });
  res.end(body);
}
