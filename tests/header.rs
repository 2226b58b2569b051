//! include/electra.h must be exactly what cbindgen (0.29.4, pinned) generates from src/ffi/ and
//! cbindgen.toml. Regenerate it with `UPDATE_HEADER=1 cargo test --test header`.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generate(root: &Path) -> String {
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let bindings = cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen failed: {e}"));
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("cbindgen writes UTF-8")
}

/// The first line where `a` and `b` differ, 1-based, with both versions of it.
fn first_difference(a: &str, b: &str) -> Option<(usize, String, String)> {
    let (mut la, mut lb) = (a.lines(), b.lines());
    for n in 1.. {
        match (la.next(), lb.next()) {
            (None, None) => return None,
            (x, y) if x == y => continue,
            (x, y) => {
                let show = |l: Option<&str>| l.map_or("<end of file>".to_string(), str::to_string);
                return Some((n, show(x), show(y)));
            }
        }
    }
    unreachable!()
}

#[test]
fn header_is_up_to_date() {
    let root = root();
    let path = root.join("include/electra.h");
    let fresh = generate(&root);
    if std::env::var_os("UPDATE_HEADER").is_some_and(|v| !v.is_empty() && v != "0") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &fresh).unwrap();
        println!("wrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != fresh {
        let hint = match first_difference(&committed, &fresh) {
            Some((n, old, new)) => {
                format!("first difference at line {n}:\n  committed: {old}\n  generated: {new}")
            }
            None => "they differ only in line endings".to_string(),
        };
        panic!(
            "include/electra.h is stale: it differs from what cbindgen generates from src/ffi/ and cbindgen.toml.\n\
             {hint}\n\
             Regenerate it with:  UPDATE_HEADER=1 cargo test --test header\n\
             (or: cbindgen --config cbindgen.toml --output include/electra.h, with cbindgen 0.29.4),\n\
             then review `git diff include/electra.h` and commit it."
        );
    }
}

/// The names and codes the C ABI promises are in the header, spelled as C expects them.
#[test]
fn header_declares_the_abi() {
    let h = generate(&root());
    for needle in [
        "#ifndef ELECTRA_H",
        "extern \"C\" {",
        "typedef int32_t electra_status;",
        "#define ELECTRA_OK 0",
        "#define ELECTRA_ERR_INVALID_ARGUMENT 1",
        "#define ELECTRA_ERR_PANIC 14",
        "#define ELECTRA_ABI_VERSION 1",
        "typedef struct electra_model electra_model;",
        "typedef struct electra_session electra_session;",
        "} electra_model_info;",
        "uint32_t electra_abi_version(void);",
        "const char *electra_version(void);",
        "size_t electra_last_error_message(char *buf, size_t cap);",
        "const char *electra_status_str(electra_status status);",
        "electra_status electra_model_load(const char *path, electra_model **out);",
        "void electra_model_free(electra_model *m);",
        "electra_status electra_model_get_info(const electra_model *m, electra_model_info *info);",
        "electra_status electra_session_new(const electra_model *m, electra_session **out);",
        "void electra_session_free(electra_session *s);",
    ] {
        assert!(h.contains(needle), "the generated header lacks `{needle}`");
    }
    for f in ["electra_session_discriminate", "electra_session_generator_logits", "electra_session_hidden_states"] {
        let start = h.find(&format!("electra_status {f}(")).unwrap_or_else(|| panic!("{f} is not declared"));
        let decl: String = h[start..].split(';').next().unwrap().split_whitespace().collect::<Vec<_>>().join(" ");
        let want = format!(
            "electra_status {f}(electra_session *s, const int32_t *input_ids, const int32_t *attention_mask, \
             const int32_t *token_type_ids, size_t batch, size_t seq_len, float *out, size_t out_len)"
        );
        assert_eq!(decl, want, "argument order of {f}");
    }
}

/// Only the C ABI reaches the header: a `pub const` or type elsewhere in the crate that cbindgen
/// picks up would show here as a name without the electra prefix.
#[test]
fn header_exports_only_electra_names() {
    let h = generate(&root());
    for line in h.lines() {
        let name = if let Some(rest) = line.strip_prefix("#define ") {
            rest.split([' ', '(']).next().unwrap()
        } else if let Some(fnptr) = line.strip_prefix("typedef ").and_then(|l| l.split_once("(*")) {
            // A function-pointer type: `typedef R (*name)(args);`.
            fnptr.1.split(')').next().unwrap()
        } else if line.starts_with("typedef ") || (line.starts_with("} ") && line.ends_with(';')) {
            line.trim_end_matches(';').rsplit(' ').next().unwrap()
        } else {
            continue;
        };
        let ok = name.starts_with("ELECTRA_") || name.starts_with("electra_") || name == "{";
        assert!(
            ok,
            "the header exports `{name}` (line `{line}`), which is not part of the C ABI: put `/// cbindgen:ignore` \
             on its module's `pub mod` line in src/lib.rs (or on the item), or list it in [export] exclude in \
             cbindgen.toml; FFI names start with electra_ / ELECTRA_"
        );
    }
}
