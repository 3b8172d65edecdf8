// Process entry: `node cli/stella.ts …` in development, dist/cli/stella.js once built (bin/stella.js).
import { main } from "./main.ts";

process.exitCode = await main(process.argv);
