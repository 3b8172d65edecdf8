// Process entry: `node cli/stella.ts …` in development, dist/cli/stella.js once built (bin/stella.js).
import { main } from "./main.ts";

// `stella … | head`: the reader went away; stop quietly as other Unix tools do instead of a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(0);
    throw err;
  });
}

process.exitCode = await main(process.argv);
