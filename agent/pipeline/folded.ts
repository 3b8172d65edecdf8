// The flame-graph "folded" format (Brendan Gregg's stackcollapse output, what flamegraph.pl,
// speedscope and inferno read): one line per distinct stack, root first, frames joined by ";",
// then a space and the sample count. The first frame is who ran it: the process name for host
// processes, "namespace/pod/container" (or the short container id) inside containers.
import type { LocalSample } from "./aggregator.ts";
import type { WireFrame } from "./wire.ts";

/** A frame's name in folded output; stripped code is "[buildid+0xoffset]" (file offset, hex). */
export function foldedFrameName(f: WireFrame): string {
  switch (f.kind) {
    case "KIND_NATIVE":
      return f.symbol !== undefined
        ? clean(f.symbol)
        : `[${f.buildId === "" ? "nobuildid" : f.buildId}+0x${f.fileOffset.toString(16)}]`;
    case "KIND_JIT":
      return clean(f.symbol ?? "[jit]");
    case "KIND_KERNEL":
      // flamegraph.pl colours frames ending in "_[k]" as kernel.
      return `${clean(f.symbol ?? "[kernel]")}_[k]`;
    case "KIND_UNRESOLVED":
      return "[unknown]";
  }
}

/** ";" separates frames and a newline ends a record: neither may appear inside a name. */
function clean(name: string): string {
  // eslint-disable-next-line no-control-regex
  return name.replace(/[;\r\n\u0000]/g, "_");
}

function rootName(s: LocalSample): string {
  if (s.container !== "host") {
    if (s.pod !== "") return clean(`${s.namespace}/${s.pod}/${s.containerName || s.container.slice(0, 12)}`);
    return `container:${s.container.slice(0, 12)}`;
  }
  return clean(s.comm ?? "host");
}

/** Folded lines (merged, sorted), newline-terminated; "" when there is nothing. */
export function toFolded(samples: readonly LocalSample[]): string {
  const lines = new Map<string, number>();
  for (const s of samples) {
    const names = [rootName(s)];
    for (let i = s.frames.length - 1; i >= 0; i--) names.push(foldedFrameName(s.frames[i] as WireFrame));
    const stack = names.join(";");
    lines.set(stack, (lines.get(stack) ?? 0) + s.count);
  }
  return [...lines.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([stack, n]) => `${stack} ${n}\n`)
    .join("");
}
