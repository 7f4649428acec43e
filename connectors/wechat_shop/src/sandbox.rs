//! An emulator of the WeChat API for a brand's Channels shops:
//! `POST /cgi-bin/stable_token`, `POST /channels/ec/order/list/get` and
//! `POST /channels/ec/order/get`, each shop its own account (appid).
//!
//! As WeChat does: HTTP 200 with `errcode` always; `stable_token` takes a
//! JSON body only, answers an unknown appid 40013 and a wrong secret
//! 40125, returns the account's current token while more than five minutes
//! of it are left (a new one after that, or when `force_refresh` is true,
//! which ends the old one); API calls without a token are 41001, with an
//! expired one 42001, an unknown or replaced one 40001. The list takes
//! `update_time_range` and/or `create_time_range` (at least one, each at
//! most 7 days, bounds inclusive; 47001 otherwise), `page_size` 1–100, and
//! `next_key` as it handed it out; it lists ids newest update first and
//! `next_key` continues after the last id handed out, bound to the filters
//! (another filter with it is 606006, as third-party notes say). The order
//! shows its receiver masked (`138****0000`, `陈*`), the buyer's `openid`
//! per shop and the `unionid` where the person has one. Faults: 45011
//! throttling, -1 system busy, HTTP 5xx, slow answers, 42001 expiry, a
//! corrupt order.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use quanyu_connector_sdk::connector::{SandboxAnnouncement, SandboxPull};
use quanyu_connector_sdk::market::PullSettings;
use quanyu_connector_sdk::sandbox::answer::{json_as, Refusal};
use quanyu_connector_sdk::sandbox::market::MarketSandboxConfig;
use quanyu_connector_sdk::sandbox::orders::{mask_phone, RefundStage, Stage};
use quanyu_connector_sdk::sandbox::tokens::TokenProblem;
use quanyu_connector_sdk::sandbox::world::{mask_address, mask_name, REGIONS};
use quanyu_connector_sdk::SecretRef;
use quanyu_schemas::Channel;
use serde_json::json;

use crate::client::{
    CODE_BAD_APPID, CODE_BAD_CREDENTIAL, CODE_BAD_SECRET, CODE_BUSY, CODE_PARAM,
    CODE_TOKEN_EXPIRED, CODE_TOO_FREQUENT, TOKEN_PATH,
};
use crate::{AFTER_SALE_GET_API, AFTER_SALE_LIST_API, GET_API, LIST_API};

/// The errcode for a `next_key` sent with other filters than its page's.
pub const CODE_CURSOR_FILTERS: i64 = 606_006;

/// What the sandbox accepts and serves.
pub type WechatShopSandboxConfig = MarketSandboxConfig;

/// The appid of the sandbox's shop `i`.
pub fn shop_appid(app_key: &str, i: usize) -> String {
    format!("wx{app_key}{i:06}")
}

/// The AppSecret of the shop account `i` (each account has its own).
pub fn shop_secret(app_secret: &str, i: usize) -> String {
    format!("{app_secret}-{i}")
}

quanyu_connector_sdk::market_sandbox! {
    /// The WeChat Channels shop emulator. Cheap to clone.
    pub struct WechatShopSandbox {
        /// order id → purchase index, built on first use.
        by_order_id: OnceLock<HashMap<String, usize>> = OnceLock::new(),
        /// Orders `order/get` refuses although the list shows them (tests).
        refused: std::sync::Mutex<std::collections::HashSet<String>> = Default::default(),
    }
    serves: WechatShop, tokens: "wxs", token_ttl: 7200,
    describe: "WeChat Channels shop API sandbox at {base_url}/channels/ec/order/list/get",
    kit: crate::WechatShopConfig,
    announce: with_appids,
}

fn rid() -> String {
    format!(
        "{:08x}-{:08x}",
        rand::random::<u32>(),
        rand::random::<u32>()
    )
}

fn error(code: i64, msg: &str) -> Response {
    json_as(
        "application/json; encoding=utf-8",
        json!({"errcode": code, "errmsg": format!("{msg} rid: {}", rid())}),
    )
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

impl WechatShopSandbox {
    /// The routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route(TOKEN_PATH, post(token_route))
            .route(LIST_API, post(api_route))
            .route(GET_API, post(api_route))
            .route(AFTER_SALE_LIST_API, post(api_route))
            .route(AFTER_SALE_GET_API, post(api_route))
            .with_state(self.clone())
    }

    /// Announced: every shop as
    /// `<id>#<appid>`, whose secret is [`shop_secret`] of the announced one.
    fn with_appids(&self, ann: SandboxAnnouncement) -> SandboxAnnouncement {
        ann.shops_named(|i, id| format!("{id}#{}", shop_appid(&self.inner.cfg.app_key, i)))
    }

    /// Make `order/get` refuse `order_id` (47001) while the list still
    /// shows it, as for an order the shop withdrew between the two calls.
    pub fn refuse_order(&self, order_id: &str) {
        self.inner
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(order_id.to_string());
    }

    fn purchase_of(&self, order_id: &str) -> Option<usize> {
        let map = self.inner.by_order_id.get_or_init(|| {
            let world = self.world();
            world
                .purchases
                .iter()
                .enumerate()
                .filter(|(_, p)| p.channel == Channel::WechatShop)
                .map(|(i, p)| (world.order_id(p), i))
                .collect()
        });
        map.get(order_id).copied()
    }

    fn render_order(&self, i: usize, ev: usize, corrupt: bool) -> serde_json::Value {
        let v = self.book.view(i, ev);
        let (world, p, lc, person) = (v.world, v.purchase, v.lifecycle, &v.receiver);
        let (modified, stage) = (v.modified, v.stage);
        let (province, city) = REGIONS[person.region];
        let products = lc.render_items(|k, n, price| {
            json!({
                "product_id": (10_000_000_000 + price % 997 + k as i64).to_string(),
                "sku_id": (20_000_000_000 + price % 991 + k as i64).to_string(),
                "sku_cnt": n,
                "sale_price": price,
                "real_price": price * i64::from(n),
                "title": format!("小店商品{}", price % 997),
                "on_aftersale_sku_cnt": 0,
                "finish_aftersale_sku_cnt": 0,
            })
        });
        let paid = lc.time_of(Stage::Paid, ev);
        let mut order = json!({
            "order_id": world.order_id(p),
            "status": self.stage_word(stage),
            "create_time": if corrupt { json!("not-a-time") } else { json!(lc.created()) },
            "update_time": modified,
            "openid": format!("o{}", world.buyer_token(p.person, p.shop)),
            "order_detail": {
                "product_infos": products,
                "price_info": {
                    "product_price": lc.goods_total(),
                    "order_price": lc.payment(),
                    "freight": lc.post_fee,
                    "discounted_price": lc.discount,
                    "is_discounted": lc.discount > 0,
                },
                "pay_info": match paid {
                    Some(t) => json!({"prepay_id": format!("wx{t}"), "pay_time": t,
                        "transaction_id": format!("4200{t}{i:08}"), "payment_method": 1}),
                    None => json!({}),
                },
                "delivery_info": {
                    "address_info": {
                        "user_name": mask_name(&person.name),
                        "tel_number": mask_phone(&person.phone),
                        "province_name": province,
                        "city_name": city,
                        "county_name": "",
                        "detail_info": mask_address(&person.address),
                        "use_tel_number": 0,
                    },
                    "deliver_method": 0,
                },
                "ext_info": { "customer_notes": "", "merchant_notes": "" },
            },
            "aftersale_detail": { "on_aftersale_order_cnt": 0, "aftersale_order_list": [] },
        });
        // The unionid comes where the shop is bound to the brand's Open
        // Platform account and WeChat knows the buyer's.
        if let Some(u) = world.order_unionid(p) {
            order["unionid"] = json!(u);
        }
        order
    }

    /// The event of purchase `i` the shop shows at the sandbox clock.
    fn shown_event(&self, i: usize) -> Option<usize> {
        let as_of = self.as_of().timestamp();
        self.book
            .lifecycle(i)
            .events
            .iter()
            .rposition(|(t, _)| *t <= as_of)
    }
}

/// An errcode and its message.
type Denial = (i64, &'static str);

fn shop_of_token(sb: &WechatShopSandbox, q: Option<&str>) -> Result<usize, Denial> {
    let token = q
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned())
        .and_then(|mut pairs| pairs.find(|(k, _)| k == "access_token").map(|(_, v)| v))
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err((41_001, "access_token missing"));
    };
    match sb.issuer.check(&token) {
        Ok(s) => Ok(s),
        Err(TokenProblem::Expired) => Err((CODE_TOKEN_EXPIRED, "access_token expired")),
        Err(TokenProblem::Unknown) => Err((
            CODE_BAD_CREDENTIAL,
            "invalid credential, access_token is invalid or not latest",
        )),
    }
}

/// Token, JSON body, faults: what every API call passes first.
async fn admit(
    sb: &WechatShopSandbox,
    q: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(usize, serde_json::Value), Response> {
    sb.count_request();
    let shop = shop_of_token(sb, q).map_err(|(code, msg)| error(code, msg))?;
    if !is_json(headers) {
        return Err(error(CODE_PARAM, "data format error"));
    }
    let Ok(params) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Err(error(CODE_PARAM, "data format error"));
    };
    if let Some(answer) = sb.refused(true, |r| error(r.code, &r.says)).await {
        return Err(answer);
    }
    Ok((shop, params))
}

/// `POST /cgi-bin/stable_token`.
async fn token_route(
    State(sb): State<WechatShopSandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let core = &sb;
    core.count_request();
    if !is_json(&headers) {
        return error(CODE_PARAM, "data format error");
    }
    if let Some(answer) = core
        .faults
        .answer(false, |r| match r {
            Refusal::Throttled => error(CODE_TOO_FREQUENT, "api minute-quota reach limit"),
            Refusal::Busy | Refusal::TokenExpired => error(CODE_BUSY, "system error"),
        })
        .await
    {
        return answer;
    }
    let Ok(req) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return error(CODE_PARAM, "data format error");
    };
    let s = |k: &str| req.get(k).and_then(serde_json::Value::as_str).unwrap_or("");
    if s("grant_type") != "client_credential" {
        return error(40_002, "invalid grant_type");
    }
    let cfg = &sb.inner.cfg;
    let Some(shop) =
        (0..core.book.shops().len()).find(|&i| shop_appid(&cfg.app_key, i) == s("appid"))
    else {
        return error(CODE_BAD_APPID, "invalid appid");
    };
    if s("secret") != shop_secret(&cfg.app_secret, shop) {
        return error(CODE_BAD_SECRET, "invalid appsecret");
    }
    let force = req
        .get("force_refresh")
        .and_then(serde_json::Value::as_bool)
        == Some(true);
    // Normal mode: the held token while more than five minutes of it are
    // left; forced: a new one that ends the old.
    let (token, expires_in) = core.issuer.grant(shop, force, force, 300);
    core.count_refresh();
    json_as(
        "application/json; encoding=utf-8",
        json!({ "access_token": token, "expires_in": expires_in }),
    )
}

/// A time range `{start_time, end_time}` in seconds, at most 7 days.
fn range(params: &serde_json::Value, k: &str) -> Result<Option<(i64, i64)>, Denial> {
    let Some(r) = params.get(k) else {
        return Ok(None);
    };
    let t = |f: &str| r.get(f).and_then(serde_json::Value::as_i64);
    match (t("start_time"), t("end_time")) {
        (Some(s), Some(e)) if s <= e && e - s <= 7 * 86_400 => Ok(Some((s, e))),
        (Some(s), Some(e)) if s <= e => Err((CODE_PARAM, "time range longer than 7 days")),
        _ => Err((CODE_PARAM, "invalid time range")),
    }
}

/// Every shop API: token, JSON body and faults first, then the API its
/// path names.
async fn api_route(
    State(sb): State<WechatShopSandbox>,
    RawQuery(q): RawQuery,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (shop, params) = match admit(&sb, q.as_deref(), &headers, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match uri.path() {
        LIST_API => list(&sb, shop, &params),
        GET_API => get(&sb, shop, &params),
        AFTER_SALE_LIST_API => after_sale_list(&sb, shop, &params),
        _ => after_sale_get(&sb, shop, &params),
    }
}

/// `POST /channels/ec/order/list/get`.
fn list(sb: &WechatShopSandbox, shop: usize, params: &serde_json::Value) -> Response {
    let (update, create) = match (
        range(params, "update_time_range"),
        range(params, "create_time_range"),
    ) {
        (Ok(u), Ok(c)) => (u, c),
        (Err((code, msg)), _) | (_, Err((code, msg))) => return error(code, msg),
    };
    if update.is_none() && create.is_none() {
        return error(
            CODE_PARAM,
            "create_time_range or update_time_range required",
        );
    }
    let status = params.get("status").and_then(serde_json::Value::as_i64);
    let core = &sb;
    let snap = core.book.snapshot();
    let (lo, hi) = update.unwrap_or((i64::MIN, i64::MAX));
    let list: Vec<(i64, u64)> = snap
        .window(shop, lo.max(0), hi)
        .iter()
        .map(|e| (e.modified, u64::from(e.purchase)))
        .filter(|&(_, p)| {
            let created = core.book.lifecycle(p as usize).created();
            create.is_none_or(|(s, e)| s <= created && created <= e)
        })
        .filter(|&(_, p)| {
            status.is_none_or(|want| {
                let ev = sb.shown_event(p as usize).unwrap_or(0);
                core.stage_word(core.book.lifecycle(p as usize).events[ev].1)
                    .as_i64()
                    == Some(want)
            })
        })
        .collect();
    let world = sb.world();
    let filters = format!("{update:?}{create:?}{status:?}");
    id_page(params, &filters, list, "order_id_list", |p| {
        world.order_id(&world.purchases[p as usize])
    })
}

/// One page of an id list: `list`'s (modified, key) newest first, from
/// `next_key` on (a key bound to the `filters` it was handed out with), at
/// most `page_size` (1–100), each key shown as `id(key)` under `field`,
/// with the next key while more remain.
fn id_page(
    params: &serde_json::Value,
    filters: &str,
    mut list: Vec<(i64, u64)>,
    field: &str,
    id: impl Fn(u64) -> String,
) -> Response {
    let size = match params.get("page_size").map(serde_json::Value::as_i64) {
        None => 10,
        Some(Some(n @ 1..=100)) => n as usize,
        Some(_) => return error(CODE_PARAM, "page_size must be 1 to 100"),
    };
    let fingerprint = quanyu_connector_sdk::sandbox::seed::mix(
        filters
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))),
    );
    let after = match params.get("next_key").and_then(serde_json::Value::as_str) {
        None | Some("") => None,
        Some(k) => match parse_key(k) {
            Some((f, m, p)) if f == fingerprint => Some((m, p)),
            Some(_) => return error(CODE_CURSOR_FILTERS, "params differ from previous page"),
            None => return error(CODE_PARAM, "invalid next_key"),
        },
    };
    list.sort_unstable_by(|a, b| b.cmp(a));
    let start = after.map_or(0, |key| list.partition_point(|x| *x >= key));
    let page = &list[start..(start + size).min(list.len())];
    let has_more = start + page.len() < list.len();
    let ids: Vec<String> = page.iter().map(|&(_, k)| id(k)).collect();
    let next_key = page
        .last()
        .map(|&(m, k)| format!("{fingerprint:x}.{m}.{k}"))
        .unwrap_or_default();
    json_as(
        "application/json; encoding=utf-8",
        json!({
            "errcode": 0, "errmsg": "ok", field: ids, "next_key": next_key, "has_more": has_more,
        }),
    )
}

fn parse_key(k: &str) -> Option<(u64, i64, u64)> {
    let mut parts = k.split('.');
    let f = u64::from_str_radix(parts.next()?, 16).ok()?;
    let m = parts.next()?.parse().ok()?;
    let p = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((f, m, p))
}

/// `POST /channels/ec/order/get`.
fn get(sb: &WechatShopSandbox, shop: usize, params: &serde_json::Value) -> Response {
    let id = match params.get("order_id") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => return error(CODE_PARAM, "order_id required"),
    };
    let refused = sb
        .inner
        .refused
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&id);
    if refused {
        return error(CODE_PARAM, "order not found");
    }
    let core = &sb;
    let found = sb
        .purchase_of(&id)
        .filter(|&i| core.book.shops()[shop] == core.world().purchases[i].shop)
        .and_then(|i| sb.shown_event(i).map(|ev| (i, ev)));
    let Some((i, ev)) = found else {
        return error(CODE_PARAM, "order not found");
    };
    let corrupt = core.faults.draw_malformed();
    json_as(
        "application/json; encoding=utf-8",
        json!({"errcode": 0, "errmsg": "ok", "order": sb.render_order(i, ev, corrupt)}),
    )
}

/// `POST /channels/ec/aftersale/getaftersalelist`: the ids of the
/// account's after-sale orders updated in `update_time_range`, newest
/// first, `page_size` at most 100, then `next_key` while `has_more`.
fn after_sale_list(sb: &WechatShopSandbox, shop: usize, params: &serde_json::Value) -> Response {
    let (lo, hi) = match range(params, "update_time_range") {
        Ok(Some(r)) => r,
        Ok(None) => return error(CODE_PARAM, "update_time_range required"),
        Err((code, msg)) => return error(code, msg),
    };
    let book = &sb.book;
    let snap = book.snapshot();
    let list: Vec<(i64, u64)> = snap
        .refund_window(shop, lo.max(0), hi)
        .iter()
        .map(|e| (e.modified, book.refund_no(e)))
        .collect();
    let filters = format!("after-sales {lo} {hi}");
    id_page(params, &filters, list, "after_sale_order_id_list", |r| {
        r.to_string()
    })
}

/// `POST /channels/ec/aftersale/getaftersaleorder`: one after-sale order
/// of the account.
fn after_sale_get(sb: &WechatShopSandbox, shop: usize, params: &serde_json::Value) -> Response {
    let Some(id) = params
        .get("after_sale_order_id")
        .and_then(quanyu_connector_sdk::market::text_of)
    else {
        return error(CODE_PARAM, "after_sale_order_id required");
    };
    let book = &sb.book;
    let snap = book.snapshot();
    let Some(e) = snap.refunds_per_shop[shop]
        .iter()
        .find(|e| book.refund_no(e).to_string() == id)
    else {
        return error(CODE_PARAM, "after sale order not found");
    };
    let plan = book.refund_plan(e);
    let world = sb.world();
    let p = &world.purchases[e.purchase as usize];
    let status = match e.stage(&plan) {
        RefundStage::Asked => "MERCHANT_PROCESSING",
        RefundStage::Granted => "MERCHANT_REFUND_SUCCESS",
        RefundStage::Refused => "MERCHANT_REJECT_REFUND",
    };
    let lc = book.lifecycle(e.purchase as usize);
    let product = plan.line.map(|l| {
        let price = lc.items[l].1;
        json!({
            "product_id": (10_000_000_000 + price % 997 + l as i64).to_string(),
            "sku_id": (20_000_000_000 + price % 991 + l as i64).to_string(),
            "count": lc.items[l].0,
        })
    });
    let amount = if sb.faults.draw_malformed() {
        json!(-1)
    } else {
        json!(plan.amount)
    };
    json_as(
        "application/json; encoding=utf-8",
        json!({"errcode": 0, "errmsg": "ok", "after_sale_order": {
            "after_sale_order_id": id,
            "order_id": world.order_id(p),
            "status": status,
            "type": if plan.line.is_some() { "RETURN" } else { "REFUND" },
            "product_info": product,
            "refund_info": {"amount": amount},
            "create_time": plan.asked,
            "update_time": e.modified,
        }}),
    )
}

/// The config that pulls an announced sandbox as `pull` asks.
pub fn config(ann: &SandboxAnnouncement, pull: SandboxPull) -> crate::WechatShopConfig {
    crate::WechatShopConfig {
        api_base: ann.base_url.clone(),
        details_at_once: 4,
        pull: PullSettings::sandbox(pull, 100, 24 * 60, 30),
        shops: ann
            .shops
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (id, appid) = s.id.split_once('#').unwrap_or((&s.id, ""));
                crate::WechatShop {
                    id: id.to_string(),
                    appid: appid.to_string(),
                    secret: SecretRef::inline(shop_secret(&ann.app_secret, i)),
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_orders_map_with_their_unionid() {
        let sb = WechatShopSandbox::for_test();
        let world = sb.world();
        let hasher = quanyu_schemas::PiiHasher::new(&quanyu_schemas::LakeKey::from_bytes([0; 32]));
        let mut with_unionid = 0;
        let mut shown = 0;
        for (i, p) in world.purchases.iter().enumerate() {
            let Some(ev) = sb.shown_event(i) else {
                continue;
            };
            shown += 1;
            let v = sb.render_order(i, ev, false);
            let text = v.to_string();
            let person = world.receiver(p);
            assert!(!text.contains(&person.phone), "no clear phone");
            let m = crate::MAPPING.order(&text, "x", &hasher).unwrap();
            assert_eq!(m.row.amount_fen, sb.book.lifecycle(i).payment());
            assert_eq!(
                m.row.buyer_unionid,
                world.persons[p.person as usize].unionid
            );
            with_unionid += usize::from(m.row.buyer_unionid.is_some());
            assert_eq!(sb.purchase_of(&m.row.order_id), Some(i));
        }
        assert!(shown > 0 && with_unionid > 0 && with_unionid < shown);
        assert!(crate::MAPPING
            .order(&sb.render_order(0, 0, true).to_string(), "x", &hasher)
            .is_err());
        assert_eq!(parse_key("ff.12.3"), Some((255, 12, 3)));
        assert_eq!(parse_key("ff.12"), None);
    }
}
