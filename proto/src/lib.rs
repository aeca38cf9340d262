//! Banyan's proto contract tooling: the other contract, behind the gateway.
//!
//! The services' `.proto` files live in each service; Banyan pulls them and builds its clients
//! from them. This crate:
//!
//! * [`pull()`] fetches what servers serve over gRPC server reflection (`grpc.reflection.v1`,
//!   falling back to `v1alpha`) and writes it back as `.proto` text ([`source::render_file`]),
//!   deterministically, so a re-pull of an unchanged service is a no-op diff; [`compare`] says
//!   how the committed files differ from what is served.
//! * [`check()`] classifies every change between two sets of protos ([`ProtoSet`]) as breaking,
//!   dangerous or safe under buf's rule categories ([`Rules`]), and judges each one by what
//!   Banyan's sources use ([`Usage`], read from the code itself with `syn`): a breaking change to
//!   something Banyan uses fails, one to something it does not use is a warning.
//!
//! ```
//! use banyan_proto::{CheckOptions, ProtoSet, Rules, Usage, check};
//!
//! let old = ProtoSet::from_sources("old", [("a.proto", "syntax = \"proto3\"; message A { int32 x = 1; }")]).unwrap();
//! let new = ProtoSet::from_sources("new", [("a.proto", "syntax = \"proto3\"; message A { }")]).unwrap();
//! let report = check(&old, &new, &Usage::default(), CheckOptions { rules: Rules::Wire, strict: true });
//! assert_eq!(report.exit_code(), 1); // A.x was removed without reserving its number
//! ```

pub mod check;
mod link;
pub mod load;
pub mod pull;
pub mod reflection;
pub mod render;
pub mod source;
pub mod usage;

use std::path::PathBuf;

pub use banyan_schema::{EXIT_FAILURE, EXIT_INPUT_ERROR, EXIT_OK, Level, Severity};
pub use check::{CheckOptions, CheckReport, CheckedChange, ProtoChange, Rules, Summary, check};
pub use load::{CheckInputs, ProtoSet};
pub use pull::{Comparison, Pulled, Written, compare, pull, render_set, write};
pub use reflection::ReflectionVersion;
pub use render::Format;
pub use usage::{Usage, UsageSite};

/// Why a proto command could not load or produce its input.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A folder holds no `.proto` file.
    #[error("{0}: no .proto files found")]
    NoProtos(String),
    /// The files do not parse or link.
    #[error("{message}")]
    Compile {
        /// The folder (or label).
        dir: String,
        /// Where (`dir/file:line:col` as far as known) and what is wrong.
        message: String,
    },
    /// Reflection failed.
    #[error(transparent)]
    Reflection(#[from] reflection::ReflectionError),
    /// Two servers serve different files under one name.
    #[error("{address} serves {file} differently from a server pulled before it")]
    Conflict {
        /// The file.
        file: String,
        /// The second server.
        address: String,
    },
    /// A descriptor cannot be written as `.proto` text.
    #[error(transparent)]
    Render(#[from] source::RenderError),
    /// Banyan's sources could not be read for usage.
    #[error("{path}: {message}")]
    Usage {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}
