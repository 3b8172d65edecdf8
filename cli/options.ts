import { InvalidArgumentError } from "commander";
import { SingleBar } from "cli-progress";

import { loadPrivateKeyFile } from "../core/dsse/keys.ts";
import { keySigner, type Signer } from "../core/dsse/sign.ts";

/** `--sections .text,.rodata` → [".text", ".rodata"]. */
export function parseSections(value: string): string[] {
  const list = value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (list.length === 0) throw new InvalidArgumentError("expected a comma-separated list of section names");
  return [...new Set(list)];
}

/** `--max-section-size 100M` → bytes. Accepts K, M, G suffixes (binary units). */
export function parseByteSize(value: string): number {
  const m = /^(\d+)([KMG]?)i?B?$/i.exec(value.trim());
  if (!m) throw new InvalidArgumentError(`"${value}" is not a size (e.g. 104857600, 100M, 1G)`);
  const mult = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[
    (m[2] ?? "").toUpperCase() as "" | "K" | "M" | "G"
  ];
  return Number(m[1]) * mult;
}

/** Repeatable `--sign KEY.pem`. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function signersFrom(paths: string[] | undefined): Signer[] {
  return (paths ?? []).map((p) => keySigner(loadPrivateKeyFile(p)));
}

/** RFC 3339 timestamp from --created-at, else SOURCE_DATE_EPOCH (reproducible builds), else none. */
export function createdAt(flag: string | undefined): string | undefined {
  if (flag !== undefined) {
    const d = new Date(flag);
    if (Number.isNaN(d.getTime())) throw new InvalidArgumentError(`"${flag}" is not an RFC 3339 timestamp`);
    return d.toISOString();
  }
  const epoch = process.env.SOURCE_DATE_EPOCH;
  if (epoch !== undefined && /^\d+$/.test(epoch)) return new Date(Number(epoch) * 1000).toISOString();
  return undefined;
}

export interface Progress {
  update(done: number, total: number, label: string): void;
  stop(): void;
}

/** A progress bar on stderr when it is a terminal; silent otherwise (CI logs, pipes, tests). */
export function progress(title: string): Progress {
  if (!process.stderr.isTTY) return { update: () => {}, stop: () => {} };
  const bar = new SingleBar({
    format: `${title} [{bar}] {value}/{total} {label}`,
    stream: process.stderr,
    clearOnComplete: true,
    hideCursor: true,
  });
  let started = false;
  return {
    update(done, total, label) {
      if (!started) {
        bar.start(total, 0, { label: "" });
        started = true;
      }
      bar.setTotal(total);
      bar.update(done, { label: label.length > 40 ? `…${label.slice(-39)}` : label });
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
