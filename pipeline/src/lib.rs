//! The quanyu engine: config, the connector registry, the sync (pull →
//! refresh → identity → marts), the Delta lake, identity, marts and
//! read-only SQL. The `quanyu` package is the product over it: the CLI, the
//! demo with its sandboxes and samples, and the benchmarks.
#![warn(missing_docs)]

pub mod config;
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
pub mod sql;
pub mod status;
pub mod sync;
