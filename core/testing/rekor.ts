// Test helper: a real Rekor v2 transparency log (sigstore/rekor-tiles, POSIX storage backend) on 127.0.0.1, built
// from its Go module into the e2e cache by `make rekor-server` (e2e/tools/build.sh rekor-server).
import { spawn, type ChildProcess } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { makeTrustedRoot, type TrustedRootJson } from "../tlog/trusted-root.ts";

export interface TestRekor {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** The checkpoint origin (`--hostname`): `127.0.0.1:PORT`, contained in `url` as verifiers require. */
  origin: string;
  /** The log's Ed25519 checkpoint-signing public key (SPKI PEM). */
  publicKeyPem: string;
  /** A TrustedRoot holding just this log. */
  trustedRoot: TrustedRootJson;
  stop(): Promise<void>;
}

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** `${STELLA_E2E_CACHE ?? <repo>/e2e/.cache}/bin/rekor-server` */
export function rekorBinary(): string {
  const cache = process.env["STELLA_E2E_CACHE"] ?? join(REPO, "e2e", ".cache");
  return join(cache, "bin", "rekor-server");
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const s = createNetServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      s.close(() => {
        resolvePort(port);
      });
    });
  });
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function killAllOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const c of live) c.kill("SIGKILL");
  });
}

/** Rekor's checkpoint interval here: each write waits for the next checkpoint that covers it. */
const CHECKPOINT_INTERVAL = "100ms";
const STARTUP_TIMEOUT_MS = 20_000;

/**
 * Starts `rekor-server serve` (POSIX backend) with a fresh Ed25519 log key and an empty log in a temp dir, on free
 * loopback ports (HTTP, gRPC, metrics; the server refuses port 0), and waits for `/healthz` to say SERVING.
 */
export async function startRekor(): Promise<TestRekor> {
  const binary = rekorBinary();
  if (!existsSync(binary)) {
    throw new Error(
      `${binary} is missing: build the Rekor v2 log with \`make rekor-server\` (about 2 min cold)`,
    );
  }
  const dir = await mkdtemp(join(tmpdir(), "stella-rekor-"));
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const keyFile = join(dir, "log-key.pem");
  await writeFile(keyFile, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
  const publicKeyPem = publicKey.export({ type: "spki", format: "pem" }).toString();
  const ports = new Set<number>();
  while (ports.size < 3) ports.add(await freePort()); // a port just closed may be handed out again
  const [httpPort = 0, grpcPort = 0, metricsPort = 0] = [...ports];
  const origin = `127.0.0.1:${String(httpPort)}`;
  const url = `http://${origin}`;
  const args = [
    "serve",
    "--http-address=127.0.0.1",
    `--http-port=${String(httpPort)}`,
    "--grpc-address=127.0.0.1",
    `--grpc-port=${String(grpcPort)}`,
    `--http-metrics-port=${String(metricsPort)}`,
    `--hostname=${origin}`,
    `--storage-dir=${join(dir, "log")}`,
    `--signer-filepath=${keyFile}`,
    `--checkpoint-interval=${CHECKPOINT_INTERVAL}`,
    "--batch-max-age=20ms",
    "--log-level=warn",
  ];
  const startedAt = new Date();
  // The server's stderr goes to a file, not a pipe: a pipe fills while the parent is blocked (a test's
  // spawnSync of the CLI) and stalls the server mid-request.
  const logPath = join(dir, "server.log");
  const logFd = openSync(logPath, "w");
  const child = spawn(binary, args, { stdio: ["ignore", "ignore", logFd] });
  live.add(child);
  killAllOnExit();
  closeSync(logFd);
  const serverLog = (): string => {
    try {
      return readFileSync(logPath, "utf8").slice(-8192);
    } catch {
      return "";
    }
  };
  let exited = false;
  child.once("exit", () => {
    exited = true;
    live.delete(child);
  });
  child.once("error", () => {
    exited = true;
  });
  const stop = async (): Promise<void> => {
    if (!exited) {
      const done = new Promise<void>((resolveExit) => {
        child.once("exit", () => {
          resolveExit();
        });
      });
      child.kill("SIGTERM");
      const t = setTimeout(() => {
        child.kill("SIGKILL");
      }, 3000);
      await done;
      clearTimeout(t);
    }
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  for (;;) {
    if (exited) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`rekor-server exited during startup: ${serverLog()}`);
    }
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      const body = await res.text();
      if (res.status === 200 && body.includes("SERVING")) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(
        `rekor-server did not answer ${url}/healthz within ${String(STARTUP_TIMEOUT_MS)} ms: ${serverLog()}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const trustedRoot = makeTrustedRoot({
    tlogs: [{ baseUrl: url, publicKeyPem, origin, validFrom: startedAt }],
  });
  return { url, origin, publicKeyPem, trustedRoot, stop };
}
