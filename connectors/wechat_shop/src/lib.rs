//! WeChat Channels shop (微信小店 / 视频号小店) orders: one stream per shop
//! account (appid), windows by update time
//! (`/channels/ec/order/list/get` with `update_time_range`, at most 7
//! days, unix seconds), paged by the `next_key` cursor until `has_more` is
//! false, then each order read whole through `/channels/ec/order/get`
//! (several at once, in list order). The account's token comes from
//! `stable_token` and is kept in the token store. The buyer is the order's
//! `openid`; its `unionid`, present where the shop is bound to the brand's
//! WeChat Open Platform account, joins the WeCom contact with the same
//! unionid: the private-domain link.
//!
//! Not pulled: the receiver's phone in clear. The shop masks it
//! (`138****0000`), and decoding (`/channels/ec/order/sensitiveinfo/decode`)
//! is one call per order with a quota of 30 a day, so this connector does
//! not decrypt.
//!
//! Assumptions where WeChat's sources are silent (see
//! `docs/research/wechat-channels-shop.md`): window bounds are inclusive;
//! the list is newest update first and `next_key` continues after the last
//! order handed out (so an order updated meanwhile cannot push an unread
//! one past us); 47001 answers a bad parameter; per-API quotas are not
//! published, so the default is 10 requests per second per account.
#![warn(missing_docs)]

pub mod client;
pub mod mapping;
pub mod sandbox;

use futures::StreamExt;
use quanyu_connector_sdk::market::prelude::*;

pub use client::ShopClient;

/// The production API host.
pub const DEFAULT_API_BASE: &str = "https://api.weixin.qq.com";
/// The order id list.
pub const LIST_API: &str = "/channels/ec/order/list/get";
/// One order, whole.
pub const GET_API: &str = "/channels/ec/order/get";
/// Longest window the list takes.
pub const MAX_WINDOW_DAYS: i64 = 7;

quanyu_connector_sdk::market_config! {
    /// The shop accounts of one brand.
    pub struct WechatShopConfig {
        /// The API host (`https://api.weixin.qq.com`).
        #[serde(default = "default_api_base")]
        pub api_base: String,
        /// Requests per second per shop account (WeChat limits each account);
        /// 0 = no limit.
        #[serde(default = "default_shop_qps")]
        pub shop_qps: u32,
        /// Orders read at once through `order/get` (1–32).
        #[serde(default = "default_details_at_once")]
        pub details_at_once: usize,
        /// The shops.
        pub shops: Vec<WechatShop>,
    }
    pull defaults { qps: 0, page_size: 100, window_minutes: 24 * 60, lookback_minutes: 30, initial_days: 7 }
}

/// What the platform allows of the pull settings.
pub const LIMITS: PullLimits = PullLimits {
    page_size: 1..=100,
    window_minutes: (
        MAX_WINDOW_DAYS * 24 * 60,
        " (the order list takes 7 days at most)",
    ),
    initial_days: (3650, ""),
    end_lag: Duration::minutes(1),
};

/// One shop account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatShop {
    /// The shop id used in the lake.
    pub id: String,
    /// The shop's appid.
    pub appid: String,
    /// The shop's AppSecret.
    pub secret: SecretRef,
}

fn default_api_base() -> String {
    DEFAULT_API_BASE.into()
}
fn default_shop_qps() -> u32 {
    10
}
fn default_details_at_once() -> usize {
    4
}

/// Build one orders stream per shop account.
pub fn build_streams(
    cfg: &WechatShopConfig,
    setup: &ConnectorSetup,
) -> Result<Vec<Arc<dyn Stream>>, ConfigError> {
    // The section's budget is keyed by its accounts together.
    let mut accounts: Vec<&str> = cfg.shops.iter().map(|s| s.appid.as_str()).collect();
    accounts.sort_unstable();
    let section = accounts.join("+");
    let wiring = AppWiring::new("wechat_shop", &section, setup, cfg.qps);
    wiring.check_range("details_at_once", cfg.details_at_once, 1..=32, "")?;
    let plan = cfg.pull().checked_plan(&wiring, &LIMITS)?;
    cfg.shops
        .iter()
        .map(|shop| {
            if shop.appid.trim().is_empty() {
                return Err(wiring.error(format!("shop {}: appid is empty", shop.id)));
            }
            let client = ShopClient::new(
                wiring.shop_api(&shop.appid, cfg.shop_qps),
                &cfg.api_base,
                shop.appid.trim(),
                wiring.secret(&shop.secret)?,
            );
            // Kept per account: no configured token, `stable_token` gives it.
            let token = ShopToken::open(
                &setup.tokens,
                &format!("wechat_shop/{}/{}", shop.appid.trim(), shop.id),
                None,
            )
            .map(Arc::new)
            .map_err(|e| wiring.error(format!("shop {}: token store: {e}", shop.id)))?;
            let list = Orders {
                client,
                token,
                shop: shop.id.clone(),
                page_size: cfg.page_size,
                details_at_once: cfg.details_at_once,
            };
            Ok(OrderStream::new(
                "wechat_shop",
                &shop.id,
                list,
                Listing {
                    api: LIST_API,
                    paging: Paging::Cursor,
                    max_window: Some(Duration::days(MAX_WINDOW_DAYS)),
                    max_records: None,
                },
                plan,
            )
            .shared())
        })
        .collect()
}

/// The orders of one shop account.
struct Orders {
    client: ShopClient,
    token: Arc<ShopToken>,
    shop: String,
    page_size: u32,
    details_at_once: usize,
}

#[derive(Deserialize)]
struct ListAnswer {
    #[serde(default)]
    order_id_list: Vec<serde_json::Value>,
    next_key: Option<String>,
    has_more: Option<bool>,
}

#[derive(Deserialize)]
struct GetAnswer<'a> {
    #[serde(borrow)]
    order: Option<&'a RawValue>,
}

impl Orders {
    /// One order through `order/get`, mapped (or rejected with its text).
    /// An order the shop lists but refuses to show (a bad request: gone,
    /// or another shop's) is quarantined with the refusal, so one order
    /// cannot stop the stream; every other failure fails the page.
    async fn order(
        &self,
        id: String,
        hasher: &PiiHasher,
    ) -> Result<Result<MappedOrder, (Rejected, String)>, ConnectorError> {
        let rctx = RequestContext::new("wechat_shop", Some(&self.shop), GET_API);
        let params = serde_json::json!({ "order_id": id });
        let read = self
            .client
            .call_with(&rctx, GET_API, &self.token, &params, |body| {
                let answer: GetAnswer = read_answer(&rctx, body, "order")?;
                let raw = answer.order.ok_or_else(|| {
                    ConnectorError::new(&rctx, ErrorKind::Protocol, "answer has no order")
                })?;
                Ok(mapping::map_order(raw.get(), &self.shop, hasher)
                    .map_err(|r| (r, raw.get().to_string())))
            })
            .await;
        match read {
            Err(e) if e.kind == ErrorKind::InvalidRequest => Ok(Err((
                Rejected::new(
                    Some(&id),
                    format!("{GET_API} refused the listed order: {e}"),
                ),
                params.to_string(),
            ))),
            other => other,
        }
    }
}

#[async_trait]
impl OrderList for Orders {
    fn http(&self) -> &ApiClient {
        self.client.api()
    }

    async fn page(
        &self,
        window: Window,
        at: PageAt<'_>,
        hasher: &PiiHasher,
    ) -> Result<ListPage, ConnectorError> {
        let rctx = RequestContext::new("wechat_shop", Some(&self.shop), LIST_API);
        let cursor = at.cursor(&rctx)?;
        // Inclusive second bounds: [start, end - 1 s].
        let start = window.start.timestamp();
        let end = (window.end.timestamp() - 1).max(start);
        let params = serde_json::json!({
            "update_time_range": { "start_time": start, "end_time": end },
            "page_size": self.page_size,
            "next_key": cursor,
        });
        let list: ListAnswer = self
            .client
            .call_with(&rctx, LIST_API, &self.token, &params, |body| {
                read_answer(&rctx, body, "order list")
            })
            .await?;
        let ids: Vec<String> = list
            .order_id_list
            .iter()
            .map(|v| quanyu_connector_sdk::market::text_of(v).unwrap_or_default())
            .filter(|id| !id.is_empty())
            .collect();
        let records = futures::stream::iter(ids)
            .map(|id| self.order(id, hasher))
            .buffered(self.details_at_once.max(1))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let next = match (list.has_more, list.next_key) {
            (Some(true), Some(k)) if !k.is_empty() => Some(k),
            (Some(true), _) => {
                return Err(ConnectorError::new(
                    &rctx,
                    ErrorKind::Protocol,
                    "has_more is true but there is no next_key",
                ))
            }
            _ => None,
        };
        Ok(ListPage {
            total: None,
            next,
            records,
        })
    }
}

/// The connector as the engine registers it.
pub static CONNECTOR: ConnectorSpec<WechatShopConfig> = ConnectorSpec {
    name: "wechat_shop",
    about: "WeChat Channels shop (微信小店) orders",
    channel: quanyu_schemas::Channel::WechatShop,
    build: build_streams,
    decrypts: false,
    order_ids: Some(OrderIds {
        state_prefix: "wxs_",
        pattern: Some("[0-9]{15,20}"),
    }),
    sandbox: Some(&sandbox::KIT),
};
