// The batch-level frame table (StackBatch.frames + Sample.frame_ids, docs/wire.md): the agent sends each
// distinct frame of a batch once and samples refer to frames by index, as pprof's location table does. A
// function is on many stacks, so batches are ~5x smaller and the operator decodes each distinct frame once.
import type { Frame, Frame__Output, Sample, StackBatch__Output } from "./evidence.ts";

function sameFrame(a: Frame, b: Frame): boolean {
  return (
    a.kind === b.kind &&
    a.symbol === b.symbol &&
    (a.offset ?? undefined) === (b.offset ?? undefined) &&
    (a.unresolvedReason ?? "") === (b.unresolvedReason ?? "")
  );
}

/**
 * Samples with inline frames → a frame table (distinct frames in order of first use) and samples referring to
 * it by index. Samples without frames stay as they are. Frames are found by (buildId, fileOffset), then the
 * few candidates compared field by field: no key string is built per frame.
 */
export function tabulate(samples: readonly Sample[]): { frames: Frame[]; samples: Sample[] } {
  const frames: Frame[] = [];
  const ids = new Map<Frame, number>();
  const byPlace = new Map<string, Map<number, number[]>>();
  const idOf = (f: Frame): number => {
    let id = ids.get(f);
    if (id !== undefined) return id;
    const buildId = f.buildId ?? "";
    const offset = Number(f.fileOffset ?? 0);
    let byOffset = byPlace.get(buildId);
    if (!byOffset) {
      byOffset = new Map();
      byPlace.set(buildId, byOffset);
    }
    let candidates = byOffset.get(offset);
    if (!candidates) {
      candidates = [];
      byOffset.set(offset, candidates);
    }
    for (const c of candidates) {
      if (sameFrame(frames[c] as Frame, f)) {
        id = c;
        break;
      }
    }
    if (id === undefined) {
      id = frames.length;
      frames.push(f);
      candidates.push(id);
    }
    ids.set(f, id);
    return id;
  };
  const out = samples.map((s): Sample => {
    if (!s.frames || s.frames.length === 0) return s;
    return {
      container: s.container,
      pod: s.pod,
      namespace: s.namespace,
      imageDigest: s.imageDigest,
      containerName: s.containerName,
      count: s.count,
      frameIds: s.frames.map(idOf),
    };
  });
  return { frames, samples: out };
}

/**
 * A batch as proto-loader decodes it with its frame table resolved: each sample's frameIds replaced by the
 * frames they name (the form the operator's own decoder hands over). Throws on an index outside the table.
 */
export function expandFrameTable(b: StackBatch__Output): StackBatch__Output {
  if (b.frames.length === 0 && b.samples.every((s) => s.frameIds.length === 0)) return b;
  const table: readonly Frame__Output[] = b.frames;
  return {
    ...b,
    frames: [],
    samples: b.samples.map((s, i) => {
      if (s.frameIds.length === 0) return s;
      return {
        ...s,
        frameIds: [],
        frames: s.frameIds.map((id, j) => {
          const f = table[id];
          if (!f) throw new RangeError(`samples[${i}].frameIds[${j}]: ${id}, limit < ${table.length}`);
          return f;
        }),
      };
    }),
  };
}
