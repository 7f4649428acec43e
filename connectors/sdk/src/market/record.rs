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
    /// The record read as the platform's `what` order object, or why not.
    pub fn parse<T: serde::de::DeserializeOwned>(raw: &str, what: &str) -> Result<T, Rejected> {
        serde_json::from_str(raw).map_err(|e| Rejected {
            key: None,
            reason: format!("order is not a valid {what} order object: {e}"),
        })
    }

    /// A record without its key `field`.
    pub fn missing(field: &str) -> Rejected {
        Rejected {
            key: None,
            reason: format!("order has no {field}"),
        }
    }

    /// A rejection of the record keyed `key`.
    pub fn new(key: Option<&str>, reason: impl Into<String>) -> Self {
        Rejected {
            key: key.map(str::to_string),
            reason: reason.into(),
        }
    }
}

/// A JSON number, or a string holding one, as an integer.
pub fn int_of(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A JSON number or non-empty string as text (ids sent either way).
pub fn text_of(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        _ => None,
    }
}
