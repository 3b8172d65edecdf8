// CycloneDX 1.6 SBOMs for Stella evidence (issue 9): the ELF files of an image, each linked to its
// FuncProof (per-section SHA-256 as properties, the referrer as an `attestation` external reference),
// and a delta-SBOM listing what a delta changed. Built with @cyclonedx/cyclonedx-library.
//
// Deterministic: no wall clock (`created` is injected), sorted lists, stable bom-refs, and a
// serial number derived from the content, so the same inputs give the same bytes.
//
// ELF files are `file` components, not `library`: CycloneDX 1.6 defines `library` as a unit of
// software "included as part of an application" identified by its package coordinates, whereas each
// entry here is a concrete file in an image, identified by its path and bytes (executables and shared
// objects alike). The package a file came from, when known, is given as the component's purl.
import { createHash } from "node:crypto";

import { Enums, Models, Serialize, Spec } from "@cyclonedx/cyclonedx-library";

import { canonicalJson } from "../canonical-json.ts";
import type { PackageRef } from "../delta/inputs.ts";
import type { DeltaManifest } from "../delta/manifest.ts";
import type { FuncProof } from "../funcproof/funcproof.ts";

export const SBOM_SPEC_VERSION = "1.6";
export const PROPERTY_PREFIX = "evidence:";

export interface ImageRef {
  name: string;
  /** "sha256:<hex>" (manifest digest). */
  digest?: string;
}

export interface FuncProofReferrer {
  /** Digest of the referrer manifest ("sha256:<hex>"). */
  digest: string;
  mediaType: string;
  /** Where to fetch it, e.g. "registry.example/app@sha256:…"; the URL of the external reference. */
  registryRef?: string;
}

export interface ElfFileInput {
  path: string;
  /** Hex SHA-256 of the file (with or without a "sha256:" prefix). */
  sha256: string;
  size: number;
  buildId?: string;
  funcproof: FuncProof;
  funcproofRef?: FuncProofReferrer;
}

export interface ElfSbomInput {
  image: ImageRef;
  files: readonly ElfFileInput[];
  /** Package URL of the package each path came from. */
  purls?: ReadonlyMap<string, string>;
  /** RFC 3339 timestamp recorded as metadata.timestamp; omitted when absent (no wall clock). */
  created?: string;
  /** "urn:uuid:…"; default: derived from the document content. */
  serialNumber?: string;
}

export interface DeltaSbomInput {
  base?: ImageRef;
  target?: ImageRef;
  manifest: DeltaManifest;
  created?: string;
  serialNumber?: string;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

function hexOf(digest: string): string | undefined {
  const hex = digest.startsWith("sha256:") ? digest.slice(7) : digest;
  return SHA256_HEX.test(hex) ? hex : undefined;
}

function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function props(entries: readonly (readonly [string, string | undefined])[]): Models.PropertyRepository {
  const repo = new Models.PropertyRepository();
  for (const [name, value] of entries) if (value !== undefined) repo.add(new Models.Property(name, value));
  return repo;
}

function sha256Hashes(digest: string | undefined): Models.HashDictionary {
  const hashes = new Models.HashDictionary();
  const hex = digest === undefined ? undefined : hexOf(digest);
  if (hex !== undefined) hashes.set(Enums.HashAlgorithm["SHA-256"], hex);
  return hashes;
}

/** The FuncProof document digest: SHA-256 of its canonical JSON (RFC 8785). */
export function funcProofDigest(fp: FuncProof): string {
  return `sha256:${sha256Hex(canonicalJson(fp))}`;
}

function imageComponent(image: ImageRef, type: Enums.ComponentType = Enums.ComponentType.Container) {
  return new Models.Component(type, image.name, {
    bomRef: `image:${image.digest ?? image.name}`,
    hashes: sha256Hashes(image.digest),
    properties: props([[`${PROPERTY_PREFIX}image:digest`, image.digest]]),
  });
}

function elfComponent(f: ElfFileInput, purl: string | undefined): Models.Component {
  const fp = f.funcproof;
  const entries: [string, string | undefined][] = [
    [`${PROPERTY_PREFIX}buildId`, f.buildId ?? fp.buildId],
    [`${PROPERTY_PREFIX}size`, String(f.size)],
    [`${PROPERTY_PREFIX}arch`, fp.arch],
    [`${PROPERTY_PREFIX}funcproof:digest`, funcProofDigest(fp)],
    [`${PROPERTY_PREFIX}funcproof:functions`, String(fp.functions.length)],
    [`${PROPERTY_PREFIX}funcproof:referrer`, f.funcproofRef?.digest],
  ];
  for (const [name, sec] of Object.entries(fp.sections)) {
    if (sec.sha256 !== undefined) entries.push([`${PROPERTY_PREFIX}section:${name}:sha256`, sec.sha256]);
    if (sec.skipped !== undefined) entries.push([`${PROPERTY_PREFIX}section:${name}:skipped`, sec.skipped]);
  }
  const refs = new Models.ExternalReferenceRepository();
  if (f.funcproofRef !== undefined) {
    const r = f.funcproofRef;
    // CycloneDX 1.6 externalReference type "attestation": "Human or machine-readable statements
    // containing facts, evidence, or testimony" — a signed FuncProof referrer is exactly that.
    refs.add(
      new Models.ExternalReference(r.registryRef ?? r.digest, Enums.ExternalReferenceType.Attestation, {
        hashes: sha256Hashes(r.digest),
        comment: `FuncProof referrer (${r.mediaType})`,
      }),
    );
  }
  return new Models.Component(Enums.ComponentType.File, f.path, {
    bomRef: `file:${f.path}`,
    hashes: sha256Hashes(f.sha256),
    properties: props(entries),
    externalReferences: refs,
    ...(purl === undefined ? {} : { purl }),
  });
}

/** A version-5-shaped UUID URN from a SHA-256 of the content (the schema accepts versions 1–5). */
function contentUuid(content: string): string {
  const h = sha256Hex(content);
  const v = `5${h.slice(13, 16)}`;
  const variant = ((parseInt(h.slice(16, 17), 16) & 0x3) | 0x8).toString(16) + h.slice(17, 20);
  return `urn:uuid:${h.slice(0, 8)}-${h.slice(8, 12)}-${v}-${variant}-${h.slice(20, 32)}`;
}

const serializer = new Serialize.JsonSerializer(new Serialize.JSON.Normalize.Factory(Spec.Spec1dot6));

function serialize(bom: Models.Bom, serialNumber: string | undefined): string {
  const opts = { sortLists: true, space: 2 };
  if (serialNumber === undefined) {
    // The serial number covers everything else in the document.
    bom.serialNumber = contentUuid(serializer.serialize(bom, opts));
  } else {
    bom.serialNumber = serialNumber;
  }
  return `${serializer.serialize(bom, opts)}\n`;
}

function newBom(created: string | undefined): Models.Bom {
  const bom = new Models.Bom();
  if (created !== undefined) {
    const t = new Date(created);
    if (Number.isNaN(t.getTime())) throw new TypeError(`created: not a timestamp: ${created}`);
    bom.metadata.timestamp = t;
  }
  bom.metadata.tools.components.add(
    new Models.Component(Enums.ComponentType.Application, "stella-evidence", { group: "stellaops" }),
  );
  return bom;
}

/** CycloneDX 1.6 JSON for the ELF files of an image, each linked to its FuncProof. */
export function elfSbom(input: ElfSbomInput): string {
  const bom = newBom(input.created);
  const image = imageComponent(input.image);
  bom.metadata.component = image;
  const seen = new Set<string>();
  for (const f of input.files) {
    if (seen.has(f.path)) throw new TypeError(`elfSbom: duplicate path ${f.path}`);
    seen.add(f.path);
    const c = elfComponent(f, input.purls?.get(f.path));
    bom.components.add(c);
    image.dependencies.add(c.bomRef);
  }
  return serialize(bom, input.serialNumber);
}

function purlOf(p: PackageRef): string | undefined {
  const type = p.source === "rpm" ? "rpm" : p.source === "sbom" ? undefined : "deb";
  if (type === undefined) return undefined;
  const q = p.arch === undefined ? "" : `?arch=${encodeURIComponent(p.arch)}`;
  return `pkg:${type}/${encodeURIComponent(p.name)}@${encodeURIComponent(p.version)}${q}`;
}

function materialComponent(p: PackageRef, change: string, from?: PackageRef): Models.Component {
  const purl = purlOf(p);
  return new Models.Component(Enums.ComponentType.Library, p.name, {
    bomRef: `material:${p.name}@${p.version}${p.arch === undefined ? "" : `:${p.arch}`}`,
    version: p.version,
    hashes: sha256Hashes(p.digest),
    ...(purl === undefined ? {} : { purl }),
    properties: props([
      [`${PROPERTY_PREFIX}delta:change`, change],
      [`${PROPERTY_PREFIX}delta:from:version`, from?.version],
      [`${PROPERTY_PREFIX}delta:from:digest`, from?.digest],
      [`${PROPERTY_PREFIX}package:arch`, p.arch],
      [`${PROPERTY_PREFIX}package:source`, p.source],
    ]),
  });
}

const IMAGE_TYPES: ReadonlySet<string> = new Set(["oci-layout", "docker-archive", "oci-archive"]);

/** CycloneDX 1.6 JSON describing what a delta changed (target versions of changed materials and files). */
export function deltaSbom(input: DeltaSbomInput): string {
  const m = input.manifest;
  const bom = newBom(input.created ?? m.created);
  const targetDigest = input.target?.digest ?? m.image_digests?.target ?? m.target_digest;
  const isImage = IMAGE_TYPES.has(m.artifact_type);
  const target = imageComponent(
    { name: input.target?.name ?? "target", digest: targetDigest },
    isImage ? Enums.ComponentType.Container : Enums.ComponentType.File,
  );
  bom.metadata.component = target;
  const md = m.materials_delta;
  const ed = m.entries_delta;
  const meta: [string, string | undefined][] = [
    [`${PROPERTY_PREFIX}delta:base:digest`, input.base?.digest ?? m.image_digests?.base ?? m.base_digest],
    [`${PROPERTY_PREFIX}delta:base:name`, input.base?.name],
    [`${PROPERTY_PREFIX}delta:target:digest`, targetDigest],
    [`${PROPERTY_PREFIX}delta:base:artifact-digest`, m.base_digest],
    [`${PROPERTY_PREFIX}delta:target:artifact-digest`, m.target_digest],
    [`${PROPERTY_PREFIX}delta:digest`, m.delta.digest],
    [`${PROPERTY_PREFIX}delta:artifact-type`, m.artifact_type],
    [`${PROPERTY_PREFIX}delta:materials:source`, md.source],
    [
      `${PROPERTY_PREFIX}delta_risk:score-inputs:sha256`,
      `sha256:${sha256Hex(canonicalJson(m.score_inputs))}`,
    ],
    [`${PROPERTY_PREFIX}delta:entries:added`, String(ed.added)],
    [`${PROPERTY_PREFIX}delta:entries:removed`, String(ed.removed)],
    [`${PROPERTY_PREFIX}delta:entries:modified`, String(ed.modified)],
    [`${PROPERTY_PREFIX}delta:entries:truncated`, String(ed.truncated)],
    [`${PROPERTY_PREFIX}delta:functions:modified`, String(m.functions_changed.modified)],
  ];
  for (const p of md.removed)
    meta.push([`${PROPERTY_PREFIX}delta:material:removed`, `${p.name}@${p.version}`]);
  for (const path of ed.paths.removed) meta.push([`${PROPERTY_PREFIX}delta:file:removed`, path]);
  bom.metadata.properties = props(meta);

  const add = (c: Models.Component): void => {
    bom.components.add(c);
    target.dependencies.add(c.bomRef);
  };
  for (const p of md.added) add(materialComponent(p, "added"));
  for (const c of md.changed) add(materialComponent(c.to, "changed", c.from));
  for (const [kind, paths] of [
    ["added", ed.paths.added],
    ["modified", ed.paths.modified],
  ] as const) {
    for (const path of paths) {
      add(
        new Models.Component(Enums.ComponentType.File, path, {
          bomRef: `file:${path}`,
          properties: props([[`${PROPERTY_PREFIX}delta:change`, kind]]),
        }),
      );
    }
  }
  return serialize(bom, input.serialNumber);
}
