//! Youzan (有赞) mall orders: `youzan.trades.sold.get` 4.0.4, one stream
//! per shop (`kdt_id`), windows by update time (`start_update` /
//! `end_update`, Beijing `yyyy-MM-dd HH:mm:ss`, bounds inclusive), 1-based
//! pages read from the last page backwards (newest first), `total_results`
//! checked against what was fetched. A self-use app fetches each shop's
//! token by silent authorization and keeps it in the token store (tokens
//! live 7 days; fetching too often is throttled). Optionally decrypts
//! receiver phones through `youzan.cloud.secret.decrypt.batch` and hashes
//! them at once. The buyer is the order's `yz_open_id`.
//!
//! Assumptions where Youzan's sources are silent or disagree (see
//! `docs/research/youzan.md`): the list is sorted by update time
//! descending; page depth is the stricter of the documented limits
//! (`page_no` ≤ 100 and `page_no × page_size` ≤ 3,200), so a window with
//! more changes is split in halves until each fits (the kit's
//! `Listing::max_records`); the
//! batch decrypt answers a map from ciphertext to clear text; there is no
//! published trade QPS, so the default is a cautious 10 per second per
//! app.
//!
//! Refunds: `youzan.trade.refund.search` 1.0.0 by `update_time_start` /
//! `update_time_end` (at most 90 days; TOP-style status words, yuan). Order
//! lines are the trade's `orders`.
#![warn(missing_docs)]

pub mod client;
pub mod sandbox;

use quanyu_connector_sdk::market::prelude::*;
use std::collections::HashMap;

pub use client::YouzanClient;

/// The production gateway.
pub const DEFAULT_GATEWAY: &str = "https://open.youzanyun.com";
/// The order list API.
pub const TRADES_API: &str = "youzan.trades.sold.get";
/// Its version (4.0.4 returns `yz_open_id`, not the old `buyer_id`).
pub const TRADES_VERSION: &str = "4.0.4";
/// The refund list API.
pub const REFUNDS_API: &str = "youzan.trade.refund.search";
/// Its version.
pub const REFUNDS_VERSION: &str = "1.0.0";
/// The batch decrypt API.
pub const DECRYPT_API: &str = "youzan.cloud.secret.decrypt.batch";
/// Its version.
pub const DECRYPT_VERSION: &str = "1.0.0";
/// Most ciphertexts one decrypt call takes.
pub const DECRYPT_BATCH: usize = 10_000;
/// Deepest page the list serves.
pub const MAX_PAGE_NO: u64 = 100;
/// Most orders one query may page through (`page_no × page_size`).
pub const MAX_DEPTH: u64 = 3_200;

quanyu_connector_sdk::market_config! {
    /// One Youzan self-use app (client_id) and the shops it serves.
    pub struct YouzanConfig {
        /// The gateway URL (`https://open.youzanyun.com`).
        #[serde(default = "default_gateway")]
        pub gateway: String,
        /// The app's client_id.
        pub client_id: String,
        /// The app's client_secret.
        pub client_secret: SecretRef,
        /// Decrypt receiver phones through `youzan.cloud.secret.decrypt.batch`
        /// and hash them.
        #[serde(default)]
        pub decrypt: bool,
        /// The shops.
        pub shops: Vec<YouzanShop>,
    }
}

/// One shop: its id in the lake and its Youzan shop id (`kdt_id`), which
/// silent authorization grants a token for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YouzanShop {
    /// The shop id used in the lake.
    pub id: String,
    /// Youzan's shop id.
    pub kdt_id: String,
}

fn default_gateway() -> String {
    DEFAULT_GATEWAY.into()
}

/// Build one orders stream per shop, and its refunds stream when `refunds`.
pub fn build_streams(
    cfg: &YouzanConfig,
    setup: &ConnectorSetup,
) -> Result<Vec<Arc<dyn Stream>>, ConfigError> {
    let wiring = AppWiring::new("youzan", &cfg.client_id, setup, cfg.pull.qps);
    let plan = cfg.pull.checked_plan(&wiring, PLATFORM.limits())?;
    let secret = wiring.secret(&cfg.client_secret)?;
    if cfg.pull.refunds && cfg.pull.window_minutes > 90 * 24 * 60 {
        return Err(wiring.error(format!(
            "window_minutes {} is more than the 90 days {REFUNDS_API} takes (shorten the window or set refunds = false)",
            cfg.pull.window_minutes
        )));
    }
    each_shop(&cfg.shops, |shop| {
        if shop.kdt_id.trim().is_empty() {
            return Err(wiring.error(format!("shop {}: kdt_id is empty", shop.id)));
        }
        let client = YouzanClient::new(
            wiring.shop_api(&shop.id, cfg.pull.shop_qps),
            &cfg.gateway,
            &cfg.client_id,
            secret.clone(),
            shop.kdt_id.trim(),
        );
        // No configured token: silent authorization creates it. Kept
        // under the shop's kdt_id too, so a shop id pointed at another
        // kdt_id never reuses the old shop's token.
        let token = wiring.shop_token(&format!("{}#{}", shop.id, shop.kdt_id.trim()), None)?;
        let list = |api| Trades::new(client.with_api(api), &token, &shop.id, &cfg.pull);
        let trades = Listing {
            max_records: Some(MAX_DEPTH.min(MAX_PAGE_NO * u64::from(cfg.pull.page_size))),
            ..Listing::new(TRADES_API, Paging::backward(1, cfg.pull.page_size))
                .within(PLATFORM.limits().longest_window())
        };
        let refunds = Listing::new(REFUNDS_API, trades.paging).within(Duration::days(90));
        // Decrypt calls share the shop's budget.
        let api = client.api().clone();
        let decrypt = cfg.decrypt.then(|| list(api.clone()));
        let streams = wiring.shop_streams(
            &shop.id,
            (plan, cfg.pull.refunds),
            &api,
            list,
            [trades, refunds],
        );
        Ok(streams.decrypting(decrypt, DECRYPT_BATCH))
    })
}

/// Where `youzan.trades.sold.get` answers its trades.
const TRADES: ListAnswer =
    ListAnswer::records("data.full_order_info_list").total("data.total_results");
/// Where `youzan.trade.refund.search` answers its refunds.
const REFUNDS: ListAnswer = ListAnswer::records("data.refunds").total("data.total");

quanyu_connector_sdk::shop_list! {
    /// The trade and refund lists of one shop.
    struct Trades(YouzanClient) in "youzan" by MAPPING;
}

#[async_trait]
impl RecordList for Trades {
    async fn page(&self, q: PageQuery<'_>) -> Result<ListPage, ConnectorError> {
        let rctx = self.context(&format!("{TRADES_API}/{TRADES_VERSION}"));
        // Inclusive second bounds: [start, end - 1 s].
        let params = serde_json::json!({
            "start_update": format_beijing(q.window.start),
            "end_update": format_beijing(q.window.inclusive_end()),
            "page_no": q.at.number(&rctx)?,
            "page_size": self.page_size,
        });
        self.orders(&rctx, &params, &TRADES, q.hasher).await
    }
}

#[async_trait]
impl RecordList<RefundRow> for Trades {
    async fn page(&self, q: PageQuery<'_>) -> Result<ListPage<RefundRow>, ConnectorError> {
        let rctx = self.context(&format!("{REFUNDS_API}/{REFUNDS_VERSION}"));
        let params = serde_json::json!({
            "update_time_start": format_beijing(q.window.start),
            "update_time_end": format_beijing(q.window.inclusive_end()),
            "page_no": q.at.number(&rctx)?,
            "page_size": self.page_size,
        });
        self.refunds(&rctx, &params, &REFUNDS).await
    }
}

#[derive(Deserialize)]
struct DecryptAnswer {
    #[serde(default)]
    data: Option<HashMap<String, Option<String>>>,
}

/// `youzan.cloud.secret.decrypt.batch` for one shop: keys are per shop, so
/// the shop's own token decrypts its ciphertexts.
#[async_trait]
impl PhoneDecrypt for Trades {
    async fn decrypt(&self, items: &[(&str, &str)]) -> Result<Vec<Option<String>>, ConnectorError> {
        let method = format!("{DECRYPT_API}/{DECRYPT_VERSION}");
        let rctx = self.context(&method);
        // Each ciphertext once (a receiver repeats), never an empty one
        // (Youzan answers those with a system error).
        let mut sources: Vec<&str> = items
            .iter()
            .map(|(_, c)| *c)
            .filter(|c| !c.is_empty())
            .collect();
        sources.sort_unstable();
        sources.dedup();
        if sources.is_empty() {
            return Ok(vec![None; items.len()]);
        }
        let params = serde_json::json!({ "sources": sources });
        let body = self
            .client
            .call(&rctx, &method, &self.token, &params)
            .await?;
        let answer: DecryptAnswer = read_answer(&rctx, &body, "decrypt")?;
        let clear = answer.data.unwrap_or_default();
        Ok(items
            .iter()
            .map(|(_, c)| clear.get(*c).cloned().flatten())
            .collect())
    }
}

quanyu_connector_sdk::market_connector! {
    YouzanConfig, "youzan", Youzan, "Youzan (有赞) mall orders",
    decrypts: true, state: "yz_", ids: Some("E[0-9]{23}")
}
