// Defensive checks of an incoming StackBatch. Everything in it is attacker-controlled (any holder of a client
// certificate, or anyone on the network without mTLS), so every length and count is bounded before the batch is
// logged or folded. A failure is a message naming the field, its value and the limit
// (`samples[3].frames: 300 frames, limit 256`), sent back as Ack.rejected: the agent drops the batch for good.
import type { Frame__Output, StackBatch__Output } from "../../proto/evidence.ts";

export const LIMITS = {
  /** Kubernetes object names (DNS subdomain). */
  nameChars: 253,
  samples: 50_000,
  /** bpftrace's ustack maximum is 127; leave room for kernel + user stacks. */
  frames: 256,
  symbolChars: 4096,
  buildIdHexChars: 128,
  /** A 64-hex container id, or "host". */
  containerChars: 128,
  podChars: 253,
  namespaceChars: 63,
  imageDigestChars: 256,
  containerNameChars: 253,
  unresolvedReasonChars: 256,
  pathChars: 4096,
  binaries: 10_000,
  sectionsPerBinary: 256,
  sectionNameChars: 256,
  /** Frames in a batch's frame table. */
  tableFrames: 1_000_000,
  /** Sum of counts in one batch. */
  totalCount: 1e9,
  hz: 1_000_000,
} as const;

const FRAME_KINDS = new Set([
  "KIND_UNSPECIFIED",
  "KIND_NATIVE",
  "KIND_JIT",
  "KIND_KERNEL",
  "KIND_UNRESOLVED",
]);

function str(field: string, value: string, limit: number): string | undefined {
  if (value.length > limit) return `${field}: ${value.length} chars, limit ${limit}`;
  return undefined;
}

function uint(field: string, value: number): string | undefined {
  if (!Number.isSafeInteger(value) || value < 0) return `${field}: ${value}, must be an integer in [0, 2^53)`;
  return undefined;
}

function isHex(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

function buildId(field: string, value: string): string | undefined {
  return (
    str(field, value, LIMITS.buildIdHexChars) ??
    (isHex(value) ? undefined : `${field}: not lower-case hex, limit [0-9a-f]`)
  );
}

/** Batches the decoder found unacceptable (a frame index outside the table...), and why. */
const INVALID = new WeakMap<StackBatch__Output, string>();

export function markInvalid(b: StackBatch__Output, reason: string): void {
  INVALID.set(b, reason);
}

/** Frames arrays and frames the decoder validated (and froze): shared by every sample with the same bytes. */
const VALID_FRAMES = new WeakSet<object>();

export function markValidFrames(frames: readonly Frame__Output[] | Frame__Output): void {
  VALID_FRAMES.add(frames);
}

/** undefined when a sample's frames are acceptable, else why not, relative to the sample ("frames[2].kind: …"). */
export function validateFrames(frames: readonly Frame__Output[]): string | undefined {
  if (frames.length > LIMITS.frames) return `frames: ${frames.length} frames, limit ${LIMITS.frames}`;
  for (let j = 0; j < frames.length; j++) {
    const fr = frames[j];
    if (fr === undefined || VALID_FRAMES.has(fr)) continue; // checked by the decoder when first seen
    const fErr = validateFrame(fr, `frames[${j}]`);
    if (fErr !== undefined) return fErr;
  }
  return undefined;
}

/** undefined when one frame is acceptable, else why not; `ff` names it ("frames[2]"). */
export function validateFrame(fr: Frame__Output, ff: string): string | undefined {
  return (
    (FRAME_KINDS.has(fr.kind)
      ? undefined
      : `${ff}.kind: unknown kind, limit one of ${[...FRAME_KINDS].join(",")}`) ??
    buildId(`${ff}.buildId`, fr.buildId) ??
    uint(`${ff}.fileOffset`, fr.fileOffset) ??
    (fr.symbol === undefined ? undefined : str(`${ff}.symbol`, fr.symbol, LIMITS.symbolChars)) ??
    (fr.offset === undefined ? undefined : uint(`${ff}.offset`, fr.offset)) ??
    str(`${ff}.unresolvedReason`, fr.unresolvedReason, LIMITS.unresolvedReasonChars)
  );
}

/** The common case checked without building any message (a batch holds thousands of samples). */
function attributionOk(s: StackBatch__Output["samples"][number]): boolean {
  return (
    s.container.length <= LIMITS.containerChars &&
    s.pod.length <= LIMITS.podChars &&
    s.namespace.length <= LIMITS.namespaceChars &&
    s.imageDigest.length <= LIMITS.imageDigestChars &&
    s.containerName.length <= LIMITS.containerNameChars &&
    Number.isSafeInteger(s.count) &&
    s.count >= 1
  );
}

/** undefined when the batch is acceptable, else why not (field, value, limit). */
export function validateBatch(b: StackBatch__Output): string | undefined {
  const decoded = INVALID.get(b);
  if (decoded !== undefined) return decoded;
  if (b.agentId === "") return "agentId: empty, limit 1..253 chars";
  if (b.node === "") return "node: empty, limit 1..253 chars";
  const head =
    str("agentId", b.agentId, LIMITS.nameChars) ??
    str("node", b.node, LIMITS.nameChars) ??
    uint("seq", b.seq) ??
    (b.seq < 1 ? `seq: ${b.seq}, limit ≥ 1` : undefined) ??
    uint("droppedSamples", b.droppedSamples) ??
    (b.hz > LIMITS.hz ? `hz: ${b.hz}, limit ${LIMITS.hz}` : undefined);
  if (head !== undefined) return head;
  const w = b.window;
  if (w === null || w === undefined) return "window: missing, limit required";
  const wErr = uint("window.startUnixMs", w.startUnixMs) ?? uint("window.endUnixMs", w.endUnixMs);
  if (wErr !== undefined) return wErr;
  if (w.endUnixMs < w.startUnixMs) {
    return `window.endUnixMs: ${w.endUnixMs} before startUnixMs ${w.startUnixMs}, limit end ≥ start`;
  }
  if (b.samples.length > LIMITS.samples) {
    return `samples: ${b.samples.length} samples, limit ${LIMITS.samples}`;
  }
  if (b.binaries.length > LIMITS.binaries) {
    return `binaries: ${b.binaries.length} binaries, limit ${LIMITS.binaries}`;
  }
  let total = 0;
  for (let i = 0; i < b.samples.length; i++) {
    const s = b.samples[i];
    if (s === undefined) continue;
    if (!attributionOk(s)) {
      const f = `samples[${i}]`;
      return (
        str(`${f}.container`, s.container, LIMITS.containerChars) ??
        str(`${f}.pod`, s.pod, LIMITS.podChars) ??
        str(`${f}.namespace`, s.namespace, LIMITS.namespaceChars) ??
        str(`${f}.imageDigest`, s.imageDigest, LIMITS.imageDigestChars) ??
        str(`${f}.containerName`, s.containerName, LIMITS.containerNameChars) ??
        uint(`${f}.count`, s.count) ??
        `${f}.count: ${s.count}, limit ≥ 1`
      );
    }
    total += s.count;
    if (total > LIMITS.totalCount) return `samples[].count: total ${total}, limit ${LIMITS.totalCount}`;
    if (VALID_FRAMES.has(s.frames)) continue; // checked by the decoder when first seen
    const fErr = validateFrames(s.frames);
    if (fErr !== undefined) return `samples[${i}].${fErr}`;
  }
  for (let i = 0; i < b.binaries.length; i++) {
    const bin = b.binaries[i];
    if (bin === undefined) continue;
    const f = `binaries[${i}]`;
    const bErr =
      buildId(`${f}.buildId`, bin.buildId) ??
      str(`${f}.path`, bin.path, LIMITS.pathChars) ??
      (bin.sections.length > LIMITS.sectionsPerBinary
        ? `${f}.sections: ${bin.sections.length} sections, limit ${LIMITS.sectionsPerBinary}`
        : undefined);
    if (bErr !== undefined) return bErr;
    for (let j = 0; j < bin.sections.length; j++) {
      const sec = bin.sections[j];
      if (sec === undefined) continue;
      const sf = `${f}.sections[${j}]`;
      const secErr =
        str(`${sf}.name`, sec.name, LIMITS.sectionNameChars) ??
        uint(`${sf}.fileOffset`, sec.fileOffset) ??
        uint(`${sf}.size`, sec.size) ??
        uint(`${sf}.address`, sec.address);
      if (secErr !== undefined) return secErr;
    }
  }
  return undefined;
}
