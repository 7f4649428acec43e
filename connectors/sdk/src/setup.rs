//! What every connector's `build_streams` receives, and the one error it
//! returns for bad configuration.

use crate::http::{LimiterRegistry, RetryPolicy};
use crate::secret::{SecretError, SecretRef};
use crate::token::TokenStore;
use crate::Secret;

/// Shared services for building streams: the process-wide rate limiters
/// (one budget per app key, shared by its shops), the retry policy, and
/// where refreshed shop tokens are kept.
#[derive(Clone, Default)]
pub struct ConnectorSetup {
    /// Rate limiters by key.
    pub limiters: LimiterRegistry,
    /// Retries and timeouts.
    pub policy: RetryPolicy,
    /// Refreshed tokens.
    pub tokens: TokenStore,
}

impl ConnectorSetup {
    /// Setup with fresh limiters and in-memory tokens.
    pub fn new(policy: RetryPolicy) -> Self {
        ConnectorSetup {
            limiters: LimiterRegistry::new(),
            policy,
            tokens: TokenStore::memory(),
        }
    }
}

/// A configuration problem found before any request.
#[derive(Debug, thiserror::Error)]
#[error("{connector} app {app}: {message}")]
pub struct ConfigError {
    /// Connector name.
    pub connector: &'static str,
    /// The app key.
    pub app: String,
    /// What is wrong (never a secret's value).
    pub message: String,
}

impl ConfigError {
    /// An error about app `app` of `connector`.
    pub fn new(connector: &'static str, app: &str, message: impl Into<String>) -> Self {
        ConfigError {
            connector,
            app: app.into(),
            message: message.into(),
        }
    }

    /// Check `value` lies in `range`, naming the field when it does not.
    pub fn check_range<T: PartialOrd + std::fmt::Display>(
        connector: &'static str,
        app: &str,
        field: &str,
        value: T,
        range: std::ops::RangeInclusive<T>,
        why: &str,
    ) -> Result<(), ConfigError> {
        if range.contains(&value) {
            Ok(())
        } else {
            Err(ConfigError::new(
                connector,
                app,
                format!(
                    "{field} must be {}..={}{why}, got {value}",
                    range.start(),
                    range.end()
                ),
            ))
        }
    }

    /// Resolve a secret, naming where it was looked for on failure.
    pub fn secret(
        connector: &'static str,
        app: &str,
        r: &SecretRef,
    ) -> Result<Secret, ConfigError> {
        r.resolve()
            .map_err(|e: SecretError| ConfigError::new(connector, app, e.to_string()))
    }
}
