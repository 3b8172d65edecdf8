// OCI distribution client (distribution-spec v1.1): pull/push of blobs and manifests, tag listing,
// the referrers API with the referrers-tag-schema fallback, and Docker token auth (Bearer challenge) / Basic.
// Every byte pulled is hashed and checked against the digest asked for; no bytes are trusted unverified.
import { createHash } from "node:crypto";

import { StellaError } from "../errors.ts";
import { assertManifestRef, assertRepository, isDigest } from "./reference.ts";

export const MEDIA_TYPE_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const MEDIA_TYPE_OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const MEDIA_TYPE_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
export const MEDIA_TYPE_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
export const MEDIA_TYPE_EMPTY = "application/vnd.oci.empty.v1+json";
/** The OCI 1.1 empty descriptor: the blob `{}`. */
export const EMPTY_DESCRIPTOR: Descriptor = {
  mediaType: MEDIA_TYPE_EMPTY,
  digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
  size: 2,
};
export const DEFAULT_MANIFEST_ACCEPT: readonly string[] = [
  MEDIA_TYPE_OCI_MANIFEST,
  MEDIA_TYPE_OCI_INDEX,
  MEDIA_TYPE_DOCKER_MANIFEST,
  MEDIA_TYPE_DOCKER_LIST,
];
/** Spec: registries SHOULD accept manifests of at least 4 MiB; clients should not need more. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
export const DEFAULT_TIMEOUT_MS = 60_000;
export const DEFAULT_CHUNK_SIZE = 16 * 1024 * 1024;
const MAX_TAG_PAGES = 1000;

export type RegistryAuth = { username: string; password: string } | { token: string };

export interface RegistryClientOptions {
  /** `host[:port]`. */
  registry: string;
  /** Plain http instead of https. */
  insecure?: boolean;
  auth?: RegistryAuth;
  fetch?: typeof fetch;
  userAgent: string;
  /** Per request (headers and body). Default 60 s. */
  timeoutMs?: number;
  /** Default 4 MiB. */
  maxManifestBytes?: number;
  /** Blobs larger than this are uploaded in PATCH chunks of this size; default 16 MiB. */
  chunkSize?: number;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  data?: string;
}

export interface PulledManifest {
  mediaType: string;
  bytes: Uint8Array;
  /** `sha256:` of the bytes as received. */
  digest: string;
}

export interface ReferrersResult {
  manifests: Descriptor[];
  /** `api`: the registry answered `GET /v2/<name>/referrers/<digest>`; `tag-schema`: it did not (404), the `<alg>-<hex>` tag was read. */
  source: "api" | "tag-schema";
}

export interface ArtifactBlob {
  mediaType: string;
  bytes: Uint8Array;
  annotations?: Record<string, string>;
}

export interface ReferrerArtifact {
  artifactType: string;
  /** Layers. When empty, the layer list holds the empty descriptor (OCI 1.1 artifact guidance). */
  blobs?: ArtifactBlob[];
  /** Config blob; default the empty descriptor `{}`. */
  config?: { mediaType: string; bytes: Uint8Array };
  annotations?: Record<string, string>;
}

export interface AttachResult {
  /** Descriptor of the pushed artifact manifest (with artifactType and annotations, as listed in referrers). */
  descriptor: Descriptor;
  /** True when the registry answered the manifest push with `OCI-Subject` (it maintains referrers itself). */
  referrersApi: boolean;
  /** True when the fallback tag index was written (false when the API is supported or the entry was already there). */
  fallbackTagUpdated: boolean;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

interface RequestOptions {
  scope: string;
  headers?: Record<string, string>;
  body?: Uint8Array;
  /** Absolute URL instead of base + path (upload Location). */
  url?: string;
}

const textEncoder = new TextEncoder();

/** `sha256:<hex>` of bytes. */
export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** The referrers tag of the tag schema fallback: `<alg>-<hex>`, truncated to 128 characters. */
export function referrersTag(digest: string): string {
  return digest.replace(":", "-").slice(0, 128);
}

function digestAlg(digest: string): "sha256" | "sha512" {
  return digest.startsWith("sha512:") ? "sha512" : "sha256";
}

function hashWith(alg: "sha256" | "sha512", bytes: Uint8Array): string {
  return `${alg}:${createHash(alg).update(bytes).digest("hex")}`;
}

/** Parses a WWW-Authenticate header: `Bearer realm="…",service="…",scope="…"`. */
export function parseChallenge(header: string): Challenge | undefined {
  const m = /^\s*([A-Za-z]+)\s*(.*)$/s.exec(header);
  if (m === null) return undefined;
  const scheme = (m[1] ?? "").toLowerCase();
  const params: Record<string, string> = {};
  const re = /([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?\s*/g;
  for (const p of (m[2] ?? "").matchAll(re)) {
    const key = (p[1] ?? "").toLowerCase();
    params[key] = p[2] !== undefined ? p[2].replace(/\\(.)/g, "$1") : (p[3] ?? "");
  }
  return { scheme, params };
}

function sortedDescriptors(list: Descriptor[]): Descriptor[] {
  return [...list].sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function toDescriptor(v: unknown): Descriptor | undefined {
  if (!isRecord(v)) return undefined;
  const { mediaType, digest, size, artifactType, annotations } = v;
  if (typeof mediaType !== "string" || typeof digest !== "string" || typeof size !== "number")
    return undefined;
  const d: Descriptor = { mediaType, digest, size };
  if (typeof artifactType === "string") d.artifactType = artifactType;
  if (isRecord(annotations)) {
    const a: Record<string, string> = {};
    for (const [k, val] of Object.entries(annotations)) if (typeof val === "string") a[k] = val;
    d.annotations = a;
  }
  return d;
}

export class RegistryClient {
  readonly registry: string;
  private readonly base: string;
  private readonly auth: RegistryAuth | undefined;
  private readonly fetchImpl: typeof fetch;
  private readonly userAgent: string;
  private readonly timeoutMs: number;
  private readonly maxManifestBytes: number;
  private readonly chunkSize: number;
  private readonly tokens = new Map<string, CachedToken>();
  /** Set once the registry has challenged with Basic: later requests send it up front. */
  private basicKnown = false;

  constructor(opts: RegistryClientOptions) {
    if (!/^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$/.test(opts.registry)) {
      throw new StellaError("OCI_INVALID", `registry ${JSON.stringify(opts.registry)}: must be host[:port]`);
    }
    this.registry = opts.registry;
    this.base = `${opts.insecure === true ? "http" : "https"}://${opts.registry}`;
    this.auth = opts.auth;
    this.fetchImpl = opts.fetch ?? fetch;
    this.userAgent = opts.userAgent;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxManifestBytes = opts.maxManifestBytes ?? MAX_MANIFEST_BYTES;
    this.chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  }

  // ---- blobs ----------------------------------------------------------------------------------

  /** True when the registry has the blob (HEAD 200), false on 404. */
  async blobExists(repo: string, digest: string): Promise<boolean> {
    this.checkRepoDigest(repo, digest);
    const res = await this.request("HEAD", `/v2/${repo}/blobs/${digest}`, { scope: pullScope(repo) });
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await this.httpError(res, `HEAD blob ${digest} in ${repo}`);
  }

  /** Streams the blob, refusing more than maxBytes and any byte sequence whose digest differs from `digest`. */
  async pullBlob(repo: string, digest: string, opts: { maxBytes: number }): Promise<Uint8Array> {
    this.checkRepoDigest(repo, digest);
    const what = `blob ${digest} in ${this.registry}/${repo}`;
    const res = await this.request("GET", `/v2/${repo}/blobs/${digest}`, { scope: pullScope(repo) });
    if (res.status === 404) {
      await res.body?.cancel();
      throw new StellaError("OCI_NOT_FOUND", `${what}: not found (404)`);
    }
    if (res.status !== 200) throw await this.httpError(res, `GET ${what}`);
    const bytes = await this.readLimited(res, opts.maxBytes, what, "maxBytes");
    const got = hashWith(digestAlg(digest), bytes);
    if (got !== digest) {
      throw new StellaError(
        "OCI_DIGEST_MISMATCH",
        `${what}: content digest is ${got}, expected ${digest} (${String(bytes.length)} bytes received)`,
      );
    }
    return bytes;
  }

  /**
   * Pushes bytes as a blob unless the registry already has it: POST, then a monolithic PUT (`?digest=`), or PATCH
   * chunks (Content-Range) + a closing PUT when larger than chunkSize. The registry verifies the digest on PUT.
   */
  async pushBlob(
    repo: string,
    bytes: Uint8Array,
    mediaType = "application/octet-stream",
    opts: { chunkSize?: number } = {},
  ): Promise<Descriptor> {
    assertRepository(repo);
    const digest = sha256Digest(bytes);
    const desc: Descriptor = { mediaType, digest, size: bytes.length };
    if (await this.blobExists(repo, digest)) return desc;
    const what = `blob ${digest} to ${this.registry}/${repo}`;
    const scope = pushScope(repo);
    const start = await this.request("POST", `/v2/${repo}/blobs/uploads/`, {
      scope,
      headers: { "content-length": "0" },
    });
    if (start.status !== 202) throw await this.httpError(start, `POST upload of ${what}`);
    await start.body?.cancel();
    let url = this.uploadLocation(start, `POST upload of ${what}`);
    const chunkSize = opts.chunkSize ?? this.chunkSize;
    let body: Uint8Array = bytes;
    if (bytes.length > chunkSize) {
      // Chunked upload: PATCH each chunk with Content-Range, following the Location each answer gives.
      for (let off = 0; off < bytes.length; off += chunkSize) {
        const chunk = bytes.subarray(off, Math.min(off + chunkSize, bytes.length));
        const range = `${String(off)}-${String(off + chunk.length - 1)}`;
        const patch = await this.request("PATCH", "", {
          scope,
          url,
          headers: {
            "content-type": "application/octet-stream",
            "content-length": String(chunk.length),
            "content-range": range,
          },
          body: chunk,
        });
        if (patch.status !== 202) throw await this.httpError(patch, `PATCH ${range} of ${what}`);
        await patch.body?.cancel();
        const got = patch.headers.get("range");
        if (got !== null && got !== `0-${String(off + chunk.length - 1)}`) {
          throw new StellaError(
            "OCI_PROTOCOL",
            `PATCH ${range} of ${what}: registry acknowledged Range ${got}, expected 0-${String(off + chunk.length - 1)}`,
          );
        }
        url = this.uploadLocation(patch, `PATCH ${range} of ${what}`);
      }
      body = new Uint8Array(0);
    }
    const put = new URL(url);
    put.searchParams.set("digest", digest);
    const res = await this.request("PUT", "", {
      scope,
      url: put.toString(),
      headers: { "content-type": "application/octet-stream", "content-length": String(body.length) },
      body,
    });
    if (res.status !== 201) throw await this.httpError(res, `PUT ${what}`);
    await res.body?.cancel();
    const echoed = res.headers.get("docker-content-digest");
    if (echoed !== null && echoed !== digest) {
      throw new StellaError(
        "OCI_DIGEST_MISMATCH",
        `PUT ${what}: registry reports Docker-Content-Digest ${echoed}, expected ${digest}`,
      );
    }
    return desc;
  }

  // ---- manifests ------------------------------------------------------------------------------

  /** Pulls a manifest by tag or digest; its digest is computed from the bytes received and cross-checked. */
  async pullManifest(
    repo: string,
    ref: string,
    accept: readonly string[] = DEFAULT_MANIFEST_ACCEPT,
  ): Promise<PulledManifest> {
    const m = await this.pullManifestOrNull(repo, ref, accept);
    if (m === null) {
      throw new StellaError("OCI_NOT_FOUND", `manifest ${ref} in ${this.registry}/${repo}: not found (404)`);
    }
    return m;
  }

  /** Pushes a manifest under a tag or its digest; returns the digest (sha256 of the bytes). */
  async pushManifest(repo: string, ref: string, bytes: Uint8Array, mediaType: string): Promise<string> {
    return (await this.pushManifestDetailed(repo, ref, bytes, mediaType)).digest;
  }

  /** Deletes a manifest by digest (registry must have deletes enabled). */
  async deleteManifest(repo: string, digest: string): Promise<void> {
    this.checkRepoDigest(repo, digest);
    const res = await this.request("DELETE", `/v2/${repo}/manifests/${digest}`, { scope: deleteScope(repo) });
    if (res.status !== 202 && res.status !== 200) {
      throw await this.httpError(res, `DELETE manifest ${digest} in ${repo}`);
    }
    await res.body?.cancel();
  }

  /** All tags of a repository, following `Link: <…>; rel="next"` pagination. */
  async listTags(repo: string): Promise<string[]> {
    assertRepository(repo);
    const tags: string[] = [];
    let path: string | undefined = `/v2/${repo}/tags/list`;
    for (let page = 0; path !== undefined; page++) {
      if (page >= MAX_TAG_PAGES) {
        throw new StellaError(
          "OCI_TOO_LARGE",
          `tags of ${this.registry}/${repo}: more than ${String(MAX_TAG_PAGES)} pages (limit)`,
        );
      }
      const res = await this.request("GET", path, { scope: pullScope(repo) });
      if (res.status === 404) {
        await res.body?.cancel();
        throw new StellaError(
          "OCI_NOT_FOUND",
          `tags of ${this.registry}/${repo}: repository not found (404)`,
        );
      }
      if (res.status !== 200) throw await this.httpError(res, `GET tags of ${repo}`);
      const body = await this.readJson(res, `tags of ${this.registry}/${repo}`);
      const list = isRecord(body) ? body.tags : undefined;
      if (list !== null && list !== undefined) {
        if (!Array.isArray(list) || !list.every((t): t is string => typeof t === "string")) {
          throw new StellaError(
            "OCI_PROTOCOL",
            `tags of ${this.registry}/${repo}: field "tags" is not a string array`,
          );
        }
        tags.push(...list);
      }
      path = nextLink(res.headers.get("link"));
    }
    return tags;
  }

  // ---- referrers ------------------------------------------------------------------------------

  /** Referrers of `digest`: the referrers API when the registry has it, else the `<alg>-<hex>` tag index. */
  async referrers(
    repo: string,
    digest: string,
    opts: { artifactType?: string } = {},
  ): Promise<ReferrersResult> {
    this.checkRepoDigest(repo, digest);
    const what = `referrers of ${digest} in ${this.registry}/${repo}`;
    const q = opts.artifactType !== undefined ? `?artifactType=${encodeURIComponent(opts.artifactType)}` : "";
    const res = await this.request("GET", `/v2/${repo}/referrers/${digest}${q}`, {
      scope: pullScope(repo),
      headers: { accept: MEDIA_TYPE_OCI_INDEX },
    });
    let manifests: Descriptor[];
    let source: ReferrersResult["source"];
    const contentType = (res.headers.get("content-type") ?? "").split(";")[0]?.trim();
    if (res.status === 200 && contentType === MEDIA_TYPE_OCI_INDEX) {
      const bytes = await this.readLimited(res, this.maxManifestBytes, what, "maxManifestBytes");
      manifests = this.indexManifests(bytes, what);
      source = "api";
    } else if (res.status === 404 || (res.status === 200 && contentType !== MEDIA_TYPE_OCI_INDEX)) {
      await res.body?.cancel();
      const idx = await this.pullManifestOrNull(repo, referrersTag(digest), [MEDIA_TYPE_OCI_INDEX]);
      manifests = idx === null ? [] : this.indexManifests(idx.bytes, `${what} (tag ${referrersTag(digest)})`);
      source = "tag-schema";
    } else {
      throw await this.httpError(res, `GET ${what}`);
    }
    if (opts.artifactType !== undefined)
      manifests = manifests.filter((d) => d.artifactType === opts.artifactType);
    return { manifests, source };
  }

  /**
   * Pushes an artifact manifest (OCI 1.1: `subject` + `artifactType`, empty config by default) that refers to `subject`,
   * and keeps the referrers tag index up to date when the registry does not support the referrers API.
   * Idempotent: re-attaching the same artifact yields the same manifest digest and no duplicate index entry.
   */
  async attachReferrer(repo: string, subject: Descriptor, artifact: ReferrerArtifact): Promise<AttachResult> {
    this.checkRepoDigest(repo, subject.digest);
    if (artifact.artifactType === "") {
      throw new StellaError("OCI_INVALID", `referrer of ${subject.digest} in ${repo}: artifactType is empty`);
    }
    let config: Descriptor;
    if (artifact.config === undefined) {
      config = await this.pushBlob(repo, textEncoder.encode("{}"), MEDIA_TYPE_EMPTY);
    } else {
      config = await this.pushBlob(repo, artifact.config.bytes, artifact.config.mediaType);
    }
    const layers: Descriptor[] = [];
    for (const b of artifact.blobs ?? []) {
      const d = await this.pushBlob(repo, b.bytes, b.mediaType);
      if (b.annotations !== undefined) d.annotations = { ...b.annotations };
      layers.push(d);
    }
    if (layers.length === 0) layers.push({ ...EMPTY_DESCRIPTOR });
    const subjectDesc: Descriptor = {
      mediaType: subject.mediaType,
      digest: subject.digest,
      size: subject.size,
    };
    const manifest: Record<string, unknown> = {
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_OCI_MANIFEST,
      artifactType: artifact.artifactType,
      config,
      layers,
      subject: subjectDesc,
    };
    if (artifact.annotations !== undefined) manifest.annotations = { ...artifact.annotations };
    const bytes = textEncoder.encode(JSON.stringify(manifest));
    const digest = sha256Digest(bytes);
    const pushed = await this.pushManifestDetailed(repo, digest, bytes, MEDIA_TYPE_OCI_MANIFEST);
    const descriptor: Descriptor = {
      mediaType: MEDIA_TYPE_OCI_MANIFEST,
      digest,
      size: bytes.length,
      artifactType: artifact.artifactType,
    };
    if (artifact.annotations !== undefined) descriptor.annotations = { ...artifact.annotations };
    if (pushed.subjectHeader !== null) {
      return { descriptor, referrersApi: true, fallbackTagUpdated: false };
    }
    const updated = await this.addToReferrersTag(repo, subject.digest, descriptor);
    return { descriptor, referrersApi: false, fallbackTagUpdated: updated };
  }

  /** Read-modify-write of the `<alg>-<hex>` index: dedupe by digest, sort by digest. Not atomic across writers. */
  private async addToReferrersTag(repo: string, subjectDigest: string, desc: Descriptor): Promise<boolean> {
    const tag = referrersTag(subjectDigest);
    const what = `referrers tag ${tag} in ${this.registry}/${repo}`;
    const current = await this.pullManifestOrNull(repo, tag, [MEDIA_TYPE_OCI_INDEX]);
    let index: Record<string, unknown> = { schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_INDEX, manifests: [] };
    let existing: Descriptor[] = [];
    if (current !== null) {
      const parsed = parseJson(current.bytes, what);
      if (!isRecord(parsed)) throw new StellaError("OCI_PROTOCOL", `${what}: not a JSON object`);
      index = parsed;
      existing = this.indexManifests(current.bytes, what);
    }
    const others = existing.filter((d) => d.digest !== desc.digest);
    const same = existing.find((d) => d.digest === desc.digest);
    if (
      same !== undefined &&
      JSON.stringify(same) === JSON.stringify(desc) &&
      others.length === existing.length - 1
    ) {
      return false;
    }
    index.manifests = sortedDescriptors([...others, desc]);
    const out = textEncoder.encode(JSON.stringify(index));
    await this.pushManifestDetailed(repo, tag, out, MEDIA_TYPE_OCI_INDEX);
    return true;
  }

  private indexManifests(bytes: Uint8Array, what: string): Descriptor[] {
    const parsed = parseJson(bytes, what);
    if (!isRecord(parsed)) throw new StellaError("OCI_PROTOCOL", `${what}: index is not a JSON object`);
    const list = parsed.manifests ?? [];
    if (!Array.isArray(list))
      throw new StellaError("OCI_PROTOCOL", `${what}: field "manifests" is not an array`);
    return list.map((v, i) => {
      const d = toDescriptor(v);
      if (d === undefined) {
        throw new StellaError(
          "OCI_PROTOCOL",
          `${what}: field "manifests[${String(i)}]" is not a descriptor (mediaType, digest, size)`,
        );
      }
      return d;
    });
  }

  // ---- internals ------------------------------------------------------------------------------

  private async pullManifestOrNull(
    repo: string,
    ref: string,
    accept: readonly string[],
  ): Promise<PulledManifest | null> {
    assertRepository(repo);
    assertManifestRef(ref);
    const what = `manifest ${ref} in ${this.registry}/${repo}`;
    const res = await this.request("GET", `/v2/${repo}/manifests/${ref}`, {
      scope: pullScope(repo),
      headers: { accept: accept.join(", ") },
    });
    if (res.status === 404) {
      await res.body?.cancel();
      return null;
    }
    if (res.status !== 200) throw await this.httpError(res, `GET ${what}`);
    const bytes = await this.readLimited(res, this.maxManifestBytes, what, "maxManifestBytes");
    const digest = sha256Digest(bytes);
    const header = res.headers.get("docker-content-digest");
    if (
      header !== null &&
      header !== "" &&
      isDigest(header) &&
      hashWith(digestAlg(header), bytes) !== header
    ) {
      throw new StellaError(
        "OCI_DIGEST_MISMATCH",
        `${what}: Docker-Content-Digest is ${header}, content digest is ${hashWith(digestAlg(header), bytes)}`,
      );
    }
    if (isDigest(ref) && hashWith(digestAlg(ref), bytes) !== ref) {
      throw new StellaError(
        "OCI_DIGEST_MISMATCH",
        `${what}: content digest is ${hashWith(digestAlg(ref), bytes)}, expected ${ref}`,
      );
    }
    let mediaType = (res.headers.get("content-type") ?? "").split(";")[0]?.trim() ?? "";
    if (mediaType === "" || mediaType === "application/json" || mediaType === "application/octet-stream") {
      const parsed = parseJson(bytes, what);
      if (isRecord(parsed) && typeof parsed.mediaType === "string") mediaType = parsed.mediaType;
    }
    return { mediaType, bytes, digest };
  }

  private async pushManifestDetailed(
    repo: string,
    ref: string,
    bytes: Uint8Array,
    mediaType: string,
  ): Promise<{ digest: string; subjectHeader: string | null }> {
    assertRepository(repo);
    assertManifestRef(ref);
    const what = `manifest ${ref} to ${this.registry}/${repo}`;
    if (bytes.length > this.maxManifestBytes) {
      throw new StellaError(
        "OCI_TOO_LARGE",
        `${what}: ${String(bytes.length)} bytes exceeds maxManifestBytes ${String(this.maxManifestBytes)}`,
      );
    }
    const digest = sha256Digest(bytes);
    if (isDigest(ref) && hashWith(digestAlg(ref), bytes) !== ref) {
      throw new StellaError(
        "OCI_DIGEST_MISMATCH",
        `${what}: content digest is ${hashWith(digestAlg(ref), bytes)}, reference is ${ref}`,
      );
    }
    const res = await this.request("PUT", `/v2/${repo}/manifests/${ref}`, {
      scope: pushScope(repo),
      headers: { "content-type": mediaType, "content-length": String(bytes.length) },
      body: bytes,
    });
    if (res.status !== 201) throw await this.httpError(res, `PUT ${what}`);
    await res.body?.cancel();
    const echoed = res.headers.get("docker-content-digest");
    if (echoed !== null && echoed !== "" && echoed !== digest) {
      throw new StellaError(
        "OCI_DIGEST_MISMATCH",
        `PUT ${what}: registry reports Docker-Content-Digest ${echoed}, expected ${digest}`,
      );
    }
    return { digest, subjectHeader: res.headers.get("oci-subject") };
  }

  private uploadLocation(res: Response, what: string): string {
    const location = res.headers.get("location");
    if (location === null || location === "") {
      throw new StellaError("OCI_PROTOCOL", `${what}: ${String(res.status)} without a Location header`);
    }
    return new URL(location, this.base).toString();
  }

  private checkRepoDigest(repo: string, digest: string): void {
    assertRepository(repo);
    if (!isDigest(digest)) {
      throw new StellaError(
        "OCI_INVALID",
        `${this.registry}/${repo}: digest ${JSON.stringify(digest)} must be sha256:<64 hex> or sha512:<128 hex>`,
      );
    }
  }

  private async readLimited(
    res: Response,
    limit: number,
    what: string,
    limitName: string,
  ): Promise<Uint8Array> {
    const declared = res.headers.get("content-length");
    if (declared !== null && Number(declared) > limit) {
      await res.body?.cancel();
      throw new StellaError(
        "OCI_TOO_LARGE",
        `${what}: Content-Length ${declared} exceeds ${limitName} ${String(limit)}`,
      );
    }
    if (res.body === null) return new Uint8Array(0);
    const chunks: Uint8Array[] = [];
    let total = 0;
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        total += value.length;
        if (total > limit) {
          throw new StellaError(
            "OCI_TOO_LARGE",
            `${what}: body exceeds ${limitName} ${String(limit)} (read ${String(total)} bytes)`,
          );
        }
        chunks.push(value);
      }
    } catch (err: unknown) {
      await reader.cancel().catch(() => undefined);
      if (err instanceof StellaError) throw err;
      throw this.transportError(err, `reading ${what}`);
    }
    const out = new Uint8Array(total);
    let off = 0;
    for (const c of chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }

  private async readJson(res: Response, what: string): Promise<unknown> {
    return parseJson(await this.readLimited(res, this.maxManifestBytes, what, "maxManifestBytes"), what);
  }

  private async httpError(res: Response, what: string): Promise<StellaError> {
    let detail = "";
    try {
      const bytes = await this.readLimited(res, 64 * 1024, what, "error body limit");
      const parsed: unknown = JSON.parse(new TextDecoder().decode(bytes));
      if (isRecord(parsed) && Array.isArray(parsed.errors)) {
        detail = parsed.errors
          .map((e: unknown) => (isRecord(e) ? `${String(e.code)}: ${String(e.message)}` : String(e)))
          .join("; ");
      }
    } catch {
      // body is not a registry error document
    }
    const code = res.status === 401 || res.status === 403 ? "OCI_AUTH" : "OCI_HTTP";
    return new StellaError(
      code,
      `${what} (${this.registry}): HTTP ${String(res.status)}${detail !== "" ? ` (${detail})` : ""}`,
    );
  }

  private transportError(err: unknown, what: string): StellaError {
    const name = err instanceof Error ? err.name : "";
    if (name === "TimeoutError" || name === "AbortError") {
      return new StellaError(
        "OCI_TIMEOUT",
        `${what} (${this.registry}): no answer within ${String(this.timeoutMs)} ms`,
        {
          cause: err,
        },
      );
    }
    return new StellaError(
      "OCI_TRANSPORT",
      `${what} (${this.registry}): ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }

  private authHeader(scope: string): string | undefined {
    if (this.auth !== undefined && "token" in this.auth) return `Bearer ${this.auth.token}`;
    const cached = this.tokens.get(scope);
    if (cached !== undefined && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
    if (this.basicKnown && this.auth !== undefined) return basic(this.auth.username, this.auth.password);
    return undefined;
  }

  private async send(
    method: string,
    url: string,
    opts: RequestOptions,
    auth: string | undefined,
  ): Promise<Response> {
    const headers: Record<string, string> = { "user-agent": this.userAgent, ...opts.headers };
    if (auth !== undefined) headers.authorization = auth;
    try {
      return await this.fetchImpl(url, {
        method,
        headers,
        body: opts.body,
        redirect: "follow",
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err: unknown) {
      throw this.transportError(err, `${method} ${url}`);
    }
  }

  private async request(method: string, path: string, opts: RequestOptions): Promise<Response> {
    const url = opts.url ?? `${this.base}${path}`;
    const sent = this.authHeader(opts.scope);
    const res = await this.send(method, url, opts, sent);
    if (res.status !== 401) return res;
    const header = res.headers.get("www-authenticate");
    const challenge = header === null ? undefined : parseChallenge(header);
    if (challenge === undefined) return res;
    if (challenge.scheme === "basic") {
      if (this.auth === undefined || !("username" in this.auth) || this.basicKnown) return res;
      await res.body?.cancel();
      this.basicKnown = true;
      return this.send(method, url, opts, basic(this.auth.username, this.auth.password));
    }
    // Bearer: with credentials, or anonymously (public repositories) when none were given.
    if (challenge.scheme === "bearer" && (this.auth === undefined || "username" in this.auth)) {
      await res.body?.cancel();
      const token = await this.fetchToken(challenge, opts.scope);
      return this.send(method, url, opts, `Bearer ${token}`);
    }
    return res;
  }

  private async fetchToken(challenge: Challenge, scope: string): Promise<string> {
    const realm = challenge.params.realm;
    if (realm === undefined || realm === "") {
      throw new StellaError("OCI_AUTH", `${this.registry}: Bearer challenge without a realm`);
    }
    let url: URL;
    try {
      url = new URL(realm);
    } catch (err: unknown) {
      throw new StellaError(
        "OCI_AUTH",
        `${this.registry}: Bearer realm ${JSON.stringify(realm)} is not a URL`,
        {
          cause: err,
        },
      );
    }
    if (challenge.params.service !== undefined) url.searchParams.set("service", challenge.params.service);
    // Ask for the scope the request needs; the challenge's scope (if any) too when it differs.
    url.searchParams.append("scope", scope);
    const cs = challenge.params.scope;
    if (cs !== undefined && cs !== "" && cs !== scope) url.searchParams.append("scope", cs);
    const headers: Record<string, string> = { "user-agent": this.userAgent };
    if (this.auth !== undefined && "username" in this.auth) {
      headers.authorization = basic(this.auth.username, this.auth.password);
    }
    let res: Response;
    try {
      res = await this.fetchImpl(url, { headers, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err: unknown) {
      throw this.transportError(err, `GET token ${url.origin}${url.pathname}`);
    }
    if (res.status !== 200)
      throw await this.httpError(res, `GET token from ${url.origin}${url.pathname} for ${scope}`);
    const body = await this.readJson(res, `token from ${url.origin}${url.pathname}`);
    const token = isRecord(body) ? (body.token ?? body.access_token) : undefined;
    if (typeof token !== "string" || token === "") {
      throw new StellaError(
        "OCI_AUTH",
        `token from ${url.origin}${url.pathname}: no "token" or "access_token" field`,
      );
    }
    const expiresIn = isRecord(body) && typeof body.expires_in === "number" ? body.expires_in : 60;
    // Refresh 10 s early; never cache beyond the stated lifetime.
    this.tokens.set(scope, { token, expiresAt: Date.now() + Math.max(0, expiresIn - 10) * 1000 });
    return token;
  }
}

function basic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, "utf8").toString("base64")}`;
}

function pullScope(repo: string): string {
  return `repository:${repo}:pull`;
}
function pushScope(repo: string): string {
  return `repository:${repo}:pull,push`;
}
function deleteScope(repo: string): string {
  return `repository:${repo}:delete`;
}

function parseJson(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err: unknown) {
    throw new StellaError("OCI_PROTOCOL", `${what}: not valid UTF-8 JSON`, { cause: err });
  }
}

/** The path (with query) of a `Link: </v2/…?n=…&last=…>; rel="next"` header. */
function nextLink(link: string | null): string | undefined {
  if (link === null) return undefined;
  const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(link);
  if (m?.[1] === undefined) return undefined;
  const u = new URL(m[1], "http://x");
  return `${u.pathname}${u.search}`;
}
