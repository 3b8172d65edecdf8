#!/usr/bin/env bash
# Regenerates proto/gen/ (TypeScript types for the wire contract) from proto/stella/**/*.proto with
# @grpc/proto-loader's type generator. `make proto` runs this; `make proto-check` fails when the committed
# files differ from its output.
#
# The flags mirror the runtime loader options in proto/evidence.ts (camelCase fields, 64-bit integers as
# numbers, enums as their names, defaults and virtual oneof fields) so the generated types describe exactly
# what proto-loader hands us. --importFileExtension .ts: the generated files import each other with explicit
# .ts extensions, which Node's type stripping needs (and tsc rewrites to .js for dist/). Every generated
# import is `import type`, so at runtime only the enum constant objects in them are values.
set -euo pipefail
cd "$(dirname "$0")/.."

out=proto/gen
rm -rf "$out"
mkdir -p "$out"
# Paths relative to proto/ so the "Original file:" comments in the output do not depend on the checkout.
protos=$(cd proto && find stella -name '*.proto' | LC_ALL=C sort)
# shellcheck disable=SC2086
node_modules/.bin/proto-loader-gen-types \
  --longs=Number --enums=String --defaults --oneofs --includeComments \
  --grpcLib=@grpc/grpc-js --importFileExtension=.ts \
  -I proto -O "$out" $protos
