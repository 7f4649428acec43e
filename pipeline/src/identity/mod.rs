//! Identity v2: one unified customer id you can trust, explain and keep.
//!
//! Every source record names identifiers (an order, its buyer id, the
//! receiver phone's keyed hash, a WeCom contact, a unionid, a CRM member);
//! [`edges`] lists which identifiers each record puts side by side, with the
//! record as evidence. [`resolve`] keeps junk ([`blocklist`]) and
//! identifiers that stand for more people than their type allows out of
//! stitching, finds the connected components over a dictionary-encoded
//! graph ([`graph`]), and cuts components grown past a cap at their least
//! trusted shared identifiers. [`ids`] carries unified ids forward
//! (survive, mint, retire) so an id names exactly one customer and every
//! id ever issued resolves through `identity_aliases`. [`build`] runs it
//! incrementally: only the customers that new or changed records touch are
//! recomputed. [`explain`] answers why two identifiers share an id.
//!
//! Tables: `identity_edges`, `identity_map`, `identity_aliases`,
//! `identity_changes`, `identity_audit`.

pub mod aliases;
pub mod blocklist;
pub mod build;
pub mod config;
pub mod edges;
pub mod explain;
pub mod graph;
pub mod ids;
pub mod resolve;
pub mod tables;

pub use build::{build_identity, rebuild_identity, IdentitySummary};
pub use config::{IdentityConfig, StateRule, StateRules};
pub use edges::identity_edges_schema;
pub use tables::{
    identity_aliases_schema, identity_audit_schema, identity_changes_schema, identity_map_schema,
};
