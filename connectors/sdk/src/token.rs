//! Shop tokens that outlive the process: each shop's access and refresh
//! token, refreshed through the platform's own flow when it expires, and
//! written to a token folder (one `0600` file per shop) so a restart does not
//! need a new authorization.

use std::future::Future;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ConnectorError, Result};
use crate::secret::Secret;

/// A shop's tokens.
#[derive(Clone, Debug)]
pub struct TokenSet {
    /// The access token (user / shop token).
    pub access_token: Secret,
    /// The refresh token, when the platform gave one.
    pub refresh_token: Option<Secret>,
    /// When the access token expires, when known.
    pub expires_at: Option<DateTime<Utc>>,
}

impl TokenSet {
    /// Tokens from configuration (no known expiry).
    pub fn configured(access_token: Secret, refresh_token: Option<Secret>) -> Self {
        TokenSet {
            access_token,
            refresh_token,
            expires_at: None,
        }
    }

    /// Tokens a platform just issued, living `expires_in` seconds.
    pub fn issued(access_token: &str, refresh_token: Option<&str>, expires_in: i64) -> Self {
        TokenSet {
            access_token: Secret::new(access_token),
            refresh_token: refresh_token.filter(|r| !r.is_empty()).map(Secret::new),
            expires_at: (expires_in > 0).then(|| Utc::now() + Duration::seconds(expires_in)),
        }
    }

    /// True when the access token expires within five minutes.
    pub fn expiring(&self) -> bool {
        self.expires_at
            .is_some_and(|t| t <= Utc::now() + Duration::minutes(5))
    }
}

/// What is written to disk.
#[derive(Serialize, Deserialize)]
struct Stored {
    /// Fingerprint of the configured access token this chain started from:
    /// when the configuration gets a new authorization, it wins.
    origin: String,
    access_token: String,
    refresh_token: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

fn fingerprint(configured: Option<&Secret>) -> String {
    let mut h = Sha256::new();
    h.update(configured.map(Secret::expose).unwrap_or(""));
    hex::encode(&h.finalize()[..8])
}

/// Where refreshed tokens are kept.
#[derive(Clone, Debug, Default)]
pub struct TokenStore {
    dir: Option<PathBuf>,
}

impl TokenStore {
    /// Tokens persisted in `dir` (created `0700` on first write).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        TokenStore {
            dir: Some(dir.into()),
        }
    }

    /// Tokens kept in memory only (tests, the demo).
    pub fn memory() -> Self {
        TokenStore { dir: None }
    }

    /// The folder, when persisted.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn path(&self, key: &str) -> Option<PathBuf> {
        let name: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.as_ref().map(|d| d.join(format!("{name}.json")))
    }

    fn load(&self, key: &str) -> std::io::Result<Option<Stored>> {
        let Some(path) = self.path(key) else {
            return Ok(None);
        };
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not a token file: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn save(&self, key: &str, stored: &Stored) -> std::io::Result<()> {
        let Some(path) = self.path(key) else {
            return Ok(());
        };
        let dir = path.parent().expect("token files live in a folder");
        std::fs::create_dir_all(dir)?;
        let tmp = path.with_extension("json.tmp");
        {
            use std::io::Write;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp)?;
            f.write_all(&serde_json::to_vec(stored).map_err(std::io::Error::other)?)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)
    }
}

/// The live tokens of one shop. Refreshes are serialized (one refresh per
/// expiry, however many requests saw it) and persisted at once.
pub struct ShopToken {
    key: String,
    origin: String,
    store: TokenStore,
    current: tokio::sync::Mutex<Option<TokenSet>>,
}

impl ShopToken {
    /// The token of shop `key` (`connector/app/shop`): the persisted one when
    /// it descends from the configured token, else the configured one
    /// (`None` when the platform can create one without authorization, as
    /// Douyin's self-use apps can).
    pub fn open(
        store: &TokenStore,
        key: &str,
        configured: Option<TokenSet>,
    ) -> std::io::Result<Self> {
        let origin = fingerprint(configured.as_ref().map(|t| &t.access_token));
        let current = match store.load(key)? {
            Some(s) if s.origin == origin => Some(TokenSet {
                access_token: Secret::new(s.access_token),
                refresh_token: s.refresh_token.map(Secret::new),
                expires_at: s.expires_at,
            }),
            _ => configured,
        };
        Ok(ShopToken {
            key: key.into(),
            origin,
            store: store.clone(),
            current: tokio::sync::Mutex::new(current),
        })
    }

    /// The current tokens, if any.
    pub async fn get(&self) -> Option<TokenSet> {
        self.current.lock().await.clone()
    }

    /// Replace the tokens with `fetch(previous)`'s result and persist them,
    /// unless another caller already replaced `stale` (then the newer
    /// tokens are returned without a second refresh). `fetch` receives the
    /// previous tokens, whose refresh token it exchanges.
    pub async fn renew<F, Fut>(&self, stale: Option<&Secret>, fetch: F) -> Result<TokenSet>
    where
        F: FnOnce(Option<TokenSet>) -> Fut,
        Fut: Future<Output = Result<TokenSet>>,
    {
        let mut cur = self.current.lock().await;
        if let Some(c) = cur.as_ref() {
            if stale.is_none_or(|s| *s != c.access_token) && !c.expiring() {
                return Ok(c.clone());
            }
        }
        let fresh = fetch(cur.clone()).await?;
        // The platform has issued (and may have rotated) the tokens: a crash
        // from here until the file is renamed loses them (the crash harness
        // kills at this line).
        tracing::debug!(shop = %self.key, "token issued; saving it");
        let stored = Stored {
            origin: self.origin.clone(),
            access_token: fresh.access_token.expose().to_string(),
            refresh_token: fresh.refresh_token.as_ref().map(|s| s.expose().to_string()),
            expires_at: fresh.expires_at,
            updated_at: Utc::now(),
        };
        if let Err(e) = self.store.save(&self.key, &stored) {
            // The platform already rotated the pair: keep using it, and say
            // loudly that a restart will need a new authorization.
            tracing::error!(shop = %self.key, "cannot persist the refreshed token: {e}; a restart will need the shop authorized again");
        }
        *cur = Some(fresh.clone());
        Ok(fresh)
    }
}

/// Shorthand for a connector's "no token could be obtained" error.
pub fn missing_token(ctx: &crate::error::RequestContext) -> ConnectorError {
    ConnectorError::new(
        ctx,
        crate::error::ErrorKind::Auth,
        "the shop has no access token and none could be created: authorize the shop",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refreshed_tokens_persist_and_a_new_authorization_wins() {
        let dir = std::env::temp_dir().join(format!("quanyu-tokens-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = TokenStore::in_dir(&dir);
        let configured = TokenSet::configured(Secret::new("at0"), Some(Secret::new("rt0")));
        let t = ShopToken::open(&store, "pdd/app/shop-1", Some(configured.clone())).unwrap();
        let stale = t.get().await.unwrap().access_token;
        let fresh = t
            .renew(Some(&stale), |prev| async move {
                assert_eq!(prev.unwrap().refresh_token.unwrap().expose(), "rt0");
                Ok(TokenSet::issued("at1", Some("rt1"), 3600))
            })
            .await
            .unwrap();
        assert_eq!(fresh.access_token.expose(), "at1");
        // A second caller that saw the same stale token does not refresh again.
        let again = t
            .renew(Some(&stale), |_| async { panic!("refreshed twice") })
            .await
            .unwrap();
        assert_eq!(again.access_token.expose(), "at1");

        // A restart reads the persisted pair.
        let t2 = ShopToken::open(&store, "pdd/app/shop-1", Some(configured)).unwrap();
        assert_eq!(t2.get().await.unwrap().access_token.expose(), "at1");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let f = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap();
            assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        }
        // A newly configured authorization replaces the persisted chain.
        let t3 = ShopToken::open(
            &store,
            "pdd/app/shop-1",
            Some(TokenSet::configured(Secret::new("new-auth"), None)),
        )
        .unwrap();
        assert_eq!(t3.get().await.unwrap().access_token.expose(), "new-auth");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
