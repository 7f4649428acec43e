//! One error type for all connectors. Every error names the connector, the
//! shop (scope) and the API call it came from, says whether a retry can help,
//! and never carries a secret.

use std::fmt;
use std::time::Duration;

/// Where a request was going: connector, shop and API method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// Connector name, e.g. `taobao`.
    pub connector: String,
    /// The shop or corp the request is for, when there is one.
    pub scope: Option<String>,
    /// The API method or path, e.g. `taobao.trades.sold.increment.get`.
    pub api: String,
}

impl RequestContext {
    /// A context for one API call.
    pub fn new(connector: &str, scope: Option<&str>, api: &str) -> Self {
        RequestContext {
            connector: connector.to_string(),
            scope: scope.map(str::to_string),
            api: api.to_string(),
        }
    }
}

impl fmt::Display for RequestContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scope {
            Some(s) => write!(f, "{} [shop {}] {}", self.connector, s, self.api),
            None => write!(f, "{} {}", self.connector, self.api),
        }
    }
}

/// What went wrong, by cause; decides retry behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The platform throttled us (its own code or HTTP 429): back off, retry.
    Throttled,
    /// A passing server fault (HTTP 5xx, "system busy", isp.*): retry.
    Transient,
    /// The request timed out or the connection broke: retry.
    Timeout,
    /// The access token expired or was invalidated: refresh it, then retry.
    TokenExpired,
    /// Bad credentials or signature: retrying cannot help.
    Auth,
    /// The platform rejected the parameters: retrying cannot help.
    InvalidRequest,
    /// The response could not be understood (bad JSON, missing envelope).
    Protocol,
    /// Local configuration is wrong (missing secret, bad URL).
    Config,
}

impl ErrorKind {
    /// True when the same request may succeed later.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Throttled
                | ErrorKind::Transient
                | ErrorKind::Timeout
                | ErrorKind::TokenExpired
        )
    }
}

/// An error from a connector.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{context}: {kind:?}: {message}{}", code.as_ref().map(|c| format!(" (platform code {c})")).unwrap_or_default())]
pub struct ConnectorError {
    /// Where it happened.
    pub context: Box<RequestContext>,
    /// By cause.
    pub kind: ErrorKind,
    /// The platform's code (e.g. `7`, `isp.top-remote-connection-timeout`, `45009`), if any.
    pub code: Option<String>,
    /// Human text: the platform's message or ours. Never a secret or raw PII.
    pub message: String,
    /// How long the platform asked us to wait, when it said.
    pub retry_after: Option<Duration>,
}

impl ConnectorError {
    /// A new error.
    pub fn new(context: &RequestContext, kind: ErrorKind, message: impl Into<String>) -> Self {
        ConnectorError {
            context: Box::new(context.clone()),
            kind,
            code: None,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Attach the platform's error code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Attach the platform's retry-after hint.
    pub fn with_retry_after(mut self, d: Duration) -> Self {
        self.retry_after = Some(d);
        self
    }

    /// True when the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

/// Result alias for connector code.
pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_connector_shop_api_and_code() {
        let ctx = RequestContext::new("taobao", Some("shop-1"), "taobao.trades.sold.increment.get");
        let e = ConnectorError::new(&ctx, ErrorKind::Auth, "Invalid signature").with_code("25");
        assert_eq!(
            e.to_string(),
            "taobao [shop shop-1] taobao.trades.sold.increment.get: Auth: Invalid signature (platform code 25)"
        );
        assert!(!e.is_retryable());
        assert!(ConnectorError::new(&ctx, ErrorKind::Throttled, "x").is_retryable());
    }
}
