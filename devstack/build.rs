//! Compiles the service protos (the copies in `sources/proto/`) into gRPC servers with protox, and
//! keeps the compiled descriptors (with their imports and source info, so comments travel) for the
//! services' gRPC server reflection.

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos =
        ["../sources/proto/banyan/events/v1/events.proto", "../sources/proto/banyan/drafts/v1/drafts.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["../sources/proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("services_descriptor_set.bin");
    std::fs::write(out, descriptors.encode_to_vec())?;
    tonic_prost_build::configure().build_server(true).build_client(true).compile_fds(descriptors)?;
    Ok(())
}
