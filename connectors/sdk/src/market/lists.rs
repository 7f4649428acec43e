//! What every list and decrypt of a platform has: the client it calls through.

use crate::http::ApiClient;

/// What calls a platform's lists: the HTTP client they go through (for
/// its counters).
pub trait Lists: Send + Sync + 'static {
    /// The client.
    fn http(&self) -> &ApiClient;
}
