import { createHash } from "node:crypto";

import { createBLAKE3, type IHasher } from "hash-wasm";

import type { ByteSource } from "../io/byte-source.ts";

/** Lowercase hex SHA-256 (OpenSSL underneath, via node:crypto). */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** BLAKE3-256 (hash-wasm: about 20× a pure-JS BLAKE3 here). Create once, reuse: init is async. */
export class Blake3 {
  private readonly hasher: IHasher;

  private constructor(hasher: IHasher) {
    this.hasher = hasher;
  }

  static async create(): Promise<Blake3> {
    return new Blake3(await createBLAKE3(256));
  }

  hex(bytes: Uint8Array): string {
    return this.hasher.init().update(bytes).digest("hex");
  }

  /** Incremental use over chunks. */
  begin(): IHasher {
    return this.hasher.init();
  }
}

const CHUNK_BYTES = 4 << 20;

export interface FileDigests {
  size: number;
  sha256: string;
  blake3?: string;
}

/** SHA-256 (and BLAKE3 when given a hasher) of a whole byte source, read in 4 MiB chunks. */
export function digestSource(src: ByteSource, blake3?: Blake3): FileDigests {
  const sha = createHash("sha256");
  const b3 = blake3?.begin();
  for (let at = 0; at < src.size; at += CHUNK_BYTES) {
    const chunk = src.read(at, Math.min(CHUNK_BYTES, src.size - at));
    sha.update(chunk);
    b3?.update(chunk);
  }
  const out: FileDigests = { size: src.size, sha256: sha.digest("hex") };
  if (b3) out.blake3 = b3.digest("hex");
  return out;
}
