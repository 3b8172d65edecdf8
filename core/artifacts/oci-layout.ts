/**
 * OCI image layouts (image-spec `image-layout.md`): a directory, or a tarball of one (an "OCI
 * archive", as `skopeo copy … oci-archive:` or `docker buildx --output type=oci` write).
 *
 * `index.json` lists manifests or image indexes (possibly nested); the image for the wanted platform
 * is chosen from descriptor `platform` fields, or from the image config when a descriptor has none.
 * BuildKit attestation manifests and OCI 1.1 referrers (an `artifactType`, or a `subject`) are
 * skipped. Every blob read is checked against its descriptor's size and digest; layer diff_ids from
 * the config are checked too.
 */
import { realpathSync, statSync } from "node:fs";
import { join, sep } from "node:path";

import {
  type Artifact,
  ArtifactError,
  asArray,
  asObject,
  asSize,
  asString,
  type BlobStore,
  type Candidate,
  type Context,
  DigestCheck,
  type JsonObject,
  normalizeMemberPath,
  optString,
  parseDigest,
  parseJson,
  type Platform,
  readFileRange,
  readWhole,
  selectCandidate,
} from "./common.ts";
import { applyLayers, type LayerSource } from "./tar-layers.ts";

const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const INDEX_TYPES = new Set([OCI_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json"]);
const MANIFEST_TYPES = new Set([OCI_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json"]);
const MAX_INDEX_DEPTH = 4;

/**
 * An OCI layout directory as a BlobStore. Paths cannot leave it: `..` stops at its root, and a blob
 * that is a symlink to somewhere outside the layout is refused.
 */
export class DirStore implements BlobStore {
  readonly name: string;
  private readonly root: string;
  private realRoot: string | undefined;

  constructor(root: string) {
    this.root = root;
    this.name = root;
  }

  private abs(rel: string): string {
    return join(this.root, normalizeMemberPath(rel));
  }

  size(rel: string): number | undefined {
    const abs = this.abs(rel);
    let size: number;
    try {
      const st = statSync(abs);
      if (!st.isFile()) return undefined;
      size = st.size;
    } catch {
      return undefined;
    }
    this.realRoot ??= realpathSync(this.root);
    if (!realpathSync(abs).startsWith(this.realRoot + sep)) {
      throw new ArtifactError(
        "ARTIFACT_MALFORMED",
        `${this.name}: ${rel} is a symlink leading outside the layout`,
      );
    }
    return size;
  }

  read(rel: string): AsyncIterable<Uint8Array> {
    const size = this.size(rel);
    if (size === undefined) throw new ArtifactError("ARTIFACT_NOT_FOUND", `${this.name}: no file ${rel}`);
    return readFileRange(this.abs(rel), 0, size, `${this.name}/${rel}`);
  }
}

export interface Descriptor {
  mediaType: string | undefined;
  digest: string;
  size: number;
  platform: Platform | undefined;
  annotations: Record<string, string>;
}

function parsePlatformField(v: unknown, where: string): Platform | undefined {
  if (v === undefined) return undefined;
  const o = asObject(v, where);
  const os = asString(o.os, `${where}.os`);
  const architecture = asString(o.architecture, `${where}.architecture`);
  const variant = optString(o.variant, `${where}.variant`);
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

export function parseDescriptor(v: unknown, where: string): Descriptor {
  const o = asObject(v, where);
  const digest = asString(o.digest, `${where}.digest`);
  parseDigest(digest, `${where}.digest`);
  const annotations: Record<string, string> = {};
  if (o.annotations !== undefined) {
    for (const [k, a] of Object.entries(asObject(o.annotations, `${where}.annotations`))) {
      if (typeof a === "string") annotations[k] = a;
    }
  }
  return {
    mediaType: optString(o.mediaType, `${where}.mediaType`),
    digest,
    size: asSize(o.size, `${where}.size`),
    platform: parsePlatformField(o.platform, `${where}.platform`),
    annotations,
  };
}

export function blobPath(digest: string): string {
  const { algorithm, hex } = parseDigest(digest, "blob");
  return `blobs/${algorithm}/${hex}`;
}

/** Reads a whole blob and checks its size and digest. */
async function readBlob(store: BlobStore, desc: Descriptor, what: string): Promise<Buffer> {
  const rel = blobPath(desc.digest);
  const size = store.size(rel);
  if (size === undefined) {
    throw new ArtifactError(
      "ARTIFACT_NOT_FOUND",
      `${store.name}: ${what} blob ${desc.digest} is missing (${rel})`,
    );
  }
  if (size !== desc.size) {
    throw new ArtifactError(
      "ARTIFACT_DIGEST_MISMATCH",
      `${store.name}: ${what} blob ${desc.digest} is ${size} bytes, its descriptor says ${desc.size}`,
    );
  }
  const bytes = await readWhole(store, rel, `${what} blob ${desc.digest}`);
  const check = new DigestCheck(desc.digest, `${store.name}: ${what}`);
  check.update(bytes);
  const actual = check.mismatch();
  if (actual !== undefined) {
    throw new ArtifactError(
      "ARTIFACT_DIGEST_MISMATCH",
      `${store.name}: ${what} blob ${desc.digest} has digest ${actual}`,
    );
  }
  return bytes;
}

async function readJsonBlob(store: BlobStore, desc: Descriptor, what: string): Promise<JsonObject> {
  const where = `${store.name}: ${what} ${desc.digest}`;
  return asObject(parseJson(await readBlob(store, desc, what), where), where);
}

interface ImageConfig {
  platform: Platform;
  diffIds: string[] | undefined;
}

export function parseImageConfig(doc: JsonObject, where: string): ImageConfig {
  const os = asString(doc.os, `${where}: os`);
  const architecture = asString(doc.architecture, `${where}: architecture`);
  const variant = optString(doc.variant, `${where}: variant`);
  let diffIds: string[] | undefined;
  if (doc.rootfs !== undefined) {
    const rootfs = asObject(doc.rootfs, `${where}: rootfs`);
    if (rootfs.diff_ids !== undefined) {
      diffIds = asArray(rootfs.diff_ids, `${where}: rootfs.diff_ids`).map((d, i) => {
        const s = asString(d, `${where}: rootfs.diff_ids[${i}]`);
        parseDigest(s, `${where}: rootfs.diff_ids[${i}]`);
        return s;
      });
    }
  }
  return { platform: variant === undefined ? { os, architecture } : { os, architecture, variant }, diffIds };
}

interface Image {
  desc: Descriptor;
  manifest: JsonObject;
  config: ImageConfig;
  layers: Descriptor[];
}

async function loadImage(store: BlobStore, desc: Descriptor): Promise<Image> {
  const manifest = await readJsonBlob(store, desc, "manifest");
  const where = `${store.name}: manifest ${desc.digest}`;
  const configDesc = parseDescriptor(manifest.config, `${where}: config`);
  const layers = asArray(manifest.layers, `${where}: layers`).map((l, i) =>
    parseDescriptor(l, `${where}: layers[${i}]`),
  );
  const configWhere = `${store.name}: config ${configDesc.digest}`;
  const config = parseImageConfig(await readJsonBlob(store, configDesc, "config"), configWhere);
  if (config.diffIds !== undefined && config.diffIds.length !== layers.length) {
    throw new ArtifactError(
      "ARTIFACT_MALFORMED",
      `${configWhere}: rootfs.diff_ids has ${config.diffIds.length} entries for ${layers.length} layers in manifest ${desc.digest}`,
    );
  }
  return { desc, manifest, config, layers };
}

function isAttestation(d: Descriptor): boolean {
  return (
    d.annotations["vnd.docker.reference.type"] === "attestation-manifest" ||
    (d.platform?.os === "unknown" && d.platform.architecture === "unknown")
  );
}

/** The image manifests an index lists, descending into nested indexes. */
async function collect(
  store: BlobStore,
  index: JsonObject,
  where: string,
  depth: number,
  out: Candidate<Descriptor>[],
): Promise<void> {
  if (depth > MAX_INDEX_DEPTH) {
    throw new ArtifactError(
      "ARTIFACT_MALFORMED",
      `${where}: image indexes nested more than ${MAX_INDEX_DEPTH} deep`,
    );
  }
  const manifests = asArray(index.manifests, `${where}: manifests`);
  for (const [i, m] of manifests.entries()) {
    const desc = parseDescriptor(m, `${where}: manifests[${i}]`);
    if (isAttestation(desc)) continue;
    // OCI 1.1 referrers (signatures, SBOMs, evidence) listed beside the image, as `oras copy -r` and
    // `stella export` write them: descriptors with an artifactType, or manifests that have a subject.
    if (typeof asObject(m, `${where}: manifests[${i}]`).artifactType === "string") continue;
    let type = desc.mediaType;
    let doc: JsonObject | undefined;
    if (type === undefined || (!INDEX_TYPES.has(type) && !MANIFEST_TYPES.has(type))) {
      // Media type missing or unfamiliar: look inside.
      doc = await readJsonBlob(store, desc, "manifest");
      if (Array.isArray(doc.manifests)) type = OCI_INDEX;
      else if (doc.config !== undefined && Array.isArray(doc.layers)) type = OCI_MANIFEST;
    }
    if (type !== undefined && INDEX_TYPES.has(type)) {
      doc ??= await readJsonBlob(store, desc, "image index");
      await collect(store, doc, `${store.name}: image index ${desc.digest}`, depth + 1, out);
    } else if (type !== undefined && MANIFEST_TYPES.has(type)) {
      // Only a manifest whose blob is here can be looked into; a missing one fails later if selected.
      if (doc === undefined && store.size(blobPath(desc.digest)) !== undefined) {
        doc = await readJsonBlob(store, desc, "manifest");
      }
      if (doc?.subject !== undefined) continue;
      const ref = desc.annotations["org.opencontainers.image.ref.name"];
      out.push({ platform: desc.platform, label: ref ?? desc.digest, key: desc.digest, value: desc });
    } // other artifacts (signatures, SBOMs, …) are not images
  }
}

/** Opens the image in an OCI layout held by `store` (a directory, or a tarball's members). */
export async function openOciImage(
  store: BlobStore,
  kind: "oci-layout" | "oci-archive",
  ctx: Context,
): Promise<Artifact> {
  const layoutWhere = `${store.name}: oci-layout`;
  const layout = asObject(
    parseJson(await readWhole(store, "oci-layout", "oci-layout"), layoutWhere),
    layoutWhere,
  );
  asString(layout.imageLayoutVersion, `${layoutWhere}: imageLayoutVersion`);
  const indexWhere = `${store.name}: index.json`;
  const index = asObject(
    parseJson(await readWhole(store, "index.json", "index.json"), indexWhere),
    indexWhere,
  );

  const cands: Candidate<Descriptor>[] = [];
  await collect(store, index, indexWhere, 0, cands);
  // Descriptors without a platform: the config says.
  const loaded = new Map<string, Image>();
  for (const c of cands) {
    if (c.platform !== undefined) continue;
    const image = loaded.get(c.key) ?? (await loadImage(store, c.value));
    loaded.set(c.key, image);
    c.platform = image.config.platform;
  }
  const desc = selectCandidate(cands, ctx, store.name);
  const image = loaded.get(desc.digest) ?? (await loadImage(store, desc));

  const layers: LayerSource[] = image.layers.map((l, i) => {
    const rel = blobPath(l.digest);
    const size = store.size(rel);
    if (size === undefined) {
      throw new ArtifactError(
        "ARTIFACT_NOT_FOUND",
        `${store.name}: layer ${i + 1} blob ${l.digest} is missing (${rel})`,
      );
    }
    const diffId = image.config.diffIds?.[i];
    return {
      name: l.digest,
      size: l.size,
      digest: l.digest,
      ...(diffId === undefined ? {} : { diffId }),
      read: () => store.read(rel),
    };
  });
  const { files, links } = await applyLayers(layers, ctx);
  return { kind, name: ctx.name, digest: desc.digest, platform: image.config.platform, files, links };
}
