// The CLI as users run it: a real process, real files, exit codes checked.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

const CLI = new URL("./stella.ts", import.meta.url).pathname;
const FIXTURES = new URL("../core/testdata/out/", import.meta.url).pathname;

function stella(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", maxBuffer: 1 << 28 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

test("--help works on every command", () => {
  for (const cmd of [
    [],
    ["funcproof"],
    ["scan"],
    ["scan", "diff"],
    ["attest", "sign"],
    ["attest", "verify"],
    ["keygen"],
    ["agent"],
    ["agent", "record"],
    ["agent", "run"],
  ]) {
    const r = stella(...cmd, "--help");
    assert.equal(r.code, 0, `${cmd.join(" ")}: ${r.stderr}`);
    assert.match(r.stdout, /Usage: stella/);
  }
});

test("usage errors exit 2", () => {
  assert.equal(stella("funcproof", "--no-such-flag", "x").code, 2);
  assert.equal(stella("scan", "diff", "--base", "x").code, 2);
  assert.equal(stella("agent", "record", "--pid", "1", "--all").code, 2, "targets exclude each other");
  assert.equal(stella("agent", "record", "--hz", "0").code, 2);
  assert.equal(stella("agent", "record", "--format", "svg").code, 2);
  assert.equal(stella("agent", "record", "--duration", "-1").code, 2);
});

test("agent: a bad target or configuration exits 3 naming it", () => {
  const gone = stella("agent", "record", "--pid", "4194303", "--duration", "1");
  assert.equal(gone.code, 3);
  assert.match(gone.stderr, /NO_SUCH_PROCESS: --pid 4194303/);
  const dir = mkdtempSync(join(tmpdir(), "cli-"));
  const cfg = join(dir, "agent.yaml");
  writeFileSync(cfg, "sampling:\n  frequencyHz: 0\n");
  const bad = stella("agent", "run", "--config", cfg);
  assert.equal(bad.code, 3);
  assert.match(
    bad.stderr,
    /INVALID_CONFIG: .*agent\.yaml: sampling\.frequencyHz: must be an integer in \[1, 10000\]/,
  );
  const missing = stella("agent", "run", "--config", join(dir, "nope.yaml"));
  assert.equal(missing.code, 3);
  assert.match(missing.stderr, /CONFIG_UNREADABLE: .*nope\.yaml/);
});

test("a truncated ELF exits 3 naming the file and the field", () => {
  const dir = mkdtempSync(join(tmpdir(), "cli-"));
  const bad = join(dir, "truncated");
  writeFileSync(bad, readFileSync(`${FIXTURES}prog-v1`).subarray(0, 2000));
  const r = stella("funcproof", bad);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /^stella: ELF_TRUNCATED: .*truncated: .*(section header table|program header)/m);
});

test("funcproof --json is canonical and deterministic", () => {
  const a = stella("funcproof", "--json", `${FIXTURES}prog-v1`);
  const b = stella("funcproof", "--json", `${FIXTURES}prog-v1`);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(a.stdout, b.stdout);
  const doc = JSON.parse(a.stdout) as { buildId: string; functions: { sym: string }[] };
  assert.match(doc.buildId, /^[0-9a-f]{40}$/);
  assert.ok(doc.functions.some((f) => f.sym === "parse_header"));
});

test("the README flow: keygen, signed funcproof and scan diff, attest verify; tampering is caught", () => {
  const dir = mkdtempSync(join(tmpdir(), "cli-"));
  const key = join(dir, "release");
  assert.equal(stella("keygen", "--type", "ecdsa-p256", "--out", key).code, 0);
  const out = join(dir, "evidence");
  const fp = stella("funcproof", `${FIXTURES}prog-v1`, "--sign", `${key}.key`, "--out", out);
  assert.equal(fp.code, 0, fp.stderr);
  const env = join(out, "prog-v1.funcproof.dsse.json");
  const ok = stella("attest", "verify", "--key", `${key}.pub`, "--json", env);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /stellaops\.funcproof\.v1/);

  const diff = join(dir, "diff.dsse.json");
  const d = stella(
    "scan",
    "diff",
    "--base",
    `${FIXTURES}prog-v1`,
    "--target",
    `${FIXTURES}prog-v2`,
    "--sign",
    `${key}.key`,
    "--out",
    diff,
  );
  assert.equal(d.code, 0, d.stderr);
  assert.equal(stella("attest", "verify", "--key", `${key}.pub`, diff).code, 0);
  const envelope = JSON.parse(readFileSync(diff, "utf8")) as { payload: string };
  const statement = JSON.parse(Buffer.from(envelope.payload, "base64").toString()) as {
    predicateType: string;
    predicate: { findings: { functionsChanged: { modified: string[]; added: string[] } }[] };
  };
  assert.equal(statement.predicateType, "stellaops.binarydiff.v1");
  assert.deepEqual(statement.predicate.findings[0]!.functionsChanged.modified, ["parse_header"]);

  // One changed byte of the payload: verification must fail (exit 1), not pass or crash.
  const tampered = {
    ...envelope,
    payload: Buffer.from(
      Buffer.from(envelope.payload, "base64").toString().replace("parse_header", "parse_headeR"),
    ).toString("base64"),
  };
  writeFileSync(join(dir, "tampered.json"), JSON.stringify(tampered));
  const bad = stella("attest", "verify", "--key", `${key}.pub`, join(dir, "tampered.json"));
  assert.equal(bad.code, 1, bad.stderr);
});
