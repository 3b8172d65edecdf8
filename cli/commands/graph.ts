/**
 * `stella graph build|verify|explain|revoke`: signed reachability graphs (richgraph-v1) in a content-addressed
 * store, selective DSSE edge bundles, entry→sink traces, and offline verification. User guide:
 * docs/reachability.md.
 */
import type { Command } from "commander";

import { action } from "../action.ts";
import { collect } from "../options.ts";
import type { BuildOptions, ExplainOptions, RevokeOptions, VerifyOptions } from "./graph-run.ts";

const run = () => import("./graph-run.ts");

export function registerGraph(program: Command): void {
  const graph = program
    .command("graph")
    .description("Signed reachability graphs (richgraph-v1): build, verify offline, explain, revoke edges");
  graph
    .command("build")
    .description(
      "Static call graph of every ELF in the inputs (direct calls, PLT calls resolved across the inputs, init\n" +
        "roots), plus runtime edges from `stella agent record --format json` recordings; signed (DSSE) into a\n" +
        "content-addressed store with edge bundles for runtime, init and third-party edges and entry→sink traces.",
    )
    .argument("<IMAGE|FILE...>", "ELF files, directories, OCI layouts or image tarballs")
    .requiredOption("--out <CAS>", "content-addressed store directory (reachability/graphs, edges, traces)")
    .option("--sign <KEY.pem>", "signing key (repeatable; required)", collect)
    .option(
      "--runtime <STACKS.json>",
      "agent recording (stella agent record --format json); repeatable",
      collect,
    )
    .option("--sinks <FILE>", "sink symbols or node ids, one per line (# comments)")
    .option("--sink <SYMBOL>", "a sink symbol or node id (repeatable)", collect)
    .option("--dispute <EDGE_ID>", "bundle this edge as disputed (repeatable)", collect)
    .option("--funcproof-out <DIR>", "also write FuncProofs whose traces[] carry the traces ending in them")
    .option("--json", "print the result as canonical JSON")
    .addHelpText(
      "after",
      "\nExample:\n  stella graph build ./app ./libt.so --sink lib_fn --sign release.key --out cas/",
    )
    .action(action(async (inputs: string[], opts: BuildOptions) => (await run()).buildCommand(inputs, opts)));
  graph
    .command("verify")
    .description(
      "Verify a graph offline: its DSSE envelope, the body's hash, and with --edge-bundles every bundle; recompute\n" +
        "reachability with revoked edges dropped and say which sinks became unreachable. Exit 1 when anything fails.",
    )
    .requiredOption("--graph <HASH>", "graph hash (blake3:<hex> or <hex>)")
    .requiredOption("--cas <DIR>", "content-addressed store")
    .option("--key <PUB.pem>", "trusted public key (repeatable; required)", collect)
    .option("--edge-bundles", "also verify every edge bundle of the graph (and apply revocations)")
    .option("--sinks <FILE>", "sink symbols or node ids, one per line")
    .option("--sink <SYMBOL>", "a sink (repeatable)", collect)
    .option("--json", "print the report as canonical JSON")
    .action(action(async (opts: VerifyOptions) => (await run()).verifyCommand(opts)));
  graph
    .command("explain")
    .description("The shortest paths from roots to a sink (Yen's k shortest), runtime-observed edges marked.")
    .requiredOption("--graph <HASH>", "graph hash")
    .requiredOption("--cas <DIR>", "content-addressed store")
    .requiredOption("--sink <SYMBOL>", "sink symbol or node id")
    .option("--k <N>", "how many paths", "5")
    .option("--json", "print the paths as canonical JSON")
    .action(action(async (opts: ExplainOptions) => (await run()).explainCommand(opts)));
  graph
    .command("revoke")
    .description(
      "Sign an edge bundle (bundle_reason disputed) that marks edges revoked; verify then drops them.",
    )
    .requiredOption("--graph <HASH>", "graph hash")
    .requiredOption("--cas <DIR>", "content-addressed store")
    .requiredOption("--edge <EDGE_ID>", "edge id to revoke (repeatable)", collect)
    .option("--sign <KEY.pem>", "signing key (repeatable; required)", collect)
    .option("--json", "print the result as canonical JSON")
    .action(action(async (opts: RevokeOptions) => (await run()).revokeCommand(opts)));
}
