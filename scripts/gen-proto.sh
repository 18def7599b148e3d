#!/bin/sh
# Generates TypeScript from proto/ with ts-proto (buf runs the plugin; no protoc needed).
# Output goes to src/gen/, which is never edited by hand and not committed.
set -eu
cd "$(dirname "$0")/../proto"
rm -rf ../src/gen
PATH="$(pwd)/../node_modules/.bin:$PATH" buf generate
