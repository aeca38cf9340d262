//! Compiles the service protos (the copies in `sources/proto/`) into gRPC servers with protox.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos =
        ["../sources/proto/banyan/events/v1/events.proto", "../sources/proto/banyan/drafts/v1/drafts.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["../sources/proto"])?;
    tonic_prost_build::configure().build_server(true).build_client(true).compile_fds(descriptors)?;
    Ok(())
}
