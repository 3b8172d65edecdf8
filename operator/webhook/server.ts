// The validating admission webhook's HTTPS endpoint (issue 7): POST /validate takes an AdmissionReview v1 and
// answers with the handler's decision. The serving certificate comes from files (a mounted Secret, e.g. from
// cert-manager) and is reloaded when they change, so a rotation needs no restart: new connections get the new
// certificate, open ones finish with the old. Bodies are bounded (the API server sends at most ~3 MiB).
import { readFileSync, unwatchFile, watchFile } from "node:fs";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

import { isStellaError } from "../../core/errors.ts";
import { parseReview, reviewResponse, type ReviewDecision, type ReviewRequest } from "./review.ts";

export interface WebhookServerOptions {
  /** host:port to listen on ("0.0.0.0:9443" in the cluster, "127.0.0.1:0" in tests). */
  address: string;
  certFile: string;
  keyFile: string;
  /** Decides one review; must not do network calls (the API server waits, timeoutSeconds). */
  handle: (review: ReviewRequest) => ReviewDecision;
  /** Largest request body accepted. Default 4 MiB. */
  maxBodyBytes?: number;
  /** How often the certificate files are checked for a change, ms. Default 10,000. */
  certPollMs?: number;
  log?: (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;
}

export interface WebhookStats {
  requests: number;
  /** Bodies refused before the handler: malformed (400), too large (413), wrong method or path (404/405). */
  refused: number;
  /** Handler failures (500: the API server then applies the webhook's failurePolicy). */
  errors: number;
  certReloads: number;
}

export class WebhookServer {
  readonly #o: Required<Omit<WebhookServerOptions, "log">> & Pick<WebhookServerOptions, "log">;
  #server: Server | undefined;
  readonly stats: WebhookStats = { requests: 0, refused: 0, errors: 0, certReloads: 0 };

  constructor(opts: WebhookServerOptions) {
    this.#o = { maxBodyBytes: 4 * 1024 * 1024, certPollMs: 10_000, ...opts };
  }

  /** Listens; resolves with the port. */
  async start(): Promise<number> {
    const o = this.#o;
    const server = createServer(
      { cert: readFileSync(o.certFile), key: readFileSync(o.keyFile), minVersion: "TLSv1.2" },
      (req, res) => {
        this.#serve(req, res);
      },
    );
    this.#server = server;
    const [host, port] = splitAddress(o.address);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    for (const f of [o.certFile, o.keyFile]) {
      watchFile(f, { interval: o.certPollMs }, (cur, prev) => {
        if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size) this.reloadCertificate();
      });
    }
    return (server.address() as AddressInfo).port;
  }

  /**
   * Reads the certificate and key again and serves them to new connections. A pair that does not load (a
   * rotation caught half-written) keeps the old one and is retried on the next change.
   */
  reloadCertificate(): boolean {
    const o = this.#o;
    try {
      this.#server?.setSecureContext({ cert: readFileSync(o.certFile), key: readFileSync(o.keyFile) });
      this.stats.certReloads++;
      o.log?.("info", "webhook serving certificate reloaded", { certFile: o.certFile });
      return true;
    } catch (err) {
      o.log?.("warn", "webhook serving certificate not reloaded, keeping the previous one", {
        certFile: o.certFile,
        error: (err as Error).message,
      });
      return false;
    }
  }

  async stop(): Promise<void> {
    unwatchFile(this.#o.certFile);
    unwatchFile(this.#o.keyFile);
    const s = this.#server;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.close(() => {
        resolve();
      });
      s.closeAllConnections(); // keep-alive connections from the API server would hold close() open
    });
  }

  #serve(req: IncomingMessage, res: ServerResponse): void {
    this.stats.requests++;
    const path = (req.url ?? "").split("?")[0];
    if (path === "/healthz") {
      reply(res, 200, { ok: true });
      return;
    }
    if (path !== "/validate") {
      this.#refuse(res, 404, `no such path ${path ?? ""}, expected /validate`);
      return;
    }
    if (req.method !== "POST") {
      this.#refuse(res, 405, `method ${req.method ?? ""}, expected POST`);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > this.#o.maxBodyBytes) {
        if (!over) this.#refuse(res, 413, `request body over ${this.#o.maxBodyBytes} bytes`);
        over = true;
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      if (over) return;
      let review: ReviewRequest;
      try {
        review = parseReview(JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown);
      } catch (err) {
        this.#refuse(
          res,
          400,
          isStellaError(err) ? err.message : `AdmissionReview: body: ${(err as Error).message}`,
        );
        return;
      }
      let decision: ReviewDecision;
      try {
        decision = this.#o.handle(review);
      } catch (err) {
        this.stats.errors++;
        this.#o.log?.("error", "webhook decision failed", { uid: review.uid, error: (err as Error).message });
        reply(res, 500, { error: `decision failed: ${(err as Error).message}` });
        return;
      }
      reply(res, 200, reviewResponse(review.uid, decision));
    });
  }

  #refuse(res: ServerResponse, code: number, message: string): void {
    this.stats.refused++;
    reply(res, code, { error: message });
  }
}

function reply(res: ServerResponse, code: number, body: unknown): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(code, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function splitAddress(address: string): [string, number] {
  const i = address.lastIndexOf(":");
  const host = address.slice(0, i).replace(/^\[|\]$/g, "");
  return [host === "" ? "0.0.0.0" : host, Number(address.slice(i + 1))];
}
