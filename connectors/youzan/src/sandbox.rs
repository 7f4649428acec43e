//! An emulator of the Youzan cloud gateway for `youzan.trades.sold.get`
//! 4.0.4, `youzan.cloud.secret.decrypt.batch` 1.0.0 and silent
//! authorization at `/auth/token`.
//!
//! As the gateway does: `POST /api/{name}/{version}?access_token=…` with a
//! JSON body, every answer HTTP 200; an unknown API or version is `4005`
//! before the token is looked at; no token `4201`, an expired one `4202`,
//! an unknown one `4203`, all in `gw_err_resp`. The token endpoint takes
//! JSON only (a form body is code 1000, as a probe saw), answers an
//! unknown client or shop with 1103 and a wrong secret with 1000, returns
//! the shop's current token while it is valid and a new one when asked to
//! `refresh` or once it expired (`expires` in epoch milliseconds).
//! Trades: `start_update`/`end_update` as Beijing `yyyy-MM-dd HH:mm:ss`
//! (a bare date is gateway 5001, as documented), both or neither, at most
//! one year apart (106000001), `page_no` ≥ 1, `page_size` 1–100 (5000),
//! `page_no × page_size` ≤ 3,200 (5000); sorted by update time descending
//! (our choice: the docs do not say). Orders show from creation. Receiver
//! name, phone and address are ciphertext `$…$1$` (as captured in 2026);
//! the batch decrypt answers `data` as a map from ciphertext to clear text.
//! Faults: gateway 4101 throttling, 106100118 timeouts, HTTP 5xx, slow
//! answers, 4202 expiry, a corrupt order.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, NaiveDateTime, Utc};
use quanyu_connector_sdk::connector::{SandboxAnnouncement, SandboxPull};
use quanyu_connector_sdk::market::PullSettings;
use quanyu_connector_sdk::sandbox::answer::{beijing_text, json_answer, Refusal};
use quanyu_connector_sdk::sandbox::market::MarketSandboxConfig;
use quanyu_connector_sdk::sandbox::orders::{fen_text, RefundStage, Stage};
use quanyu_connector_sdk::sandbox::tokens::TokenProblem;
use quanyu_connector_sdk::sandbox::world::REGIONS;
use quanyu_connector_sdk::sandbox::world::{cipher_payload, token_in};
use quanyu_connector_sdk::SecretRef;
use quanyu_schemas::time::{format_beijing, from_beijing_naive};
use serde_json::json;

use crate::client::{
    API_PARAM, API_TIMEOUT, API_WINDOW, AUTH_BAD_APP, AUTH_NO_CLIENT, GW_ILLEGAL_TOKEN, GW_NO_API,
    GW_NO_TOKEN, GW_SYSTEM, GW_THROTTLED, GW_TOKEN_EXPIRED, TOKEN_PATH,
};
use crate::{
    DECRYPT_API, DECRYPT_VERSION, REFUNDS_API, REFUNDS_VERSION, TRADES_API, TRADES_VERSION,
};

/// What the sandbox accepts and serves.
pub type YouzanSandboxConfig = MarketSandboxConfig;

/// The `kdt_id` of the sandbox's shop `i`.
pub fn kdt_id(i: usize) -> String {
    (42_583_152 + 7 * i as u64).to_string()
}

quanyu_connector_sdk::market_sandbox! {
    /// The Youzan gateway emulator. Cheap to clone.
    pub struct YouzanSandbox {}
    serves: Youzan, tokens: "yz", token_ttl: 7 * 86_400,
    describe: "Youzan cloud gateway sandbox at {base_url}/api/youzan.trades.sold.get/4.0.4",
    kit: crate::YouzanConfig,
    announce: with_kdt_ids,
}

/// Youzan's ciphertext shape, `$<base64>$1$`, around the world's cipher
/// token and the field.
fn cipher(token: &str, field: u8) -> String {
    format!("${}$1$", cipher_payload(token, field))
}

/// The cipher token inside a phone ciphertext.
fn token_of(c: &str) -> Option<String> {
    token_in(c.strip_prefix('$')?.strip_suffix("$1$")?, 2)
}

impl YouzanSandbox {
    /// The routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route(TOKEN_PATH, post(token_route))
            .route("/api/{name}/{version}", post(api_route))
            .with_state(self.clone())
    }

    /// Announced: every shop as
    /// `<id>#<kdt_id>` (tokens come from silent authorization).
    fn with_kdt_ids(&self, ann: SandboxAnnouncement) -> SandboxAnnouncement {
        ann.shops_named(|i, id| format!("{id}#{}", kdt_id(i)))
    }

    fn render_order(
        &self,
        i: usize,
        ev: usize,
        local_shop: usize,
        corrupt: bool,
    ) -> serde_json::Value {
        let v = self.book.view(i, ev);
        let (world, p, lc, person) = (v.world, v.purchase, v.lifecycle, &v.receiver);
        let (modified, stage) = (v.modified, v.stage);
        let at = beijing_text;
        let created = v.created_as(corrupt, |t| beijing_text(Some(t)));
        let words = self.stage_word(stage);
        let (status, refund_state) = (&words[0], &words[1]);
        let (province, city) = REGIONS[person.region];
        let token = world.cipher_token(p);
        let lines = lc.render_items(|k, n, price| {
            json!({
                "oid": format!("{}{k:02}", p.order_no % 1_000_000_000_000),
                "item_id": 600_000_000 + price % 997 + k as i64,
                "sku_id": 0,
                "title": format!("有赞商品{}", price % 997),
                "num": n,
                "price": fen_text(price),
                "total_fee": fen_text(price * i64::from(n)),
                "payment": fen_text(price * i64::from(n)),
                "outer_item_id": "",
            })
        });
        json!({
            "full_order_info": {
                "order_info": {
                    "tid": world.order_id(p),
                    "status": status,
                    "status_str": "",
                    "type": 0,
                    "created": created,
                    "update_time": at(Some(modified)),
                    "pay_time": at(lc.time_of(Stage::Paid, ev)),
                    "consign_time": at(lc.time_of(Stage::Shipped, ev)),
                    "success_time": at(lc.time_of(Stage::Finished, ev)),
                    "refund_state": refund_state,
                    "express_type": 0,
                    "node_kdt_id": kdt_id(local_shop),
                    "order_tags": { "is_payed": lc.time_of(Stage::Paid, ev).is_some() },
                },
                "buyer_info": {
                    "yz_open_id": format!("yz{}", world.buyer_token(p.person, p.shop)),
                    "buyer_phone": cipher(&token, 2),
                    "fans_type": 1,
                },
                "pay_info": {
                    "total_fee": fen_text(lc.goods_total()),
                    "post_fee": fen_text(lc.post_fee),
                    "payment": fen_text(lc.payment()),
                    "real_payment": fen_text(lc.payment()),
                },
                "orders": lines,
                "address_info": {
                    "receiver_name": cipher(&token, 1),
                    "receiver_tel": cipher(&token, 2),
                    "delivery_province": province,
                    "delivery_city": city,
                    "delivery_district": "",
                    "delivery_address": cipher(&token, 3),
                },
                "remark_info": { "buyer_message": "", "star": 0 },
            }
        })
    }
}

fn trace_id() -> String {
    format!(
        "yz7-0a{:06x}-{}-{}",
        rand::random::<u32>() & 0xff_ffff,
        Utc::now().timestamp_millis(),
        rand::random::<u16>()
    )
}

fn gateway_error(code: i64, msg: &str) -> Response {
    json_answer(json!({"gw_err_resp": {"trace_id": trace_id(), "err_msg": msg, "err_code": code}}))
}

/// A refusal in the envelope the platform answers it with.
fn youzan_error(r: &quanyu_connector_sdk::connector::Refused) -> Response {
    match r.envelope.as_str() {
        "gateway" => gateway_error(r.code, &r.says),
        _ => api_error(r.code, &r.says),
    }
}

fn api_error(code: i64, msg: &str) -> Response {
    json_answer(json!({
        "trace_id": trace_id(), "code": code, "data": null, "success": false, "message": msg,
    }))
}

fn success(data: serde_json::Value) -> Response {
    json_answer(json!({
        "trace_id": trace_id(), "code": 200, "data": data, "success": true, "message": "successful",
    }))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// `POST /auth/token`: silent authorization of a self-use app.
async fn token_route(State(sb): State<YouzanSandbox>, headers: HeaderMap, body: Bytes) -> Response {
    sb.count_request();
    if !is_json(&headers) {
        return api_error(
            AUTH_BAD_APP,
            "Content type not supported, use application/json",
        );
    }
    if let Some(answer) = sb
        .faults
        .answer(false, |r| match r {
            Refusal::Throttled => api_error(GW_THROTTLED, "请求太频繁"),
            Refusal::Busy | Refusal::TokenExpired => api_error(API_TIMEOUT, "系统繁忙"),
        })
        .await
    {
        return answer;
    }
    let Ok(req) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return api_error(AUTH_BAD_APP, "请求体不是JSON");
    };
    let s = |k: &str| req.get(k).and_then(serde_json::Value::as_str).unwrap_or("");
    let cfg = &sb.inner.cfg;
    if s("client_id") != cfg.app_key {
        return api_error(AUTH_NO_CLIENT, "Client 不存在");
    }
    if s("client_secret") != cfg.app_secret {
        return api_error(AUTH_BAD_APP, "应用信息错误");
    }
    if s("authorize_type") != "silent" {
        return api_error(1105, "不支持的应用类型");
    }
    let grant = req
        .get("grant_id")
        .map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default();
    let Some(shop) = (0..sb.book.shops().len()).find(|&i| kdt_id(i) == grant) else {
        return api_error(AUTH_NO_CLIENT, "授权关系不存在");
    };
    let renew = req.get("refresh").and_then(serde_json::Value::as_bool) == Some(true);
    let core = &sb;
    // A new token leaves the old one working a while (Youzan: up to an
    // hour), so in-flight calls do not fail.
    let (token, left) = core.issuer.grant(shop, renew, false, 0);
    core.count_refresh();
    success(json!({
        "access_token": token,
        "expires": Utc::now().timestamp_millis() + left * 1000,
        "scope": "multi_store shop item trade logistics coupon_advanced user pay_qrcode trade_virtual reviews item_category storage retail_goods points crm_advanced",
        "authority_id": grant,
    }))
}

/// `POST /api/{name}/{version}?access_token=…`.
async fn api_route(
    State(sb): State<YouzanSandbox>,
    Path((name, version)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let core = &sb;
    core.count_request();
    let known = matches!(
        (name.as_str(), version.as_str()),
        (TRADES_API, TRADES_VERSION)
            | (DECRYPT_API, DECRYPT_VERSION)
            | (REFUNDS_API, REFUNDS_VERSION)
    );
    if !known {
        return gateway_error(GW_NO_API, "api不存在或版本不存在");
    }
    if !is_json(&headers) {
        return gateway_error(4007, "不支持的请求方法或Content-Type");
    }
    let token = q
        .as_deref()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned())
        .and_then(|mut pairs| pairs.find(|(k, _)| k == "access_token").map(|(_, v)| v))
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return gateway_error(GW_ILLEGAL_TOKEN, "非法的请求凭证");
    };
    let shop = match core.issuer.check(&token) {
        Ok(s) => s,
        Err(TokenProblem::Expired) => return gateway_error(GW_TOKEN_EXPIRED, "请求凭证过期"),
        Err(TokenProblem::Unknown) => return gateway_error(GW_NO_TOKEN, "Token 不存在"),
    };
    let Ok(params) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return gateway_error(4004, "请求体不是JSON");
    };
    if let Some(answer) = core.refused(true, youzan_error).await {
        return answer;
    }
    match name.as_str() {
        DECRYPT_API => decrypt(&sb, &params),
        REFUNDS_API => refunds(&sb, shop, &params),
        _ => trades(&sb, shop, &params),
    }
}

/// `youzan.trade.refund.search`: the shop's refunds updated between
/// `update_time_start` and `update_time_end` (both, at most 90 days
/// apart), newest first, 1-based pages of at most 100.
fn refunds(sb: &YouzanSandbox, shop: usize, params: &serde_json::Value) -> Response {
    let (Ok(Some(start)), Ok(Some(end))) = (
        beijing_param(params, "update_time_start"),
        beijing_param(params, "update_time_end"),
    ) else {
        return api_error(API_PARAM, "update_time_start和update_time_end必须同时传入");
    };
    if end < start || end - start > 90 * 86_400 {
        return api_error(API_WINDOW, "查询时间跨度不能超过90天");
    }
    let int = |k: &str| params.get(k).and_then(quanyu_connector_sdk::market::int_of);
    let (page, size) = (int("page_no").unwrap_or(1), int("page_size").unwrap_or(20));
    if page < 1 || !(1..=100).contains(&size) {
        return api_error(API_PARAM, "page_no从1开始，每页最多显示100条数据");
    }
    let core = &sb;
    let idx = core.book.snapshot();
    let list = idx.refund_window(shop, start, end);
    let (from, to, corrupt_at) = core.page_slice(list.len(), page as usize, size as usize);
    let ts = |t: i64| format_beijing(DateTime::from_timestamp(t, 0).expect("valid"));
    let rows: Vec<serde_json::Value> = (from..to)
        .map(|k| {
            let e = &list[k];
            let plan = core.book.refund_plan(e);
            let p = &sb.world().purchases[e.purchase as usize];
            let status = match e.stage(&plan) {
                RefundStage::Asked => "WAIT_SELLER_AGREE",
                RefundStage::Granted => "SUCCESS",
                RefundStage::Refused => "CLOSED",
            };
            json!({
                "refund_id": core.book.refund_no(e).to_string(),
                "tid": sb.world().order_id(p),
                "oid": plan.line.map(|l| format!("{}{l:02}", p.order_no % 1_000_000_000_000)),
                "status": status,
                "refund_fee": if corrupt_at == Some(k) { "12,5".to_string() } else { fen_text(plan.amount) },
                "created": ts(plan.asked),
                "modified": ts(e.modified),
            })
        })
        .collect();
    success(json!({ "total": list.len(), "refunds": rows }))
}

/// A Beijing `yyyy-MM-dd HH:mm:ss` parameter: `None` when absent, an error
/// when it is anything else.
fn beijing_param(params: &serde_json::Value, k: &str) -> Result<Option<i64>, ()> {
    match params.get(k) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .map(|n| Some(from_beijing_naive(n).timestamp()))
            .map_err(|_| ()),
        Some(_) => Err(()),
    }
}

fn trades(sb: &YouzanSandbox, shop: usize, params: &serde_json::Value) -> Response {
    let (Ok(start), Ok(end)) = (
        beijing_param(params, "start_update"),
        beijing_param(params, "end_update"),
    ) else {
        return gateway_error(GW_SYSTEM, "系统异常");
    };
    let (start, end) = match (start, end) {
        (Some(s), Some(e)) => (s, e),
        (None, None) => (i64::MIN, i64::MAX),
        // A range given without both ends is ignored by Youzan; we refuse
        // it, so a connector bug cannot pass as an empty window.
        _ => return api_error(API_PARAM, "start_update和end_update必须同时传入"),
    };
    if end < start {
        return api_error(API_PARAM, "开始时间不能大于结束时间");
    }
    if end != i64::MAX && end - start > 365 * 86_400 {
        return api_error(API_WINDOW, "每次可搜索一年订单记录,请重新选择起止时间");
    }
    let int = |k: &str, default: i64| match params.get(k) {
        None => Some(default),
        Some(v) => quanyu_connector_sdk::market::int_of(v),
    };
    let (Some(page), Some(size)) = (int("page_no", 1), int("page_size", 20)) else {
        return gateway_error(4010, "参数类型不匹配");
    };
    if !(1..=100).contains(&size) {
        return api_error(API_PARAM, "每页最多显示100条数据");
    }
    if !(1..=100).contains(&page) || page * size > 3_200 {
        return api_error(API_PARAM, "page_size 和page_no相乘总条数不能大于3200条");
    }
    let core = &sb;
    let idx = core.book.snapshot();
    let list = idx.window(shop, start.max(0), end);
    let total = list.len();
    let (from, to, corrupt_at) = core.page_slice(total, page as usize, size as usize);
    let orders: Vec<serde_json::Value> = (from..to)
        .map(|k| {
            let e = list[k];
            sb.render_order(
                e.purchase as usize,
                usize::from(e.event),
                shop,
                corrupt_at == Some(k),
            )
        })
        .collect();
    success(json!({ "total_results": total, "full_order_info_list": orders }))
}

/// `youzan.cloud.secret.decrypt.batch`: `sources`, at most 10,000
/// ciphertexts, none empty; `data` maps each to its clear text.
fn decrypt(sb: &YouzanSandbox, params: &serde_json::Value) -> Response {
    let Some(sources) = params.get("sources").and_then(serde_json::Value::as_array) else {
        return api_error(API_PARAM, "sources不能为空");
    };
    if sources.is_empty() || sources.len() > 10_000 {
        return api_error(API_PARAM, "sources条数为1到10000");
    }
    let texts: Vec<&str> = sources
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    if texts.len() != sources.len() || texts.iter().any(|t| t.is_empty()) {
        return api_error(10_500, "系统异常");
    }
    sb.count_decrypt();
    let world = sb.world();
    let data: serde_json::Map<String, serde_json::Value> = texts
        .iter()
        .map(|c| {
            let clear = token_of(c)
                .and_then(|t| world.receiver_by_cipher(&t))
                .map(|r| serde_json::Value::String(r.phone.clone()))
                .unwrap_or(serde_json::Value::Null);
            (c.to_string(), clear)
        })
        .collect();
    success(serde_json::Value::Object(data))
}

/// The config that pulls an announced sandbox as `pull` asks.
pub fn config(ann: &SandboxAnnouncement, pull: SandboxPull) -> crate::YouzanConfig {
    crate::YouzanConfig {
        gateway: ann.base_url.clone(),
        client_id: ann.app_key.clone(),
        client_secret: SecretRef::inline(ann.app_secret.clone()),
        decrypt: pull.decrypt,
        pull: PullSettings::sandbox(pull, 100, 6 * 60, 30),
        shops: ann
            .shops
            .iter()
            .map(|s| {
                let (id, kdt) = s.id.split_once('#').unwrap_or((&s.id, ""));
                crate::YouzanShop {
                    id: id.to_string(),
                    kdt_id: kdt.to_string(),
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quanyu_connector_sdk::sandbox::market::check_rendered_order;

    #[test]
    fn rendered_orders_map_and_ciphertexts_resolve() {
        let sb = YouzanSandbox::for_test();
        let render = |i, ev, garbled| sb.render_order(i, ev, 0, garbled).to_string();
        check_rendered_order(&sb, render, &crate::MAPPING, token_of);
        assert_eq!(token_of(&cipher("tok", 1)), None, "names are not phones");
    }

    #[test]
    fn statuses_map_back_to_their_stage() {
        use quanyu_schemas::OrderStatus;
        let sb = YouzanSandbox::for_test();
        let hasher = quanyu_schemas::PiiHasher::new(&quanyu_schemas::LakeKey::from_bytes([1; 32]));
        for (stage, want) in [
            (Stage::Created, OrderStatus::PendingPayment),
            (Stage::Paid, OrderStatus::Paid),
            (Stage::Shipped, OrderStatus::Shipped),
            (Stage::Finished, OrderStatus::Completed),
            (Stage::Cancelled, OrderStatus::Cancelled),
            (Stage::Refunded, OrderStatus::Refunded),
        ] {
            let words = sb.stage_word(stage);
            let (s, r) = (&words[0], &words[1]);
            let paid = !matches!(stage, Stage::Created | Stage::Cancelled);
            let order = serde_json::json!({"full_order_info": {"order_info": {
                "tid": "E1", "status": s, "refund_state": r, "created": "2026-03-18 15:08:48",
                "update_time": "2026-03-18 15:09:30",
                "pay_time": if paid { "2026-03-18 15:09:30" } else { "" }}}});
            let got = crate::MAPPING.order(&order.to_string(), "x", &hasher);
            assert_eq!(got.map(|m| m.row.status), Ok(want), "{stage:?}");
        }
    }
}
