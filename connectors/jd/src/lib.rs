//! JD (京东 宙斯 / JOS) POP orders: `jingdong.pop.order.search` through the
//! `/routerjson` gateway, one stream per shop, windows of at most a month
//! (30 days) by modification time (`dateType=0`), newest first
//! (`sortType=1`), 1-based pages read from the last page backwards (an
//! order modified meanwhile leaves the window and only shifts unread orders
//! towards pages still to come), with `orderTotal` checked against what was
//! fetched. Signed MD5(app_secret + Σ sorted key+value + app_secret), upper
//! hex. Shop tokens are refreshed through OAuth2
//! `/oauth2/refresh_token` at `open-oauth.jd.com` and persisted.
//!
//! JD returns receivers as TDE ciphertext with masks beside them and has no
//! decrypt API in this connector's scope: rows keep the mask only, never a
//! ciphertext. Buyers are identified by `open_id_buyer` (per app), so JD
//! orders join other records through the buyer within the shop and
//! package-insert cards naming the order.
//!
//! Refunds: `jingdong.pop.afs.soa.refundapply.queryPageList` lists refund
//! applications by the time they were asked or reviewed, not by
//! modification: each window is walked by a cursor through the applications
//! asked in it, then those reviewed in it (at most 50 a page). Assumed from
//! the docs we could read: `applyRefundSum` is in fen, a review sets
//! `checkTime`. Order lines are the `itemInfoList` SKUs.
#![warn(missing_docs)]

pub mod client;
pub mod sandbox;
pub mod sign;

use quanyu_connector_sdk::market::prelude::*;

pub use client::JdClient;

/// The production gateway.
pub const DEFAULT_GATEWAY: &str = "https://api.jd.com/routerjson";
/// The production OAuth base (token refresh).
pub const DEFAULT_OAUTH_BASE: &str = "https://open-oauth.jd.com";
/// The API this connector pulls.
pub const SEARCH_API: &str = "jingdong.pop.order.search";
/// The root of its answer (JD's own spelling).
pub const SEARCH_ROOT: &str = "jingdong_pop_order_search_responce";
/// The refund application list API.
pub const REFUND_API: &str = "jingdong.pop.afs.soa.refundapply.queryPageList";
/// Its answer's root field.
pub const REFUND_ROOT: &str = "jingdong_pop_afs_soa_refundapply_queryPageList_responce";
/// Most refund applications per page.
pub const REFUND_PAGE_SIZE: u32 = 50;
/// Every order state, so that every change is seen.
pub const ORDER_STATES: &str = "WAIT_SELLER_STOCK_OUT,WAIT_GOODS_RECEIVE_CONFIRM,WAIT_SELLER_DELIVERY,PAUSE,FINISHED_L,TRADE_CANCELED,LOCKED,NOT_PAY,DELIVERY_RETURN";
/// The order fields requested (`optional_fields`): JD returns only these.
pub const OPTIONAL_FIELDS: &str = "orderId,venderId,orderState,orderTotalPrice,orderSellerPrice,orderPayment,freightPrice,sellerDiscount,orderStartTime,paymentConfirmTime,modified,pin,open_id_buyer,consigneeInfo,itemInfoList";

quanyu_connector_sdk::market_config! {
    /// One JD app and the shops (vendors) authorized to it.
    pub struct JdConfig {
        /// The gateway URL (`https://api.jd.com/routerjson`).
        #[serde(default = "default_gateway")]
        pub gateway: String,
        /// The OAuth base for `/oauth2/refresh_token` (`https://open-oauth.jd.com`).
        #[serde(default = "default_oauth_base")]
        pub oauth_base: String,
        /// The app key.
        pub app_key: String,
        /// The app secret (signs calls and refreshes tokens).
        pub app_secret: SecretRef,
        /// The shops, each with its own tokens.
        pub shops: Vec<JdShop>,
    }
}

/// One authorized shop: its id in the lake and its tokens.
pub type JdShop = TokenShop;

fn default_gateway() -> String {
    DEFAULT_GATEWAY.into()
}
fn default_oauth_base() -> String {
    DEFAULT_OAUTH_BASE.into()
}

/// Build one orders stream per shop, and its refunds stream when `refunds`.
pub fn build_streams(
    cfg: &JdConfig,
    setup: &ConnectorSetup,
) -> Result<Vec<Arc<dyn Stream>>, ConfigError> {
    let wiring = AppWiring::new("jd", &cfg.app_key, setup, cfg.pull.qps);
    let base = JdClient::new(
        wiring.app_api(),
        &cfg.gateway,
        &cfg.oauth_base,
        &cfg.app_key,
        wiring.secret(&cfg.app_secret)?,
    );
    let plan = cfg.pull.checked_plan(&wiring, PLATFORM.limits())?;
    each_shop(&cfg.shops, |shop| {
        let token = wiring.token_of(shop)?;
        let list = |api| OrderSearch::new(base.with_api(api), &token, &shop.id, &cfg.pull);
        let longest = PLATFORM.limits().longest_window();
        let orders =
            Listing::new(SEARCH_API, Paging::backward(1, cfg.pull.page_size)).within(longest);
        // Refund applications are listed by the time they were asked,
        // then by the time they were reviewed: a cursor walks both.
        let refunds = Listing::new(REFUND_API, Paging::Cursor).within(longest);
        let api = wiring.shop_api(&shop.id, cfg.pull.shop_qps);
        let lists = [orders, refunds];
        Ok(wiring.shop_streams(&shop.id, (plan, cfg.pull.refunds), &api, list, lists))
    })
}

/// Where the order search answers its orders and their count.
const ORDERS: ListAnswer =
    ListAnswer::records("jingdong_pop_order_search_responce.searchorderinfo_result.orderInfoList")
        .holder("jingdong_pop_order_search_responce.searchorderinfo_result")
        .total("jingdong_pop_order_search_responce.searchorderinfo_result.orderTotal");

quanyu_connector_sdk::shop_list! {
    /// `jingdong.pop.order.search` and the refund applications of one shop.
    struct OrderSearch(JdClient) in "jd" by MAPPING;
}

impl OrderSearch {
    /// The business parameters of one page, as the JSON text sent in
    /// `360buy_param_json`.
    fn search_params(&self, start: &str, end: &str, page: u64) -> String {
        serde_json::json!({
            "start_date": start,
            "end_date": end,
            "order_state": ORDER_STATES,
            "optional_fields": OPTIONAL_FIELDS,
            "page": page.to_string(),
            "page_size": self.page_size.to_string(),
            "dateType": "0",
            "sortType": "1",
        })
        .to_string()
    }
}

#[async_trait]
impl RecordList for OrderSearch {
    async fn page(&self, q: PageQuery<'_>) -> Result<ListPage, ConnectorError> {
        let rctx = self.context(SEARCH_API);
        // Inclusive second bounds in Beijing time: [start, end - 1 s].
        let param = self.search_params(
            &format_beijing(q.window.start),
            &format_beijing(q.window.inclusive_end()),
            q.at.number(&rctx)?,
        );
        self.orders(&rctx, param.as_str(), &ORDERS, q.hasher).await
    }
}

#[derive(Deserialize)]
struct RefundEnvelope<'a> {
    #[serde(
        borrow,
        rename = "jingdong_pop_afs_soa_refundapply_queryPageList_responce"
    )]
    root: Option<RefundRoot<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefundRoot<'a> {
    #[serde(borrow)]
    query_result: Option<RefundResult<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefundResult<'a> {
    success: Option<bool>,
    result_code: Option<String>,
    total_count: Option<u64>,
    #[serde(borrow, default)]
    result: Option<Vec<&'a RawValue>>,
}

/// Where a refund walk stands: the applications asked in the window, then
/// those reviewed in it, each from page 1.
fn refund_phase(cursor: &str) -> Option<(&'static str, u64)> {
    match cursor.split_once(':') {
        None if cursor.is_empty() => Some(("apply", 1)),
        Some(("apply", n)) => n.parse().ok().map(|n| ("apply", n)),
        Some(("check", n)) => n.parse().ok().map(|n| ("check", n)),
        _ => None,
    }
}

#[async_trait]
impl RecordList<RefundRow> for OrderSearch {
    async fn page(&self, q: PageQuery<'_>) -> Result<ListPage<RefundRow>, ConnectorError> {
        let PageQuery { window, at, .. } = q;
        let rctx = self.context(REFUND_API);
        let protocol = |m: String| ConnectorError::new(&rctx, ErrorKind::Protocol, m);
        let cursor = at.cursor(&rctx)?;
        let (phase, page) = refund_phase(cursor)
            .ok_or_else(|| protocol(format!("bad refund cursor {cursor:?}")))?;
        let end = window.inclusive_end();
        let size = self.page_size.min(REFUND_PAGE_SIZE);
        let param = serde_json::json!({
            format!("{phase}TimeStart"): format_beijing(window.start),
            format!("{phase}TimeEnd"): format_beijing(end),
            "pageIndex": page.to_string(),
            "pageSize": size.to_string(),
        })
        .to_string();
        self.client
            .call_with(&rctx, REFUND_API, &self.token, param.as_str(), |body| {
                let env: RefundEnvelope = read_answer(&rctx, body, "refund applications")?;
                let result = env
                    .root
                    .and_then(|r| r.query_result)
                    .ok_or_else(|| protocol(format!("answer has no {REFUND_ROOT}.queryResult")))?;
                if result.success != Some(true) {
                    return Err(ConnectorError::new(
                        &rctx,
                        ErrorKind::InvalidRequest,
                        format!(
                            "refund query refused: {}",
                            result.result_code.as_deref().unwrap_or("no resultCode")
                        ),
                    ));
                }
                let total = result.total_count.unwrap_or(0);
                let next = if page * u64::from(size) < total {
                    Some(format!("{phase}:{}", page + 1))
                } else if phase == "apply" {
                    Some("check:1".to_string())
                } else {
                    None
                };
                Ok(ListPage {
                    total: None,
                    next,
                    records: ListPage::mapped(result.result.unwrap_or_default(), |raw| {
                        MAPPING.refund(raw, &self.shop)
                    }),
                })
            })
            .await
    }
}

quanyu_connector_sdk::market_connector! {
    JdConfig, "jd", Jd, "JD (京东) POP orders",
    decrypts: false, state: "jd_", ids: Some("[0-9]{9,15}")
}
