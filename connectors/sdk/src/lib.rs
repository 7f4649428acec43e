//! The quanyu connector contract.
//!
//! A connector exposes [`Stream`]s. A stream pulls one [`Window`] at a time
//! and hands normalized pages (canonical Arrow rows plus quarantined records)
//! to a [`PageSink`]; the pipeline decides when rows and cursor are
//! committed. All HTTP goes through [`ApiClient`], which owns rate limiting
//! (one `governor` limiter per app key), retries with exponential backoff and
//! jitter, token-refresh retries and the per-request tracing span. Every HTTP
//! connector ships a sandbox built with [`sandbox`] and passes the shared
//! [`conformance`] suite against it.
#![warn(missing_docs)]

pub mod conformance;
pub mod connector;
pub mod declarative;
pub mod error;
pub mod http;
pub mod market;
pub mod sandbox;
pub mod secret;
pub mod setup;
pub mod source;
pub mod token;
pub mod window;

/// Response bodies, re-exported so connectors need no direct dependency.
pub use bytes::Bytes;
pub use connector::Connector;
pub use error::{ConnectorError, ErrorKind, RequestContext, Result};
pub use http::{ApiClient, Attempt, LimiterRegistry, RetryPolicy};
/// The canonical schemas, for the kit's macros.
#[doc(hidden)]
pub use quanyu_schemas as schemas;
pub use secret::{Secret, SecretRef};
pub use setup::{ConfigError, ConnectorSetup};
pub use source::{
    CursorMode, NormalizedPage, PageSink, PullContext, PullError, PullReport, PullResult,
    SinkError, Stream, StreamId,
};
pub use token::{ShopToken, TokenSet, TokenStore};
pub use window::{plan_windows, Window, WindowPlan};
