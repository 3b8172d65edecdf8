import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";

import { Command } from "commander";

import { invocation } from "../action.ts";
import { exportVex, registerVex, type VexExportApi } from "./vex.ts";

const ENVELOPE = '{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[]}';
const DIGEST = "sha256:0dba0ecdd3bc1a44ab4883d3d2e9b6a1b4bb27c2efa4b1d07b3c7e7c8d8a5f0f";

function fakeApi(opts: { decided?: boolean; stored?: boolean; signed?: boolean } = {}): VexExportApi {
  const { decided = true, stored = true, signed = true } = opts;
  return {
    defaultNamespace: () => "shop",
    getStatement: (ns, name) =>
      Promise.resolve(
        ns === "shop" && name === "cve"
          ? { status: decided ? { vexStatus: "affected", documentDigest: DIGEST } : {} }
          : undefined,
      ),
    getBundle: (ns, name) =>
      Promise.resolve(
        stored && ns === "shop" && name === "cve"
          ? { ...(signed ? { "openvex.dsse.json": ENVELOPE } : {}), "evidence.md": "# CVE: affected\n" }
          : undefined,
      ),
  };
}

/** Captures stdout and stderr around `fn`. */
async function capture(fn: () => Promise<number>): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const o = process.stdout.write.bind(process.stdout);
  const e = process.stderr.write.bind(process.stderr);
  process.stdout.write = (s: string) => out.push(s) > 0;
  process.stderr.write = (s: string) => err.push(s) > 0;
  try {
    const code = await fn();
    return { code, out: out.join(""), err: err.join("") };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}

describe("stella vex export", () => {
  test("prints the envelope (default namespace from the kubeconfig context)", async () => {
    const r = await capture(() => exportVex("cve", {}, fakeApi()));
    assert.equal(r.code, 0);
    assert.equal(r.out, `${ENVELOPE}\n`);
    assert.match(r.err, /warning: stored envelope sha256:[0-9a-f]+ is not status.documentDigest/);
  });

  test("--evidence prints the evidence pack; --json wraps; --out writes a file", async () => {
    assert.equal(
      (await capture(() => exportVex("cve", { evidence: true }, fakeApi()))).out,
      "# CVE: affected\n",
    );
    const j = await capture(() => exportVex("cve", { json: true, namespace: "shop" }, fakeApi()));
    const parsed = JSON.parse(j.out) as Record<string, unknown>;
    assert.equal(parsed["vexStatus"], "affected");
    assert.deepEqual(parsed["envelope"], JSON.parse(ENVELOPE));
    const dir = mkdtempSync(join(tmpdir(), "stella-vex-cli-"));
    try {
      const out = join(dir, "vex.json");
      assert.equal((await capture(() => exportVex("cve", { out }, fakeApi()))).code, 0);
      assert.equal(readFileSync(out, "utf8"), `${ENVELOPE}\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("exit 3: not found, not decided, nothing stored, not signed", async () => {
    const cases: [string, VexExportApi, RegExp][] = [
      ["other", fakeApi(), /VexStatement shop\/other not found/],
      ["cve", fakeApi({ decided: false }), /not decided yet/],
      ["cve", fakeApi({ stored: false }), /ConfigMap shop\/vex-cve .* not found/],
      ["cve", fakeApi({ signed: false }), /not signed/],
    ];
    for (const [name, api, message] of cases) {
      const r = await capture(() => exportVex(name, {}, api));
      assert.equal(r.code, 3, name);
      assert.match(r.err, message);
      assert.equal(r.out, "");
    }
  });

  test("registered as `vex export NAME -n NS`", async () => {
    const program = new Command("stella").exitOverride();
    registerVex(program, () => Promise.resolve(fakeApi()));
    const r = await capture(async () => {
      await program.parseAsync(["node", "stella", "vex", "export", "cve", "-n", "shop", "--evidence"]);
      return invocation.exitCode;
    });
    assert.equal(r.code, 0);
    assert.equal(r.out, "# CVE: affected\n");
  });
});
