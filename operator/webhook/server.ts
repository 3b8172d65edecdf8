// The validating admission webhook's HTTPS endpoint (issue 7): POST /validate-rollout takes an AdmissionReview v1 and
// answers with the handler's decision. The serving certificate comes either from files (a mounted Secret that
// cert-manager fills), watched and reloaded when they change, or from memory (the operator's self-signed mode,
// operator/webhook/tls.ts, hands over each renewed pair with setCertificate). Either way a rotation needs no restart:
// new connections get the new certificate, open ones finish with the old (controller-runtime `certwatcher`). Bodies
// are bounded (the API server sends at most ~3 MiB).
import { readFileSync, unwatchFile, watchFile } from "node:fs";
import { createServer, type Server } from "node:https";
import { createSecureContext } from "node:tls";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

import { isStellaError } from "../../core/errors.ts";
import { parseReview, reviewResponse, type ReviewDecision, type ReviewRequest } from "./review.ts";

/** The path the ValidatingWebhookConfiguration calls (the chart's clientConfig.service.path). */
export const WEBHOOK_PATH = "/validate-rollout";

/** PEM certificate (chain) and private key: from files that are watched, or given in memory. */
export type WebhookServerTls =
  { certFile: string; keyFile: string } | { cert: string | Buffer; key: string | Buffer };

interface CertificatePair {
  cert: string | Buffer;
  key: string | Buffer;
}

/** The pair itself, or the files' contents now. */
function loadPair(tls: WebhookServerTls): CertificatePair {
  if ("cert" in tls) return { cert: tls.cert, key: tls.key };
  return { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) };
}

export interface WebhookServerOptions {
  /** host:port to listen on ("0.0.0.0:9443" in the cluster, "127.0.0.1:0" in tests). */
  address: string;
  /** The serving certificate. Files are polled every `certPollMs` and reloaded on change. */
  tls: WebhookServerTls;
  /** Decides one review; must not do network calls (the API server waits, timeoutSeconds). */
  handle: (review: ReviewRequest) => ReviewDecision;
  /** Largest request body accepted. Default 4 MiB. */
  maxBodyBytes?: number;
  /** How often the certificate files are checked for a change, ms (files only). Default 10,000. */
  certPollMs?: number;
  log?: (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;
}

export interface WebhookStats {
  requests: number;
  /** Bodies refused before the handler: malformed (400), too large (413), wrong method or path (404/405). */
  refused: number;
  /** Handler failures (500: the API server then applies the webhook's failurePolicy). */
  errors: number;
  /** Certificate swaps that took effect: file reloads and setCertificate calls. */
  certReloads: number;
}

export class WebhookServer {
  readonly #o: Required<Omit<WebhookServerOptions, "log">> & Pick<WebhookServerOptions, "log">;
  #server: Server | undefined;
  /** The pair start() serves when set: the in-memory one, or one given to setCertificate before start. */
  #pair: CertificatePair | undefined;
  readonly stats: WebhookStats = { requests: 0, refused: 0, errors: 0, certReloads: 0 };

  constructor(opts: WebhookServerOptions) {
    this.#o = { maxBodyBytes: 4 * 1024 * 1024, certPollMs: 10_000, ...opts };
    if ("cert" in opts.tls) this.#pair = { cert: opts.tls.cert, key: opts.tls.key };
  }

  /** Listens; resolves with the port. */
  async start(): Promise<number> {
    const o = this.#o;
    const files = "certFile" in o.tls ? o.tls : undefined;
    const pair = this.#pair ?? loadPair(o.tls);
    // Fails here, before listening, when the pair does not load or the key does not match the certificate.
    createSecureContext(pair);
    const server = createServer({ ...pair, minVersion: "TLSv1.2" }, (req, res) => {
      this.#serve(req, res);
    });
    this.#server = server;
    const [host, port] = splitAddress(o.address);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    for (const f of files ? [files.certFile, files.keyFile] : []) {
      watchFile(f, { interval: o.certPollMs }, (cur, prev) => {
        if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size) this.reloadCertificate();
      });
    }
    return (server.address() as AddressInfo).port;
  }

  /**
   * Reads the certificate files again and serves them to new connections. A pair that does not load (a rotation
   * caught half-written) keeps the old one and is retried on the next change. False for an in-memory certificate.
   */
  reloadCertificate(): boolean {
    const tls = this.#o.tls;
    if (!("certFile" in tls)) return false;
    let pair: CertificatePair;
    try {
      pair = loadPair(tls);
    } catch (err: unknown) {
      this.#o.log?.("warn", "webhook serving certificate not reloaded, keeping the previous one", {
        certFile: tls.certFile,
        error: (err as Error).message,
      });
      return false;
    }
    return this.#swap(pair, { certFile: tls.certFile });
  }

  /**
   * Serves `cert` (PEM, leaf first) and `key` to new connections; open connections finish with the old pair. The pair
   * is checked first (parses, key matches certificate): a bad one keeps the current pair and returns false.
   */
  setCertificate(cert: string | Buffer, key: string | Buffer): boolean {
    return this.#swap({ cert, key }, { source: "memory" });
  }

  #swap(pair: CertificatePair, fields: Record<string, unknown>): boolean {
    const o = this.#o;
    try {
      // createSecureContext throws on a bad PEM and on a key that does not match the certificate
      // (OpenSSL SSL_CTX_use_PrivateKey's check), so a refused pair never reaches the server.
      createSecureContext(pair);
      if (this.#server) this.#server.setSecureContext({ ...pair, minVersion: "TLSv1.2" });
      else this.#pair = pair;
      this.stats.certReloads++;
      o.log?.("info", "webhook serving certificate reloaded", fields);
      return true;
    } catch (err: unknown) {
      o.log?.("warn", "webhook serving certificate not reloaded, keeping the previous one", {
        ...fields,
        error: (err as Error).message,
      });
      return false;
    }
  }

  async stop(): Promise<void> {
    const tls = this.#o.tls;
    if ("certFile" in tls) {
      unwatchFile(tls.certFile);
      unwatchFile(tls.keyFile);
    }
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
    if (path !== WEBHOOK_PATH) {
      this.#refuse(res, 404, `no such path ${path ?? ""}, expected ${WEBHOOK_PATH}`);
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
