//! Jushuitan (聚水潭) ERP orders: `orders/single/query` by modified time,
//! windows of at most 7 days, 1-based pages read from the last page
//! backwards (the list is newest first, so an order modified meanwhile never
//! shifts an unread one past us), `data_count` checked against what was
//! fetched. One ERP account (company) has one access token, refreshed
//! through `/openWeb/auth/refreshToken` and persisted; each configured ERP
//! shop is its own stream sharing it. The ERP has no decrypt API: it
//! returns receiver phones as its source channel gave them (its own
//! mini-program shops: in clear, hashed at once).
//!
//! Not built: the `start_ts` row-version cursor (an alternative to modified
//! windows); modified windows with a look-back cover the same changes.
//!
//! Refunds: the ERP's after-sale orders, `refund/single/query` by modified
//! time per shop (`refund` in yuan; the platform order is `so_id`). Order
//! lines are the order's `items` (`oi_id`).
#![warn(missing_docs)]

pub mod client;
pub mod sandbox;
pub mod sign;

use quanyu_connector_sdk::market::prelude::*;

pub use client::JstClient;

/// The production gateway.
pub const DEFAULT_GATEWAY: &str = "https://openapi.jushuitan.com";
/// The order query path.
pub const ORDERS_PATH: &str = "/open/orders/single/query";
/// The after-sale (refund) query path.
pub const REFUNDS_PATH: &str = "/open/refund/single/query";

quanyu_connector_sdk::market_config! {
    /// One Jushuitan app key and the ERP account (company) it is authorized for.
    pub struct JushuitanConfig {
        /// Gateway URL.
        #[serde(default = "default_gateway")]
        pub gateway: String,
        /// The app key.
        pub app_key: String,
        /// The app secret.
        pub app_secret: SecretRef,
        /// The company's access token.
        pub access_token: SecretRef,
        /// The company's refresh token.
        #[serde(default)]
        pub refresh_token: Option<SecretRef>,
        /// The ERP shops to pull, each a stream.
        pub shops: Vec<JushuitanShop>,
    }
}

/// One ERP shop.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JushuitanShop {
    /// The shop id used in the lake.
    pub id: String,
    /// The ERP's numeric `shop_id`.
    pub shop_id: i64,
}

fn default_gateway() -> String {
    DEFAULT_GATEWAY.into()
}

/// Build one orders stream per ERP shop, and its refunds stream when `refunds`.
pub fn build_streams(
    cfg: &JushuitanConfig,
    setup: &ConnectorSetup,
) -> Result<Vec<Arc<dyn Stream>>, ConfigError> {
    let wiring = AppWiring::new("jushuitan", &cfg.app_key, setup, cfg.pull.qps);
    // One token for the whole ERP account (company), shared by its shops.
    let token = wiring.shop_token(
        "company",
        Some(TokenSet::configured(
            wiring.secret(&cfg.access_token)?,
            wiring.optional_secret(cfg.refresh_token.as_ref())?,
        )),
    )?;
    let client = JstClient::new(
        wiring.app_api(),
        &cfg.gateway,
        &cfg.app_key,
        wiring.secret(&cfg.app_secret)?,
    );
    let plan = cfg.pull.checked_plan(&wiring, PLATFORM.limits())?;
    each_shop(&cfg.shops, |s| {
        let list = |api| OrderQuery {
            client: client.with_api(api),
            token: token.clone(),
            shop: s.clone(),
            page_size: cfg.pull.page_size,
        };
        let listing = |api| {
            Listing::new(api, Paging::backward(1, cfg.pull.page_size))
                .within(PLATFORM.limits().longest_window())
        };
        let lists = [
            listing("orders/single/query"),
            listing("refund/single/query"),
        ];
        let api = wiring.shop_api(&s.id, cfg.pull.shop_qps);
        Ok(wiring.shop_streams(&s.id, (plan, cfg.pull.refunds), &api, list, lists))
    })
}

/// Where `orders/single/query` answers its orders.
const ORDERS: ListAnswer = ListAnswer::records("data.orders").total("data.data_count");
/// Where `refund/single/query` answers its refunds.
const REFUNDS: ListAnswer = ListAnswer::records("data.datas").total("data.data_count");

/// `orders/single/query` and `refund/single/query` of one ERP shop.
#[derive(Clone)]
struct OrderQuery {
    client: JstClient,
    token: Arc<ShopToken>,
    shop: JushuitanShop,
    page_size: u32,
}

impl Lists for OrderQuery {
    fn http(&self) -> &ApiClient {
        self.client.api()
    }
}

#[async_trait]
impl RecordList<RefundRow> for OrderQuery {
    async fn page(&self, q: PageQuery<'_>) -> Result<ListPage<RefundRow>, ConnectorError> {
        let PageQuery { window, at, .. } = q;
        let rctx = RequestContext::new("jushuitan", Some(&self.shop.id), "refund/single/query");
        let biz = serde_json::json!({
            "shop_ids": [self.shop.shop_id],
            "modified_begin": format_beijing(window.start),
            "modified_end": format_beijing(window.inclusive_end()),
            "page_index": at.number(&rctx)?,
            "page_size": self.page_size,
        })
        .to_string();
        let map = |raw: &str| MAPPING.refund(raw, &self.shop.id);
        self.client
            .list_page(
                &rctx,
                REFUNDS_PATH,
                &self.token,
                biz.as_str(),
                &REFUNDS,
                map,
            )
            .await
    }
}

#[async_trait]
impl RecordList for OrderQuery {
    async fn page(&self, q: PageQuery<'_>) -> Result<ListPage, ConnectorError> {
        let PageQuery { window, at, hasher } = q;
        let rctx = RequestContext::new("jushuitan", Some(&self.shop.id), "orders/single/query");
        // Inclusive bounds with one-second resolution: [start, end - 1s].
        let biz = serde_json::json!({
            "shop_id": self.shop.shop_id,
            "modified_begin": format_beijing(window.start),
            "modified_end": format_beijing(window.inclusive_end()),
            "date_type": 0,
            "page_index": at.number(&rctx)?,
            "page_size": self.page_size,
        })
        .to_string();
        let map = |raw: &str| MAPPING.order(raw, &self.shop.id, hasher);
        self.client
            .list_page(&rctx, ORDERS_PATH, &self.token, biz.as_str(), &ORDERS, map)
            .await
    }
}

quanyu_connector_sdk::market_connector! {
    JushuitanConfig, "jushuitan", Jushuitan, "Jushuitan (聚水潭) ERP orders",
    decrypts: false, state: "jst_", ids: None
}
