# Sourced by the C, example and binding test scripts: which libelectra.so they test, and its
# build. ELECTRA_LIB_PROFILE (default release) and ELECTRA_LIB_FEATURES (default jni: the Java
# binding's entry points; the C ABI is the same) pick the cargo build, so the five scripts share
# one library. scripts/test.sh sets them to the profile and features of its `cargo test`, whose
# dependencies are then already built. ELECTRA_SKIP_BUILD=1 uses the library as it is.
#
# Sets ELECTRA_LIB_DIR (absolute) and defines electra_lib_build.
electra_lib_profile=${ELECTRA_LIB_PROFILE:-release}
electra_lib_features=${ELECTRA_LIB_FEATURES:-jni}
case $electra_lib_profile in
  dev | test) electra_lib_subdir=debug ;;
  bench) electra_lib_subdir=release ;;
  *) electra_lib_subdir=$electra_lib_profile ;;
esac
electra_lib_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
electra_lib_target=${CARGO_TARGET_DIR:-target}
case $electra_lib_target in /*) ;; *) electra_lib_target=$electra_lib_repo/$electra_lib_target ;; esac
ELECTRA_LIB_DIR=$electra_lib_target/$electra_lib_subdir

# Builds the library (unless ELECTRA_SKIP_BUILD=1) with `make lib` (cdylib + staticlib, as
# tests/c/test_install.sh builds and installs it, so that suite finds it built) and gives it its
# soname beside it: programs linked with -lelectra record libelectra.so.<ABI>, and cargo writes
# only libelectra.so.
electra_lib_build() {
  mkdir -p "$electra_lib_target"
  if [ "${ELECTRA_SKIP_BUILD:-0}" != 1 ]; then
    echo "-- make lib PROFILE=$electra_lib_profile FEATURES=$electra_lib_features"
    make -C "$electra_lib_repo" --no-print-directory lib PROFILE="$electra_lib_profile" \
      FEATURES="$electra_lib_features" CARGO_TARGET_DIR="$electra_lib_target" >/dev/null 2>"$electra_lib_target/lib-build.log" ||
      { cat "$electra_lib_target/lib-build.log" >&2; return 1; }
  fi
  [ -f "$ELECTRA_LIB_DIR/libelectra.so" ] || { echo "missing $ELECTRA_LIB_DIR/libelectra.so" >&2; return 1; }
  local abi
  abi=$(sed -n 's/^pub const ELECTRA_ABI_VERSION: u32 = \([0-9][0-9]*\);.*/\1/p' "$electra_lib_repo/src/ffi/mod.rs")
  ln -sf libelectra.so "$ELECTRA_LIB_DIR/libelectra.so.$abi"
}
