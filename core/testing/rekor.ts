// Test helper: a real Rekor v2 transparency log (sigstore/rekor-tiles, POSIX storage backend) on 127.0.0.1, built
// from its Go module into the e2e cache by `make rekor-server` (e2e/tools/build.sh rekor-server).
import { generateKeyPairSync } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { makeTrustedRoot, type TrustedRootJson } from "../tlog/trusted-root.ts";
import { freePort, spawnServer } from "./server-process.ts";

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
  const server = spawnServer("rekor-server", binary, args, dir);
  const stop = async (): Promise<void> => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await server.waitReady(async () => {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      const body = await res.text();
      return res.status === 200 && body.includes("SERVING");
    }, STARTUP_TIMEOUT_MS);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const trustedRoot = makeTrustedRoot({
    tlogs: [{ baseUrl: url, publicKeyPem, origin, validFrom: startedAt }],
  });
  return { url, origin, publicKeyPem, trustedRoot, stop };
}
