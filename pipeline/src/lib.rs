//! The quanyu engine: config, connector registry, run loop, the Delta lake,
//! identity, SQL, the demo and the benchmark. The `quanyu` binary is a thin
//! CLI over this library.
#![warn(missing_docs)]

pub mod bench;
pub mod bench_identity;
pub mod bench_lake;
pub mod config;
pub mod customers;
pub mod demo;
pub mod identity;
pub mod imports;
pub mod keys;
pub mod lake;
pub mod listen;
pub mod marts;
pub mod quarantine;
pub mod refresh;
pub mod registry;
pub mod runner;
pub mod runs;
pub mod samples;
pub mod sandboxes;
pub mod sql;
pub mod status;
pub mod sync;
