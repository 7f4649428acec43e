//! What a started sandbox says of itself, and the credentials every
//! marketplace sandbox accepts by default.

use quanyu_schemas::Channel;
use serde::{Deserialize, Serialize};

/// One shop a sandbox serves, with the tokens an authorization gave it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnnouncedShop {
    /// Shop id (a platform may add its own part after `#`).
    pub id: String,
    /// Access token (Taobao: session key).
    pub access_token: String,
    /// Refresh token, where the platform has one.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// What a started sandbox says of itself: every credential it accepts
/// (sandbox values only, never real ones). `quanyu sandbox <platform>`
/// prints it as its first stdout line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxAnnouncement {
    /// The channel (`taobao`, `kuaishou`, ...).
    pub platform: Channel,
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    /// The app key.
    pub app_key: String,
    /// The app secret.
    pub app_secret: String,
    /// A separate signing secret (Kuaishou).
    #[serde(default)]
    pub sign_secret: Option<String>,
    /// The shops.
    pub shops: Vec<AnnouncedShop>,
    /// Orders it serves now.
    pub orders: usize,
    /// Refund and after-sale requests it serves now.
    #[serde(default)]
    pub refunds: usize,
}

impl SandboxAnnouncement {
    /// Its shops renamed `name(i, id)` (the platform's own ids ride in
    /// them), without refresh tokens (the connector fetches its tokens).
    pub fn shops_named(mut self, name: impl Fn(usize, &str) -> String) -> Self {
        for (i, s) in self.shops.iter_mut().enumerate() {
            s.id = name(i, &s.id);
            s.refresh_token = None;
        }
        self
    }
}

/// The credentials every marketplace sandbox accepts by default.
pub mod sandbox_credentials {
    /// The app key.
    pub const APP_KEY: &str = "12345678";
    /// The app secret.
    pub const APP_SECRET: &str = "sandbox-app-secret";
    /// A separate signing secret (Kuaishou).
    pub const SIGN_SECRET: &str = "sandbox-sign-secret";
}
