/**
 * Whole-buffer decompression by magic bytes, for the small nested archives of packages (a .deb's
 * control.tar.* / data.tar.*, an rpm payload). gzip and zstd use node:zlib; xz and lzma are handed to
 * `xz -dc` (xz-utils: Debian's dpkg depends on it, so it is on every Debian system; the npm xz
 * decoders need a native build, which npm here does not run); bzip2 to `bzip2 -dc` when installed.
 * Output is capped at `maxBytes`.
 */
import { execFileSync } from "node:child_process";
import { gunzipSync, zstdDecompressSync } from "node:zlib";

import { ArtifactError } from "./common.ts";

export type Codec = "none" | "gzip" | "xz" | "lzma" | "zstd" | "bzip2";

export function sniffCodec(head: Uint8Array): Codec {
  const is = (...bytes: number[]): boolean => bytes.every((b, i) => head[i] === b);
  if (is(0x1f, 0x8b)) return "gzip";
  if (is(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)) return "xz";
  if (is(0x28, 0xb5, 0x2f, 0xfd)) return "zstd";
  if (is(0x42, 0x5a, 0x68)) return "bzip2";
  if (is(0x5d, 0x00, 0x00)) return "lzma";
  return "none";
}

export function decompressBuffer(
  data: Uint8Array,
  maxBytes: number,
  where: string,
): { codec: Codec; out: Buffer } {
  const codec = sniffCodec(data);
  const tooLarge = (): ArtifactError =>
    new ArtifactError(
      "ARTIFACT_TOO_LARGE",
      `${where}: decompresses to more than the limit of ${maxBytes} bytes`,
    );
  try {
    switch (codec) {
      case "none":
        if (data.length > maxBytes) throw tooLarge();
        return { codec, out: Buffer.from(data) };
      case "gzip":
        return { codec, out: gunzipSync(data, { maxOutputLength: maxBytes }) };
      case "zstd":
        return { codec, out: zstdDecompressSync(data, { maxOutputLength: maxBytes }) };
      case "xz":
      case "lzma":
      case "bzip2": {
        const tool = codec === "bzip2" ? "bzip2" : "xz";
        const args = codec === "lzma" ? ["--format=lzma", "-dc"] : ["-dc"];
        return {
          codec,
          out: execFileSync(tool, args, {
            input: data,
            maxBuffer: maxBytes,
            stdio: ["pipe", "pipe", "pipe"],
          }),
        };
      }
    }
  } catch (cause) {
    if (cause instanceof ArtifactError) throw cause;
    const e = cause as NodeJS.ErrnoException & { stderr?: Buffer };
    if (
      e.code === "ERR_BUFFER_TOO_LARGE" ||
      e.code === "ERR_CHILD_PROCESS_STDIO_MAXBUFFER" ||
      e.code === "ENOBUFS" ||
      /maxOutputLength|maxBuffer/.test(e.message)
    )
      throw tooLarge();
    if (e.code === "ENOENT") {
      throw new ArtifactError(
        "ARTIFACT_UNSUPPORTED",
        `${where}: ${codec} data needs the ${codec === "bzip2" ? "bzip2" : "xz"} tool, which is not installed`,
        { cause },
      );
    }
    const detail = e.stderr?.length ? e.stderr.toString("utf8").trim() : e.message;
    throw new ArtifactError("ARTIFACT_MALFORMED", `${where}: cannot decompress (${codec}): ${detail}`, {
      cause,
    });
  }
}
