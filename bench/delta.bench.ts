// Delta engine against bsdiff, xdelta3 and zstd --patch-from on real release pairs (libssl3 3.0.20 ->
// 3.0.22 from Debian, downloaded on demand), in the same run; plus chunking and apply throughput on a
// 100 MB synthetic input. Times are wall-clock and CPU (user+sys) medians: CPU time is what to compare
// on a loaded machine. Goals: size <= 1.25x zstd -19 on libcrypto (stretch: <= 0.8x bsdiff), create
// faster than bsdiff, apply >= 200 MB/s on 100 MB. Run: node bench/delta.bench.ts [--runs N]
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";

import { cdcBoundaries } from "../core/delta/cdc.ts";
import { applyDelta, createDelta } from "../core/delta/index.ts";
import { debTree, LIBSSL_NEW, LIBSSL_OLD, makeRng, prngBytes } from "../core/delta/test-helpers.ts";
import { median } from "./timing.ts";

const runsAt = process.argv.indexOf("--runs");
const RUNS = runsAt > 0 ? Number(process.argv[runsAt + 1]) : 3;
if (!(RUNS >= 1)) throw new Error("--runs: expected a count >= 1");

interface Timing {
  wallMs: number;
  cpuMs: number;
}

/** Median wall and CPU time of `runs` calls in this process. */
function timeIn(fn: () => void, runs = RUNS): Timing {
  const w: number[] = [];
  const c: number[] = [];
  for (let i = 0; i < runs; i++) {
    const cpu = process.cpuUsage();
    const t = performance.now();
    fn();
    w.push(performance.now() - t);
    const d = process.cpuUsage(cpu);
    c.push((d.user + d.system) / 1000);
  }
  return { wallMs: median(w), cpuMs: median(c) };
}

/** Median wall and CPU time of a command, CPU from GNU time's %U+%S. */
function timeCmd(argv: string[], runs = RUNS): Timing {
  const w: number[] = [];
  const c: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    const r = spawnSync("/usr/bin/time", ["-f", "@@ %U %S", ...argv], { encoding: "utf8" });
    w.push(performance.now() - t);
    if (r.status !== 0) throw new Error(`${argv.join(" ")} exited ${r.status}: ${r.stderr}`);
    const m = /@@ ([\d.]+) ([\d.]+)/.exec(r.stderr);
    c.push(m ? (Number(m[1]) + Number(m[2])) * 1000 : NaN);
  }
  return { wallMs: median(w), cpuMs: median(c) };
}

const fmtT = (t: Timing): string =>
  `${(t.wallMs / 1000).toFixed(2)} s wall / ${(t.cpuMs / 1000).toFixed(2)} s cpu`;
const kb = (n: number): string => `${(n / 1000).toFixed(1)} KB`;

interface Row {
  tool: string;
  size: number;
  create: Timing;
  apply: Timing;
}

function comparePair(label: string, basePath: string, targetPath: string): void {
  const base = readFileSync(basePath);
  const target = readFileSync(targetPath);
  const dir = mkdtempSync(join(tmpdir(), "delta-bench-"));
  const rows: Row[] = [];
  try {
    let bin: Uint8Array = new Uint8Array(0);
    const create = timeIn(() => {
      bin = createDelta(base, target).bin;
    });
    let out: Uint8Array = new Uint8Array(0);
    const apply = timeIn(() => {
      out = applyDelta(base, bin);
    });
    if (!Buffer.from(out).equals(target)) throw new Error(`${label}: our round trip failed`);
    rows.push({ tool: "stella delta", size: bin.length, create, apply });

    const p = (n: string): string => join(dir, n);
    const ext = (tool: string, mk: string[], ap: string[], patch: string): void => {
      const c = timeCmd(mk);
      const a = timeCmd(ap);
      if (!readFileSync(p("out")).equals(target)) throw new Error(`${label}: ${tool} round trip failed`);
      rows.push({ tool, size: statSync(patch).size, create: c, apply: a });
    };
    ext(
      "bsdiff",
      ["bsdiff", basePath, targetPath, p("b.bsdiff")],
      ["bspatch", basePath, p("out"), p("b.bsdiff")],
      p("b.bsdiff"),
    );
    ext(
      "xdelta3 -9",
      ["xdelta3", "-9", "-e", "-f", "-s", basePath, targetPath, p("x.vcdiff")],
      ["xdelta3", "-d", "-f", "-s", basePath, p("x.vcdiff"), p("out")],
      p("x.vcdiff"),
    );
    for (const lvl of ["-19", "-3"]) {
      ext(
        `zstd --patch-from ${lvl} --long=27`,
        [
          "zstd",
          "-q",
          "-f",
          `--patch-from=${basePath}`,
          lvl,
          "--long=27",
          targetPath,
          "-o",
          p(`z${lvl}.zst`),
        ],
        ["zstd", "-q", "-f", "-d", `--patch-from=${basePath}`, "--long=27", p(`z${lvl}.zst`), "-o", p("out")],
        p(`z${lvl}.zst`),
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`\n${label}: base ${kb(base.length)}, target ${kb(target.length)} (median of ${RUNS})`);
  for (const r of rows) {
    console.log(
      `  ${r.tool.padEnd(30)} ${kb(r.size).padStart(10)}  create ${fmtT(r.create)}  apply ${fmtT(r.apply)}`,
    );
  }
  const ours = rows[0];
  if (ours === undefined) return;
  // GNU time reports CPU in 10 ms steps: smaller figures give no meaningful ratio.
  const ratio = (a: number, b: number): string => (b >= 10 ? `${(a / b).toFixed(2)}x` : "n/a (<10 ms)");
  for (const r of rows.slice(1)) {
    console.log(
      `  ours / ${r.tool}: size ${(ours.size / r.size).toFixed(2)}x, ` +
        `create cpu ${ratio(ours.create.cpuMs, r.create.cpuMs)}, apply cpu ${ratio(ours.apply.cpuMs, r.apply.cpuMs)}`,
    );
  }
}

function synthetic(): void {
  const N = 100_000_000;
  const base = prngBytes(N, 3);
  // Target: the base cut into blocks of up to 4 MiB with new bytes inserted between them.
  const rnd = makeRng(5);
  const parts: Uint8Array[] = [];
  for (let at = 0; at < N;) {
    const len = Math.min(N - at, 1 + rnd(4 << 20));
    parts.push(base.subarray(at, at + len), prngBytes(1 + rnd(3000), at));
    at += len;
  }
  const target = Buffer.concat(parts);
  const mbps = (bytes: number, ms: number): string => `${(bytes / 1e6 / (ms / 1000)).toFixed(0)} MB/s`;
  const cdc = timeIn(() => cdcBoundaries(base));
  let bin: Uint8Array = new Uint8Array(0);
  const create = timeIn(() => {
    bin = createDelta(base, target).bin;
  }, 1);
  let out: Uint8Array = new Uint8Array(0);
  const apply = timeIn(() => {
    out = applyDelta(base, bin);
  });
  if (!Buffer.from(out).equals(target)) throw new Error("synthetic: round trip failed");
  console.log(`\nsynthetic 100 MB (random base, ~${parts.length / 2} insertions): delta ${kb(bin.length)}`);
  console.log(`  chunking (FastCDC boundaries): ${mbps(N, cdc.wallMs)} wall, ${mbps(N, cdc.cpuMs)} cpu`);
  console.log(`  create: ${fmtT(create)}`);
  console.log(
    `  apply (rechunk + rehash copied chunks, rebuild, verify target digest; base digest only on failure): ` +
      `${fmtT(apply)} = ${mbps(target.length, apply.wallMs)} wall, ${mbps(target.length, apply.cpuMs)} cpu`,
  );
}

console.log(
  `load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")}, ${RUNS} runs each`,
);
for (const file of ["libcrypto.so.3", "libssl.so.3"]) {
  const rel = `usr/lib/x86_64-linux-gnu/${file}`;
  comparePair(
    `${file} ${LIBSSL_OLD} -> ${LIBSSL_NEW}`,
    debTree("libssl3", LIBSSL_OLD) + rel,
    debTree("libssl3", LIBSSL_NEW) + rel,
  );
}
synthetic();
