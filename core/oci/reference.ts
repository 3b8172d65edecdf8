// Image reference parsing: `[registry/]repository[:tag][@digest]`, following the grammar of
// distribution/reference (docker's normalisation: no registry → docker.io, one-part name → library/NAME).
import { StellaError } from "../errors.ts";

export interface ImageReference {
  /** `host[:port]`, e.g. `127.0.0.1:5000`, `ghcr.io`, `docker.io`. */
  registry: string;
  /** Repository path, e.g. `library/alpine`, `org/app`. */
  repository: string;
  /** Tag when given; `latest` when neither tag nor digest was given. */
  tag?: string;
  /** `alg:hex` when given. */
  digest?: string;
}

export const DEFAULT_REGISTRY = "docker.io";
export const DEFAULT_TAG = "latest";
export const MAX_REPOSITORY_LENGTH = 255;
export const MAX_TAG_LENGTH = 128;

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
const HOST =
  /^(?:(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])(?:\.(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]))*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

function invalid(ref: string, field: string, why: string): StellaError {
  return new StellaError("OCI_REFERENCE_INVALID", `image reference ${JSON.stringify(ref)}: ${field} ${why}`);
}

/** True for `sha256:<64 hex>` / `sha512:<128 hex>`. */
export function isDigest(s: string): boolean {
  return DIGEST.test(s);
}

/** Validates a repository name (the `<name>` of `/v2/<name>/…`); throws OCI_REFERENCE_INVALID naming the field. */
export function assertRepository(repository: string, context = repository): void {
  if (repository.length === 0) throw invalid(context, "repository", "is empty");
  if (repository.length > MAX_REPOSITORY_LENGTH) {
    throw invalid(
      context,
      "repository",
      `is ${String(repository.length)} characters (limit ${String(MAX_REPOSITORY_LENGTH)})`,
    );
  }
  for (const part of repository.split("/")) {
    if (!PATH_COMPONENT.test(part)) {
      throw invalid(
        context,
        "repository",
        `component ${JSON.stringify(part)} must match [a-z0-9]+ joined by '.', '_', '__' or '-'`,
      );
    }
  }
}

/** Validates a tag or digest used as a manifest reference. */
export function assertManifestRef(ref: string, context = ref): void {
  if (ref.includes(":")) {
    if (!DIGEST.test(ref)) throw invalid(context, "digest", "must be sha256:<64 hex> or sha512:<128 hex>");
    return;
  }
  if (!TAG.test(ref)) {
    throw invalid(
      context,
      "tag",
      `must match [A-Za-z0-9_][A-Za-z0-9_.-]* and be at most ${String(MAX_TAG_LENGTH)} characters`,
    );
  }
}

/**
 * Parses `registry/repo:tag`, `registry/repo@sha256:…`, `registry/repo:tag@sha256:…`, `repo` (→ docker.io/library/repo:latest).
 * The first path part is a registry when it contains `.` or `:` or is `localhost`.
 */
export function parseReference(ref: string, opts: { defaultRegistry?: string } = {}): ImageReference {
  if (ref.length === 0) throw invalid(ref, "reference", "is empty");
  if (/\s/.test(ref)) throw invalid(ref, "reference", "contains whitespace");
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw invalid(ref, "digest", "must be sha256:<64 hex> or sha512:<128 hex>");
  }
  let registry = opts.defaultRegistry ?? DEFAULT_REGISTRY;
  const slash = rest.indexOf("/");
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes(".") || first.includes(":") || first === "localhost") {
      if (!HOST.test(first)) throw invalid(ref, "registry", "must be host[:port]");
      const port = /:([0-9]+)$/.exec(first)?.[1];
      if (port !== undefined && Number(port) > 65535) throw invalid(ref, "registry", "port exceeds 65535");
      registry = first;
      rest = rest.slice(slash + 1);
    }
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) {
      throw invalid(
        ref,
        "tag",
        `must match [A-Za-z0-9_][A-Za-z0-9_.-]* and be at most ${String(MAX_TAG_LENGTH)} characters`,
      );
    }
  }
  let repository = rest;
  if (registry === DEFAULT_REGISTRY && !repository.includes("/") && repository.length > 0) {
    repository = `library/${repository}`;
  }
  assertRepository(repository, ref);
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  const out: ImageReference = { registry, repository };
  if (tag !== undefined) out.tag = tag;
  if (digest !== undefined) out.digest = digest;
  return out;
}

/** The reference to ask `/v2/<name>/manifests/<ref>` for: the digest when present, else the tag. */
export function manifestRef(r: ImageReference): string {
  return r.digest ?? r.tag ?? DEFAULT_TAG;
}

/** Formats back to `registry/repository[:tag][@digest]`. */
export function formatReference(r: ImageReference): string {
  return `${r.registry}/${r.repository}${r.tag !== undefined ? `:${r.tag}` : ""}${r.digest !== undefined ? `@${r.digest}` : ""}`;
}
