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
//!
//! Refunds: `aftersale/getaftersalelist` by `update_time_range` with its
//! `next_key`, then each after-sale order whole through
//! `aftersale/getaftersaleorder` (amount in fen, its SKU as the line).
//! Order lines are the order's `product_infos`.
#![warn(missing_docs)]

pub mod client;
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
/// The after-sale id list API.
pub const AFTER_SALE_LIST_API: &str = "/channels/ec/aftersale/getaftersalelist";
/// The API reading one after-sale order.
pub const AFTER_SALE_GET_API: &str = "/channels/ec/aftersale/getaftersaleorder";

quanyu_connector_sdk::market_config! {
    /// The shop accounts of one brand.
    pub struct WechatShopConfig {
        /// The API host (`https://api.weixin.qq.com`).
        #[serde(default = "default_api_base")]
        pub api_base: String,
        /// Orders read at once through `order/get` (1–32).
        #[serde(default = "default_details_at_once")]
        pub details_at_once: usize,
        /// The shops.
        pub shops: Vec<WechatShop>,
    }
}

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
fn default_details_at_once() -> usize {
    4
}

/// Build one orders stream per shop account, and its refunds stream when `refunds`.
pub fn build_streams(
    cfg: &WechatShopConfig,
    setup: &ConnectorSetup,
) -> Result<Vec<Arc<dyn Stream>>, ConfigError> {
    // The section's budget is keyed by its accounts together.
    let mut accounts: Vec<&str> = cfg.shops.iter().map(|s| s.appid.as_str()).collect();
    accounts.sort_unstable();
    let section = accounts.join("+");
    let wiring = AppWiring::new("wechat_shop", &section, setup, cfg.pull.qps);
    wiring.check_range("details_at_once", cfg.details_at_once, 1..=32, "")?;
    let plan = cfg.pull.checked_plan(&wiring, PLATFORM.limits())?;
    each_shop(&cfg.shops, |shop| {
        if shop.appid.trim().is_empty() {
            return Err(wiring.error(format!("shop {}: appid is empty", shop.id)));
        }
        let client = ShopClient::new(
            wiring.shop_api(&shop.appid, cfg.pull.shop_qps),
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
        let list = |api| {
            Orders::new(
                client.with_api(api),
                &token,
                &shop.id,
                &cfg.pull,
                cfg.details_at_once,
            )
        };
        let listing =
            |api| Listing::new(api, Paging::Cursor).within(PLATFORM.limits().longest_window());
        let lists = [listing(LIST_API), listing(AFTER_SALE_LIST_API)];
        Ok(wiring.shop_streams(
            &shop.id,
            (plan, cfg.pull.refunds),
            client.api(),
            list,
            lists,
        ))
    })
}

quanyu_connector_sdk::shop_list! {
    /// The orders and after-sale orders of one shop account.
    struct Orders(ShopClient) {
        details_at_once: usize,
    } in "wechat_shop" by MAPPING;
}

/// An id list (`order_id_list`, `after_sale_order_id_list`) and its cursor.
#[derive(Deserialize)]
struct ListAnswer {
    #[serde(default, alias = "after_sale_order_id_list")]
    order_id_list: Vec<serde_json::Value>,
    next_key: Option<String>,
    has_more: Option<bool>,
}

/// One record's answer (`order`, `after_sale_order`).
#[derive(Deserialize)]
struct GetAnswer<'a> {
    #[serde(borrow, alias = "after_sale_order")]
    order: Option<&'a RawValue>,
}

/// A list paged by id and cursor, each record then read whole.
struct Kind<R> {
    /// The id list API.
    list: &'static str,
    /// The API reading one record.
    get: &'static str,
    /// The field naming the record to `get`.
    id_field: &'static str,
    /// Its mapping.
    map: fn(&str, &str, &PiiHasher) -> Result<R, Rejected>,
}

const ORDERS: Kind<MappedOrder> = Kind {
    list: LIST_API,
    get: GET_API,
    id_field: "order_id",
    map: |raw, shop, hasher| MAPPING.order(raw, shop, hasher),
};

const AFTER_SALES: Kind<RefundRow> = Kind {
    list: AFTER_SALE_LIST_API,
    get: AFTER_SALE_GET_API,
    id_field: "after_sale_order_id",
    map: |raw, shop, _| MAPPING.refund(raw, shop),
};

impl Orders {
    /// One record through `kind.get`, mapped (or rejected with its text).
    /// A record the shop lists but refuses to show (a bad request: gone,
    /// or another shop's) is quarantined with the refusal, so one record
    /// cannot stop the stream; every other failure fails the page.
    async fn record<R>(
        &self,
        kind: &Kind<R>,
        id: String,
        hasher: &PiiHasher,
    ) -> Result<Result<R, (Rejected, String)>, ConnectorError>
    where
        R: Send,
    {
        let rctx = self.context(kind.get);
        let params = serde_json::json!({ kind.id_field: id });
        let read = self
            .client
            .call_with(&rctx, kind.get, &self.token, &params, |body| {
                let answer: GetAnswer = read_answer(&rctx, body, "record")?;
                let raw = answer.order.ok_or_else(|| {
                    ConnectorError::new(&rctx, ErrorKind::Protocol, "answer has no record")
                })?;
                Ok((kind.map)(raw.get(), &self.shop, hasher)
                    .map_err(|r| (r, raw.get().to_string())))
            })
            .await;
        match read {
            Err(e) if e.kind == ErrorKind::InvalidRequest => Ok(Err((
                Rejected::new(
                    Some(&id),
                    format!("{} refused the listed record: {e}", kind.get),
                ),
                params.to_string(),
            ))),
            other => other,
        }
    }

    /// The page `at` of `kind`'s records updated in `window`: the ids,
    /// then each record whole, `details_at_once` at a time, in list order.
    async fn listed<R: Send>(
        &self,
        kind: &Kind<R>,
        window: Window,
        at: PageAt<'_>,
        hasher: &PiiHasher,
    ) -> Result<ListPage<R>, ConnectorError> {
        let rctx = self.context(kind.list);
        let cursor = at.cursor(&rctx)?;
        // Inclusive second bounds: [start, end - 1 s].
        let (start, end) = window.inclusive_seconds();
        let params = serde_json::json!({
            "update_time_range": { "start_time": start, "end_time": end },
            "page_size": self.page_size,
            "next_key": cursor,
        });
        let list: ListAnswer = self
            .client
            .call_with(&rctx, kind.list, &self.token, &params, |body| {
                read_answer(&rctx, body, "id list")
            })
            .await?;
        let ids: Vec<String> = list
            .order_id_list
            .iter()
            .map(|v| quanyu_connector_sdk::market::text_of(v).unwrap_or_default())
            .filter(|id| !id.is_empty())
            .collect();
        let records = futures::stream::iter(ids)
            .map(|id| self.record(kind, id, hasher))
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

#[async_trait]
impl RecordList for Orders {
    async fn page(&self, q: PageQuery<'_>) -> Result<ListPage, ConnectorError> {
        self.listed(&ORDERS, q.window, q.at, q.hasher).await
    }
}

#[async_trait]
impl RecordList<RefundRow> for Orders {
    async fn page(&self, q: PageQuery<'_>) -> Result<ListPage<RefundRow>, ConnectorError> {
        self.listed(&AFTER_SALES, q.window, q.at, q.hasher).await
    }
}

quanyu_connector_sdk::market_connector! {
    WechatShopConfig, "wechat_shop", WechatShop, "WeChat Channels shop (微信小店) orders",
    decrypts: false, state: "wxs_", ids: Some("[0-9]{15,20}")
}
