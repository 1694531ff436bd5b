//! Builds the component (`guest/`) for `wasm32-wasip2` and hands its path to the host as
//! `GUEST_WASM`, so the CLI and the tests embed the component of this very checkout.
//!
//! The nested cargo uses its own target directory (`target/guest-wasm`): sharing the outer
//! one would deadlock on cargo's build-directory lock. Flags meant for the host build
//! (coverage, `--target`) are removed so they do not leak into the wasm build.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let workspace = manifest_dir
        .parent()
        .expect("host/ lives inside the workspace")
        .to_path_buf();
    for watched in ["guest/src", "guest/Cargo.toml", "wit", "Cargo.lock"] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    println!("cargo:rerun-if-env-changed=JETSTREAM_PUBSUB_GUEST_WASM");

    // A prebuilt component can be supplied instead (packaging, or machines without the target).
    if let Ok(prebuilt) = std::env::var("JETSTREAM_PUBSUB_GUEST_WASM") {
        println!("cargo:rustc-env=GUEST_WASM={prebuilt}");
        return;
    }

    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("guest-wasm");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&workspace)
        .args([
            "build",
            "--profile",
            "guest-release",
            "--locked",
            "-p",
            "jetstream-pubsub-guest",
            "--target",
            "wasm32-wasip2",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_MAKEFLAGS")
        .status()
        .expect("failed to run cargo for the guest component");
    if !status.success() {
        panic!(
            "building the guest component failed; is the target installed? \
             Run `rustup target add wasm32-wasip2` (or set JETSTREAM_PUBSUB_GUEST_WASM to a prebuilt .wasm)"
        );
    }
    let wasm = target_dir.join("wasm32-wasip2/guest-release/jetstream_pubsub_guest.wasm");
    println!("cargo:rustc-env=GUEST_WASM={}", wasm.display());
}
