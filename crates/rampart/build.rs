//! Builds the demo app (`examples/hello`) as a static binary, which
//! `rampart up --demo` and the tests pack into an image `FROM scratch`, so
//! they need no registry.
//!
//! The app has dependencies (a PostgreSQL driver, rustls), so it is built by
//! a nested cargo for the host triple with `+crt-static`, in a target
//! directory of its own beside the workspace's (shared by every profile, so
//! it is built once).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let workspace = manifest.join("../..");
    for path in [
        "examples/hello/src",
        "examples/hello/Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo::rerun-if-changed={}", workspace.join(path).display());
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // Cargo marks its target directory with CACHEDIR.TAG.
    let target_root = out
        .ancestors()
        .find(|p| p.join("CACHEDIR.TAG").is_file())
        .map_or_else(|| out.clone(), Path::to_path_buf);
    let target_dir = target_root.join("hello-static");
    let triple = std::env::var("TARGET").expect("cargo sets TARGET");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let flags_var = format!(
        "CARGO_TARGET_{}_RUSTFLAGS",
        triple.to_uppercase().replace(['-', '.'], "_")
    );

    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace)
        .args(["build", "--release", "--package", "rampart-example-hello"])
        .args(["--target", &triple])
        .arg("--target-dir")
        .arg(&target_dir)
        .env(flags_var, "-C target-feature=+crt-static -C strip=symbols")
        // The test image needs no whole-program optimisation; skipping it
        // keeps the test build quick.
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16");
    // What cargo set for this build script is not meant for the nested one.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let drop = key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_FEATURE_")
            || key.starts_with("DEP_")
            || matches!(
                key,
                "RUSTFLAGS"
                    | "CARGO_ENCODED_RUSTFLAGS"
                    | "CARGO_TARGET_DIR"
                    | "CARGO_BUILD_TARGET_DIR"
                    | "RUSTC_WRAPPER"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "CLIPPY_ARGS"
                    | "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "OUT_DIR"
                    | "TARGET"
                    | "HOST"
                    | "PROFILE"
                    | "OPT_LEVEL"
                    | "DEBUG"
                    | "NUM_JOBS"
                    | "CARGO_PRIMARY_PACKAGE"
            );
        if drop {
            cmd.env_remove(key);
        }
    }
    let status = cmd
        .status()
        .expect("cannot run cargo to build examples/hello");
    assert!(
        status.success(),
        "building examples/hello statically failed"
    );
    let built = target_dir.join(&triple).join("release/hello");
    std::fs::copy(&built, out.join("hello")).expect("copy the static hello binary");
}
