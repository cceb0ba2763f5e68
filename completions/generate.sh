#!/usr/bin/env bash
# Regenerates the committed completions/ and man/ from socv's own clap definitions (the binary
# generates them, never build.rs). tests/it/generated_files.rs fails until this has been run
# after a change to the command line.
set -euo pipefail
cd "$(dirname "$0")/.."

socv() { cargo run -q --bin socv -- "$@"; }

socv completions bash > completions/socv.bash
socv completions zsh > completions/_socv
socv completions fish > completions/socv.fish

# Pages of commands that no longer exist must go too.
rm -f man/*.1 man/*.8
socv man --dir man
echo "regenerated completions/ and man/; review with: git status completions man" >&2
