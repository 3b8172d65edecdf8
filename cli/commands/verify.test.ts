// Evidence travels with the image, end to end on real servers: Debian's docker-registry and a Rekor v2 log
// (rekor-tiles, POSIX backend) on 127.0.0.1. An image of real Debian package files is pushed, its FuncProofs
// are pushed as referrers (logged first), and `stella verify --image` replays them: online, offline from an
// exported directory in a network namespace with no route anywhere, and against tampered evidence.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

import { loadPrivateKey } from "../../core/dsse/keys.ts";
import { keySigner } from "../../core/dsse/sign.ts";
import { RegistryClient } from "../../core/oci/client.ts";
import { functionMiddle } from "../../core/testing/elf-oracle.ts";
import { pushLayout } from "../../core/oci/layout-sync.ts";
import { buildDebianImage } from "../../core/testing/debian-image.ts";
import { startRekor } from "../../core/testing/rekor.ts";
import { blobPath, startRegistry, type TestRegistry, testClient } from "../../core/testing/registry.ts";
import { signOpenVex } from "../../core/vex/attest.ts";
import { buildOpenVexDocument } from "../../core/vex/openvex.ts";
import { NOT_IN_PATH } from "../../core/vex/testdata.ts";

const CLI = fileURLToPath(new URL("../stella.ts", import.meta.url));
const PACKAGES = ["zlib1g", "gzip", "libzstd1"];

function stella(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", maxBuffer: 1 << 28 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function ok(...args: string[]): string {
  const r = stella(...args);
  assert.equal(r.code, 0, `stella ${args.join(" ")}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

interface Verification {
  verdict: string;
  reasons: string[];
  binaries: {
    path: string;
    verdict: string;
    reasons: string[];
    mismatches: { kind: string; name: string; field?: string }[];
  }[];
  referrers: { digest: string; kind: string; status: string; reasons: string[]; tlog: unknown[] }[];
  sbom: { reasons: string[]; components: number }[];
}

describe("stella funcproof --push / attest attach / verify --image / export", { timeout: 600_000 }, () => {
  let registry: TestRegistry;
  let rekor: Awaited<ReturnType<typeof startRekor>>;
  let client: RegistryClient;
  const dir = mkdtempSync(join(tmpdir(), "stella-verify-image-"));
  const key = join(dir, "release.key");
  const pub = join(dir, "release.pub");
  const root = join(dir, "trusted-root.json");
  let image: string;
  const libz = "libz.so.1.2.13";
  let firstDigest = "";
  const funcproofBundles = (repo: string, digest: string): Promise<string[]> =>
    funcproofBundlesOf(client, repo, digest);

  before(async () => {
    registry = await startRegistry();
    rekor = await startRekor();
    client = testClient(registry.host);
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    writeFileSync(key, privateKey.export({ type: "pkcs8", format: "pem" }));
    writeFileSync(pub, publicKey.export({ type: "spki", format: "pem" }));
    // The trusted root a user would make for their own log.
    writeFileSync(join(dir, "log.pub"), rekor.publicKeyPem);
    ok("attest", "trusted-root", "--tlog-url", rekor.url, "--tlog-key", join(dir, "log.pub"), "--out", root);
    assert.equal(new URL(rekor.url).host, rekor.origin);
    const layout = join(dir, "v1");
    const built = await buildDebianImage(layout, { packages: PACKAGES, tag: "1.0" });
    assert.equal(built.elfFiles, 3);
    await pushLayout(client, layout, "app", "1.0");
    image = `${registry.host}/app:1.0`;
  });

  after(async () => {
    await registry.stop();
    await rekor.stop();
  });

  it("pushes a logged FuncProof per ELF file plus an SBOM, and verify --image replays them all", () => {
    const pushed = JSON.parse(
      ok("funcproof", image, "--push", "--sign", key, "--tlog", rekor.url, "--json"),
    ) as {
      digest: string;
      referrers: { artifactType: string; path?: string; tlog?: { logIndex: string } }[];
    };
    const proofs = pushed.referrers.filter(
      (r) => r.artifactType === "application/vnd.stellaops.funcproof+json",
    );
    assert.equal(proofs.length, 3);
    assert.ok(proofs.every((p) => p.tlog !== undefined));
    firstDigest = pushed.digest;
    assert.equal(
      pushed.referrers.filter((r) => r.artifactType === "application/vnd.cyclonedx+json").length,
      1,
    );

    const v = JSON.parse(
      ok("verify", "--image", image, "--key", pub, "--trusted-root", root, "--json"),
    ) as Verification;
    assert.equal(v.verdict, "pass", v.reasons.join("\n"));
    assert.equal(v.binaries.length, 3);
    assert.ok(v.binaries.every((b) => b.verdict === "verified"));
    const funcproofs = v.referrers.filter((r) => r.kind === "funcproof");
    assert.equal(funcproofs.length, 3);
    assert.ok(funcproofs.every((r) => r.status === "verified" && r.tlog.length === 1));
    assert.equal(v.sbom[0]?.components, 3);
    assert.deepEqual(v.sbom[0]?.reasons, []);

    // The human output says the same, and the wrong key fails with exit 1.
    const human = ok("verify", "--image", image, "--key", pub);
    assert.match(human, /verdict: PASS/);
    const other = join(dir, "other.pub");
    writeFileSync(
      other,
      generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "pem" }),
    );
    const wrong = stella("verify", "--image", image, "--key", other);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stdout, /REFUSED .*signature/);
  });

  it("exports the image and its evidence; the export verifies offline with no network at all", () => {
    const out = join(dir, "export");
    const exported = JSON.parse(ok("export", "--image", image, "--out", out, "--json")) as {
      referrers: number;
    };
    assert.equal(exported.referrers, 4);
    // unshare -n: a new network namespace with only a down loopback; the registry cannot be reached.
    const r = spawnSync(
      "unshare",
      [
        "-n",
        process.execPath,
        CLI,
        "verify",
        "--image",
        image,
        "--offline",
        out,
        "--key",
        pub,
        "--trusted-root",
        root,
        "--json",
      ],
      { encoding: "utf8" },
    );
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    const v = JSON.parse(r.stdout) as Verification;
    assert.equal(v.verdict, "pass");
    assert.equal(v.binaries.length, 3);
    // The same command online from inside the namespace cannot reach the registry: proof the sandbox is real.
    const online = spawnSync(
      "unshare",
      ["-n", process.execPath, CLI, "verify", "--image", image, "--key", pub],
      {
        encoding: "utf8",
      },
    );
    assert.notEqual(online.status, 0);
  });

  it("one byte changed in a binary of a new image under the same tag: the replay names binary, section, function", async () => {
    const target = "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13";
    const { offset, start } = await functionMiddle(target, "deflate");
    const layout = join(dir, "v2");
    await buildDebianImage(layout, {
      packages: PACKAGES,
      tag: "1.0",
      mutate: (path, data) => {
        if (!path.endsWith(libz)) return undefined;
        const copy = Buffer.from(data);
        copy[offset] = (copy[offset] ?? 0) ^ 0xff;
        return copy;
      },
    });
    await pushLayout(client, layout, "app", "1.0");
    // No evidence for the new digest yet: every binary is unattested.
    const bare = stella("verify", "--image", image, "--key", pub, "--json");
    assert.equal(bare.code, 1);
    const bareV = JSON.parse(bare.stdout) as Verification;
    assert.ok(bareV.binaries.every((b) => b.verdict === "unattested"));

    // Someone copies the old, validly signed FuncProofs onto the new image.
    for (const [i, bundle] of (await funcproofBundles("app", firstDigest)).entries()) {
      const f = join(dir, `copied-${i}.json`);
      writeFileSync(f, bundle);
      ok("attest", "attach", "--image", image, "--attestation", f);
    }
    const r = stella("verify", "--image", image, "--key", pub, "--trusted-root", root, "--json");
    assert.equal(r.code, 1, r.stderr);
    const v = JSON.parse(r.stdout) as Verification;
    assert.equal(v.verdict, "fail");
    const bad = v.binaries.filter((b) => b.verdict !== "verified");
    assert.deepEqual(
      bad.map((b) => b.path),
      v.binaries.filter((b) => b.path.endsWith(libz)).map((b) => b.path),
    );
    const named = bad[0]?.mismatches.map((m) => `${m.kind}:${m.name}:${m.field ?? ""}`) ?? [];
    assert.ok(named.includes("section:.text:sha256"), named.join(", "));
    assert.ok(named.includes(`function:deflate@${start}:sha256`), named.join(", "));
    assert.ok(named.some((n) => n.startsWith("file:")));
    // Only deflate changed: no other function is named.
    assert.ok(
      named.filter((n) => n.startsWith("function:")).every((n) => n.startsWith(`function:deflate@${start}:`)),
    );
    const human = stella("verify", "--image", image, "--key", pub);
    assert.match(human.stdout, new RegExp(`MISMATCH .*${libz.replaceAll(".", "\\.")}`));
    assert.match(human.stdout, /section \.text sha256 differs/);
    assert.match(human.stdout, /function deflate@0x[0-9a-f]+ sha256 differs/);
  });

  it("refuses referrers whose envelope, blob digest or inclusion proof was tampered, each with its reason", async () => {
    const layout = join(dir, "v1");
    await pushLayout(client, layout, "tamper", "1.0");
    const ref = `${registry.host}/tamper:1.0`;
    const pushed = JSON.parse(
      ok("funcproof", ref, "--push", "--sign", key, "--tlog", rekor.url, "--no-sbom", "--json"),
    ) as {
      digest: string;
    };
    // Three genuine FuncProof referrers: the first two are copied and tampered, the third corrupted in place.
    const genuine = (
      await client.referrers("tamper", pushed.digest, {
        artifactType: "application/vnd.stellaops.funcproof+json",
      })
    ).manifests;
    assert.equal(genuine.length, 3);
    const [a, b] = await funcproofBundles("tamper", pushed.digest);
    assert.ok(a !== undefined && b !== undefined);
    // (1) The envelope's payload changed (the signature no longer covers it).
    const env = JSON.parse(a) as { dsseEnvelope: { payload: string } };
    const stmt = JSON.parse(Buffer.from(env.dsseEnvelope.payload, "base64").toString("utf8")) as {
      predicate: { arch: string };
    };
    stmt.predicate.arch = "aarch64";
    env.dsseEnvelope.payload = Buffer.from(JSON.stringify(stmt)).toString("base64");
    writeFileSync(join(dir, "t-envelope.json"), JSON.stringify(env));
    ok("attest", "attach", "--image", ref, "--attestation", join(dir, "t-envelope.json"));
    // (2) One hash of the inclusion proof changed.
    const proof = JSON.parse(b) as {
      verificationMaterial: { tlogEntries: { inclusionProof: { hashes: string[] } }[] };
    };
    const hashes = proof.verificationMaterial.tlogEntries[0]?.inclusionProof.hashes ?? [];
    assert.ok(hashes.length > 0, "a tree of 3+ entries has a non-empty inclusion proof");
    const h = Buffer.from(hashes[0] ?? "", "base64");
    h[0] = (h[0] ?? 0) ^ 1;
    hashes[0] = h.toString("base64");
    writeFileSync(join(dir, "t-proof.json"), JSON.stringify(proof));
    ok("attest", "attach", "--image", ref, "--attestation", join(dir, "t-proof.json"));
    // (3) A referrer's layer blob changed in the registry's storage (its digest no longer matches).
    const victim = genuine[2];
    assert.ok(victim);
    const m = JSON.parse(
      Buffer.from((await client.pullManifest("tamper", victim.digest)).bytes).toString("utf8"),
    ) as {
      layers: { digest: string }[];
    };
    const layerDigest = m.layers[0]?.digest ?? "";
    const file = blobPath(registry.root, layerDigest);
    const bytes = readFileSync(file);
    bytes[10] = (bytes[10] ?? 0) ^ 1;
    writeFileSync(file, bytes);

    const r = stella("verify", "--image", ref, "--key", pub, "--trusted-root", root, "--json");
    assert.equal(r.code, 1, r.stderr);
    const v = JSON.parse(r.stdout) as Verification;
    const refused = v.referrers.filter((x) => x.status === "refused");
    const why = refused.map((x) => x.reasons.join(" ")).join("\n");
    assert.equal(refused.length, 3, why);
    assert.match(why, /signature: /);
    assert.match(why, /transparency log: /);
    assert.match(why, new RegExp(layerDigest.replace("sha256:", "")));
  });

  it("checks a richgraph referrer's hash against its body and the replayed functions, and VEX documents' subject", async () => {
    await pushLayout(client, join(dir, "v1"), "graph", "1.0");
    const ref = `${registry.host}/graph:1.0`;
    const pushed = JSON.parse(ok("funcproof", ref, "--push", "--sign", key, "--no-sbom", "--json")) as {
      digest: string;
    };
    const cas = join(dir, "cas");
    const built = JSON.parse(
      ok("graph", "build", join(dir, "v1"), "--out", cas, "--sign", key, "--json"),
    ) as {
      graph_hash: string;
      graph: string;
      envelope: string;
    };
    // The CAS envelope takes its body along (`<hash>.dsse` → `<hash>`).
    ok("attest", "attach", "--image", ref, "--attestation", built.envelope);

    const signer = keySigner(loadPrivateKey(readFileSync(key), key));
    const vexFor = async (imageDigest: string, file: string): Promise<void> => {
      const decision = { ...NOT_IN_PATH, product: { imageDigest } };
      const doc = buildOpenVexDocument(decision, {
        id: "https://example.test/vex/1",
        author: "test",
        timestamp: "2026-11-25T00:00:00Z",
        version: 1,
      });
      writeFileSync(file, (await signOpenVex(decision.product, doc, [signer])).json);
    };
    await vexFor(pushed.digest, join(dir, "vex-ok.json"));
    await vexFor(`sha256:${"0".repeat(64)}`, join(dir, "vex-other.json"));
    ok("attest", "attach", "--image", ref, "--attestation", join(dir, "vex-ok.json"));

    let v = JSON.parse(ok("verify", "--image", ref, "--key", pub, "--json")) as Verification & {
      graphs: { graphHash: string; nodesChecked: number; reasons: string[] }[];
      vex: { statements: { status: string }[]; reasons: string[] }[];
    };
    assert.equal(v.verdict, "pass", v.reasons.join("\n"));
    assert.equal(v.graphs[0]?.graphHash, built.graph_hash);
    // Every function node of the three binaries was compared with a replayed FuncProof function hash.
    assert.ok((v.graphs[0]?.nodesChecked ?? 0) > 100, String(v.graphs[0]?.nodesChecked));
    assert.deepEqual(v.vex[0]?.statements, [{ status: "not_affected", vulnerability: "CVE-2024-1234" }]);

    // A VEX document about another image, and a graph envelope with a body that is not the one it signed.
    ok("attest", "attach", "--image", ref, "--attestation", join(dir, "vex-other.json"));
    const otherBody = join(dir, "other-graph.json");
    const body = JSON.parse(readFileSync(built.graph, "utf8")) as { roots: unknown[] };
    body.roots = body.roots.slice(1);
    writeFileSync(otherBody, JSON.stringify(body));
    ok("attest", "attach", "--image", ref, "--attestation", built.envelope, "--body", otherBody);
    const r = stella("verify", "--image", ref, "--key", pub, "--json");
    assert.equal(r.code, 1);
    v = JSON.parse(r.stdout) as typeof v;
    const refused = v.referrers.filter((x) => x.status === "refused");
    assert.deepEqual(refused.map((x) => x.kind).sort(), ["graph", "vex"]);
    const why = refused.map((x) => x.reasons.join(" ")).join("\n");
    assert.match(why, /not this image/);
    assert.match(why, /graph body|graph_hash|canonical/);
  });
});

/** The sigstore bundles of an image's FuncProof referrers, as stored. */
async function funcproofBundlesOf(client: RegistryClient, repo: string, digest: string): Promise<string[]> {
  const refs = await client.referrers(repo, digest, {
    artifactType: "application/vnd.stellaops.funcproof+json",
  });
  const out: string[] = [];
  for (const d of refs.manifests) {
    const m = JSON.parse(Buffer.from((await client.pullManifest(repo, d.digest)).bytes).toString("utf8")) as {
      layers: { digest: string }[];
    };
    const layer = m.layers[0];
    assert.ok(layer);
    out.push(Buffer.from(await client.pullBlob(repo, layer.digest, { maxBytes: 1 << 26 })).toString("utf8"));
  }
  return out;
}
