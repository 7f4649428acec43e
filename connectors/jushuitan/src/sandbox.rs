//! An emulator of the Jushuitan open API v2 for `orders/single/query` and
//! `openWeb/auth/refreshToken`: form posts, the real MD5 signature check,
//! the `{code, msg, data}` envelope with the codes quanyu classifies (see
//! [`crate::client`]), a ±10 minute timestamp check, the 7-day modified
//! window and the 100-row page limit, 1-based pages newest first with
//! `data_count`, company tokens that expire and rotate on refresh, and
//! injected faults. Orders are the seeded world's purchases in the ERP's own
//! shops, whose receiver phones the ERP holds in clear.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use quanyu_connector_sdk::connector::{AnnouncedShop, SandboxAnnouncement, SandboxPull};
use quanyu_connector_sdk::market::PullSettings;
use quanyu_connector_sdk::sandbox::market::{MarketCore, MarketSandboxConfig};
use quanyu_connector_sdk::sandbox::orders::{fen_text, OrderBook, RefundEntry, RefundStage, Stage};
use quanyu_connector_sdk::sandbox::tokens::{TokenIssuer, TokenProblem};
use quanyu_connector_sdk::sandbox::world::{World, REGIONS};
use quanyu_connector_sdk::SecretRef;
use quanyu_schemas::time::{format_beijing, parse_beijing};
use quanyu_schemas::Channel;
use serde_json::json;

use crate::client::{
    CODE_BAD_APP, CODE_BAD_PARAM, CODE_BAD_SIGN, CODE_BAD_TOKEN, CODE_TOKEN_EXPIRED,
};
use crate::sign::sign;

/// What the sandbox accepts and serves.
pub type JushuitanSandboxConfig = MarketSandboxConfig;

/// The ERP `shop_id` of local shop `i`.
pub fn erp_shop_id(i: usize) -> i64 {
    10_000_001 + i as i64
}

quanyu_connector_sdk::market_sandbox! {
    /// The Jushuitan emulator. Cheap to clone.
    pub struct JushuitanSandbox {}
    serves: Jushuitan, tokens: "jst", token_ttl: 30 * 86_400,
    describe: "Jushuitan open API sandbox at {base_url}/open/orders/single/query",
    kit: crate::JushuitanConfig,
    // One ERP company: one token for all its shops.
    core: |cfg: &MarketSandboxConfig| {
        let book = OrderBook::new(World::shared(&cfg.world), Channel::Jushuitan, cfg.as_of);
        MarketCore::with_issuer(book, TokenIssuer::new("jst", 1, cfg.token_ttl_secs), cfg.faults)
    },
    announce: with_company_token,
}

fn reply(code: i64, msg: &str, data: serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        json!({"code": code, "msg": msg, "data": data}).to_string(),
    )
        .into_response()
}

fn error(code: i64, msg: &str) -> Response {
    reply(code, msg, serde_json::Value::Null)
}

impl JushuitanSandbox {
    /// (lake shop id, ERP shop_id) of every shop served.
    pub fn shops(&self) -> Vec<(String, i64)> {
        (0..self.book.shops().len())
            .map(|i| (self.book.shop_id(i).to_string(), erp_shop_id(i)))
            .collect()
    }

    /// The company's (access, refresh) tokens as an authorization gave them.
    pub fn tokens(&self) -> (String, String) {
        self.issuer.initial(0)
    }

    /// The router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/open/orders/single/query", post(orders))
            .route("/open/refund/single/query", post(refunds))
            .route("/openWeb/auth/refreshToken", post(refresh))
            .with_state(self.clone())
    }

    fn render(&self, i: usize, ev: usize, local_shop: usize, corrupt: bool) -> serde_json::Value {
        let v = self.book.view(i, ev);
        let (world, p, lc, person) = (v.world, v.purchase, v.lifecycle, &v.receiver);
        let (modified, stage) = (v.modified, v.stage);
        let ts = |t: i64| format_beijing(DateTime::from_timestamp(t, 0).expect("valid time"));
        let (province, city) = REGIONS[person.region];
        let paid = lc.time_of(Stage::Paid, ev);
        let amount: serde_json::Value =
            serde_json::from_str(&fen_text(lc.payment())).expect("a number");
        json!({
            "o_id": 10_000_000 + i as i64,
            "so_id": world.order_id(p),
            "shop_id": erp_shop_id(local_shop),
            "order_from": "WAP",
            "status": self.stage_word(stage),
            "order_date": if corrupt { "not-a-date".to_string() } else { ts(lc.created()) },
            "modified": ts(modified),
            "pay_date": paid.map(ts).unwrap_or_default(),
            "send_date": lc.time_of(Stage::Shipped, ev).map(ts).unwrap_or_default(),
            "pay_amount": amount,
            "paid_amount": fen_text(if paid.is_some() { lc.payment() } else { 0 }),
            "freight": fen_text(lc.post_fee),
            // Orders staff typed into the ERP by hand carry the buyer "test".
            "shop_buyer_id": if p.test_buyer { "test".to_string() } else { world.buyer_token(p.person, p.shop) },
            "receiver_name": person.name,
            "receiver_address": person.address,
            "receiver_mobile": person.phone,
            "receiver_state": province,
            "receiver_city": city,
            "items": lc.items.iter().enumerate().map(|(k, (qty, price))| json!({
                "oi_id": p.order_no * 10 + k as u64,
                "i_id": format!("I{}", price % 997),
                "sku_id": format!("SKU{}", price % 997),
                "name": format!("商品{k}"),
                "qty": qty,
                "price": fen_text(*price),
                "amount": fen_text(i64::from(*qty) * price),
            })).collect::<Vec<_>>(),
        })
    }
}

/// Parse the form, check app key, signature and timestamp.
/// The error is (code, message) for the envelope.
fn checked(
    sb: &JushuitanSandbox,
    body: &[u8],
) -> Result<HashMap<String, String>, (i64, &'static str)> {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let map: HashMap<String, String> = params.iter().cloned().collect();
    if map.get("app_key").map(String::as_str) != Some(sb.inner.cfg.app_key.as_str()) {
        return Err((CODE_BAD_APP, "app_key无效"));
    }
    let expected = sign(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &sb.inner.cfg.app_secret,
    );
    if map.get("sign").map(|s| s.to_ascii_lowercase()) != Some(expected) {
        return Err((CODE_BAD_SIGN, "签名错误"));
    }
    let fresh = map
        .get("timestamp")
        .and_then(|t| t.parse::<i64>().ok())
        .is_some_and(|t| (Utc::now().timestamp() - t).abs() <= 600);
    if !fresh {
        return Err((CODE_BAD_PARAM, "timestamp无效或与服务器时间相差超过10分钟"));
    }
    Ok(map)
}

async fn refresh(State(sb): State<JushuitanSandbox>, body: Bytes) -> Response {
    sb.count_request();
    let map = match checked(&sb, &body) {
        Ok(m) => m,
        Err((code, msg)) => return error(code, msg),
    };
    if map.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return error(CODE_BAD_PARAM, "grant_type必须为refresh_token");
    }
    match map
        .get("refresh_token")
        .and_then(|rt| sb.issuer.refresh(rt))
    {
        Some(t) => {
            sb.count_refresh();
            reply(
                0,
                "执行成功",
                json!({"access_token": t.access_token, "expires_in": t.expires_in, "refresh_token": t.refresh_token, "scope": "all"}),
            )
        }
        None => error(CODE_BAD_TOKEN, "refresh_token无效"),
    }
}

/// A list query's `biz` once the request is signed, its token valid and
/// no fault drawn; or the answer.
#[allow(clippy::result_large_err)] // the error is the answer, sent at once
async fn authorized(sb: &JushuitanSandbox, body: &[u8]) -> Result<serde_json::Value, Response> {
    sb.count_request();
    let map = match checked(sb, body) {
        Ok(m) => m,
        Err((code, msg)) => return Err(error(code, msg)),
    };
    match map.get("access_token").map(|t| sb.issuer.check(t)) {
        None => return Err(error(CODE_BAD_TOKEN, "缺少access_token")),
        Some(Err(TokenProblem::Unknown)) => return Err(error(CODE_BAD_TOKEN, "access_token无效")),
        Some(Err(TokenProblem::Expired)) => {
            return Err(error(CODE_TOKEN_EXPIRED, "access_token已过期"))
        }
        Some(Ok(_)) => {}
    }
    if let Some(answer) = sb.refused(true, |r| error(r.code, &r.says)).await {
        return Err(answer);
    }
    map.get("biz")
        .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        .ok_or_else(|| error(CODE_BAD_PARAM, "biz不是合法的JSON"))
}

/// A list query's modification window (at most seven days), page (from
/// 1, at most 100 a page) and the ERP shops it names (`shop_id`, or
/// `shop_ids`, or all).
struct ListQuery {
    start: i64,
    end: i64,
    page: u64,
    size: u64,
    shops: Vec<usize>,
}

#[allow(clippy::result_large_err)] // the error is the answer, sent at once
fn list_query(sb: &JushuitanSandbox, biz: &serde_json::Value) -> Result<ListQuery, Response> {
    let text = |k: &str| biz.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let (Some(s), Some(e)) = (text("modified_begin"), text("modified_end")) else {
        return Err(error(
            CODE_BAD_PARAM,
            "modified_begin和modified_end必须同时存在",
        ));
    };
    let (Ok(start), Ok(end)) = (parse_beijing(&s), parse_beijing(&e)) else {
        return Err(error(CODE_BAD_PARAM, "时间格式错误"));
    };
    if end < start || end - start > Duration::days(7) {
        return Err(error(CODE_BAD_PARAM, "修改时间间隔不能超过七天"));
    }
    let page = biz.get("page_index").and_then(|v| v.as_u64()).unwrap_or(1);
    let size = biz.get("page_size").and_then(|v| v.as_u64()).unwrap_or(30);
    if page < 1 || !(1..=100).contains(&size) {
        return Err(error(
            CODE_BAD_PARAM,
            "page_index从1开始，page_size不能超过100",
        ));
    }
    let named: Option<Vec<i64>> = match (biz.get("shop_id"), biz.get("shop_ids")) {
        (Some(id), _) => id.as_i64().map(|i| vec![i]),
        (None, Some(ids)) => ids
            .as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_i64).collect()),
        (None, None) => None,
    };
    let all = 0..sb.book.shops().len();
    let shops = match named {
        Some(ids) => all.filter(|&i| ids.contains(&erp_shop_id(i))).collect(),
        None => all.collect(),
    };
    Ok(ListQuery {
        start: start.timestamp(),
        end: end.timestamp(),
        page,
        size,
        shops,
    })
}

/// A signed, authorized list request's query, or the answer.
#[allow(clippy::result_large_err)] // the error is the answer, sent at once
async fn listed(sb: &JushuitanSandbox, body: &[u8]) -> Result<ListQuery, Response> {
    let biz = authorized(sb, body).await?;
    list_query(sb, &biz)
}

/// `refund/single/query`: the after-sale orders of the named shops
/// modified in the window, newest first.
async fn refunds(State(sb): State<JushuitanSandbox>, body: Bytes) -> Response {
    let q = match listed(&sb, &body).await {
        Ok(q) => q,
        Err(answer) => return answer,
    };
    let book = &sb.book;
    let snap = book.snapshot();
    let mut list: Vec<(usize, RefundEntry)> = q
        .shops
        .iter()
        .flat_map(|&i| {
            snap.refund_window(i, q.start, q.end)
                .iter()
                .map(move |e| (i, *e))
        })
        .collect();
    list.sort_by_key(|(_, e)| std::cmp::Reverse((e.modified, e.purchase, e.refund)));
    let total = list.len() as u64;
    let (from, to, corrupt) = sb.page_slice(list.len(), q.page as usize, q.size as usize);
    let ts = |t: i64| format_beijing(DateTime::from_timestamp(t, 0).expect("valid"));
    let datas: Vec<serde_json::Value> = (from..to)
        .map(|k| {
            let (shop, e) = list[k];
            let plan = book.refund_plan(&e);
            let p = &sb.world().purchases[e.purchase as usize];
            let status = match e.stage(&plan) {
                RefundStage::Asked => "WaitConfirm",
                RefundStage::Granted => "Confirmed",
                RefundStage::Refused => "Cancelled",
            };
            json!({
                "as_id": book.refund_no(&e),
                "o_id": p.order_no % 100_000_000,
                "so_id": sb.world().order_id(p),
                "shop_id": erp_shop_id(shop),
                "type": if plan.line.is_some() { "普通退货" } else { "仅退款" },
                "status": status,
                "refund": if corrupt == Some(k) { "12,5".to_string() } else { fen_text(plan.amount) },
                "as_date": ts(plan.asked),
                "modified": ts(e.modified),
            })
        })
        .collect();
    reply(
        0,
        "执行成功",
        json!({
            "page_size": q.size,
            "page_index": q.page,
            "data_count": total,
            "page_count": total.div_ceil(q.size),
            "has_next": (to as u64) < total,
            "datas": datas,
        }),
    )
}

async fn orders(State(sb): State<JushuitanSandbox>, body: Bytes) -> Response {
    let q = match listed(&sb, &body).await {
        Ok(q) => q,
        Err(answer) => return answer,
    };
    let (page, size) = (q.page, q.size);
    let snap = sb.book.snapshot();
    let mut list: Vec<(usize, quanyu_connector_sdk::sandbox::orders::Entry)> = q
        .shops
        .iter()
        .flat_map(|&i| snap.window(i, q.start, q.end).iter().map(move |e| (i, *e)))
        .collect();
    list.sort_by(|a, b| {
        b.1.modified
            .cmp(&a.1.modified)
            .then(b.1.purchase.cmp(&a.1.purchase))
    });
    let total = list.len() as u64;
    let (from, to, corrupt) = sb.page_slice(list.len(), page as usize, size as usize);
    let orders: Vec<serde_json::Value> = (from..to)
        .map(|k| {
            let (shop, e) = list[k];
            sb.render(
                e.purchase as usize,
                usize::from(e.event),
                shop,
                corrupt == Some(k),
            )
        })
        .collect();
    reply(
        0,
        "执行成功",
        json!({
            "page_size": size,
            "page_index": page,
            "data_count": total,
            "page_count": total.div_ceil(size),
            "has_next": (to as u64) < total,
            "orders": orders,
        }),
    )
}

/// The config that pulls an announced sandbox as `pull` asks.
pub fn config(ann: &SandboxAnnouncement, pull: SandboxPull) -> crate::JushuitanConfig {
    let inline = |s: &str| SecretRef::inline(s.to_string());
    // One company token for all ERP shops; each shop's ERP shop_id rides
    // in its announced id as `<id>#<shop_id>`.
    let first = ann.shops.first();
    crate::JushuitanConfig {
        gateway: ann.base_url.clone(),
        app_key: ann.app_key.clone(),
        app_secret: inline(&ann.app_secret),
        access_token: inline(first.map(|s| s.access_token.as_str()).unwrap_or_default()),
        refresh_token: first.and_then(|s| s.refresh_token.as_deref()).map(inline),
        pull: PullSettings::sandbox(pull, 100, 24 * 60, 60),
        shops: ann
            .shops
            .iter()
            .filter_map(|s| {
                let (id, shop_id) = s.id.split_once('#')?;
                Some(crate::JushuitanShop {
                    id: id.to_string(),
                    shop_id: shop_id.parse().ok()?,
                })
            })
            .collect(),
    }
}

impl JushuitanSandbox {
    /// One company token for every ERP shop; the shop's ERP shop_id rides
    /// in its id as `<id>#<shop_id>`.
    fn with_company_token(&self, mut a: SandboxAnnouncement) -> SandboxAnnouncement {
        let (at, rt) = self.tokens();
        a.shops = self
            .shops()
            .into_iter()
            .map(|(id, shop_id)| AnnouncedShop {
                id: format!("{id}#{shop_id}"),
                access_token: at.clone(),
                refresh_token: Some(rt.clone()),
            })
            .collect();
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_orders_that_map() {
        let sb = JushuitanSandbox::for_test();
        let hasher = quanyu_schemas::PiiHasher::new(&quanyu_schemas::LakeKey::from_bytes([0; 32]));
        let i = sb
            .world()
            .purchases
            .iter()
            .position(|p| p.channel == Channel::Jushuitan)
            .unwrap();
        let v = sb.render(i, 0, 0, false).to_string();
        let row = crate::MAPPING.order(&v, "x", &hasher).unwrap().row;
        assert_eq!(row.status, quanyu_schemas::OrderStatus::PendingPayment);
        assert!(
            row.phone_hash.is_some(),
            "the ERP's own channel gives clear phones"
        );
        assert!(crate::MAPPING
            .order(&sb.render(i, 0, 0, true).to_string(), "x", &hasher)
            .is_err());
        assert_eq!(sb.visible_orders().len(), 300);
    }
}
