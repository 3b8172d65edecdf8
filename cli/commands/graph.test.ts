// `stella graph` end to end on programs compiled here: build (static + runtime edges from real bpftrace
// sampling), verify offline, explain, revoke; determinism; tampering refused with what failed; FuncProof traces.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const CLI = fileURLToPath(new URL("../stella.ts", import.meta.url));
const FP = [
  "-O1",
  "-fno-omit-frame-pointer",
  "-mno-omit-leaf-frame-pointer",
  "-fno-inline",
  "-fno-optimize-sibling-calls",
];

function stella(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", maxBuffer: 1 << 28 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function ok(...args: string[]): string {
  const r = stella(...args);
  assert.equal(r.code, 0, `stella ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

function gcc(args: string[]): void {
  const r = spawnSync("gcc", args, { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
}

interface Graph {
  graph_hash: string;
  nodes: { id: string; symbol: string; file: string; purl?: string }[];
  edges: { id: string; from: string; to: string; reason: string }[];
}

interface BuildJson {
  graph_hash: string;
  graph: string;
  bundles: { bundle: string; envelope: string }[];
  traces: { sink: string; edge_list_hash: string; nodes: string[] }[];
  funcproofs: string[];
}

let dir = "";
let key = "";
let pub = "";

const LIB = `int lib_helper(int x) { return x * 3; }
int lib_fn(int x) { return lib_helper(x) + 1; }
`;

// c is only ever called through a function pointer: invisible to a static call graph.
const PROG = `#include <stdio.h>
#include <stdlib.h>
int lib_fn(int);
int b(int x) { return x + 2; }
int a(int x) { return b(x) * 2; }
volatile unsigned long sink_counter;
int finish(int x) { return x - 1; }
/* Not a leaf (it calls finish), so it keeps a frame pointer and the unwinder sees its caller. */
int c(int x) { for (unsigned long i = 0; i < 200000; i++) sink_counter += i ^ (unsigned long)x; return finish(x); }
int (*volatile fp)(int) = c;
int dispatch(int x) { return fp(x); }
__attribute__((constructor)) static void init_me(void) { fp = c; }
int main(int argc, char **argv) {
  puts("start");
  long rounds = argc > 1 ? atol(argv[1]) : 1;
  int t = 0;
  for (long r = 0; r < rounds; r++) t += dispatch((int)r);
  return (a(argc) + lib_fn(argc) + t) & 1;
}
`;

function graphOf(build: BuildJson): Graph {
  return JSON.parse(readFileSync(build.graph, "utf8")) as Graph;
}

function build(out: string, ...args: string[]): BuildJson {
  return JSON.parse(ok("graph", "build", ...args, "--sign", key, "--out", out, "--json")) as BuildJson;
}

function symbolOf(g: Graph, id: string): string {
  return g.nodes.find((n) => n.id === id)?.symbol ?? "?";
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), "stella-graph-"));
  writeFileSync(join(dir, "libt.c"), LIB);
  writeFileSync(join(dir, "prog.c"), PROG);
  gcc([...FP, "-shared", "-fPIC", "-Wl,--build-id", "-o", join(dir, "libt.so"), join(dir, "libt.c")]);
  gcc([
    ...FP,
    "-Wl,--build-id",
    "-o",
    join(dir, "prog"),
    join(dir, "prog.c"),
    `-L${dir}`,
    "-lt",
    `-Wl,-rpath,${dir}`,
  ]);
  ok("keygen", "--type", "ed25519", "--out", join(dir, "k"));
  key = join(dir, "k.key");
  pub = join(dir, "k.pub");
});

describe("stella graph", () => {
  it("build → verify → explain; the same inputs in another order give byte-identical graphs", () => {
    const one = build(join(dir, "cas1"), join(dir, "prog"), join(dir, "libt.so"), "--sink", "lib_helper");
    const two = build(join(dir, "cas2"), join(dir, "libt.so"), join(dir, "prog"), "--sink", "lib_helper");
    assert.equal(one.graph_hash, two.graph_hash);
    assert.deepEqual(readFileSync(one.graph), readFileSync(two.graph));
    assert.deepEqual(
      one.bundles.map((b) => readFileSync(b.bundle, "utf8")),
      two.bundles.map((b) => readFileSync(b.bundle, "utf8")),
    );
    const g = graphOf(one);
    const pairs = g.edges.map((e) => `${symbolOf(g, e.from)}->${symbolOf(g, e.to)}:${e.reason}`);
    assert.ok(pairs.includes("main->a:direct-call"));
    assert.ok(pairs.includes("a->b:direct-call"));
    assert.ok(pairs.includes("main->lib_fn:plt"), "the PLT call resolved into libt.so");
    assert.ok(pairs.includes("main->puts:plt"), "libc is not analysed: an external node");
    assert.ok(pairs.some((p) => p.endsWith("->init_me:init-root")));
    assert.ok(!pairs.some((p) => p.includes("->c:")), "no static edge into c (called through a pointer)");

    const v = JSON.parse(
      ok(
        "graph",
        "verify",
        "--graph",
        one.graph_hash,
        "--cas",
        join(dir, "cas1"),
        "--key",
        pub,
        "--edge-bundles",
        "--sink",
        "b",
        "--sink",
        "c",
        "--json",
      ),
    ) as { verified: boolean; sinks: { sink: string; reachable: boolean }[] };
    assert.equal(v.verified, true);
    assert.deepEqual(
      v.sinks.map((s) => [s.sink, s.reachable]),
      [
        ["b", true],
        ["c", false],
      ],
    );
    const explain = ok(
      "graph",
      "explain",
      "--graph",
      one.graph_hash,
      "--cas",
      join(dir, "cas1"),
      "--sink",
      "b",
    );
    assert.match(
      explain,
      /main {2}\[root: main\][^\n]*\n {2}→ a {2}\[direct-call\][^\n]*\n {2}→ b {2}\[direct-call\]/,
    );
  });

  it("revoking the only edge into a sink makes it unreachable in verify --edge-bundles", () => {
    const out = join(dir, "cas-revoke");
    const built = build(out, join(dir, "prog"), join(dir, "libt.so"));
    const g = graphOf(built);
    const into = g.edges.filter((e) => symbolOf(g, e.to) === "b");
    assert.equal(into.length, 1, "a→b is the only edge into b");
    ok(
      "graph",
      "revoke",
      "--graph",
      built.graph_hash,
      "--cas",
      out,
      "--edge",
      into[0]?.id ?? "",
      "--sign",
      key,
    );
    const before = JSON.parse(
      ok("graph", "verify", "--graph", built.graph_hash, "--cas", out, "--key", pub, "--sink", "b", "--json"),
    ) as { newly_unreachable: string[]; sinks: { reachable_after_revocation: boolean }[] };
    assert.deepEqual(before.newly_unreachable, [], "without --edge-bundles the revocation is not applied");
    const after = stella(
      "graph",
      "verify",
      "--graph",
      built.graph_hash,
      "--cas",
      out,
      "--key",
      pub,
      "--edge-bundles",
      "--sink",
      "b",
    );
    assert.equal(after.code, 0, after.stderr);
    assert.match(
      after.stdout,
      /sink b \(fn:[0-9a-f]+:0x[0-9a-f]+\): reachable → UNREACHABLE once revoked edges are dropped/,
    );
    assert.match(
      after.stdout,
      /bundle disputed sha256:[0-9a-f]{64}: 1 edges, signed by [0-9a-f]{64}, revokes 1/,
    );
  });

  it("a tampered graph body, bundle or envelope is refused, naming what failed", () => {
    const base = join(dir, "cas-tamper");
    const built = build(base, join(dir, "prog"), join(dir, "libt.so"));
    const verify = (cas: string) =>
      stella(
        "graph",
        "verify",
        "--graph",
        built.graph_hash,
        "--cas",
        cas,
        "--key",
        pub,
        "--edge-bundles",
        "--json",
      );
    const copy = (name: string): string => {
      const d = join(dir, name);
      cpSync(base, d, { recursive: true });
      return d;
    };
    const flip = (file: string, from: string, to: string): void => {
      const text = readFileSync(file, "utf8");
      assert.ok(text.includes(from), `${file} contains ${from}`);
      writeFileSync(file, text.replace(from, to));
    };
    const failure = (r: { code: number; stdout: string }) => {
      assert.equal(r.code, 1);
      return (
        JSON.parse(r.stdout) as { error: { code: string; file: string; field: string; message: string } }
      ).error;
    };
    assert.equal(verify(base).code, 0);

    const a = copy("t-body");
    const bodyFile = built.graph.replace(base, a);
    flip(bodyFile, '"direct-call"', '"runtime"');
    const e1 = failure(verify(a));
    assert.equal(e1.code, "VERIFY_TAMPERED");
    assert.equal(e1.file, bodyFile);

    const b = copy("t-bundle");
    const bundleFile = (built.bundles[0]?.bundle ?? "").replace(base, b);
    flip(bundleFile, '"confidence":1', '"confidence":0.5');
    const e2 = failure(verify(b));
    assert.equal(e2.code, "VERIFY_TAMPERED");
    assert.equal(e2.file, bundleFile);

    const c = copy("t-env");
    const envFile = `${built.graph.replace(base, c)}.dsse`;
    const env = JSON.parse(readFileSync(envFile, "utf8")) as { payload: string };
    const st = JSON.parse(Buffer.from(env.payload, "base64").toString("utf8")) as {
      predicate: { node_count?: number };
    };
    env.payload = Buffer.from(JSON.stringify({ ...st, predicate: { ...st.predicate, extra: 1 } })).toString(
      "base64",
    );
    writeFileSync(envFile, JSON.stringify(env));
    const e3 = failure(verify(c));
    assert.equal(e3.code, "VERIFY_SIGNATURE");
    assert.equal(e3.file, envFile);
  });

  it("FuncProofs carry the traces that end in them", () => {
    const built = build(
      join(dir, "cas-fp"),
      join(dir, "prog"),
      join(dir, "libt.so"),
      "--sink",
      "b",
      "--funcproof-out",
      join(dir, "fp"),
    );
    const trace = built.traces.find((t) => t.nodes.length > 1);
    assert.ok(trace, "a trace main → a → b");
    const proofs = Object.fromEntries(
      readdirSync(join(dir, "fp")).map((f) => [
        f,
        JSON.parse(readFileSync(join(dir, "fp", f), "utf8")) as { traces: string[] },
      ]),
    );
    assert.deepEqual(proofs["prog.funcproof.json"]?.traces, [trace.edge_list_hash]);
    assert.deepEqual(proofs["libt.so.funcproof.json"]?.traces, []);
  });

  it("in a root filesystem, dpkg names each binary's package: a call into another package is third-party, bundled", () => {
    const root = join(dir, "rootfs");
    mkdirSync(join(root, "usr/bin"), { recursive: true });
    mkdirSync(join(root, "usr/lib/x86_64-linux-gnu"), { recursive: true });
    mkdirSync(join(root, "var/lib/dpkg/info"), { recursive: true });
    mkdirSync(join(root, "etc"), { recursive: true });
    cpSync(join(dir, "prog"), join(root, "usr/bin/prog"));
    cpSync(join(dir, "libt.so"), join(root, "usr/lib/x86_64-linux-gnu/libt.so"));
    writeFileSync(join(root, "etc/os-release"), "ID=debian\n");
    writeFileSync(
      join(root, "var/lib/dpkg/status"),
      "Package: app\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0-1\n\n" +
        "Package: libt1\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.3+dfsg-1\n",
    );
    writeFileSync(join(root, "var/lib/dpkg/info/app.list"), "/usr/bin/prog\n");
    writeFileSync(join(root, "var/lib/dpkg/info/libt1:amd64.list"), "/usr/lib/x86_64-linux-gnu/libt.so\n");
    const built = build(join(dir, "cas-rootfs"), root);
    const g = graphOf(built);
    const libFn = g.nodes.find((n) => n.symbol === "lib_fn");
    assert.equal(libFn?.purl, "pkg:deb/debian/libt1@2.3%2Bdfsg-1?arch=amd64");
    assert.equal(g.nodes.find((n) => n.symbol === "main")?.purl, "pkg:deb/debian/app@1.0-1?arch=amd64");
    const call = g.edges.find((e) => symbolOf(g, e.from) === "main" && symbolOf(g, e.to) === "lib_fn");
    assert.equal(call?.reason, "third-party");
    assert.ok(!g.nodes.some((n) => n.file.startsWith("/var/lib/dpkg")), "the database is not a binary");
    const bundles = built.bundles.map(
      (b) =>
        JSON.parse(readFileSync(b.bundle, "utf8")) as {
          bundle_reason: string;
          edges: { edge_id: string; purl?: string }[];
        },
    );
    const tp = bundles.find((b) => b.bundle_reason === "third-party");
    assert.equal(tp?.edges.find((e) => e.edge_id === call?.id)?.purl, libFn?.purl);
  });

  it("sampled with the agent (real bpftrace), the call through the function pointer becomes a runtime edge, bundled", async () => {
    assert.equal(process.geteuid?.(), 0, "this test needs root (bpftrace)");
    const child = spawn(join(dir, "prog"), ["100000000"], { stdio: "ignore" });
    try {
      await sleep(200);
      const rec = join(dir, "rec.json");
      ok("agent", "record", "--pid", String(child.pid), "--duration", "3", "--format", "json", "--out", rec);
      const built = build(
        join(dir, "cas-rt"),
        join(dir, "prog"),
        join(dir, "libt.so"),
        "--runtime",
        rec,
        "--sink",
        "c",
      );
      const g = graphOf(built);
      const runtime = g.edges.filter((e) => e.reason === "runtime");
      const toC = runtime.find((e) => symbolOf(g, e.from) === "dispatch" && symbolOf(g, e.to) === "c");
      assert.ok(
        toC,
        `dispatch → c observed (runtime edges: ${runtime.map((e) => `${symbolOf(g, e.from)}->${symbolOf(g, e.to)}`).join(", ")})`,
      );
      const bundled = built.bundles.map(
        (b) =>
          JSON.parse(readFileSync(b.bundle, "utf8")) as {
            bundle_reason: string;
            edges: { edge_id: string }[];
          },
      );
      assert.ok(
        bundled.some((b) => b.bundle_reason === "runtime-hit" && b.edges.some((e) => e.edge_id === toC.id)),
      );
      const trace = built.traces.find((t) => symbolOf(g, t.sink) === "c");
      assert.ok(trace, "c is reachable once the runtime edge is in");
      const explain = ok(
        "graph",
        "explain",
        "--graph",
        built.graph_hash,
        "--cas",
        join(dir, "cas-rt"),
        "--sink",
        "c",
      );
      assert.match(explain, /→ c {2}\[runtime-observed\]/);
    } finally {
      child.kill("SIGKILL");
    }
  });
});
