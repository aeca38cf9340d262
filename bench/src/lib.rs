//! Banyan's load harness. The `load` binary starts the devstack at a fixed backend latency, the
//! release gateway (`banyan serve`) as a process of its own, and drives load over real sockets
//! at several concurrencies; per run it reports throughput, p50 and p99, backend calls per
//! request (the devstack's counters), the gateway's CPU time per request and peak RSS (from
//! `/proc`), and the devstack's own CPU per request. [`floor`] is the hand-written handler Banyan
//! is compared with. `BENCHMARKS.md` says how to run it and what it measured.
//!
//! Benchmark code: nothing in production depends on this crate.

pub mod driver;
pub mod floor;
pub mod operations;
pub mod procstat;
pub mod stack;
