//! quanyu: the `quanyu` command over the engine ([`quanyu_engine`], whose
//! modules this crate re-exports), the demo with its embedded sandboxes and
//! seeded samples, and the benchmarks. Nothing here is engine API: the
//! engine runs without it.
#![warn(missing_docs)]

pub use quanyu_engine::{
    config, identity, imports, keys, lake, listen, marts, quarantine, refresh, registry, runner,
    runs, sql, status, sync,
};

pub mod bench;
pub mod bench_identity;
pub mod bench_lake;
pub mod bench_marts;
pub mod demo;
pub mod export;
pub mod report;
pub mod samples;
pub mod sandboxes;
