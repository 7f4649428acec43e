//! Taobao / Tmall (TOP) orders: `taobao.trades.sold.increment.get`, one
//! stream per shop, windows of at most one day, paged backwards from the
//! last page by `total_results` (as TOP recommends: an order modified while
//! pages are read can then never be skipped), signed as TOP signs (md5,
//! hmac, hmac-sha256). Optionally decrypts receivers through
//! `taobao.top.oaid.decrypt` and hashes the phones at once.
//!
//! Refunds (`refunds = true`, the default): `taobao.refunds.receive.get` by
//! modification time in the same windows and pages, one row per refund of
//! a sub-order (`oid`; the trade's own id for a refund of the whole
//! trade); order lines from the trade's `orders`.
#![warn(missing_docs)]

pub mod client;
pub mod sandbox;
pub mod sign;

use quanyu_connector_sdk::market::prelude::*;

pub use client::TopClient;
pub use sign::SignMethod;

/// The production gateway.
pub const DEFAULT_GATEWAY: &str = "https://eco.taobao.com/router/rest";
/// The API this connector pulls.
pub const INCREMENT_API: &str = "taobao.trades.sold.increment.get";
/// The refund list API.
pub const REFUNDS_API: &str = "taobao.refunds.receive.get";
/// The refund fields requested.
pub const REFUND_FIELDS: &str = "refund_id,tid,oid,total_fee,refund_fee,status,created,modified";
/// The receiver decrypt API.
pub const DECRYPT_API: &str = "taobao.top.oaid.decrypt";
/// Most OAIDs one decrypt call takes.
pub const DECRYPT_BATCH: usize = 20;
/// The trade fields requested (`oaid` is returned only with the receiver fields).
pub const FIELDS: &str =
    "tid,tid_str,status,type,created,modified,pay_time,payment,total_fee,post_fee,\
buyer_open_uid,receiver_name,receiver_address,receiver_mobile,receiver_phone,receiver_state,\
receiver_city,oaid,orders.oid,orders.num_iid,orders.sku_id,orders.title,orders.num,orders.price,\
orders.payment";

quanyu_connector_sdk::market_config! {
    /// One Taobao app key and the shops authorized to it.
    pub struct TaobaoConfig {
        /// TOP gateway URL.
        #[serde(default = "default_gateway")]
        pub gateway: String,
        /// The app key.
        pub app_key: String,
        /// The app secret: `{ env = "..." }` or `{ file = "..." }`.
        pub app_secret: SecretRef,
        /// `md5`, `hmac` or `hmac-sha256`.
        #[serde(default)]
        pub sign_method: SignMethod,
        /// Pages of one window requested at once (1–32), within `qps`.
        #[serde(default = "default_concurrency")]
        pub concurrency: u32,
        /// Decrypt receivers through `taobao.top.oaid.decrypt` and hash their
        /// phones (needs the app's 解密 permission; billed per call by TOP).
        #[serde(default)]
        pub decrypt: bool,
        /// Decrypt calls per second for this app key (its own budget).
        #[serde(default = "default_decrypt_qps")]
        pub decrypt_qps: u32,
        /// The decrypt `scene` code (1001–1007 shipping, 2001 after-sales, 2002
        /// customer care).
        #[serde(default = "default_decrypt_scene")]
        pub decrypt_scene: String,
        /// The shops, each with its own session (user access token).
        pub shops: Vec<TaobaoShop>,
    }
}

/// One authorized shop.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaobaoShop {
    /// The shop id used in the lake (seller nick or shop id).
    pub id: String,
    /// The shop's session key.
    pub session: SecretRef,
}

fn default_gateway() -> String {
    DEFAULT_GATEWAY.into()
}
fn default_concurrency() -> u32 {
    4
}
fn default_decrypt_qps() -> u32 {
    2
}
fn default_decrypt_scene() -> String {
    "2002".into()
}

/// Build one orders stream per shop, and its refunds stream when `refunds`.
pub fn build_streams(
    cfg: &TaobaoConfig,
    setup: &ConnectorSetup,
) -> Result<Vec<Arc<dyn Stream>>, ConfigError> {
    let wiring = AppWiring::new("taobao", &cfg.app_key, setup, cfg.pull.qps);
    wiring.check_range("concurrency", cfg.concurrency, 1..=32, "")?;
    let client = TopClient::new(
        wiring.app_api(),
        &cfg.gateway,
        &cfg.app_key,
        wiring.secret(&cfg.app_secret)?,
        cfg.sign_method,
    );
    let plan = cfg.pull.checked_plan(&wiring, PLATFORM.limits())?;
    let paging = Paging::Backward {
        first: 1,
        size: cfg.pull.page_size,
        ahead: cfg.concurrency as usize,
    };
    each_shop(&cfg.shops, |shop| {
        let session = wiring.secret(&shop.session)?;
        let list = |api| TopList {
            client: client.with_api(api),
            session: session.clone(),
            shop: shop.id.clone(),
            page_size: cfg.pull.page_size,
            scene: cfg.decrypt_scene.clone(),
        };
        let listing = |api| Listing::new(api, paging).within(PLATFORM.limits().longest_window());
        // Decrypt calls have their own budget for the app, shared by its shops.
        let decrypt = cfg
            .decrypt
            .then(|| list(wiring.app_decrypt_api(cfg.decrypt_qps)));
        let lists = [listing(INCREMENT_API), listing(REFUNDS_API)];
        let api = wiring.shop_api(&shop.id, cfg.pull.shop_qps);
        let streams = wiring.shop_streams(&shop.id, (plan, cfg.pull.refunds), &api, list, lists);
        Ok(streams.decrypting(decrypt, DECRYPT_BATCH))
    })
}

/// Where `taobao.trades.sold.increment.get` answers its trades.
const TRADES: ListAnswer = ListAnswer::records("trades_sold_increment_get_response.trades.trade")
    .total("trades_sold_increment_get_response.total_results");
/// Where `taobao.refunds.receive.get` answers its refunds.
const REFUNDS: ListAnswer = ListAnswer::records("refunds_receive_get_response.refunds.refund")
    .total("refunds_receive_get_response.total_results");

/// A list of one shop by modification time: `taobao.trades.sold.increment.get`
/// or `taobao.refunds.receive.get`.
struct TopList {
    client: TopClient,
    session: Secret,
    shop: String,
    page_size: u32,
    /// The decrypt scene (`taobao.top.oaid.decrypt`).
    scene: String,
}

impl TopList {
    /// The list's parameters for page `at` of `window`: TOP takes
    /// inclusive bounds with one-second resolution, `[start, end - 1s]`.
    fn query(
        &self,
        rctx: &RequestContext,
        fields: &str,
        window: Window,
        at: PageAt<'_>,
    ) -> Result<[(&'static str, String); 5], ConnectorError> {
        Ok([
            ("fields", fields.to_string()),
            ("start_modified", format_beijing(window.start)),
            ("end_modified", format_beijing(window.inclusive_end())),
            ("page_no", at.number(rctx)?.to_string()),
            ("page_size", self.page_size.to_string()),
        ])
    }
}

impl Lists for TopList {
    fn http(&self) -> &ApiClient {
        self.client.api()
    }
}

#[async_trait]
impl RecordList<RefundRow> for TopList {
    async fn page(&self, q: PageQuery<'_>) -> Result<ListPage<RefundRow>, ConnectorError> {
        let PageQuery { window, at, .. } = q;
        let rctx = RequestContext::new("taobao", Some(&self.shop), REFUNDS_API);
        let biz = self.query(&rctx, REFUND_FIELDS, window, at)?;
        let map = |raw: &str| MAPPING.refund(raw, &self.shop);
        self.client
            .call_with(&rctx, REFUNDS_API, &self.session, &biz, |body| {
                REFUNDS.read(&rctx, body, map)
            })
            .await
    }
}

#[async_trait]
impl RecordList for TopList {
    async fn page(&self, q: PageQuery<'_>) -> Result<ListPage, ConnectorError> {
        let PageQuery { window, at, hasher } = q;
        let rctx = RequestContext::new("taobao", Some(&self.shop), INCREMENT_API);
        let biz = self.query(&rctx, FIELDS, window, at)?;
        let map = |raw: &str| MAPPING.order(raw, &self.shop, hasher);
        self.client
            .call_with(&rctx, INCREMENT_API, &self.session, &biz, |body| {
                TRADES.read(&rctx, body, map)
            })
            .await
    }
}

#[derive(Deserialize)]
struct DecryptEnvelope {
    top_oaid_decrypt_response: Option<DecryptResponse>,
}

#[derive(Deserialize)]
struct DecryptResponse {
    receiver_list: Option<ReceiverList>,
}

/// TOP wraps lists (`{"receiver":[..]}`); the simplified format does not.
#[derive(Deserialize)]
#[serde(untagged)]
enum ReceiverList {
    Wrapped { receiver: Vec<Receiver> },
    Plain(Vec<Receiver>),
}

#[derive(Deserialize)]
struct Receiver {
    tid: Option<serde_json::Value>,
    mobile: Option<String>,
}

/// `taobao.top.oaid.decrypt` for one shop, under the app's decrypt budget.
#[async_trait]
impl PhoneDecrypt for TopList {
    async fn decrypt(&self, items: &[(&str, &str)]) -> Result<Vec<Option<String>>, ConnectorError> {
        let rctx = RequestContext::new("taobao", Some(&self.shop), DECRYPT_API);
        let query: Vec<serde_json::Value> = items
            .iter()
            .map(|(tid, oaid)| serde_json::json!({ "tid": tid, "oaid": oaid, "scene": self.scene }))
            .collect();
        let biz = [("query_list", serde_json::Value::Array(query).to_string())];
        let body = self
            .client
            .call(&rctx, DECRYPT_API, &self.session, &biz)
            .await?;
        let env: DecryptEnvelope = read_answer(&rctx, &body, "decrypt")?;
        let receivers = match env.top_oaid_decrypt_response.and_then(|r| r.receiver_list) {
            Some(ReceiverList::Wrapped { receiver }) => receiver,
            Some(ReceiverList::Plain(v)) => v,
            None => vec![],
        };
        Ok(phones_for(
            items,
            &receivers,
            |r, tid, _| r.tid.as_ref().and_then(text_of).as_deref() == Some(tid),
            |r| r.mobile.clone(),
        ))
    }
}

quanyu_connector_sdk::market_connector! {
    TaobaoConfig, "taobao", Taobao, "Taobao / Tmall (淘宝/天猫) orders",
    decrypts: true, state: "tb_", ids: Some("[0-9]{12,20}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A section with the required keys and `extra` (`, "key": value`).
    fn section(extra: &str) -> Result<TaobaoConfig, String> {
        let text =
            format!(r#"{{"app_key": "k", "app_secret": {{"env": "X"}}, "shops": []{extra}}}"#);
        serde_json::from_str(&text).map_err(|e| e.to_string())
    }

    /// A section that says nothing of the pull gets `platform.toml`'s
    /// defaults (and refunds); what it says wins; an unknown key is refused.
    #[test]
    fn pull_settings_default_to_the_platform_facts() {
        let d = *PLATFORM.defaults();
        let pull = section("").unwrap().pull;
        assert_eq!(
            (pull.qps, pull.shop_qps, pull.page_size, pull.window_minutes),
            (d.qps, d.shop_qps, d.page_size, d.window_minutes)
        );
        assert_eq!(
            (pull.lookback_minutes, pull.initial_days, pull.refunds),
            (d.lookback_minutes, d.initial_days, true)
        );
        let pull = section(r#", "page_size": 50, "shop_qps": 3, "refunds": false"#)
            .unwrap()
            .pull;
        assert_eq!(
            (pull.page_size, pull.shop_qps, pull.refunds),
            (50, 3, false)
        );
        assert!(section(r#", "page_sise": 50"#)
            .unwrap_err()
            .contains("page_sise"));
    }
}
