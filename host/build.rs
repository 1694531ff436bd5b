//! Builds the component (`guest/`) for `wasm32-wasip2` and hands its path to the host as
//! `GUEST_WASM`, so the CLI and the tests embed the component of this very checkout.
//!
//! With the `dapr-pluggable` feature, also compiles Dapr's pluggable-component protos
//! (`proto/`) with protox, a Rust proto compiler, so no `protoc` is needed, into the gRPC
//! code and the descriptor set that server reflection lists.
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
    #[cfg(feature = "dapr-pluggable")]
    compile_protos(&workspace.join("proto"));

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

/// The protos of Dapr's pluggable pub/sub: generated server and client code, and the
/// encoded descriptor set (`dapr_components.bin`) for server reflection.
#[cfg(feature = "dapr-pluggable")]
fn compile_protos(root: &std::path::Path) {
    use prost::Message as _;
    println!("cargo:rerun-if-changed={}", root.display());
    let files = ["dapr/proto/components/v1/pubsub.proto"];
    let descriptors = protox::compile(files, [root])
        .unwrap_or_else(|err| panic!("cannot compile the protos in {}: {err:?}", root.display()));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(
        out_dir.join("dapr_components.bin"),
        descriptors.encode_to_vec(),
    )
    .expect("cannot write the descriptor set to OUT_DIR");
    tonic_prost_build::configure()
        // A delivery's payload goes out as the `Bytes` it arrived in from NATS: no copy per
        // message.
        .bytes(".dapr.proto.components.v1.PullMessagesResponse.data")
        // The client is for tests and tools that play daprd's side; without the transport
        // helpers it builds on any channel and needs no client feature of tonic.
        .build_transport(false)
        .compile_fds(descriptors)
        .expect("cannot generate the gRPC code of the protos");
}
