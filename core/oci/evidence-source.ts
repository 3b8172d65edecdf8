// Where evidence is read from: a registry (online) or an OCI image layout exported from one (offline, air-gapped).
// The verifier reads an image's referrers, their manifests and blobs through one interface and need not know
// which; every manifest and blob is checked against its digest on either side.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { StellaError } from "../errors.ts";
import { MAX_MANIFEST_BYTES, type RegistryClient } from "./client.ts";
import {
  pullToLayout,
  readLayoutBlob,
  readLayoutReferrers,
  type ReferrerDescriptor,
  resolveLayoutImage,
  resolveRegistryImage,
  sortByDigest,
} from "./layout-sync.ts";

export type { ReferrerDescriptor } from "./layout-sync.ts";

export interface EvidenceSource {
  /** `registry 127.0.0.1:5000/app` or `layout /path`. */
  readonly where: string;
  /** `sha256:` of the image manifest (for a multi-platform image: the linux/amd64 manifest). */
  readonly imageDigest: string;
  /** Referrers of the image, sorted by digest; optionally only those of one artifactType. */
  referrers(opts?: { artifactType?: string }): Promise<ReferrerDescriptor[]>;
  /** A manifest's bytes, digest-checked. */
  manifest(digest: string): Promise<Uint8Array>;
  /** A blob's bytes, digest-checked, at most maxBytes. */
  blob(digest: string, maxBytes: number): Promise<Uint8Array>;
  /** A local OCI layout holding the image (for openArtifact); for a registry, pulled to a temp dir on first call. */
  layoutDir(): Promise<string>;
  /** Removes what layoutDir() made (a registry source's temp dir); a layout source has nothing to remove. */
  close(): Promise<void>;
}

function stripDescriptor(d: ReferrerDescriptor): ReferrerDescriptor {
  const r: ReferrerDescriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.artifactType !== undefined) r.artifactType = d.artifactType;
  if (d.annotations !== undefined) r.annotations = { ...d.annotations };
  return r;
}

/** Reads `repo:ref` (tag or digest) and its referrers from a registry. */
export async function registrySource(
  client: RegistryClient,
  repo: string,
  ref: string,
): Promise<EvidenceSource> {
  const imageDigest = (await resolveRegistryImage(client, repo, ref)).image.digest;
  let pulled: Promise<string> | undefined;
  let tmp: string | undefined;
  const where = `registry ${client.registry}/${repo}`;
  return {
    where,
    imageDigest,
    async referrers(opts = {}) {
      const r = await client.referrers(repo, imageDigest, opts);
      return sortByDigest(r.manifests.map(stripDescriptor));
    },
    async manifest(digest) {
      return (await client.pullManifest(repo, assertedDigest(digest, where))).bytes;
    },
    async blob(digest, maxBytes) {
      const bytes = await client.pullBlob(repo, assertedDigest(digest, where), { maxBytes });
      return bytes;
    },
    layoutDir() {
      pulled ??= (async () => {
        tmp = await mkdtemp(join(tmpdir(), "stella-image-"));
        await pullToLayout(client, repo, imageDigest, tmp);
        return tmp;
      })();
      return pulled;
    },
    async close() {
      if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
      tmp = undefined;
      pulled = undefined;
    },
  };
}

function assertedDigest(digest: string, where: string): string {
  if (!/^sha256:[0-9a-f]{64}$|^sha512:[0-9a-f]{128}$/.test(digest)) {
    throw new StellaError(
      "OCI_INVALID",
      `${where}: digest ${JSON.stringify(digest)} is not sha256:/sha512:<hex>`,
    );
  }
  return digest;
}

/** Reads an image and its referrers from an OCI image layout (e.g. one written by exportImage). */
export async function layoutSource(dir: string, ref?: string): Promise<EvidenceSource> {
  const image = await resolveLayoutImage(dir, ref);
  const where = `layout ${dir}`;
  return {
    where,
    imageDigest: image.digest,
    referrers(opts = {}) {
      return readLayoutReferrers(dir, image.digest, opts);
    },
    async manifest(digest) {
      const bytes = await readLayoutBlob(dir, assertedDigest(digest, where), MAX_MANIFEST_BYTES);
      return bytes;
    },
    async blob(digest, maxBytes) {
      const bytes = await readLayoutBlob(dir, assertedDigest(digest, where), maxBytes);
      return bytes;
    },
    layoutDir() {
      return Promise.resolve(dir);
    },
    close() {
      return Promise.resolve();
    },
  };
}

/**
 * Exports `repo:ref` with all its referrers (and their blobs) to the OCI layout `outDir`, for offline verification:
 * the result opens with layoutSource and with openArtifact. `bytes`: blob bytes in the layout for this image.
 */
export async function exportImage(
  client: RegistryClient,
  repo: string,
  ref: string,
  outDir: string,
): Promise<{ digest: string; referrers: number; bytes: number }> {
  const r = await pullToLayout(client, repo, ref, outDir, { referrers: true });
  return { digest: r.digest, referrers: r.referrers.length, bytes: r.bytes };
}
