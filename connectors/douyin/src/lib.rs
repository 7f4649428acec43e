//! Douyin shop (抖店 openapi-fxg) orders: `order.searchList`, one stream per
//! shop, windows of at most seven days by update time, 0-based pages read
//! from the last page backwards (the list is newest first, so an order
//! updated meanwhile never shifts an unread one past us), with `total`
//! checked against what was fetched. Signed HMAC-SHA256 (or MD5) over the
//! fixed pattern. A self-built app creates its shop tokens itself
//! (`/token/create`, `authorization_self`); tokens are refreshed through
//! `/token/refresh` and persisted. Optionally decrypts receiver phones
//! through `order.batchDecrypt` (at most 50 per call) and hashes them at
//! once.
//!
//! The longest window is our choice (seven days): no source we could read
//! states one for `update_time_start/end`.
//!
//! Refunds: `afterSale.List` by `update_start_time`/`update_end_time` in
//! the same windows (pages from 0, at most 100), amounts in fen, the SKU
//! order as the line. Order lines are the `sku_order_list` sub-orders.
#![warn(missing_docs)]

pub mod client;
pub mod sandbox;
pub mod sign;

use quanyu_connector_sdk::market::prelude::*;

pub use client::DyClient;
pub use sign::SignMethod;

/// The production gateway.
pub const DEFAULT_GATEWAY: &str = "https://openapi-fxg.jinritemai.com";
/// The API this connector pulls.
pub const SEARCH_API: &str = "order.searchList";
/// The receiver decrypt API.
pub const DECRYPT_API: &str = "order.batchDecrypt";
/// The after-sale list API.
pub const AFTER_SALE_API: &str = "afterSale.List";
/// Most ciphertexts one decrypt call takes.
pub const DECRYPT_BATCH: usize = 50;

quanyu_connector_sdk::market_config! {
    /// One Douyin shop app and the shops authorized to it.
    pub struct DouyinConfig {
        /// API gateway (`https://openapi-fxg.jinritemai.com`); the method's dots
        /// become the path.
        #[serde(default = "default_gateway")]
        pub gateway: String,
        /// The app key.
        pub app_key: String,
        /// The app secret (signs every call).
        pub app_secret: SecretRef,
        /// `hmac-sha256` or `md5`.
        #[serde(default)]
        pub sign_method: SignMethod,
        /// Decrypt receiver phones through `order.batchDecrypt` and hash them
        /// (uses the shop's decrypt quota).
        #[serde(default)]
        pub decrypt: bool,
        /// Decrypt calls per second per shop (their own budget); 0 = no limit.
        #[serde(default = "default_decrypt_qps")]
        pub decrypt_qps: u32,
        /// The shops.
        pub shops: Vec<DouyinShop>,
    }
}

/// One authorized shop.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DouyinShop {
    /// The shop id used in the lake.
    pub id: String,
    /// Douyin's shop id, for a self-built app's `authorization_self` token
    /// (defaults to `id`); set `self_authorize = false` for a tool app.
    #[serde(default)]
    pub shop_id: Option<String>,
    /// Whether the app may create this shop's token itself
    /// (`grant_type=authorization_self`, self-built apps).
    #[serde(default = "default_true")]
    pub self_authorize: bool,
    /// An access token from an authorization (optional for self-built apps).
    #[serde(default)]
    pub access_token: Option<SecretRef>,
    /// Its refresh token.
    #[serde(default)]
    pub refresh_token: Option<SecretRef>,
}

fn default_gateway() -> String {
    DEFAULT_GATEWAY.into()
}
fn default_decrypt_qps() -> u32 {
    2
}
fn default_true() -> bool {
    true
}

/// Build one orders stream per shop, and its refunds stream when `refunds`.
pub fn build_streams(
    cfg: &DouyinConfig,
    setup: &ConnectorSetup,
) -> Result<Vec<Arc<dyn Stream>>, ConfigError> {
    let wiring = AppWiring::new("douyin", &cfg.app_key, setup, cfg.pull.qps);
    let secret = wiring.secret(&cfg.app_secret)?;
    let base = DyClient::new(
        wiring.app_api(),
        &cfg.gateway,
        &cfg.app_key,
        secret,
        cfg.sign_method,
    );
    let plan = cfg.pull.checked_plan(&wiring, PLATFORM.limits())?;
    each_shop(&cfg.shops, |shop| {
        let configured = match &shop.access_token {
            Some(a) => Some(TokenSet::configured(
                wiring.secret(a)?,
                wiring.optional_secret(shop.refresh_token.as_ref())?,
            )),
            None if shop.self_authorize => None,
            None => {
                return Err(wiring.error(format!(
                "shop {}: needs an access_token (or self_authorize = true for a self-built app)",
                shop.id
            )))
            }
        };
        let token = wiring.shop_token(&shop.id, configured)?;
        let client = base.for_shop(
            shop.self_authorize
                .then(|| shop.shop_id.as_deref().unwrap_or(&shop.id)),
        );
        let list = |api| SearchList::new(client.with_api(api), &token, &shop.id, &cfg.pull);
        let listing = |api| {
            Listing::new(api, Paging::backward(0, cfg.pull.page_size))
                .within(PLATFORM.limits().longest_window())
        };
        let api = wiring.shop_api(&shop.id, cfg.pull.shop_qps);
        let decrypt = cfg
            .decrypt
            .then(|| list(wiring.decrypt_api(&shop.id, cfg.pull.shop_qps, cfg.decrypt_qps)));
        let lists = [listing(SEARCH_API), listing(AFTER_SALE_API)];
        let streams = wiring.shop_streams(&shop.id, (plan, cfg.pull.refunds), &api, list, lists);
        Ok(streams.decrypting(decrypt, DECRYPT_BATCH))
    })
}

/// Where `order.searchList` answers its orders.
const ORDERS: ListAnswer = ListAnswer::records("data.shop_order_list").total("data.total");
/// Where `afterSale.List` answers its after-sales.
const AFTER_SALES: ListAnswer = ListAnswer::records("data.items").total("data.total");

quanyu_connector_sdk::shop_list! {
    /// `order.searchList`, `afterSale.List` and `order.batchDecrypt` of one shop.
    struct SearchList(DyClient) in "douyin" by MAPPING;
    decrypt DECRYPT_API with |items| serde_json::json!({ "cipher_infos": MAPPING.decrypt_items(items) });
}

#[async_trait]
impl RecordList for SearchList {
    async fn page(&self, q: PageQuery<'_>) -> Result<ListPage, ConnectorError> {
        let rctx = self.context(SEARCH_API);
        // Inclusive second bounds: [start, end - 1 s] (one second at least).
        let (start, end) = q.window.inclusive_seconds();
        let param = serde_json::json!({
            "page": q.at.number(&rctx)?,
            "size": self.page_size,
            "update_time_start": start,
            "update_time_end": end,
            "order_by": "update_time",
            "order_asc": false,
        });
        self.orders(&rctx, &param, &ORDERS, q.hasher).await
    }
}

#[async_trait]
impl RecordList<RefundRow> for SearchList {
    async fn page(&self, q: PageQuery<'_>) -> Result<ListPage<RefundRow>, ConnectorError> {
        let rctx = self.context(AFTER_SALE_API);
        let (start, end) = q.window.inclusive_seconds();
        let param = serde_json::json!({
            "page": q.at.number(&rctx)?,
            "size": self.page_size,
            "update_start_time": start,
            "update_end_time": end,
            "order_by": ["update_time desc"],
        });
        self.refunds(&rctx, &param, &AFTER_SALES).await
    }
}

quanyu_connector_sdk::market_connector! {
    DouyinConfig, "douyin", Douyin, "Douyin shop (抖店) orders",
    decrypts: true, state: "dy_", ids: Some("[0-9]{16,20}")
}
