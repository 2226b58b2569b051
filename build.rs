//! Link arguments of the shared library (libelectra.so). Nothing here affects the rlib or the
//! staticlib.
//!
//! - Linux: the soname carries the ABI version, `libelectra.so.<ELECTRA_ABI_VERSION>`, so a
//!   program linked against ABI 1 never loads an incompatible libelectra. The version is read
//!   from `src/ffi/mod.rs` (the constant the header and `electra_abi_version()` come from), so
//!   it is never synced by hand; tests/c/test_install.sh checks the built library's SONAME.
//! - Android: the soname stays `libelectra.so` (APKs only ship `lib*.so` files from jniLibs/,
//!   so a DT_NEEDED of `libelectra.so.1` could never be satisfied on a device), and segments
//!   are aligned for 16 KB pages (required by Google Play for Android 15+ devices; NDK r28+
//!   does this by default, older NDKs need the flag). See docs/MOBILE.md.

use std::{env, fs};

fn abi_version() -> u32 {
    let src = fs::read_to_string("src/ffi/mod.rs").expect("build.rs: cannot read src/ffi/mod.rs");
    for line in src.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("pub const ELECTRA_ABI_VERSION: u32 =") {
            let digits = rest.trim().trim_end_matches(';').trim();
            return digits
                .parse()
                .unwrap_or_else(|_| panic!("build.rs: ELECTRA_ABI_VERSION is not an integer literal: {line}"));
        }
    }
    panic!("build.rs: `pub const ELECTRA_ABI_VERSION: u32 = N;` not found in src/ffi/mod.rs");
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/ffi/mod.rs");
    let abi = abi_version();
    match env::var("CARGO_CFG_TARGET_OS").as_deref() {
        Ok("linux") => {
            println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libelectra.so.{abi}");
        }
        Ok("android") => {
            println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libelectra.so");
            println!("cargo:rustc-cdylib-link-arg=-Wl,-z,max-page-size=16384");
        }
        _ => {}
    }
}
