//! An emulator of the Kuaishou open platform for `open.order.cursor.list`,
//! `open.order.decrypt.batch` and the OAuth token endpoints.
//!
//! Same paths (method dots → slashes), GET query or POST form, the same
//! system parameters, the real signature check (MD5 / HMAC_SHA256 with the
//! signSecret) answered with Kuaishou's `result` envelope, a timestamp
//! freshness check, the seven-day window and 50-order page limits, the
//! 90-day update-time history. Orders are sorted by update time (then oid)
//! descending or ascending and read with an opaque cursor that encodes the
//! position of the last order returned (its update time and oid), ending in
//! `"nomore"`: an order modified while a client pages moves out of the
//! window's order, but no unread order shifts past the cursor, so none is
//! skipped (the moved one shows again in a later window, by its new time).
//! Tokens rotate on refresh and expire; faults (code 17 throttling, code 10
//! busy, HTTP 5xx, slow answers, code 28 token expiry, a corrupt order) are
//! injected on request.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use quanyu_connector_sdk::connector::{SandboxAnnouncement, SandboxPull};
use quanyu_connector_sdk::market::PullSettings;
use quanyu_connector_sdk::sandbox::answer::{form_params, json_answer, param, Refusal};
use quanyu_connector_sdk::sandbox::market::MarketSandboxConfig;
use quanyu_connector_sdk::sandbox::orders::{mask_phone, RefundStage, Stage};
use quanyu_connector_sdk::sandbox::tokens::TokenProblem;
use quanyu_connector_sdk::sandbox::world::REGIONS;
use quanyu_connector_sdk::sandbox::world::{cipher_payload, token_in};
use quanyu_connector_sdk::SecretRef;
use serde_json::json;

use crate::client::{
    CODE_BAD_APP, CODE_BAD_SIGN, CODE_BAD_TOKEN, CODE_BUSINESS, CODE_QPS, CODE_SYSTEM,
    CODE_TOKEN_EXPIRED,
};
use crate::sign::{sign, SignMethod};
use crate::{DECRYPT_API, NO_MORE, REFUND_LIST_API};

/// What the sandbox accepts and serves.
pub type KuaishouSandboxConfig = MarketSandboxConfig;

quanyu_connector_sdk::market_sandbox! {
    /// The Kuaishou open-platform emulator. Cheap to clone.
    pub struct KuaishouSandbox {}
    serves: Kuaishou, tokens: "ks", token_ttl: 7 * 86_400,
    describe: "Kuaishou open platform sandbox at {base_url}/open/order/cursor/list",
    kit: crate::KuaishouConfig,
    announce: with_sign_secret,
}

/// A ciphertext in Kuaishou's style: separator, base64 payload, key
/// version, separator (`$…$` phones, `#…#` names, `~…~` addresses).
fn cipher(sep: char, token: &str, field: u8) -> String {
    let payload = cipher_payload(token, field);
    format!("{sep}{payload}{sep}1{sep}")
}

/// The cipher token inside a phone ciphertext.
fn token_of(c: &str) -> Option<String> {
    token_in(c.strip_prefix('$')?.split('$').next()?, 3)
}

/// The opaque position of an order in the listing.
fn encode_cursor(modified_ms: i64, oid: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1:{modified_ms}:{oid}"))
}

fn decode_cursor(c: &str) -> Option<(i64, u64)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut it = text.split(':');
    (it.next()? == "v1").then_some(())?;
    let m = it.next()?.parse().ok()?;
    let o = it.next()?.parse().ok()?;
    it.next().is_none().then_some((m, o))
}

impl KuaishouSandbox {
    /// Kuaishou signs with its own secret: it is announced too.
    fn with_sign_secret(&self, mut a: SandboxAnnouncement) -> SandboxAnnouncement {
        a.sign_secret = Some(self.inner.cfg.sign_secret.clone());
        a
    }

    /// The axum router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/open/order/cursor/list", any(api_route))
            .route("/open/order/decrypt/batch", any(api_route))
            .route("/open/seller/order/refund/pcursor/list", any(api_route))
            .route("/oauth2/refresh_token", any(oauth_route))
            .route("/oauth2/access_token", any(oauth_route))
            .with_state(self.clone())
    }

    fn oid(&self, purchase: usize) -> u64 {
        let w = self.world();
        w.order_id(&w.purchases[purchase]).parse().unwrap_or(0)
    }

    /// One order JSON as `open.order.cursor.list` shows it.
    fn render_order(&self, i: usize, ev: usize, corrupt: bool) -> serde_json::Value {
        let v = self.book.view(i, ev);
        let (world, p, lc, person) = (v.world, v.purchase, v.lifecycle, &v.receiver);
        let shop = &world.config.shops[p.shop].id;
        let (modified, stage) = (v.modified, v.stage);
        let ms = |t: Option<i64>| t.map(|t| t * 1000).unwrap_or(0);
        let created = v.created_as(corrupt, |t| t * 1000);
        let paid = lc.time_of(Stage::Paid, ev);
        let sent = lc.time_of(Stage::Shipped, ev);
        let recv = lc.time_of(Stage::Finished, ev);
        let (province, city) = REGIONS[person.region];
        let token = world.cipher_token(p);
        let oid = self.oid(i);
        let pieces = lc.pieces();
        let first_price = lc.items.first().map(|x| x.1).unwrap_or(0);
        let mut order = json!({
            "orderBaseInfo": {
                "oid": oid,
                "status": self.stage_word(stage),
                "payType": if paid.is_some() { 1 } else { 0 },
                "buyerOpenId": world.buyer_token(p.person, p.shop),
                "buyerNick": format!("快手用户{:04}", p.person % 10_000),
                "sellerOpenId": format!("seller-{shop}"),
                "sellerNick": shop,
                "createTime": created,
                "payTime": ms(paid),
                "updateTime": modified * 1000,
                "sendTime": ms(sent),
                "recvTime": ms(recv),
                "totalFee": lc.payment(),
                "expressFee": lc.post_fee,
                "discountFee": lc.discount,
                "remark": "",
            },
            "orderItemInfo": {
                "itemId": 700_000_000 + (first_price % 997),
                "skuId": 800_000_000 + (first_price % 991),
                "relSkuId": 0,
                "skuDesc": "默认",
                "skuNick": "",
                "itemTitle": format!("商品{}", first_price % 997),
                "num": pieces,
                "price": first_price,
                "originalPrice": first_price,
                "orderItemId": oid * 10,
            },
            "orderAddress": {
                "encryptedConsignee": cipher('#', &token, 1),
                "encryptedAddress": cipher('~', &token, 2),
                "encryptedMobile": cipher('$', &token, 3),
                "desensitiseConsignee": "*某",
                "desensitiseMobile": mask_phone(&person.phone),
                "desensitiseAddress": "**********",
                "province": province,
                "city": city,
                "district": "",
                "town": "",
            },
            "orderRefundList": [],
            "orderLogisticsInfo": [],
        });
        if stage == Stage::Refunded {
            order["orderRefundList"] = json!([{
                "refundId": oid * 10 + 1,
                "refundStatus": 22,
                "refundFee": lc.payment(),
            }]);
        }
        if sent.is_some() {
            order["orderLogisticsInfo"] = json!([{
                "expressNo": format!("SF{:012}", oid % 1_000_000_000_000),
                "expressCode": 4,
            }]);
        }
        order
    }
}

fn ks_error(code: i64, detail: &str) -> Response {
    json_answer(
        json!({
            "result": code,
            "subCode": code.to_string(),
            "subMsg": detail,
            "errorMsg": detail,
            "msg": "业务处理失败",
            "success": false,
        })
        .to_string(),
    )
}

/// An API at the path its method names (`/open/order/cursor/list` for
/// `open.order.cursor.list`), parameters from the query and the form body.
async fn api_route(
    State(sb): State<KuaishouSandbox>,
    RawQuery(q): RawQuery,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    let method = uri.path().trim_start_matches('/').replace('/', ".");
    api(sb, &method, form_params(q.as_deref(), &body)).await
}

/// Authentication, signature, freshness, token and faults; then dispatch.
async fn api(sb: KuaishouSandbox, path_method: &str, params: Vec<(String, String)>) -> Response {
    sb.count_request();
    let p = |k: &str| param(&params, k);
    if p("method") != Some(path_method) {
        return ks_error(CODE_BUSINESS, "method无效");
    }
    match p("appkey") {
        Some(k) if k == sb.inner.cfg.app_key => {}
        _ => return ks_error(CODE_BAD_APP, "appkey无效"),
    }
    let Some(given) = p("sign") else {
        return ks_error(CODE_BAD_SIGN, "缺少签名参数sign");
    };
    let Some(method) = p("signMethod").and_then(SignMethod::parse) else {
        return ks_error(CODE_BAD_SIGN, "signMethod无效");
    };
    let expected = sign(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &sb.inner.cfg.sign_secret,
        method,
    );
    if given != expected {
        return ks_error(CODE_BAD_SIGN, "签名验证失败");
    }
    if p("version") != Some("1") {
        return ks_error(CODE_BUSINESS, "version无效");
    }
    let fresh = p("timestamp")
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(DateTime::from_timestamp_millis)
        .is_some_and(|t| (Utc::now() - t).num_seconds().abs() <= 600);
    if !fresh {
        return ks_error(CODE_BUSINESS, "timestamp无效或与服务器时间相差超过10分钟");
    }
    let shop = match sb.issuer.check(p("access_token").unwrap_or("")) {
        Ok(s) => s,
        Err(TokenProblem::Expired) => return ks_error(CODE_TOKEN_EXPIRED, "access_token已过期"),
        Err(TokenProblem::Unknown) => return ks_error(CODE_BAD_TOKEN, "access_token无效"),
    };
    if let Some(answer) = sb.refused(true, |r| ks_error(r.code, &r.says)).await {
        return answer;
    }
    let Some(param) = p("param").and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
    else {
        return ks_error(CODE_BUSINESS, "param无效");
    };
    match path_method {
        DECRYPT_API => decrypt(&sb, &param),
        REFUND_LIST_API => refund_list(&sb, shop, &param),
        _ => cursor_list(&sb, shop, &param),
    }
}

/// `open.seller.order.refund.pcursor.list`: the shop's refunds updated in
/// `[beginTime, endTime]` (ms, at most 7 days; `queryType` 2), newest
/// first, `pageSize` at most 100, followed by `pcursor` until `nomore`.
fn refund_list(sb: &KuaishouSandbox, shop: usize, param: &serde_json::Value) -> Response {
    let int = |k: &str| param.get(k).and_then(serde_json::Value::as_i64);
    let (Some(begin), Some(end)) = (int("beginTime"), int("endTime")) else {
        return ks_error(CODE_BUSINESS, "beginTime和endTime不能为空");
    };
    if end < begin || end - begin > 7 * 86_400_000 {
        return ks_error(CODE_BUSINESS, "查询时间范围不能超过7天");
    }
    if int("queryType") != Some(2) || int("type") != Some(9) {
        return ks_error(CODE_BUSINESS, "沙箱仅支持queryType=2, type=9(全部)");
    }
    let page_size = match int("pageSize") {
        Some(n @ 1..=100) => n as usize,
        _ => return ks_error(CODE_BUSINESS, "pageSize无效，最大为100"),
    };
    let after = match param.get("pcursor").and_then(serde_json::Value::as_str) {
        None | Some("") => None,
        Some(c) => match decode_cursor(c) {
            Some(pos) => Some(pos),
            None => return ks_error(CODE_BUSINESS, "pcursor无效"),
        },
    };
    let book = &sb.book;
    let idx = book.snapshot();
    let lo = begin.div_euclid(1000) + i64::from(begin.rem_euclid(1000) != 0);
    let hi = end.div_euclid(1000);
    let mut list: Vec<_> = if lo > hi {
        vec![]
    } else {
        idx.refund_window(shop, lo, hi)
            .iter()
            .map(|e| (e.modified * 1000, book.refund_no(e), *e))
            .collect()
    };
    list.sort_unstable_by_key(|x| std::cmp::Reverse((x.0, x.1)));
    let start = after.map_or(0, |pos| list.partition_point(|x| (x.0, x.1) >= pos));
    let (start, to, corrupt) = sb.slice_from(list.len(), start, page_size);
    let page = &list[start..to];
    let corrupt_at = corrupt.map(|c| c - start);
    let rows: Vec<serde_json::Value> = page
        .iter()
        .enumerate()
        .map(|(k, (_, refund_no, e))| {
            let plan = book.refund_plan(e);
            let status = match e.stage(&plan) {
                RefundStage::Asked => 10,
                RefundStage::Granted => 60,
                RefundStage::Refused => 70,
            };
            json!({
                "refundId": refund_no,
                "oid": sb.oid(e.purchase as usize),
                "refundType": if plan.line.is_some() { 2 } else { 1 },
                "status": status,
                "refundFee": if corrupt_at == Some(k) { json!("12,5") } else { json!(plan.amount) },
                "createTime": plan.asked * 1000,
                "updateTime": e.modified * 1000,
            })
        })
        .collect();
    let pcursor = match page.last() {
        Some(&(m, r, _)) if to < list.len() => encode_cursor(m, r),
        _ => NO_MORE.to_string(),
    };
    json_answer(
        json!({
            "result": 1,
            "data": {"pcursor": pcursor, "refundOrderInfoList": rows}
        })
        .to_string(),
    )
}

fn cursor_list(sb: &KuaishouSandbox, shop: usize, param: &serde_json::Value) -> Response {
    let int = |k: &str| param.get(k).and_then(serde_json::Value::as_i64);
    let (Some(begin), Some(end)) = (int("beginTime"), int("endTime")) else {
        return ks_error(CODE_BUSINESS, "beginTime和endTime不能为空");
    };
    if end < begin {
        return ks_error(CODE_BUSINESS, "endTime无效");
    }
    if end - begin > 7 * 86_400_000 {
        return ks_error(CODE_BUSINESS, "查询时间范围不能超过7天");
    }
    let as_of = sb.as_of().timestamp_millis();
    if begin < as_of - 90 * 86_400_000 {
        return ks_error(CODE_BUSINESS, "beginTime无效，只能查询90天内更新的订单");
    }
    let page_size = match int("pageSize") {
        Some(n @ 1..=50) => n as usize,
        None => 10,
        Some(_) => return ks_error(CODE_BUSINESS, "pageSize无效，最大为50"),
    };
    let desc = match int("sort") {
        None | Some(1) => true,
        Some(2) => false,
        Some(_) => return ks_error(CODE_BUSINESS, "sort无效"),
    };
    match int("queryType") {
        None | Some(2) => {}
        Some(1) => return ks_error(CODE_BUSINESS, "沙箱仅支持queryType=2(按更新时间)"),
        Some(_) => return ks_error(CODE_BUSINESS, "queryType无效"),
    }
    let wanted: Option<i64> = match int("orderViewStatus") {
        None | Some(1) => None,
        Some(2) => Some(10),
        Some(3) => Some(30),
        Some(4) => Some(40),
        Some(5) => Some(50),
        Some(6) => Some(70),
        Some(7) => Some(80),
        Some(_) => return ks_error(CODE_BUSINESS, "orderViewStatus无效"),
    };
    let after = match param.get("cursor").and_then(serde_json::Value::as_str) {
        None | Some("") => None,
        Some(c) => match decode_cursor(c) {
            Some(pos) => Some(pos),
            None => return ks_error(CODE_BUSINESS, "cursor无效"),
        },
    };
    let idx = sb.book.snapshot();
    // Entries modified in [ceil(begin s), floor(end s)].
    let lo = begin.div_euclid(1000) + i64::from(begin.rem_euclid(1000) != 0);
    let hi = end.div_euclid(1000);
    let mut list: Vec<(i64, u64, usize, usize)> = if lo > hi {
        vec![]
    } else {
        idx.window(shop, lo, hi)
            .iter()
            .map(|e| {
                let i = e.purchase as usize;
                (e.modified * 1000, sb.oid(i), i, usize::from(e.event))
            })
            .filter(|&(_, _, i, ev)| {
                wanted.is_none_or(|w| {
                    sb.stage_word(sb.book.lifecycle(i).events[ev].1).as_i64() == Some(w)
                })
            })
            .collect()
    };
    list.sort_unstable_by_key(|x| std::cmp::Reverse((x.0, x.1)));
    if !desc {
        list.reverse();
    }
    let start = match after {
        None => 0,
        Some(pos) => list.partition_point(|x| {
            if desc {
                (x.0, x.1) >= pos
            } else {
                (x.0, x.1) <= pos
            }
        }),
    };
    let (start, to, corrupt) = sb.slice_from(list.len(), start, page_size);
    let page = &list[start..to];
    let corrupt_at = corrupt.map(|c| c - start);
    let orders: Vec<serde_json::Value> = page
        .iter()
        .enumerate()
        .map(|(k, &(_, _, i, ev))| sb.render_order(i, ev, corrupt_at == Some(k)))
        .collect();
    let cursor = match page.last() {
        Some(&(m, o, _, _)) if to < list.len() => encode_cursor(m, o),
        _ => NO_MORE.to_string(),
    };
    json_answer(
        json!({
            "result": 1,
            "data": {
                "cursor": cursor,
                "pageSize": page_size,
                "beginTime": begin,
                "endTime": end,
                "orderList": orders,
            }
        })
        .to_string(),
    )
}

/// `open.order.decrypt.batch`: at most 100 `{bizId, encryptedData}`.
fn decrypt(sb: &KuaishouSandbox, param: &serde_json::Value) -> Response {
    sb.count_decrypt();
    let Some(list) = param
        .get("batchDecryptList")
        .and_then(serde_json::Value::as_array)
    else {
        return ks_error(CODE_BUSINESS, "batchDecryptList不能为空");
    };
    if list.is_empty() || list.len() > 100 {
        return ks_error(CODE_BUSINESS, "batchDecryptList条数不能超过100");
    }
    let world = sb.world();
    let out: Vec<serde_json::Value> = list
        .iter()
        .map(|q| {
            let biz = q.get("bizId").cloned().unwrap_or(serde_json::Value::Null);
            let enc = q
                .get("encryptedData")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            match token_of(enc).and_then(|t| world.receiver_by_cipher(&t)) {
                Some(person) => json!({
                    "bizId": biz, "encryptedData": enc, "decryptedData": person.phone,
                    "errorCode": 1, "errorMsg": "成功",
                }),
                None => json!({
                    "bizId": biz, "encryptedData": enc, "decryptedData": "",
                    "errorCode": 2001, "errorMsg": "密文无效",
                }),
            }
        })
        .collect();
    json_answer(json!({"result": 1, "data": {"decryptList": out}}).to_string())
}

fn oauth_error(code: i64, error: &str, msg: &str) -> Response {
    json_answer(json!({"result": code, "error": error, "error_msg": msg}).to_string())
}

/// A token pair issued (by a code or a refresh), as the OAuth endpoints answer it.
fn issued_answer(
    sb: &KuaishouSandbox,
    i: quanyu_connector_sdk::sandbox::tokens::Issued,
) -> Response {
    json_answer(
        json!({
            "result": 1,
            "access_token": i.access_token,
            "expires_in": i.expires_in,
            "refresh_token": i.refresh_token,
            "refresh_token_expires_in": i.refresh_expires_in,
            "open_id": format!("seller-{}", sb.book.shop_id(i.shop)),
            "scopes": ["merchant_order", "merchant_user"],
        })
        .to_string(),
    )
}

fn check_client(sb: &KuaishouSandbox, params: &[(String, String)]) -> Option<Response> {
    if param(params, "app_id") != Some(sb.inner.cfg.app_key.as_str())
        || param(params, "app_secret") != Some(sb.inner.cfg.app_secret.as_str())
    {
        return Some(oauth_error(
            CODE_BAD_APP,
            "invalid_client",
            "app_id或app_secret无效",
        ));
    }
    sb.faults.answer_now(false, |r| match r {
        Refusal::Throttled => oauth_error(CODE_QPS, "rate_limited", "调用频率超过限制"),
        _ => oauth_error(CODE_SYSTEM, "server_error", "系统繁忙"),
    })
}

/// The OAuth endpoints: the app id and secret first, then the grant the path names.
async fn oauth_route(
    State(sb): State<KuaishouSandbox>,
    RawQuery(q): RawQuery,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    sb.count_request();
    let params = form_params(q.as_deref(), &body);
    match check_client(&sb, &params) {
        Some(r) => r,
        None if uri.path() == "/oauth2/refresh_token" => refresh(&sb, &params),
        None => access_token(&sb, &params),
    }
}

/// `/oauth2/refresh_token` (GET query or POST form): rotates the pair.
fn refresh(sb: &KuaishouSandbox, params: &[(String, String)]) -> Response {
    if param(params, "grant_type") != Some("refresh_token") {
        return oauth_error(CODE_BUSINESS, "unsupported_grant_type", "grant_type无效");
    }
    let Some(rt) = param(params, "refresh_token") else {
        return oauth_error(CODE_BUSINESS, "invalid_request", "refresh_token不能为空");
    };
    match sb.issuer.refresh(rt) {
        Some(i) => {
            sb.count_refresh();
            issued_answer(sb, i)
        }
        None => oauth_error(CODE_BUSINESS, "invalid_grant", "refresh_token无效或已使用"),
    }
}

/// `/oauth2/access_token` with `grant_type=code`: the sandbox's
/// authorization codes are `sandbox-code-<shop index>`.
fn access_token(sb: &KuaishouSandbox, params: &[(String, String)]) -> Response {
    if !matches!(
        param(params, "grant_type"),
        Some("code" | "authorization_code")
    ) {
        return oauth_error(CODE_BUSINESS, "unsupported_grant_type", "grant_type无效");
    }
    let shop = sb.shop_of_code(param(params, "code"));
    match shop {
        Some(s) => issued_answer(sb, sb.issuer.issue(s)),
        None => oauth_error(CODE_BUSINESS, "invalid_grant", "code无效"),
    }
}

/// The config that pulls an announced sandbox as `pull` asks.
pub fn config(ann: &SandboxAnnouncement, pull: SandboxPull) -> crate::KuaishouConfig {
    let inline = |s: &str| SecretRef::inline(s.to_string());
    crate::KuaishouConfig {
        gateway: ann.base_url.clone(),
        oauth_base: None,
        app_key: ann.app_key.clone(),
        app_secret: inline(&ann.app_secret),
        sign_secret: inline(ann.sign_secret.as_deref().unwrap_or_default()),
        sign_method: crate::SignMethod::HmacSha256,
        decrypt: pull.decrypt,
        decrypt_qps: 0,
        pull: PullSettings::sandbox(pull, 50, 7 * 24 * 60, 60),
        shops: quanyu_connector_sdk::market::TokenShop::announced(ann),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use quanyu_connector_sdk::sandbox::market::check_rendered_order;

    #[test]
    fn rendered_orders_map_and_ciphertexts_resolve() {
        let sb = KuaishouSandbox::for_test();
        let render = |i, ev, garbled| sb.render_order(i, ev, garbled).to_string();
        check_rendered_order(&sb, render, &crate::MAPPING, token_of);
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = encode_cursor(1_700_000_000_000, 2_400_000_000_000_123);
        assert_eq!(
            decode_cursor(&c),
            Some((1_700_000_000_000, 2_400_000_000_000_123))
        );
        assert_eq!(decode_cursor("nomore"), None);
        assert_eq!(decode_cursor("!!"), None);
    }
}
