// What a workload create or update changes about the images it runs: the admission webhook's input (issue 7).
// A rollout from image A to image B is admitted or denied by the DeltaAttestation for A→B, so each container
// of the pod template is compared with its previous version, by container name.
import type { V1Container, V1PodSpec } from "@kubernetes/client-node";

/** The workload kinds the webhook gates, and where each keeps its pod template. */
export const GATED_KINDS = ["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"] as const;
export type GatedKind = (typeof GATED_KINDS)[number];

export function isGatedKind(kind: string): kind is GatedKind {
  return (GATED_KINDS as readonly string[]).includes(kind);
}

export interface ImageChange {
  /** Container name in the pod template. */
  container: string;
  /** An init container (they run the image as much as the others). */
  init: boolean;
  /** The previous image reference; absent for a new container or a created workload. */
  from?: string;
  to: string;
  /** "sha256:…" when the reference pins a digest ("repo@sha256:…"); absent for a tag alone. */
  fromDigest?: string;
  toDigest?: string;
}

type Json = Record<string, unknown>;

function field(o: unknown, key: string): unknown {
  return o !== null && typeof o === "object" ? (o as Json)[key] : undefined;
}

/** The pod spec of a gated workload object (CronJob: spec.jobTemplate.spec.template.spec). */
export function podSpecOf(kind: GatedKind, obj: unknown): V1PodSpec | undefined {
  const spec = field(obj, "spec");
  const template =
    kind === "CronJob"
      ? field(field(field(spec, "jobTemplate"), "spec"), "template")
      : field(spec, "template");
  const pod = field(template, "spec");
  return pod !== null && typeof pod === "object" ? (pod as V1PodSpec) : undefined;
}

const DIGEST = /@(sha256:[0-9a-f]{64})$/;

/** The digest an image reference pins ("registry/repo[:tag]@sha256:<64 hex>"), if any. */
export function digestOf(image: string): string | undefined {
  return DIGEST.exec(image)?.[1];
}

function containers(spec: V1PodSpec | undefined): { c: V1Container; init: boolean }[] {
  return [
    ...(spec?.initContainers ?? []).map((c) => ({ c, init: true })),
    ...(spec?.containers ?? []).map((c) => ({ c, init: false })),
  ];
}

/**
 * The images a create (oldObj undefined) or update changes, one entry per container whose image is new or
 * different, sorted by (init first, container name). Containers removed or left as they were are not
 * changes: they do not start anything new.
 */
export function imageChanges(kind: GatedKind, oldObj: unknown, newObj: unknown): ImageChange[] {
  const before = new Map<string, string>();
  for (const { c, init } of containers(oldObj === undefined ? undefined : podSpecOf(kind, oldObj))) {
    if (typeof c.image === "string") before.set(`${init ? "i" : "c"}/${c.name}`, c.image);
  }
  const out: ImageChange[] = [];
  for (const { c, init } of containers(podSpecOf(kind, newObj))) {
    if (typeof c.image !== "string" || c.image === "") continue;
    const from = before.get(`${init ? "i" : "c"}/${c.name}`);
    if (from === c.image) continue;
    const change: ImageChange = { container: c.name, init, to: c.image };
    const toDigest = digestOf(c.image);
    if (toDigest !== undefined) change.toDigest = toDigest;
    if (from !== undefined) {
      change.from = from;
      const fromDigest = digestOf(from);
      if (fromDigest !== undefined) change.fromDigest = fromDigest;
    }
    out.push(change);
  }
  return out.sort((a, b) =>
    a.init !== b.init
      ? a.init
        ? -1
        : 1
      : a.container < b.container
        ? -1
        : a.container > b.container
          ? 1
          : 0,
  );
}
