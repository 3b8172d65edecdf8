import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { StellaError } from "../errors.ts";
import { componentLogger, createLogger, untrusted } from "./log.ts";

test("JSON lines with level names, errors under err, component children, untrusted data nested", () => {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString("utf8").split("\n"))
        if (l !== "") lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const root = createLogger({ level: "info", destination });
  const log = componentLogger(root, "leader-election", { lease: "stella-system/stella-operator" });
  log.error(
    { err: new StellaError("LEASE_CONFLICT", "conflict", { cause: new Error("409") }) },
    "failed to update lease",
  );
  log.info(untrusted({ msg: "spoofed", level: "fatal", path: "/evil" }), "binary observed");
  log.debug("hidden");
  assert.equal(lines.length, 2);
  const [first, second] = lines as [Record<string, unknown>, Record<string, unknown>];
  assert.equal(first.level, "error");
  assert.equal(first.component, "leader-election");
  assert.equal(first.lease, "stella-system/stella-operator");
  assert.equal(first.msg, "failed to update lease");
  const err = first.err as { type: string; message: string; code: string; stack: string };
  assert.equal(err.type, "StellaError");
  assert.equal(err.code, "LEASE_CONFLICT");
  assert.match(err.message, /conflict/);
  assert.equal(typeof first.time, "string");
  assert.equal(second.level, "info");
  assert.equal(second.msg, "binary observed");
  assert.deepEqual(second.untrusted, { msg: "spoofed", level: "fatal", path: "/evil" });
});
