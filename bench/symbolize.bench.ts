// Symboliser throughput on a real process: `openssl speed sha256` with libcrypto.so.3 mapped.
//   warm: frames/s resolving random addresses inside libcrypto functions (goal ≥ 1M frames/s, one core)
//   cold: time to load libcrypto.so.3's table (BuildID, PT_LOADs, function table) and the first frame
// Run: node bench/symbolize.bench.ts
import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";

import { loadBinaryInfo } from "../agent/symbolize/binary.ts";
import { Symbolizer } from "../agent/symbolize/symbolizer.ts";
import { median, timeMs } from "./timing.ts";
import { type Mapping, parseMaps } from "../agent/symbolize/maps.ts";

const FRAMES = 1_000_000;
const RUNS = 5;

const child = spawn("openssl", ["speed", "-seconds", "30", "sha256"], { stdio: "ignore" });
const pid = child.pid ?? 0;

/** The process's libcrypto.so.3 mappings, read with the agent's own maps parser. */
function libcryptoMaps(): Mapping[] {
  try {
    return parseMaps(readFileSync(`/proc/${pid}/maps`, "utf8")).mappings.filter((m) =>
      m.path.endsWith("/libcrypto.so.3"),
    );
  } catch {
    return [];
  }
}

try {
  let maps = libcryptoMaps();
  for (let i = 0; i < 200 && maps.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 25));
    maps = libcryptoMaps();
  }
  if (maps.length === 0) throw new Error("libcrypto.so.3 never appeared in the openssl process");
  const file = maps[0]?.path ?? "";

  // Random addresses inside libcrypto functions (nm -D: exported functions with a size).
  const loads = execFileSync("readelf", ["-lW", file], { encoding: "utf8" })
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[0] === "LOAD")
    .map((f) => ({
      offset: parseInt(f[1] ?? "", 16),
      vaddr: parseInt(f[2] ?? "", 16),
      filesz: parseInt(f[4] ?? "", 16),
    }));
  const funcs = execFileSync("nm", ["-D", "-S", "--defined-only", file], {
    encoding: "utf8",
    maxBuffer: 64 << 20,
  })
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length === 4 && /^[TtWi]$/.test(f[2] ?? "") && parseInt(f[1] ?? "", 16) > 0)
    .map((f) => ({ addr: parseInt(f[0] ?? "", 16), size: parseInt(f[1] ?? "", 16) }));
  const addrs: bigint[] = [];
  let x = 42;
  while (addrs.length < FRAMES) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const f = funcs[x % funcs.length];
    if (!f) continue;
    const v = f.addr + (x % f.size);
    const seg = loads.find((s) => v >= s.vaddr && v < s.vaddr + s.filesz);
    if (!seg) continue;
    const fo = v - seg.vaddr + seg.offset;
    const m = maps.find((mm) => fo >= mm.offset && fo < mm.offset + (mm.end - mm.start));
    if (!m) continue;
    addrs.push(BigInt(m.start + fo - m.offset));
  }

  // Cold start: the table of libcrypto.so.3, and a fresh symboliser's first frame (maps + table).
  const coldLoadMs = timeMs(() => loadBinaryInfo(`/proc/${pid}/root${file}`, file), RUNS);
  const info = loadBinaryInfo(file, file);
  const firstFrame: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const s = new Symbolizer();
    const t0 = process.hrtime.bigint();
    s.resolve(pid, addrs[0] ?? 0n);
    firstFrame.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }

  // Warm: one symboliser, every table loaded.
  const sym = new Symbolizer();
  let named = 0;
  for (const a of addrs) {
    const f = sym.resolve(pid, a);
    if (f.status === "resolved" && f.kind === "native" && f.symbol !== undefined) named++;
  }
  const rates: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < addrs.length; i++) sym.resolve(pid, addrs[i] as bigint);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    rates.push(addrs.length / s);
  }
  const warm = median(rates);

  console.log(
    `libcrypto: ${file} (${info.names.length} functions, ${(info.bytes / 1024).toFixed(0)} KiB table, from ${info.symbolSource})`,
  );
  console.log(
    `cold: table load ${coldLoadMs.toFixed(1)} ms; fresh symboliser first frame ${median(firstFrame).toFixed(1)} ms`,
  );
  console.log(
    `warm: ${(warm / 1e6).toFixed(2)} M frames/s (median of ${RUNS} × ${FRAMES} frames; goal ≥ 1.00) ${warm >= 1e6 ? "OK" : "BELOW GOAL"}`,
  );
  console.log(
    `named ${named}/${addrs.length} frames; stats ${JSON.stringify({ ...sym.stats, unresolvedBy: undefined })}`,
  );
  console.log(`cache ${JSON.stringify(sym.cache.stats)}`);
} finally {
  child.kill("SIGKILL");
}
