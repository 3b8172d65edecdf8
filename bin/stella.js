#!/usr/bin/env node
// Entry point installed as `stella`: runs the compiled CLI (make build).
import { main } from "../dist/cli/main.js";

process.exitCode = await main(process.argv);
