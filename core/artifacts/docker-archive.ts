/**
 * `docker save` tarballs: `manifest.json` lists, per image, its `Config` and `Layers` (paths inside
 * the tar). Legacy archives name the config `<sha256>.json` and layers `<v1-id>/layer.tar`
 * (sometimes symlinks to another layer's); Docker 25+ writes `blobs/sha256/<hex>` for both.
 *
 * Integrity: the config's sha256 must equal the digest in its name; each layer's uncompressed
 * sha256 must equal the config's `rootfs.diff_ids` entry; a `blobs/sha256/<hex>` layer must also
 * hash to its name. The artifact digest is the config digest, i.e. Docker's image ID.
 */
import {
  type Artifact,
  ArtifactError,
  asArray,
  asObject,
  asString,
  type BlobStore,
  type Candidate,
  type Context,
  parseJson,
  readWhole,
  selectCandidate,
  sha256Hex,
} from "./common.ts";
import { parseImageConfig } from "./oci-layout.ts";
import { applyLayers, type LayerSource } from "./tar-layers.ts";

interface Entry {
  config: string;
  layers: string[];
  tags: string[];
  configDigest: string;
  diffIds: string[] | undefined;
}

/** `sha256:<hex>` when a member path carries the digest of its content (`<hex>.json`, `blobs/sha256/<hex>`). */
function digestInName(path: string): string | undefined {
  const m = /(?:^|\/)(?:blobs\/sha256\/)?([0-9a-f]{64})(?:\.json)?$/.exec(path);
  return m?.[1] === undefined ? undefined : `sha256:${m[1]}`;
}

export async function openDockerArchive(store: BlobStore, ctx: Context): Promise<Artifact> {
  const where = `${store.name}: manifest.json`;
  const doc = asArray(parseJson(await readWhole(store, "manifest.json", "manifest.json"), where), where);
  const cands: Candidate<Entry>[] = [];
  for (const [i, raw] of doc.entries()) {
    const at = `${where}: [${i}]`;
    const o = asObject(raw, at);
    const config = asString(o.Config, `${at}.Config`);
    const layers = asArray(o.Layers, `${at}.Layers`).map((l, j) => asString(l, `${at}.Layers[${j}]`));
    const tags =
      o.RepoTags === undefined || o.RepoTags === null
        ? []
        : asArray(o.RepoTags, `${at}.RepoTags`).map((t, j) => asString(t, `${at}.RepoTags[${j}]`));
    const bytes = await readWhole(store, config, `config ${config} (${at}.Config)`);
    const configDigest = `sha256:${sha256Hex(bytes)}`;
    const named = digestInName(config);
    if (named !== undefined && named !== configDigest) {
      throw new ArtifactError(
        "ARTIFACT_DIGEST_MISMATCH",
        `${store.name}: config ${config}: content has digest ${configDigest}, its name says ${named}`,
      );
    }
    const configWhere = `${store.name}: config ${config}`;
    const parsed = parseImageConfig(asObject(parseJson(bytes, configWhere), configWhere), configWhere);
    cands.push({
      platform: parsed.platform,
      label: tags.join(", ") || config,
      key: configDigest,
      value: { config, layers, tags, configDigest, diffIds: parsed.diffIds },
    });
  }
  const image = selectCandidate(cands, ctx, where);

  const configWhere = `${store.name}: config ${image.config}`;
  if (image.diffIds === undefined) {
    throw new ArtifactError("ARTIFACT_MALFORMED", `${configWhere}: rootfs.diff_ids is missing`);
  }
  if (image.diffIds.length !== image.layers.length) {
    throw new ArtifactError(
      "ARTIFACT_MALFORMED",
      `${configWhere}: rootfs.diff_ids has ${image.diffIds.length} entries for ${image.layers.length} Layers in manifest.json`,
    );
  }
  const diffIds = image.diffIds;
  const layers: LayerSource[] = image.layers.map((rel, i) => {
    const size = store.size(rel);
    if (size === undefined) {
      throw new ArtifactError("ARTIFACT_NOT_FOUND", `${store.name}: layer ${i + 1} (${rel}) is missing`);
    }
    const digest = digestInName(rel);
    return {
      name: rel,
      size,
      ...(digest === undefined ? {} : { digest }),
      ...(diffIds[i] === undefined ? {} : { diffId: diffIds[i] }),
      read: () => store.read(rel),
    };
  });
  const { files, links } = await applyLayers(layers, ctx);
  const cfg = cands.find((c) => c.key === image.configDigest);
  return {
    kind: "docker-archive",
    name: ctx.name,
    digest: image.configDigest,
    ...(cfg?.platform === undefined ? {} : { platform: cfg.platform }),
    files,
    links,
  };
}
