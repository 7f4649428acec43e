//! Pinduoduo (拼多多) orders: `pdd.order.number.list.increment.get`, one
//! stream per shop, windows of at most 30 minutes by update time, 1-based
//! pages read from the last page backwards (the list is newest first, so an
//! order updated meanwhile never shifts an unread one past us), with
//! `total_count` checked against what was fetched. Signed
//! MD5(client_secret + Σ sorted key+value + client_secret). Shop tokens
//! are refreshed through `pdd.pop.auth.token.refresh` and persisted.
//! Optionally decrypts receiver phones through `pdd.open.decrypt.batch`
//! (at most 100 per call, once per 10 seconds outside 多多云 by default)
//! and hashes them at once. Pinduoduo exposes no buyer id: an order joins
//! other records only through its phone or a card naming it.
//!
//! Refunds: `pdd.refund.list.increment.get` (every status and type) in the
//! same 30-minute windows; `refund_amount` in fen; the request names the
//! goods, not a line. Order lines are the `item_list` SKUs.
#![warn(missing_docs)]

pub mod client;
pub mod sandbox;
pub mod sign;

use quanyu_connector_sdk::market::prelude::*;

pub use client::PddClient;

/// The production router.
pub const DEFAULT_ROUTER: &str = "https://gw-api.pinduoduo.com/api/router";
/// The API this connector pulls.
pub const INCREMENT_API: &str = "pdd.order.number.list.increment.get";
/// The after-sale list API.
pub const REFUNDS_API: &str = "pdd.refund.list.increment.get";
/// The receiver decrypt API.
pub const DECRYPT_API: &str = "pdd.open.decrypt.batch";
/// Most ciphertexts one decrypt call takes.
pub const DECRYPT_BATCH: usize = 100;

quanyu_connector_sdk::market_config! {
    /// One Pinduoduo app (client_id) and the shops authorized to it.
    pub struct PddConfig {
        /// The router URL (`https://gw-api.pinduoduo.com/api/router`).
        #[serde(default = "default_router")]
        pub router: String,
        /// The app's client_id.
        pub client_id: String,
        /// The app's client_secret.
        pub client_secret: SecretRef,
        /// Decrypt receiver phones through `pdd.open.decrypt.batch` and hash
        /// them (uses the shop's decrypt quota).
        #[serde(default)]
        pub decrypt: bool,
        /// Seconds between decrypt calls per shop: Pinduoduo allows one call
        /// per 10 seconds outside 多多云; 0 = no limit.
        #[serde(default = "default_decrypt_interval_secs")]
        pub decrypt_interval_secs: u64,
        /// The shops, each with its own tokens.
        pub shops: Vec<PddShop>,
    }
}

/// One authorized shop (mall): its id in the lake and its tokens (from
/// `pdd.pop.auth.token.create`).
pub type PddShop = TokenShop;

fn default_router() -> String {
    DEFAULT_ROUTER.into()
}
fn default_decrypt_interval_secs() -> u64 {
    10
}

/// Build one orders stream per shop, and its refunds stream when `refunds`.
pub fn build_streams(
    cfg: &PddConfig,
    setup: &ConnectorSetup,
) -> Result<Vec<Arc<dyn Stream>>, ConfigError> {
    let wiring = AppWiring::new("pdd", &cfg.client_id, setup, cfg.pull.qps);
    let secret = wiring.secret(&cfg.client_secret)?;
    let base = PddClient::new(wiring.app_api(), &cfg.router, &cfg.client_id, secret);
    // The increment API's data settles about three minutes behind.
    let plan = cfg.pull.checked_plan(&wiring, PLATFORM.limits())?;
    each_shop(&cfg.shops, |shop| {
        let token = wiring.token_of(shop)?;
        let list = |api| Increments::new(base.with_api(api), &token, &shop.id, &cfg.pull);
        let listing = |api| {
            Listing::new(api, Paging::backward(1, cfg.pull.page_size))
                .within(PLATFORM.limits().longest_window())
        };
        // The shop's lists share its per-shop budget; decrypt calls have
        // their own interval too.
        let api = wiring.shop_api(&shop.id, cfg.pull.shop_qps);
        let decrypt = cfg.decrypt.then(|| {
            let every = std::time::Duration::from_secs(cfg.decrypt_interval_secs);
            list(wiring.decrypt_api_every(&shop.id, cfg.pull.shop_qps, every))
        });
        let lists = [listing(INCREMENT_API), listing(REFUNDS_API)];
        let streams = wiring.shop_streams(&shop.id, (plan, cfg.pull.refunds), &api, list, lists);
        Ok(streams.decrypting(decrypt, DECRYPT_BATCH))
    })
}

/// Where the order increment list answers its orders.
const ORDERS: ListAnswer = ListAnswer::records("order_sn_increment_get_response.order_sn_list")
    .total("order_sn_increment_get_response.total_count");
/// Where the after-sale increment list answers its after-sales.
const REFUNDS: ListAnswer = ListAnswer::records("refund_increment_get_response.refund_list")
    .total("refund_increment_get_response.total_count");

quanyu_connector_sdk::shop_list! {
    /// The increment lists (orders, after-sales) and the batch decrypt of one shop.
    struct Increments(PddClient) in "pdd" by MAPPING;
    decrypt DECRYPT_API with |items| [("data_list", MAPPING.decrypt_items(items).to_string())];
}

#[async_trait]
impl RecordList for Increments {
    async fn page(&self, q: PageQuery<'_>) -> Result<ListPage, ConnectorError> {
        let rctx = self.context(INCREMENT_API);
        let mut params = self.window_params(&rctx, q.window, q.at)?;
        // 5 = every status.
        params.push(("is_lucky_flag", "0".into()));
        params.push(("order_status", "5".into()));
        params.push(("refund_status", "5".into()));
        self.orders(&rctx, &params, &ORDERS, q.hasher).await
    }
}

#[async_trait]
impl RecordList<RefundRow> for Increments {
    async fn page(&self, q: PageQuery<'_>) -> Result<ListPage<RefundRow>, ConnectorError> {
        let rctx = self.context(REFUNDS_API);
        let mut params = self.window_params(&rctx, q.window, q.at)?;
        // 1 = every status, every type.
        params.push(("after_sales_status", "1".into()));
        params.push(("after_sales_type", "1".into()));
        self.refunds(&rctx, &params, &REFUNDS).await
    }
}

impl Increments {
    /// The window and page parameters of an increment list: inclusive
    /// second bounds `[start, end - 1 s]`.
    fn window_params(
        &self,
        rctx: &RequestContext,
        window: Window,
        at: PageAt<'_>,
    ) -> Result<Vec<(&'static str, String)>, ConnectorError> {
        let (start, end) = window.inclusive_seconds();
        Ok(vec![
            ("start_updated_at", start.to_string()),
            ("end_updated_at", end.to_string()),
            ("page", at.number(rctx)?.to_string()),
            ("page_size", self.page_size.to_string()),
        ])
    }
}

quanyu_connector_sdk::market_connector! {
    PddConfig, "pdd", Pdd, "Pinduoduo (拼多多) orders",
    decrypts: true, state: "pdd_", ids: Some("[0-9]{6}-[0-9]{10,20}")
}
