//! Builds the demo app (`examples/hello`) as a static binary, which
//! `rampart up --demo` packs into an image `FROM scratch`, so the demo needs
//! no registry. The app uses the standard library alone, so it is compiled
//! with rustc directly.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = PathBuf::from("../../examples/hello/src/main.rs");
    println!("cargo::rerun-if-changed={}", source.display());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2024",
            "--crate-name",
            "hello",
            "-C",
            "opt-level=2",
        ])
        .args(["-C", "target-feature=+crt-static", "-C", "strip=symbols"])
        .arg("-o")
        .arg(out.join("hello"))
        .arg(&source)
        .status()
        .expect("cannot run rustc for examples/hello");
    assert!(
        status.success(),
        "building examples/hello statically failed"
    );
}
