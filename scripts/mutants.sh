#!/bin/sh
# Mutation-tests one source file in place, running only the given test modules.
#
#   scripts/mutants.sh src/service/follows.rs social:: chat::
#
# cargo-mutants recognises a Result return type only by the name `Result`, so
# for our `AppResult<T>` alias it makes no `Ok(...)` mutants (only unviable
# `AppResult::new()` and the like). For the run, the file's `AppResult<T>` is
# spelled `Result<T, crate::error::AppError>` (same type, same lines); the file
# is put back when the run ends. Results: mutants.out/.
set -eu
file=$1
shift
backup=$(mktemp)
cp "$file" "$backup"
trap 'cp "$backup" "$file"; rm -f "$backup"' EXIT INT TERM
perl -0pi -e 's/\bAppResult(<((?:[^<>]++|(?1))*)>)/Result<$2, crate::error::AppError>/g' "$file"
nice -n 19 cargo mutants --in-place --timeout "${MUTANTS_TIMEOUT:-60}" ${MUTANTS_ARGS:-} \
  -f "$file" -- --test api -- "$@"
