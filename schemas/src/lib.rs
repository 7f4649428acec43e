//! Canonical tables of quanyu as Arrow schemas with typed row builders, the
//! closed vocabularies every source maps into, and the pure helpers every
//! source needs: phone normalization, keyed PII hashing and Beijing-time
//! parsing. This crate does no I/O.
#![warn(missing_docs)]

pub mod phone;
pub mod pii;
pub mod row;
pub mod sales;
pub mod tables;
pub mod time;
pub mod touchpoints;
pub mod vocab;

pub use phone::{normalize_phone, NormalizedPhone, PhoneError};
pub use pii::{LakeKey, LakeKeyError, PiiHasher};
pub use sales::{OrderLineRow, OrderLinesBuilder, RefundRow, RefundsBuilder};
pub use tables::{
    ContactRow, ContactsBuilder, OrderRow, OrdersBuilder, QuarantineBuilder, QuarantineRow,
    TableKind,
};
pub use touchpoints::{TouchpointRow, TouchpointsBuilder};
pub use vocab::{Bridge, Channel, IdType, OrderStatus, Outcome, RefundStatus, TouchEvent};
