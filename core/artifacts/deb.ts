/**
 * Debian binary packages (`deb(5)`): an ar archive whose first member is `debian-binary` ("2.0\n"),
 * then `control.tar[.gz|.xz|.zst]`, then `data.tar[.gz|.xz|.zst|.bz2|.lzma]`; members whose name
 * starts with `_` (debsig-verify's `_gpgorigin`, `_gpgbuilder`, …) are signatures and are kept as
 * they are. The control file's fields are parsed (RFC 822 style, continuation lines kept).
 */
import { ArtifactError, sha256Hex } from "./common.ts";
import { ArReader, type ArMember } from "./ar.ts";
import { type Codec, decompressBuffer } from "./decompress.ts";
import { type ListedMember, listTarBuffer } from "./tar-list.ts";

export interface DebMember {
  name: string;
  size: number;
  mode: number;
  /** Hex sha256 of the member as stored (compressed). */
  sha256: string;
  /** `_gpg*` and other `_`-prefixed members (debsig signatures). */
  signature: boolean;
}

export interface DebPackage {
  /** ar members in file order (as `ar t` lists them). */
  members: DebMember[];
  /** Fields of the `control` file, names as written. */
  control: Record<string, string>;
  controlMember: string;
  controlCodec: Codec;
  controlEntries: ListedMember[];
  dataMember: string;
  dataCodec: Codec;
  dataEntries: ListedMember[];
}

/** Parses one deb822 paragraph: `Field: value`, continuation lines start with space or tab. */
export function parseControlParagraph(text: string, where: string): Record<string, string> {
  const out: Record<string, string> = {};
  let last: string | undefined;
  for (const [i, line] of text.split("\n").entries()) {
    if (line === "") continue;
    if (line.startsWith(" ") || line.startsWith("\t")) {
      if (last === undefined)
        throw new ArtifactError("ARTIFACT_MALFORMED", `${where}: line ${i + 1} continues no field`);
      out[last] = `${out[last] ?? ""}\n${line}`;
      continue;
    }
    const colon = line.indexOf(":");
    if (colon <= 0)
      throw new ArtifactError("ARTIFACT_MALFORMED", `${where}: line ${i + 1} is not "Field: value"`);
    last = line.slice(0, colon);
    out[last] = line.slice(colon + 1).trim();
  }
  return out;
}

/** Splits a deb822 file (dpkg's status) into paragraphs. */
export function parseControlFile(text: string, where: string): Record<string, string>[] {
  return text
    .replace(/\r\n/g, "\n")
    .split(/\n[ \t]*\n/)
    .filter((p) => p.trim() !== "" && !p.trim().startsWith("#"))
    .map((p, i) => parseControlParagraph(p, `${where} paragraph ${i + 1}`));
}

export async function readDeb(
  file: string,
  opts?: { maxBytes?: number; name?: string },
): Promise<DebPackage> {
  const name = opts?.name ?? file;
  const maxBytes = opts?.maxBytes ?? 1024 * 1024 * 1024;
  const ar = ArReader.open(file, name);
  try {
    const bad = (msg: string): ArtifactError => new ArtifactError("ARTIFACT_MALFORMED", `${name}: ${msg}`);
    const first = ar.members[0];
    if (first?.name !== "debian-binary")
      throw bad(`first ar member is ${first ? `"${first.name}"` : "missing"}, expected debian-binary`);
    const version = ar.read(first).toString("latin1").trim();
    if (!/^2\.[0-9]+$/.test(version)) throw bad(`debian-binary says "${version}", expected 2.x`);
    const members: DebMember[] = ar.members.map((m) => ({
      name: m.name,
      size: m.size,
      mode: m.mode,
      sha256: sha256Hex(ar.read(m)),
      signature: m.name.startsWith("_"),
    }));
    const find = (prefix: string): ArMember => {
      const m = ar.members.find((x) => x.name === prefix || x.name.startsWith(prefix + "."));
      if (m === undefined)
        throw bad(`no ${prefix}.* member (members: ${ar.members.map((x) => x.name).join(", ")})`);
      if (m.size > maxBytes) {
        throw new ArtifactError(
          "ARTIFACT_TOO_LARGE",
          `${name}: member ${m.name} is ${m.size} bytes, over the limit of ${maxBytes} bytes`,
        );
      }
      return m;
    };
    const cm = find("control.tar");
    const dm = find("data.tar");
    const c = decompressBuffer(ar.read(cm), maxBytes, `${name}: ${cm.name}`);
    const controlEntries = await listTarBuffer(c.out, `${name}: ${cm.name}`, (p) => p === "/control");
    const d = decompressBuffer(ar.read(dm), maxBytes, `${name}: ${dm.name}`);
    const dataEntries = await listTarBuffer(d.out, `${name}: ${dm.name}`);
    const controlText = controlEntries
      .find((e) => e.path === "/control" && e.data !== undefined)
      ?.data?.toString("utf8");
    for (const e of controlEntries) delete e.data;
    if (controlText === undefined) throw bad(`${cm.name} has no ./control file`);
    const control = parseControlParagraph(controlText.replace(/\r\n/g, "\n"), `${name}: ${cm.name}: control`);
    for (const f of ["Package", "Version"]) {
      if (control[f] === undefined) throw bad(`${cm.name}: control has no ${f} field`);
    }
    return {
      members,
      control,
      controlMember: cm.name,
      controlCodec: c.codec,
      controlEntries,
      dataMember: dm.name,
      dataCodec: d.codec,
      dataEntries,
    };
  } finally {
    ar.close();
  }
}
