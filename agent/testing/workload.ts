// Test workloads with known functions, compiled in the test (never a checked-in binary).
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * stella_hot burns CPU and is called by stella_mid, called by main: every sample should show the
 * chain. Not a leaf (usleep) and no sibling calls, so it keeps a frame: GCC 12 drops the frame
 * pointer of leaf functions that need no stack even with -fno-omit-frame-pointer.
 */
export const WORKLOAD_C = String.raw`
#include <unistd.h>
volatile unsigned long sink;
__attribute__((noinline)) void stella_hot(void) {
  for (unsigned i = 0; i < 2000000; i++) sink = sink * 6364136223846793005UL + 1442695040888963407UL;
  usleep(300); /* leave a little CPU to the CI run */
}
__attribute__((noinline)) void stella_mid(void) { stella_hot(); sink++; }
int main(void) { for (;;) stella_mid(); }
`;

/** The flags frame-pointer unwinding (bpftrace ustack) needs from GCC 12 at -O2. */
export const FRAME_POINTER_FLAGS = [
  "-O2",
  "-fno-omit-frame-pointer",
  "-fno-inline",
  "-fno-optimize-sibling-calls",
  "-fno-shrink-wrap",
] as const;

/** Compiles the workload into dir: returns the binary and a stripped copy of it. */
export function buildWorkload(dir: string, source = WORKLOAD_C): { exe: string; stripped: string } {
  const src = join(dir, "workload.c");
  const exe = join(dir, "workload");
  const stripped = join(dir, "workload-stripped");
  writeFileSync(src, source);
  execFileSync("gcc", [...FRAME_POINTER_FLAGS, "-Wl,--build-id", "-o", exe, src]);
  execFileSync("strip", ["-o", stripped, exe]);
  return { exe, stripped };
}

/** nm's defined functions of a file: name → [vaddr, vaddr + size). */
export function nmFunctions(file: string): Map<string, { start: number; end: number }> {
  const out = new Map<string, { start: number; end: number }>();
  for (const line of execFileSync("nm", ["-S", "--defined-only", file], { encoding: "utf8" }).split("\n")) {
    const [value, size, type, name] = line.split(" ");
    if (name === undefined || value === undefined || size === undefined || !/^[Tt]$/.test(type ?? ""))
      continue;
    const start = parseInt(value, 16);
    out.set(name, { start, end: start + parseInt(size, 16) });
  }
  return out;
}

/** readelf's PT_LOAD segments, to turn file offsets into vaddrs like the operator will. */
export function loadSegments(file: string): { offset: number; vaddr: number; filesz: number }[] {
  const out: { offset: number; vaddr: number; filesz: number }[] = [];
  for (const line of execFileSync("readelf", ["-lW", file], { encoding: "utf8" }).split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f[0] !== "LOAD") continue;
    out.push({
      offset: parseInt(f[1] ?? "", 16),
      vaddr: parseInt(f[2] ?? "", 16),
      filesz: parseInt(f[4] ?? "", 16),
    });
  }
  return out;
}

/** The GNU build id as readelf -n prints it. */
export function readelfBuildId(file: string): string {
  const m = /Build ID: ([0-9a-f]+)/.exec(execFileSync("readelf", ["-n", file], { encoding: "utf8" }));
  if (!m?.[1]) throw new Error(`${file}: readelf -n shows no build id`);
  return m[1];
}
