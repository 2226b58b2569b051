#!/usr/bin/env bash
# The mobile packaging check of scripts/test.sh (docs/MOBILE.md): assembles and checks
# electra.aar (scripts/android-aar.sh) and Electra.xcframework (scripts/ios-xcframework.sh) with
# the `mobile-check` profile (Cargo.toml: unoptimised, no debug info; 2.4x quicker to build than
# `cross`, which matters with five targets on 2 cores; the shipped libraries use --profile dist).
# Both scripts build their Android/iOS static libraries too, so scripts/cross-check.sh no longer
# builds them. Whatever could not be built here is named on its own line ("SKIPPED: ...") and
# repeated at the end.
#
#   bash scripts/mobile-check.sh
#   ELECTRA_MOBILE_BUILD_STD=1 bash scripts/mobile-check.sh   # iOS targets rustup cannot install:
#       built with nightly's -Zbuild-std (scripts/ios-xcframework.sh --build-std; ~3 more minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
log=${CARGO_TARGET_DIR:-target}/mobile-check.log
mkdir -p "$(dirname "$log")"
: >"$log"
summary=()
for s in android-aar ios-xcframework; do
  echo
  echo "== scripts/$s.sh"
  start=$SECONDS
  extra=()
  [ "$s" = ios-xcframework ] && [ "${ELECTRA_MOBILE_BUILD_STD:-0}" = 1 ] && extra=(--build-std)
  bash "scripts/$s.sh" --profile mobile-check "${extra[@]}" 2>&1 | tee -a "$log"
  summary+=("ok    scripts/$s.sh ($((SECONDS - start))s)")
done
echo
echo "== mobile packaging summary"
printf '%s\n' "${summary[@]}"
grep -E '^SKIPPED: ' "$log" | sort -u || true
