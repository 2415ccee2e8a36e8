//! Compiles `mfa/v1/*.proto` with protox (a protobuf compiler in Rust), so the
//! build needs no system `protoc`.
//!
//! Two passes: the messages and clients, with tonic-prost's codec; then the
//! servers alone, on those messages, with `crate::codec::ServerCodec`, which
//! answers a request body that does not decode `INVALID_ARGUMENT` rather
//! than `INTERNAL`. (`codec_path` applies to every client and server of one
//! pass, and a client should keep treating an undecodable response as the
//! fault it is.)

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
    // `prost::Name` on every message: the server codec names the request
    // type that a body failed to decode as.
    let mut messages = prost_build::Config::new();
    messages.enable_type_names();
    tonic_prost_build::configure()
        .build_server(false)
        .file_descriptor_set_path(&descriptor_path)
        .skip_protoc_run()
        .compile_fds_with_config(descriptors.clone(), messages)?;

    let servers_dir = out_dir.join("servers");
    std::fs::create_dir_all(&servers_dir)?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .out_dir(&servers_dir)
        .extern_path(".mfa.v1", "crate::v1")
        .codec_path("crate::codec::ServerCodec")
        .skip_protoc_run()
        .compile_fds(descriptors)?;
    Ok(())
}
