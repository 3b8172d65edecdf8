#!/usr/bin/env node
// Entry point installed as `stella`: runs the compiled CLI (make build).
import "../dist/cli/stella.js";
