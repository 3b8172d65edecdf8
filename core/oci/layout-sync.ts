// Moving images between an OCI image layout directory (image-spec `image-layout.md`) and a registry, with their
// OCI 1.1 referrers: push a layout's image (manifest bytes unchanged, so its digest is kept), pull an image and its
// referrers into a layout (the way `oras copy -r … --to-oci-layout` stores them: referrer manifests listed in
// index.json with their `artifactType`), and list a layout's referrers of a subject. Every byte read from either side
// is checked against its digest before it is used or written; blobs are written atomically (temp file + rename).
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { StellaError } from "../errors.ts";
import {
  DEFAULT_MANIFEST_ACCEPT,
  type Descriptor,
  MAX_MANIFEST_BYTES,
  MEDIA_TYPE_DOCKER_LIST,
  MEDIA_TYPE_DOCKER_MANIFEST,
  MEDIA_TYPE_OCI_INDEX,
  MEDIA_TYPE_OCI_MANIFEST,
  type PulledManifest,
  type RegistryClient,
} from "./client.ts";
import { isDigest } from "./reference.ts";

export const REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name";
/** How deep pullToLayout follows referrers: of the image (1), of those (2), of those (3). */
export const MAX_REFERRER_DEPTH = 3;
/** Largest blob pulled or pushed by these functions (a layer). */
export const MAX_LAYOUT_BLOB_BYTES = 8 * 1024 * 1024 * 1024;

/** A referrer as the referrers API lists it (and as index.json of an exported layout holds it). */
export interface ReferrerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface PushLayoutResult {
  digest: string;
  mediaType: string;
  size: number;
}

export interface PullToLayoutResult {
  /** The image manifest (for a multi-platform index: the linux/amd64 manifest). */
  digest: string;
  /** Set when `ref` named an image index: its digest (its blob is kept in the layout, not listed in index.json). */
  indexDigest?: string;
  /** Every referrer manifest written (of the image, and nested), sorted by digest; empty without `referrers`. */
  referrers: ReferrerDescriptor[];
  /** Blob bytes in the layout for this image and its referrers (whether written now or already there). */
  bytes: number;
}

export type Progress = (done: number, total: number) => void;

const INDEX_TYPES = new Set([MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_DOCKER_LIST]);
const MANIFEST_TYPES = new Set([MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST]);
const textEncoder = new TextEncoder();

// ---- small helpers ------------------------------------------------------------------------------

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function parseJsonBytes(bytes: Uint8Array, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err: unknown) {
    throw new StellaError("OCI_PROTOCOL", `${what}: not valid UTF-8 JSON`, { cause: err });
  }
  if (!isRecord(v)) throw new StellaError("OCI_PROTOCOL", `${what}: not a JSON object`);
  return v;
}

function digestOf(digest: string, bytes: Uint8Array): string {
  const alg = digest.startsWith("sha512:") ? "sha512" : "sha256";
  return `${alg}:${createHash(alg).update(bytes).digest("hex")}`;
}

function assertDigest(digest: string, what: string): void {
  if (!isDigest(digest)) {
    throw new StellaError(
      "OCI_INVALID",
      `${what}: digest ${JSON.stringify(digest)} must be sha256:<64 hex> or sha512:<128 hex>`,
    );
  }
}

/** `blobs/<alg>/<hex>` of a layout; the digest is validated first, so the path cannot leave the layout. */
export function layoutBlobPath(layoutDir: string, digest: string): string {
  assertDigest(digest, `layout ${layoutDir}`);
  const [alg, hex] = digest.split(":") as [string, string];
  return join(layoutDir, "blobs", alg, hex);
}

/** A descriptor object from JSON (mediaType, digest, size, artifactType?, annotations?, platform?). */
function toDescriptor(v: unknown, what: string): Descriptor & { platform?: Record<string, unknown> } {
  if (!isRecord(v)) throw new StellaError("OCI_PROTOCOL", `${what}: not a descriptor object`);
  const { mediaType, digest, size, artifactType, annotations, platform } = v;
  if (typeof mediaType !== "string" || typeof digest !== "string" || typeof size !== "number") {
    throw new StellaError("OCI_PROTOCOL", `${what}: descriptor needs mediaType, digest and size`);
  }
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new StellaError("OCI_PROTOCOL", `${what}: size ${String(size)} is not a non-negative integer`);
  }
  assertDigest(digest, what);
  const d: Descriptor & { platform?: Record<string, unknown> } = { mediaType, digest, size };
  if (typeof artifactType === "string") d.artifactType = artifactType;
  if (isRecord(annotations)) {
    const a: Record<string, string> = {};
    for (const [k, val] of Object.entries(annotations)) if (typeof val === "string") a[k] = val;
    d.annotations = a;
  }
  if (isRecord(platform)) d.platform = platform;
  return d;
}

function listField(doc: Record<string, unknown>, field: string, what: string): unknown[] {
  const v = doc[field];
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new StellaError("OCI_PROTOCOL", `${what}: field "${field}" is not an array`);
  return v;
}

/** config + layers of an image or artifact manifest (a manifest without config, e.g. an index, has none). */
function manifestBlobs(doc: Record<string, unknown>, what: string): Descriptor[] {
  const out: Descriptor[] = [];
  if (doc.config !== undefined) out.push(toDescriptor(doc.config, `${what}: config`));
  listField(doc, "layers", what).forEach((l, i) => {
    out.push(toDescriptor(l, `${what}: layers[${String(i)}]`));
  });
  return out;
}

function isIndexDoc(mediaType: string, doc: Record<string, unknown>): boolean {
  return INDEX_TYPES.has(mediaType) || (doc.config === undefined && Array.isArray(doc.manifests));
}

function toReferrer(d: Descriptor): ReferrerDescriptor {
  const r: ReferrerDescriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.artifactType !== undefined) r.artifactType = d.artifactType;
  if (d.annotations !== undefined) r.annotations = { ...d.annotations };
  return r;
}

export function sortByDigest<T extends { digest: string }>(list: readonly T[]): T[] {
  return [...list].sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
}

/** The linux/amd64 entry of an image index (or its only entry). */
function pickPlatform(doc: Record<string, unknown>, what: string): LayoutEntry["descriptor"] {
  const entries = listField(doc, "manifests", what).map((m, i) =>
    toDescriptor(m, `${what}: manifests[${String(i)}]`),
  );
  const images = entries.filter(
    (e) => MANIFEST_TYPES.has(e.mediaType) && e.artifactType === undefined && !isUnknownPlatform(e),
  );
  const amd64 = images.filter(
    (e) => e.platform?.os === "linux" && e.platform.architecture === "amd64" && e.platform.variant !== "v2",
  );
  const pick = amd64[0] ?? (images.length === 1 ? images[0] : undefined);
  if (pick === undefined) {
    const seen = images.map((e) => `${String(e.platform?.os)}/${String(e.platform?.architecture)}`);
    throw new StellaError(
      "OCI_NOT_FOUND",
      `${what}: no linux/amd64 image in the index (has ${seen.length > 0 ? seen.join(", ") : "none"})`,
    );
  }
  return pick;
}

function isUnknownPlatform(d: { platform?: Record<string, unknown> }): boolean {
  return d.platform?.os === "unknown" && d.platform.architecture === "unknown";
}

// ---- layout files -------------------------------------------------------------------------------

/**
 * Reads a blob of a layout, refusing more than maxBytes and content whose digest differs from `digest`
 * (OCI_DIGEST_MISMATCH naming the digest and the file).
 */
export async function readLayoutBlob(
  layoutDir: string,
  digest: string,
  maxBytes: number,
): Promise<Uint8Array> {
  const path = layoutBlobPath(layoutDir, digest);
  const what = `layout ${layoutDir}: blob ${digest}`;
  let size: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new StellaError("OCI_NOT_FOUND", `${what}: ${path} is not a file`);
    size = st.size;
  } catch (err: unknown) {
    if (err instanceof StellaError) throw err;
    throw new StellaError("OCI_NOT_FOUND", `${what}: missing (${path})`, { cause: err });
  }
  if (size > maxBytes) {
    throw new StellaError(
      "OCI_TOO_LARGE",
      `${what}: ${String(size)} bytes exceeds the limit ${String(maxBytes)}`,
    );
  }
  const bytes = new Uint8Array(await readFile(path));
  const got = digestOf(digest, bytes);
  if (got !== digest) {
    throw new StellaError(
      "OCI_DIGEST_MISMATCH",
      `${what}: content digest is ${got}, expected ${digest} (${path}, ${String(bytes.length)} bytes)`,
    );
  }
  return bytes;
}

/** Reads a blob and also checks it has the size its descriptor states. */
async function readDescribedBlob(layoutDir: string, d: Descriptor, maxBytes: number): Promise<Uint8Array> {
  if (d.size > maxBytes) {
    throw new StellaError(
      "OCI_TOO_LARGE",
      `layout ${layoutDir}: blob ${d.digest} is ${String(d.size)} bytes, over the limit ${String(maxBytes)}`,
    );
  }
  const bytes = await readLayoutBlob(layoutDir, d.digest, maxBytes);
  if (bytes.length !== d.size) {
    throw new StellaError(
      "OCI_DIGEST_MISMATCH",
      `layout ${layoutDir}: blob ${d.digest} is ${String(bytes.length)} bytes, its descriptor says ${String(d.size)}`,
    );
  }
  return bytes;
}

async function writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${randomBytes(6).toString("hex")}`;
  try {
    await writeFile(tmp, bytes, { flag: "wx" });
    await rename(tmp, path);
  } catch (err: unknown) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** True when the layout already holds the blob with the right content. */
async function haveBlob(layoutDir: string, d: Descriptor): Promise<boolean> {
  try {
    await readDescribedBlob(layoutDir, d, d.size);
    return true;
  } catch {
    return false;
  }
}

/** The layout's index.json, or undefined when there is none; oci-layout is checked when present. */
async function readIndex(layoutDir: string): Promise<Record<string, unknown> | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(join(layoutDir, "index.json"));
  } catch {
    return undefined;
  }
  return parseJsonBytes(bytes, `layout ${layoutDir}: index.json`);
}

async function requireIndex(layoutDir: string): Promise<Record<string, unknown>> {
  const idx = await readIndex(layoutDir);
  if (idx === undefined) {
    throw new StellaError("OCI_NOT_FOUND", `layout ${layoutDir}: no index.json (not an OCI image layout)`);
  }
  let marker: Record<string, unknown>;
  try {
    marker = parseJsonBytes(await readFile(join(layoutDir, "oci-layout")), `layout ${layoutDir}: oci-layout`);
  } catch (err: unknown) {
    throw new StellaError("OCI_PROTOCOL", `layout ${layoutDir}: oci-layout file missing or invalid`, {
      cause: err,
    });
  }
  if (typeof marker.imageLayoutVersion !== "string") {
    throw new StellaError("OCI_PROTOCOL", `layout ${layoutDir}: oci-layout has no imageLayoutVersion`);
  }
  return idx;
}

export interface LayoutEntry {
  descriptor: Descriptor & { platform?: Record<string, unknown> };
  /** The manifest has a `subject` or the descriptor an `artifactType`: a referrer, not an image. */
  referrer: boolean;
}

/** index.json's entries, each marked image or referrer (looking into manifests whose blob is present). */
export async function layoutEntries(layoutDir: string): Promise<LayoutEntry[]> {
  const idx = await requireIndex(layoutDir);
  const what = `layout ${layoutDir}: index.json`;
  const out: LayoutEntry[] = [];
  for (const [i, m] of listField(idx, "manifests", what).entries()) {
    const d = toDescriptor(m, `${what}: manifests[${String(i)}]`);
    let referrer = d.artifactType !== undefined;
    if (!referrer && MANIFEST_TYPES.has(d.mediaType)) {
      try {
        await stat(layoutBlobPath(layoutDir, d.digest));
        const doc = parseJsonBytes(
          await readDescribedBlob(layoutDir, d, MAX_MANIFEST_BYTES),
          `${what}: manifest ${d.digest}`,
        );
        referrer = doc.subject !== undefined;
      } catch (err: unknown) {
        if (err instanceof StellaError) throw err;
        // blob missing: decided by whoever needs it
      }
    }
    out.push({ descriptor: d, referrer });
  }
  return out;
}

/**
 * The image entry of a layout: by `ref` (an `org.opencontainers.image.ref.name` or a digest), else the only
 * non-referrer entry.
 */
export async function selectLayoutImage(layoutDir: string, ref?: string): Promise<Descriptor> {
  const images = (await layoutEntries(layoutDir)).filter((e) => !e.referrer).map((e) => e.descriptor);
  const what = `layout ${layoutDir}`;
  if (ref !== undefined) {
    const hit = images.filter((d) =>
      ref.includes(":") ? d.digest === ref : d.annotations?.[REF_NAME_ANNOTATION] === ref,
    );
    const first = hit[0];
    if (first === undefined) {
      const names = images.map((d) => d.annotations?.[REF_NAME_ANNOTATION] ?? d.digest);
      throw new StellaError(
        "OCI_NOT_FOUND",
        `${what}: no image ${JSON.stringify(ref)} in index.json (has ${names.length > 0 ? names.join(", ") : "none"})`,
      );
    }
    return first;
  }
  const only = images[0];
  if (only === undefined || images.length > 1) {
    throw new StellaError(
      only === undefined ? "OCI_NOT_FOUND" : "OCI_AMBIGUOUS",
      `${what}: index.json lists ${String(images.length)} images; name one (ref.name or digest)`,
    );
  }
  return only;
}

/**
 * The image manifest a layout names (see selectLayoutImage); for an image index, its linux/amd64 manifest
 * (whose blob must be in the layout).
 */
export async function resolveLayoutImage(layoutDir: string, ref?: string): Promise<Descriptor> {
  const d = await selectLayoutImage(layoutDir, ref);
  const bytes = await readDescribedBlob(layoutDir, d, MAX_MANIFEST_BYTES);
  const what = `layout ${layoutDir}: manifest ${d.digest}`;
  const doc = parseJsonBytes(bytes, what);
  if (!isIndexDoc(d.mediaType, doc)) return { mediaType: d.mediaType, digest: d.digest, size: d.size };
  const pick = pickPlatform(doc, what);
  await readDescribedBlob(layoutDir, pick, MAX_MANIFEST_BYTES);
  return { mediaType: pick.mediaType, digest: pick.digest, size: pick.size };
}

// ---- push ---------------------------------------------------------------------------------------

/**
 * Pushes the image of a layout (by `org.opencontainers.image.ref.name` = `opts.ref`, else the only image) under
 * `tag`: each blob the registry lacks (content checked against its digest first), then the manifest exactly as
 * stored, so the registry digest equals the layout digest. An image index is pushed with all its manifests.
 * Progress is in bytes of blobs and manifests considered.
 */
export async function pushLayout(
  client: RegistryClient,
  layoutDir: string,
  repo: string,
  tag: string,
  opts: { ref?: string; onProgress?: Progress } = {},
): Promise<PushLayoutResult> {
  const top = await selectLayoutImage(layoutDir, opts.ref);
  // Plan: read and check every manifest first, so that a broken layout fails before anything is uploaded.
  const blobs = new Map<string, Descriptor>();
  const manifests: { d: Descriptor; bytes: Uint8Array; mediaType: string }[] = [];
  const visit = async (d: Descriptor, depth: number): Promise<void> => {
    if (depth > 4) throw new StellaError("OCI_PROTOCOL", `layout ${layoutDir}: indexes nested too deep`);
    const bytes = await readDescribedBlob(layoutDir, d, MAX_MANIFEST_BYTES);
    const what = `layout ${layoutDir}: manifest ${d.digest}`;
    const doc = parseJsonBytes(bytes, what);
    if (isIndexDoc(d.mediaType, doc)) {
      for (const [i, m] of listField(doc, "manifests", what).entries()) {
        await visit(toDescriptor(m, `${what}: manifests[${String(i)}]`), depth + 1);
      }
    } else {
      for (const b of manifestBlobs(doc, what)) blobs.set(b.digest, b);
    }
    // children before parents; the manifest's own mediaType field is what the registry checks the upload against
    manifests.push({ d, bytes, mediaType: typeof doc.mediaType === "string" ? doc.mediaType : d.mediaType });
  };
  await visit(top, 0);
  let total = 0;
  for (const b of blobs.values()) total += b.size;
  for (const m of manifests) total += m.bytes.length;
  let done = 0;
  const step = (n: number): void => {
    done += n;
    opts.onProgress?.(done, total);
  };
  for (const b of sortByDigest([...blobs.values()])) {
    if (!(await client.blobExists(repo, b.digest))) {
      const bytes = await readDescribedBlob(layoutDir, b, MAX_LAYOUT_BLOB_BYTES);
      const pushed = await client.pushBlob(repo, bytes, b.mediaType);
      if (pushed.digest !== b.digest) {
        throw new StellaError(
          "OCI_DIGEST_MISMATCH",
          `push of blob ${b.digest} from layout ${layoutDir}: registry digest ${pushed.digest}`,
        );
      }
    }
    step(b.size);
  }
  let result: PushLayoutResult | undefined;
  for (const m of manifests) {
    const ref = m.d.digest === top.digest ? tag : m.d.digest;
    const digest = await client.pushManifest(repo, ref, m.bytes, m.mediaType);
    if (digest !== m.d.digest) {
      throw new StellaError(
        "OCI_DIGEST_MISMATCH",
        `push of manifest ${m.d.digest} from layout ${layoutDir}: registry digest ${digest}`,
      );
    }
    step(m.bytes.length);
    if (m.d.digest === top.digest) result = { digest, mediaType: m.mediaType, size: m.bytes.length };
  }
  if (result === undefined) throw new Error("unreachable: top manifest not pushed");
  return result;
}

/**
 * The image manifest `repo:ref` names in a registry: the manifest itself, or for an image index its linux/amd64
 * manifest (then `index` is the index).
 */
export async function resolveRegistryImage(
  client: RegistryClient,
  repo: string,
  ref: string,
): Promise<{ image: PulledManifest; descriptor: LayoutEntry["descriptor"]; index?: PulledManifest }> {
  const where = `${client.registry}/${repo}`;
  const top = await client.pullManifest(repo, ref);
  const topDoc = parseJsonBytes(top.bytes, `manifest ${ref} in ${where}`);
  if (!isIndexDoc(top.mediaType, topDoc)) {
    return {
      image: top,
      descriptor: { mediaType: top.mediaType, digest: top.digest, size: top.bytes.length },
    };
  }
  const pick = pickPlatform(topDoc, `image index ${top.digest} in ${where}`);
  const image = await client.pullManifest(repo, pick.digest);
  if (image.bytes.length !== pick.size) {
    throw new StellaError(
      "OCI_DIGEST_MISMATCH",
      `manifest ${pick.digest} in ${where}: ${String(image.bytes.length)} bytes, index ${top.digest} says ${String(pick.size)}`,
    );
  }
  const descriptor: LayoutEntry["descriptor"] = {
    mediaType: pick.mediaType,
    digest: pick.digest,
    size: pick.size,
  };
  if (pick.platform !== undefined) descriptor.platform = pick.platform;
  return { image, descriptor, index: top };
}

// ---- pull ---------------------------------------------------------------------------------------

interface Writer {
  layoutDir: string;
  bytes: number;
  onProgress: Progress | undefined;
  total: number;
  done: number;
}

async function storeBlob(w: Writer, d: Descriptor, bytes: Uint8Array): Promise<void> {
  const got = digestOf(d.digest, bytes);
  if (got !== d.digest || bytes.length !== d.size) {
    throw new StellaError(
      "OCI_DIGEST_MISMATCH",
      `blob ${d.digest}: content is ${got} (${String(bytes.length)} bytes), descriptor says ${d.digest} (${String(d.size)} bytes)`,
    );
  }
  const path = layoutBlobPath(w.layoutDir, d.digest);
  if (!(await haveBlob(w.layoutDir, d))) await writeAtomic(path, bytes);
  w.bytes += bytes.length;
}

/** Pulls a blob into the layout unless a good copy is there already. */
async function pullBlobTo(w: Writer, client: RegistryClient, repo: string, d: Descriptor): Promise<void> {
  if (await haveBlob(w.layoutDir, d)) {
    w.bytes += d.size;
  } else {
    const bytes = await client.pullBlob(repo, d.digest, { maxBytes: d.size });
    await storeBlob(w, d, bytes);
  }
  w.done += d.size;
  w.onProgress?.(w.done, w.total);
}

/** Pulls a manifest by digest (checked by the client and against the descriptor) and stores it. */
async function pullManifestTo(
  w: Writer,
  client: RegistryClient,
  repo: string,
  d: Descriptor,
): Promise<Record<string, unknown>> {
  const m = await client.pullManifest(repo, d.digest, [...DEFAULT_MANIFEST_ACCEPT, d.mediaType]);
  await storeBlob(w, d, m.bytes);
  return parseJsonBytes(m.bytes, `manifest ${d.digest} in ${client.registry}/${repo}`);
}

/**
 * Pulls `repo:ref` (tag or digest) into the OCI layout `outDir` (created if needed; an existing layout is added
 * to: its other index.json entries are kept, an entry with the same ref.name is replaced): the image manifest
 * (annotated `org.opencontainers.image.ref.name` = the tag when a tag was given), its config and layers, and with
 * `referrers: true` every referrer manifest of the image digest (and of the index digest, for a multi-platform
 * image), and their referrers (MAX_REFERRER_DEPTH levels), with all their blobs, listed in index.json as
 * descriptors with `artifactType` and annotations. For an
 * image index, the linux/amd64 image is pulled; the index blob is stored but only the image is listed.
 * Progress is in blob bytes.
 */
export async function pullToLayout(
  client: RegistryClient,
  repo: string,
  ref: string,
  outDir: string,
  opts: { referrers?: boolean; onProgress?: Progress } = {},
): Promise<PullToLayoutResult> {
  const where = `${client.registry}/${repo}`;
  const resolved = await resolveRegistryImage(client, repo, ref);
  const { image, descriptor: imageDesc, index: top } = resolved;
  const indexDigest = top?.digest;
  const imageDoc = parseJsonBytes(image.bytes, `manifest ${imageDesc.digest} in ${where}`);
  const layers = manifestBlobs(imageDoc, `manifest ${imageDesc.digest} in ${where}`);

  await mkdir(join(outDir, "blobs", "sha256"), { recursive: true });
  const w: Writer = { layoutDir: outDir, bytes: 0, onProgress: opts.onProgress, total: 0, done: 0 };
  for (const l of new Map(layers.map((l) => [l.digest, l])).values()) w.total += l.size;

  // Referrer manifests first (small), so the progress total is known before the layers are fetched. Referrers of
  // referrers (a signature on an attestation) are followed too, up to MAX_REFERRER_DEPTH.
  const referrers: ReferrerDescriptor[] = [];
  const blobs = new Map<string, Descriptor>();
  for (const l of layers) blobs.set(l.digest, l);
  if (opts.referrers === true) {
    const queue: { subject: string; depth: number }[] = [{ subject: imageDesc.digest, depth: 1 }];
    if (indexDigest !== undefined) queue.push({ subject: indexDigest, depth: 1 });
    const seen = new Set<string>();
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      const { subject, depth } = next;
      const listed = await client.referrers(repo, subject);
      for (const r of sortByDigest(listed.manifests)) {
        if (seen.has(r.digest)) continue;
        seen.add(r.digest);
        const doc = await pullManifestTo(w, client, repo, r);
        const what = `referrer ${r.digest} of ${subject} in ${where}`;
        const subj = isRecord(doc.subject) ? doc.subject.digest : undefined;
        if (subj !== subject) {
          throw new StellaError(
            "OCI_PROTOCOL",
            `${what}: its subject is ${String(subj)}, not ${subject} (stale referrers index?)`,
          );
        }
        for (const b of manifestBlobs(doc, what)) {
          if (blobs.has(b.digest)) continue;
          blobs.set(b.digest, b);
          w.total += b.size;
        }
        const rd = toReferrer(r);
        if (rd.artifactType === undefined && typeof doc.artifactType === "string") {
          rd.artifactType = doc.artifactType;
        }
        referrers.push(rd);
        if (depth < MAX_REFERRER_DEPTH) queue.push({ subject: r.digest, depth: depth + 1 });
      }
    }
  }
  if (top !== undefined) {
    await storeBlob(w, { mediaType: top.mediaType, digest: top.digest, size: top.bytes.length }, top.bytes);
  }
  for (const b of blobs.values()) await pullBlobTo(w, client, repo, b);
  // The image manifest last: a layout never lists an image whose blobs are not all there.
  await storeBlob(w, imageDesc, image.bytes);

  const entry: Record<string, unknown> = { ...imageDesc };
  if (!ref.includes(":")) entry.annotations = { [REF_NAME_ANNOTATION]: ref };
  await writeIndex(outDir, entry, sortByDigest(referrers));
  return {
    digest: imageDesc.digest,
    ...(indexDigest === undefined ? {} : { indexDigest }),
    referrers: sortByDigest(referrers),
    bytes: w.bytes,
  };
}

async function writeIndex(
  outDir: string,
  image: Record<string, unknown>,
  referrers: ReferrerDescriptor[],
): Promise<void> {
  const existing = await readIndex(outDir);
  const newName = isRecord(image.annotations) ? image.annotations[REF_NAME_ANNOTATION] : undefined;
  const replaced = new Set<string>([String(image.digest), ...referrers.map((r) => r.digest)]);
  const kept: unknown[] = [];
  if (existing !== undefined) {
    for (const m of listField(existing, "manifests", `layout ${outDir}: index.json`)) {
      if (!isRecord(m)) continue;
      if (replaced.has(String(m.digest))) continue;
      const name = isRecord(m.annotations) ? m.annotations[REF_NAME_ANNOTATION] : undefined;
      if (newName !== undefined && name === newName) continue;
      kept.push(m);
    }
  }
  const index = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_OCI_INDEX,
    manifests: [...kept, image, ...referrers],
  };
  await writeAtomic(join(outDir, "oci-layout"), textEncoder.encode('{"imageLayoutVersion":"1.0.0"}'));
  await writeAtomic(join(outDir, "index.json"), textEncoder.encode(JSON.stringify(index)));
}

// ---- referrers in a layout ----------------------------------------------------------------------

/**
 * The referrers of `subjectDigest` in a layout: index.json entries whose manifest (digest-checked) has
 * `subject.digest` = subjectDigest, sorted by digest. artifactType is the entry's, else the manifest's, else its
 * config media type (as the referrers API reports it); annotations are the entry's, else the manifest's.
 */
export async function readLayoutReferrers(
  layoutDir: string,
  subjectDigest: string,
  opts: { artifactType?: string } = {},
): Promise<ReferrerDescriptor[]> {
  assertDigest(subjectDigest, `referrers in layout ${layoutDir}`);
  const idx = await requireIndex(layoutDir);
  const what = `layout ${layoutDir}: index.json`;
  const out: ReferrerDescriptor[] = [];
  for (const [i, m] of listField(idx, "manifests", what).entries()) {
    const d = toDescriptor(m, `${what}: manifests[${String(i)}]`);
    if (!MANIFEST_TYPES.has(d.mediaType) && !INDEX_TYPES.has(d.mediaType) && d.artifactType === undefined) {
      continue;
    }
    // Entries without artifactType may be images whose blobs are elsewhere: only a present blob can refer.
    if (d.artifactType === undefined) {
      try {
        await stat(layoutBlobPath(layoutDir, d.digest));
      } catch {
        continue;
      }
    }
    const doc = parseJsonBytes(
      await readDescribedBlob(layoutDir, d, MAX_MANIFEST_BYTES),
      `layout ${layoutDir}: manifest ${d.digest}`,
    );
    if (!isRecord(doc.subject) || doc.subject.digest !== subjectDigest) continue;
    const r = toReferrer(d);
    if (r.artifactType === undefined) {
      if (typeof doc.artifactType === "string") r.artifactType = doc.artifactType;
      else if (isRecord(doc.config) && typeof doc.config.mediaType === "string")
        r.artifactType = doc.config.mediaType;
    }
    if (r.annotations === undefined && isRecord(doc.annotations)) {
      const a: Record<string, string> = {};
      for (const [k, v] of Object.entries(doc.annotations)) if (typeof v === "string") a[k] = v;
      r.annotations = a;
    }
    if (opts.artifactType !== undefined && r.artifactType !== opts.artifactType) continue;
    out.push(r);
  }
  return sortByDigest(out);
}
