/**
 * Unix `ar` archives, as `.deb` packages use them (`ar t` lists the same members): the `!<arch>\n`
 * magic, then 60-byte headers (name 16, mtime 12, uid 6, gid 6, octal mode 8, decimal size 10,
 * `` `\n ``) each followed by the data, padded to an even offset. GNU `/`-style names (`name/`, and
 * long names through the `//` table) are decoded; BSD `#1/len` names too. A member that runs past the
 * end of the file, a bad header terminator or a non-numeric size is refused.
 */
import type { FileByteSource } from "../io/byte-source.ts";
import { ArtifactError, openFileReader } from "./common.ts";

export interface ArMember {
  name: string;
  /** Permission bits from the header. */
  mode: number;
  /** Offset of the data in the file. */
  offset: number;
  size: number;
}

const MAGIC = "!<arch>\n";

export function isArHead(head: Uint8Array): boolean {
  return Buffer.from(head.subarray(0, 8)).toString("latin1") === MAGIC;
}

export class ArReader {
  readonly name: string;
  readonly members: ArMember[] = [];
  private readonly src: FileByteSource;

  private constructor(src: FileByteSource, name: string) {
    this.src = src;
    this.name = name;
    this.scan();
  }

  static open(file: string, name = file): ArReader {
    return openFileReader(file, name, (src) => new ArReader(src, name));
  }

  close(): void {
    this.src.close();
  }

  private bad(msg: string): ArtifactError {
    return new ArtifactError("ARTIFACT_MALFORMED", `${this.name}: ${msg} (truncated or corrupt?)`);
  }

  private scan(): void {
    const size = this.src.size;
    if (size < 8 || !isArHead(this.src.read(0, 8))) throw this.bad("no ar magic !<arch>");
    let longNames: Buffer | undefined;
    let off = 8;
    while (off < size) {
      if (off + 60 > size) throw this.bad(`ar header at byte ${off} is cut short by the end of the file`);
      const h = Buffer.from(this.src.read(off, 60));
      if (h[58] !== 0x60 || h[59] !== 0x0a) throw this.bad(`ar header at byte ${off}: bad terminator`);
      const field = (a: number, b: number): string => h.toString("latin1", a, b).trim();
      const sizeText = field(48, 58);
      if (!/^[0-9]+$/.test(sizeText))
        throw this.bad(`ar header at byte ${off}: size field "${sizeText}" is not a number`);
      let memberSize = Number(sizeText);
      let dataOff = off + 60;
      let name = field(0, 16);
      if (dataOff + memberSize > size) {
        throw this.bad(
          `ar member "${name}" at byte ${off} needs ${memberSize} bytes at ${dataOff} but the file ends at ${size}`,
        );
      }
      const modeText = field(40, 48);
      const mode = /^[0-7]+$/.test(modeText) ? parseInt(modeText, 8) & 0o7777 : 0;
      const next = dataOff + memberSize + (memberSize % 2);
      if (name === "//") {
        longNames = Buffer.from(this.src.read(dataOff, memberSize));
        off = next;
        continue;
      }
      if (name === "/" || name === "/SYM64/") {
        off = next;
        continue;
      }
      const bsd = /^#1\/([0-9]+)$/.exec(name);
      if (bsd) {
        const n = Number(bsd[1]);
        if (n > memberSize)
          throw this.bad(`ar member at byte ${off}: BSD name length ${n} exceeds its size ${memberSize}`);
        name = Buffer.from(this.src.read(dataOff, n)).toString("utf8").replace(/\0+$/, "");
        dataOff += n;
        memberSize -= n;
      } else if (/^\/[0-9]+$/.test(name)) {
        const at = Number(name.slice(1));
        if (longNames === undefined || at >= longNames.length) {
          throw this.bad(`ar member at byte ${off}: long name offset ${at} outside the // table`);
        }
        const endAt = longNames.indexOf("/\n", at);
        name = longNames.toString("utf8", at, endAt === -1 ? longNames.length : endAt);
      } else if (name.endsWith("/")) name = name.slice(0, -1);
      this.members.push({ name, mode, offset: dataOff, size: memberSize });
      off = next;
    }
  }

  get(name: string): ArMember | undefined {
    return this.members.find((m) => m.name === name);
  }

  read(m: ArMember): Buffer {
    return Buffer.from(this.src.read(m.offset, m.size));
  }
}
