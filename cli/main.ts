import { Command, CommanderError } from "commander";

import { invocation } from "./action.ts";
import { EXIT_OK, EXIT_USAGE } from "./exit-codes.ts";
import { registerAgent } from "./commands/agent.ts";
import { registerAttest } from "./commands/attest.ts";
import { registerDelta } from "./commands/delta.ts";
import { registerFuncproof } from "./commands/funcproof.ts";
import { registerGraph } from "./commands/graph.ts";
import { registerKeygen } from "./commands/keygen.ts";
import { registerScan } from "./commands/scan.ts";
import { registerVerify } from "./commands/verify.ts";
import { registerVex } from "./commands/vex.ts";
import { VERSION } from "./version.ts";

export function buildProgram(): Command {
  const program = new Command("stella")
    .description(
      "Signed, replayable evidence about binaries: FuncProof, BinaryDiffV1, DSSE attestations, runtime stacks",
    )
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride();
  registerFuncproof(program);
  registerScan(program);
  registerAttest(program);
  registerKeygen(program);
  registerAgent(program);
  registerVex(program);
  registerDelta(program);
  registerGraph(program);
  registerVerify(program);
  return program;
}

/** Runs the CLI and returns the exit code (see exit-codes.ts). */
export async function main(argv: string[]): Promise<number> {
  invocation.exitCode = EXIT_OK;
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here too, with exitCode 0.
      return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    throw err;
  }
  return invocation.exitCode;
}
