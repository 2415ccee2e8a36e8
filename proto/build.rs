//! Compiles `mfa/v1/*.proto` with protox (a protobuf compiler in Rust), so the
//! build needs no system `protoc`.

use std::{env, path::PathBuf};

const FILES: &[&str] = &[
    "mfa/v1/types.proto",
    "mfa/v1/portal_service.proto",
    "mfa/v1/device_service.proto",
    "mfa/v1/admin_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for file in FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(FILES, ["."])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("mfa_descriptor.bin");
    std::fs::write(
        &descriptor_path,
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor_path)
        .skip_protoc_run()
        .compile_fds(descriptors)?;
    Ok(())
}
