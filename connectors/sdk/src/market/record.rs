//! What a platform's mapping makes of one record.

use quanyu_schemas::OrderRow;

/// A mapped order and its phone ciphertext, when the platform sent one
/// (for the decrypt API; never stored).
#[derive(Debug, Clone)]
pub struct MappedOrder {
    /// The canonical row.
    pub row: OrderRow,
    /// The receiver phone's ciphertext, when it came encrypted.
    pub cipher: Option<String>,
}

/// Why a record could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The record's key (order id), when it could be read.
    pub key: Option<String>,
    /// Why.
    pub reason: String,
}

impl Rejected {
    /// A rejection of the record keyed `key`.
    pub fn new(key: Option<&str>, reason: impl Into<String>) -> Self {
        Rejected {
            key: key.map(str::to_string),
            reason: reason.into(),
        }
    }
}
