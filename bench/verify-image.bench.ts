// The auditor's replay on a real image (issue 9): an OCI image of a few hundred ELF files from installed Debian
// packages is pushed to a real registry (Debian's docker-registry on 127.0.0.1) with a signed FuncProof referrer
// per file (`stella funcproof --push`), then `verifyImage` runs online (pulling everything) and offline (from a
// `stella export` directory). Reported: end-to-end seconds, the split between fetching and hashing, and the
// hashing time against `sha256sum` over the same files in the same run (the floor for reading the bytes once).
// Run: node bench/verify-image.bench.ts [--runs N] [--packages a,b,c] [--tlog]
import { spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { openArtifact } from "../core/artifacts/artifact.ts";
import { loadPublicKey } from "../core/dsse/keys.ts";
import { verifyImage, type ImageVerification } from "../core/evidence/verify-image.ts";
import { Blake3 } from "../core/hash/digest.ts";
import { exportImage, layoutSource, registrySource } from "../core/oci/evidence-source.ts";
import { pushLayout } from "../core/oci/layout-sync.ts";
import { buildDebianImage } from "../core/testing/debian-image.ts";
import { startRegistry, testClient } from "../core/testing/registry.ts";
import { startRekor } from "../core/testing/rekor.ts";
import { median } from "./timing.ts";

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const RUNS = Number(arg("--runs") ?? 3);
const WANTED = (
  arg("--packages") ??
  "coreutils,util-linux,libssl3,openssl,perl-base,bash,dpkg,apt,e2fsprogs,procps,libpython3.11-stdlib,libstdc++6"
).split(",");
const TLOG = process.argv.includes("--tlog");
const CLI = new URL("../cli/stella.ts", import.meta.url).pathname;

function installed(pkg: string): boolean {
  return spawnSync("dpkg", ["-s", pkg], { stdio: "ignore" }).status === 0;
}

function fmt(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

async function main(): Promise<void> {
  const packages = WANTED.filter(installed);
  const dir = mkdtempSync(join(tmpdir(), "stella-bench-verify-"));
  const registry = await startRegistry();
  const rekor = TLOG ? await startRekor() : undefined;
  try {
    const layout = join(dir, "image");
    const built = await buildDebianImage(layout, { packages, tag: "bench" });
    const client = testClient(registry.host);
    await pushLayout(client, layout, "bench", "bench");
    const ref = `${registry.host}/bench:bench`;

    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const keyFile = join(dir, "k.pem");
    writeFileSync(keyFile, privateKey.export({ type: "pkcs8", format: "pem" }));
    const pub = loadPublicKey(publicKey.export({ type: "spki", format: "pem" }), "bench.pub");

    const t0 = performance.now();
    const push = spawnSync(
      process.execPath,
      [CLI, "funcproof", ref, "--push", "--sign", keyFile, ...(rekor ? ["--tlog", rekor.url] : []), "--json"],
      { encoding: "utf8", maxBuffer: 1 << 28 },
    );
    if (push.status !== 0) throw new Error(`funcproof --push: ${push.stderr}`);
    const pushMs = performance.now() - t0;

    const blake3 = await Blake3.create();
    const opts = { keys: [pub], blake3, ...(rekor ? { trustedRoot: rekor.trustedRoot } : {}) };
    const online: ImageVerification[] = [];
    for (let i = 0; i < RUNS; i++) {
      const source = await registrySource(client, "bench", "bench");
      online.push(await verifyImage(source, opts));
      await source.close();
    }
    const out = join(dir, "export");
    const tExport = performance.now();
    await exportImage(client, "bench", "bench", out);
    const exportMs = performance.now() - tExport;
    const offline: ImageVerification[] = [];
    for (let i = 0; i < RUNS; i++) offline.push(await verifyImage(await layoutSource(out, "bench"), opts));
    for (const v of [...online, ...offline]) {
      if (v.verdict !== "pass") throw new Error(`verification failed: ${v.reasons.slice(0, 5).join("; ")}`);
    }

    // Reference: sha256sum over the same ELF files (extracted from the exported layout once).
    const artifact = await openArtifact(out);
    const files = join(dir, "files");
    const paths: string[] = [];
    for (const [i, f] of artifact.files.entries()) {
      const src = f.open();
      try {
        const p = join(files, String(i));
        spawnSync("mkdir", ["-p", files]);
        writeFileSync(p, src.read(0, f.size));
        paths.push(p);
      } finally {
        src.close();
      }
    }
    const shaMs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t = performance.now();
      const r = spawnSync("sha256sum", paths, { maxBuffer: 1 << 26 });
      if (r.status !== 0) throw new Error("sha256sum failed");
      shaMs.push(performance.now() - t);
    }
    const totalBytes = artifact.files.reduce((s, f) => s + f.size, 0);
    const functions = online[0]?.binaries.reduce((s, b) => s + b.checked.functions, 0) ?? 0;

    const row = (label: string, vs: ImageVerification[]): void => {
      const total = median(vs.map((v) => v.timings.totalMs));
      const refs = median(vs.map((v) => v.timings.referrersMs));
      const image = median(vs.map((v) => v.timings.imageMs));
      const replay = median(vs.map((v) => v.timings.replayMs));
      const pct = (ms: number): string => `${Math.round((100 * ms) / total)}%`;
      console.log(
        `${label.padEnd(8)} total ${fmt(total)}  referrers (fetch + verify) ${fmt(refs)} (${pct(refs)})  ` +
          `image (fetch + extract) ${fmt(image)} (${pct(image)})  replay (hash) ${fmt(replay)} (${pct(replay)})  ` +
          `replay/sha256sum ${(replay / median(shaMs)).toFixed(1)}×`,
      );
    };
    console.log(
      `image: ${packages.length} packages, ${built.files} files, ${built.elfFiles} ELF files ` +
        `(${(totalBytes / 1048576).toFixed(1)} MiB of ELF), ${functions} functions; ` +
        `referrers: ${online[0]?.referrers.length ?? 0}${rekor ? " (each logged in Rekor v2)" : ""}`,
    );
    console.log(
      `push     funcproof --push ${fmt(pushMs)} (build, sign${rekor ? ", log" : ""}, attach every proof + SBOM)`,
    );
    console.log(`export   ${fmt(exportMs)}`);
    row("online", online);
    row("offline", offline);
    console.log(`sha256sum over the same ELF files: ${fmt(median(shaMs))} (median of ${RUNS})`);
  } finally {
    await registry.stop();
    await rekor?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
