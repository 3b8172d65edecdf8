// Test helper: a real OCI registry (Debian's `docker-registry`, distribution 2.8) on 127.0.0.1, and a small
// Bearer-token front (node:http) for the token-auth dance that the real registry cannot do here without a token server.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, request as httpRequest, type IncomingMessage, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { RegistryClient, type RegistryClientOptions } from "../oci/client.ts";
import { run } from "./run.ts";
import { freePort, spawnServer } from "./server-process.ts";

export const REGISTRY_BINARY = "/usr/bin/docker-registry";

export interface TestRegistry {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** `127.0.0.1:PORT` */
  host: string;
  /** Filesystem storage root (blobs under docker/registry/v2/blobs/sha256/XX/HEX/data). */
  root: string;
  stop(): Promise<void>;
}

/** The blob's data file in the registry's filesystem storage. */
export function blobPath(root: string, digest: string): string {
  const [alg, hex] = digest.split(":") as [string, string];
  return join(root, "docker", "registry", "v2", "blobs", alg, hex.slice(0, 2), hex, "data");
}

/**
 * Starts docker-registry with filesystem storage in a temp dir, deletes enabled, on a free loopback port;
 * with `basicAuth`, an htpasswd file (bcrypt, made by apache2-utils' htpasswd) guards it.
 */
export async function startRegistry(
  opts: { basicAuth?: { username: string; password: string } } = {},
): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), "stella-registry-"));
  const root = join(dir, "storage");
  const port = await freePort();
  const host = `127.0.0.1:${String(port)}`;
  let auth = "";
  if (opts.basicAuth !== undefined) {
    const r = await run("htpasswd", ["-nbB", opts.basicAuth.username, opts.basicAuth.password]);
    if (r.code !== 0) throw new Error(`htpasswd failed: ${r.stderr}`);
    const file = join(dir, "htpasswd");
    await writeFile(file, r.stdout.trim() + "\n");
    auth = `auth:\n  htpasswd:\n    realm: stella-test\n    path: ${file}\n`;
  }
  const config =
    `version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n` +
    `storage:\n  filesystem:\n    rootdirectory: ${root}\n  delete:\n    enabled: true\n` +
    `http:\n  addr: ${host}\n  secret: ${randomBytes(16).toString("hex")}\n` +
    auth;
  const cfgPath = join(dir, "config.yml");
  await writeFile(cfgPath, config);
  const server = spawnServer("docker-registry", REGISTRY_BINARY, ["serve", cfgPath], dir);
  const url = `http://${host}`;
  const stop = async (): Promise<void> => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await server.waitReady(async () => {
      const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      return res.status === 200 || res.status === 401;
    }, 15_000);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return { url, host, root, stop };
}

export interface BearerFront {
  url: string;
  host: string;
  /** Token requests seen: the `scope` params asked for, in order. */
  tokenRequests: string[][];
  /** Requests to /v2/ answered 401 with a Bearer challenge. */
  challenges: number;
  stop(): Promise<void>;
}

/**
 * A node:http front that does the Docker token dance: `/v2/*` without a valid `Bearer` token → 401 with
 * `WWW-Authenticate: Bearer realm=…/token,service=…,scope=…`; `/token` checks Basic credentials and issues a token
 * good for the scopes asked; authorised requests are proxied to `upstream` (a TestRegistry without auth).
 */
export async function startBearerFront(
  upstream: TestRegistry,
  creds: { username: string; password: string },
): Promise<BearerFront> {
  const tokens = new Map<string, Set<string>>();
  const state = { tokenRequests: [] as string[][], challenges: 0 };
  let selfUrl = "";
  const server: Server = createServer((req: IncomingMessage, res) => {
    const u = new URL(req.url ?? "/", "http://x");
    if (u.pathname === "/token") {
      const want = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}`;
      const scopes = u.searchParams.getAll("scope");
      state.tokenRequests.push(scopes);
      if (req.headers.authorization !== want) {
        res.writeHead(401, { "content-type": "application/json" }).end('{"details":"bad credentials"}');
        return;
      }
      const token = randomBytes(12).toString("hex");
      const granted = new Set<string>();
      for (const s of scopes) {
        const [type, name, actions] = s.split(":");
        for (const a of (actions ?? "").split(",")) granted.add(`${type ?? ""}:${name ?? ""}:${a}`);
      }
      tokens.set(token, granted);
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ token, expires_in: 300 }));
      return;
    }
    const m = /^\/v2\/(.+?)\/(blobs|manifests|tags|referrers)\//.exec(u.pathname);
    const repo = m?.[1];
    const action =
      req.method === "GET" || req.method === "HEAD" ? "pull" : req.method === "DELETE" ? "delete" : "push";
    const need = repo === undefined ? undefined : `repository:${repo}:${action}`;
    const auth = req.headers.authorization ?? "";
    const granted = auth.startsWith("Bearer ") ? tokens.get(auth.slice(7)) : undefined;
    const ok = granted !== undefined && (need === undefined || granted.has(need));
    if (!ok) {
      state.challenges++;
      const scope =
        repo === undefined ? "" : `,scope="repository:${repo}:${action === "pull" ? "pull" : "pull,push"}"`;
      req.resume();
      res
        .writeHead(401, {
          "content-type": "application/json",
          "www-authenticate": `Bearer realm="${selfUrl}/token",service="stella-test"${scope}`,
        })
        .end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
      return;
    }
    const headers = { ...req.headers };
    delete headers.authorization;
    const up = httpRequest(`${upstream.url}${req.url ?? "/"}`, { method: req.method, headers }, (ures) => {
      res.writeHead(ures.statusCode ?? 502, ures.headers);
      ures.pipe(res);
    });
    up.on("error", () => {
      res.destroy();
    });
    req.pipe(up);
  });
  await new Promise<void>((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve();
    });
  });
  const addr = server.address();
  const port = typeof addr === "object" && addr !== null ? addr.port : 0;
  const host = `127.0.0.1:${String(port)}`;
  selfUrl = `http://${host}`;
  return {
    url: selfUrl,
    host,
    get tokenRequests() {
      return state.tokenRequests;
    },
    get challenges() {
      return state.challenges;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}

export const TEST_USER_AGENT = "stella-evidence-test/0";

/** A fetch that logs `METHOD /path?query` of every request, for "was this uploaded again" checks. */
export function countingFetch(log: string[]): typeof fetch {
  return (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    const u = new URL(url);
    log.push(`${init?.method ?? "GET"} ${u.pathname}${u.search}`);
    return fetch(input, init);
  };
}

/** A client for a test registry on loopback (plain HTTP), with the test user agent. */
export function testClient(host: string, extra: Partial<RegistryClientOptions> = {}): RegistryClient {
  return new RegistryClient({ registry: host, insecure: true, userAgent: TEST_USER_AGENT, ...extra });
}
