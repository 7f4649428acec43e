//! Kuaishou shop (快手电商 kwaixiaodian) orders: `open.order.cursor.list`,
//! one stream per shop, windows of at most seven days by update time, read
//! with the platform's cursor until it answers `"nomore"`, signed with the
//! app's signSecret (MD5 or HMAC_SHA256). Shop tokens are refreshed through
//! `/oauth2/refresh_token` and persisted. Optionally decrypts receiver
//! phones through `open.order.decrypt.batch` and hashes them at once.
//!
//! Refunds: `open.seller.order.refund.pcursor.list` (every type, by update
//! time, `pcursor` until `nomore`). A Kuaishou order holds one item
//! (`orderItemInfo`), so it has one line and its refunds name no line.
#![warn(missing_docs)]

pub mod client;
pub mod sandbox;
pub mod sign;

use quanyu_connector_sdk::market::prelude::*;

pub use client::{KsClient, KsParam};
pub use sign::SignMethod;

/// The production gateway (also the OAuth host).
pub const DEFAULT_GATEWAY: &str = "https://openapi.kwaixiaodian.com";
/// The API this connector pulls.
pub const CURSOR_LIST_API: &str = "open.order.cursor.list";
/// The receiver decrypt API.
pub const DECRYPT_API: &str = "open.order.decrypt.batch";
/// The refund list API.
pub const REFUND_LIST_API: &str = "open.seller.order.refund.pcursor.list";
/// Most ciphertexts one decrypt call takes.
pub const DECRYPT_BATCH: usize = 100;
/// The cursor value that ends a listing.
pub const NO_MORE: &str = "nomore";

quanyu_connector_sdk::market_config! {
    /// One Kuaishou app and the shops authorized to it.
    pub struct KuaishouConfig {
        /// API gateway (`https://openapi.kwaixiaodian.com`); the method's dots
        /// become the path.
        #[serde(default = "default_gateway")]
        pub gateway: String,
        /// OAuth base for `/oauth2/refresh_token` (the gateway host by default).
        #[serde(default)]
        pub oauth_base: Option<String>,
        /// The app key (`appkey` / `app_id`).
        pub app_key: String,
        /// The app secret, used only for the OAuth token refresh.
        pub app_secret: SecretRef,
        /// The signSecret, used to sign API calls (distinct from the app secret).
        pub sign_secret: SecretRef,
        /// `MD5` or `HMAC_SHA256`.
        #[serde(default)]
        pub sign_method: SignMethod,
        /// Decrypt receiver phones through `open.order.decrypt.batch` and hash
        /// them (uses the merchant's decrypt quota).
        #[serde(default)]
        pub decrypt: bool,
        /// Decrypt calls per second per shop (their own budget); 0 = no limit.
        #[serde(default = "default_decrypt_qps")]
        pub decrypt_qps: u32,
        /// The shops, each with its own tokens.
        pub shops: Vec<KuaishouShop>,
    }
}

/// One authorized shop: its id in the lake and its tokens.
pub type KuaishouShop = TokenShop;

fn default_gateway() -> String {
    DEFAULT_GATEWAY.into()
}
fn default_decrypt_qps() -> u32 {
    2
}

/// Build one orders stream per shop, and its refunds stream when `refunds`.
pub fn build_streams(
    cfg: &KuaishouConfig,
    setup: &ConnectorSetup,
) -> Result<Vec<Arc<dyn Stream>>, ConfigError> {
    let wiring = AppWiring::new("kuaishou", &cfg.app_key, setup, cfg.pull.qps);
    let base = KsClient::new(
        wiring.app_api(),
        &cfg.gateway,
        cfg.oauth_base.as_deref().unwrap_or(&cfg.gateway),
        &cfg.app_key,
        wiring.secret(&cfg.app_secret)?,
        wiring.secret(&cfg.sign_secret)?,
        cfg.sign_method,
    );
    let plan = cfg.pull.checked_plan(&wiring, PLATFORM.limits())?;
    each_shop(&cfg.shops, |shop| {
        let token = wiring.token_of(shop)?;
        let list = |api| CursorList::new(base.with_api(api), &token, &shop.id, &cfg.pull);
        let listing =
            |api| Listing::new(api, Paging::Cursor).within(PLATFORM.limits().longest_window());
        let api = wiring.shop_api(&shop.id, cfg.pull.shop_qps);
        let decrypt = cfg
            .decrypt
            .then(|| list(wiring.decrypt_api(&shop.id, cfg.pull.shop_qps, cfg.decrypt_qps)));
        let lists = [listing(CURSOR_LIST_API), listing(REFUND_LIST_API)];
        let streams = wiring.shop_streams(&shop.id, (plan, cfg.pull.refunds), &api, list, lists);
        Ok(streams.decrypting(decrypt, DECRYPT_BATCH))
    })
}

/// Where `open.order.cursor.list` answers its orders and next cursor.
const ORDERS: ListAnswer = ListAnswer::records("data.orderList").next_until("data.cursor", NO_MORE);
/// Where the refund list answers its refunds and next cursor.
const REFUNDS: ListAnswer =
    ListAnswer::records("data.refundOrderInfoList").next_until("data.pcursor", NO_MORE);

quanyu_connector_sdk::shop_list! {
    /// `open.order.cursor.list`, the refund list and the batch decrypt of one shop.
    struct CursorList(KsClient) in "kuaishou" by MAPPING;
    decrypt DECRYPT_API with |items| KsParam::post(
        serde_json::json!({ "batchDecryptList": MAPPING.decrypt_items(items) }).to_string(),
    );
}

/// A window's inclusive millisecond bounds `[start, end - 1 ms]`.
fn millis(window: Window) -> (i64, i64) {
    (
        window.start.timestamp_millis(),
        window.end.timestamp_millis() - 1,
    )
}

#[async_trait]
impl RecordList for CursorList {
    async fn page(&self, q: PageQuery<'_>) -> Result<ListPage, ConnectorError> {
        let rctx = self.context(CURSOR_LIST_API);
        let (begin, end) = millis(q.window);
        let param = serde_json::json!({
            "orderViewStatus": 1,
            "pageSize": self.page_size,
            "sort": 1,
            "queryType": 2,
            "beginTime": begin,
            "endTime": end,
            "cursor": q.at.cursor(&rctx)?,
        });
        let param = KsParam::get(param.to_string());
        self.orders(&rctx, &param, &ORDERS, q.hasher).await
    }
}

#[async_trait]
impl RecordList<RefundRow> for CursorList {
    async fn page(&self, q: PageQuery<'_>) -> Result<ListPage<RefundRow>, ConnectorError> {
        let rctx = self.context(REFUND_LIST_API);
        let (begin, end) = millis(q.window);
        // Every type (9), by update time (2), newest first.
        let param = serde_json::json!({
            "type": 9,
            "queryType": 2,
            "sort": 1,
            "pageSize": self.page_size,
            "beginTime": begin,
            "endTime": end,
            "pcursor": q.at.cursor(&rctx)?,
        });
        self.refunds(&rctx, &KsParam::get(param.to_string()), &REFUNDS)
            .await
    }
}

quanyu_connector_sdk::market_connector! {
    KuaishouConfig, "kuaishou", Kuaishou, "Kuaishou shop (快手电商) orders",
    decrypts: true, state: "ks_", ids: Some("[0-9]{14,20}")
}
