//! `schema/schema.graphql` is the committed contract: it must be exactly the SDL the code builds.
//! Regenerate it with `cargo run -- schema print > schema/schema.graphql` (or run this test with
//! `BANYAN_UPDATE_SCHEMA=1`), and review the diff like any other change.

use std::path::Path;

#[test]
fn committed_schema_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema/schema.graphql");
    let built = banyan_resolvers::sdl();
    if std::env::var_os("BANYAN_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &built).expect("writing schema/schema.graphql");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != built {
        let first_difference = committed
            .lines()
            .zip(built.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(built.lines().count()));
        panic!(
            "schema/schema.graphql differs from the schema the code builds (first at line {}).\n\
             Regenerate it: BANYAN_UPDATE_SCHEMA=1 cargo test -p banyan-resolvers --test schema_snapshot",
            first_difference + 1
        );
    }
}
