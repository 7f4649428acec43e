//! An emulator of the Douyin shop open platform (openapi-fxg) for
//! `order.searchList`, `order.batchDecrypt`, `token.create` and
//! `token.refresh`.
//!
//! Same paths (method dots → slashes), POST with the JSON business body
//! (`param_json` in the query is read too), the same query parameters, the
//! real HMAC-SHA256 / MD5 signature check answered with Douyin's
//! `code`/`msg`/`sub_code` envelope, a ten-minute timestamp check (unix
//! seconds or Beijing `yyyy-MM-dd HH:mm:ss`, as SDKs send either), the
//! seven-day window and 100-order page limits, 0-based pages sorted by
//! update time descending with `total`. Receiver fields are ciphertext
//! (`$…$` phones, `#…#` names) with masks beside them. Token answers carry
//! the legacy `err_no`/`message` beside `code`/`msg`, which older SDKs
//! (doudian 0.6) read. Tokens rotate on refresh and expire; faults (90000
//! flow control, 20000 unavailable, HTTP 5xx, slow answers, 30002 token
//! expiry, a corrupt order) are injected on request.

use quanyu_connector_sdk::sandbox::world::{cipher_payload, token_in};
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use chrono::{DateTime, Utc};
use quanyu_connector_sdk::connector::{SandboxAnnouncement, SandboxPull};
use quanyu_connector_sdk::market::PullSettings;
use quanyu_connector_sdk::sandbox::answer::{json_answer, param, Refusal};
use quanyu_connector_sdk::sandbox::market::MarketSandboxConfig;
use quanyu_connector_sdk::sandbox::orders::{mask_phone, RefundStage, Stage};
use quanyu_connector_sdk::sandbox::tokens::TokenProblem;
use quanyu_connector_sdk::sandbox::world::REGIONS;
use quanyu_connector_sdk::SecretRef;
use quanyu_schemas::time::parse_beijing;
use serde_json::json;

use crate::client::{
    CODE_BAD_SIGN, CODE_BAD_TOKEN, CODE_FLOW_LIMIT, CODE_OK, CODE_PARAM, CODE_TOKEN_EXPIRED,
    CODE_UNAVAILABLE,
};
use crate::sign::{sign, SignMethod, Signed};
use crate::{AFTER_SALE_API, DECRYPT_BATCH, SEARCH_API};

/// What the sandbox accepts and serves.
pub type DouyinSandboxConfig = MarketSandboxConfig;

quanyu_connector_sdk::market_sandbox! {
    /// The Douyin shop open-platform emulator. Cheap to clone.
    pub struct DouyinSandbox {
        creates: AtomicU64 = AtomicU64::new(0),
    }
    serves: Douyin, tokens: "dy", token_ttl: 7 * 86_400,
    describe: "Douyin shop (抖店) open platform sandbox at {base_url}/order/searchList",
    kit: crate::DouyinConfig,
}

/// A ciphertext in Douyin's style: separator, base64 payload, key version,
/// doubled separator (`$…$3$$` phones, `#…#1##` names and addresses).
fn cipher(sep: char, token: &str, field: u8) -> String {
    let payload = cipher_payload(token, field);
    format!("{sep}{payload}{sep}{field}{sep}{sep}")
}

/// The cipher token inside a phone ciphertext.
fn token_of(c: &str) -> Option<String> {
    token_in(c.strip_prefix('$')?.split('$').next()?, 3)
}

impl DouyinSandbox {
    /// Tokens created through `/token/create` so far.
    pub fn creates(&self) -> u64 {
        self.inner.creates.load(Ordering::Relaxed)
    }

    /// The axum router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/order/searchList", any(api_route))
            .route("/order/batchDecrypt", any(api_route))
            .route("/afterSale/List", any(api_route))
            .route("/token/create", any(api_route))
            .route("/token/refresh", any(api_route))
            .with_state(self.clone())
    }

    /// One order JSON as `order.searchList` shows it.
    fn render_order(&self, i: usize, ev: usize, corrupt: bool) -> serde_json::Value {
        let v = self.book.view(i, ev);
        let (world, p, lc, person) = (v.world, v.purchase, v.lifecycle, &v.receiver);
        let (modified, stage) = (v.modified, v.stage);
        let secs = |t: Option<i64>| t.unwrap_or(0);
        let created = v.created_as(corrupt, |t| t);
        let (province, city) = REGIONS[person.region];
        let token = world.cipher_token(p);
        let order_id = world.order_id(p);
        let skus = lc.render_items(|k, n, price| {
            json!({
                "order_id": format!("{order_id}{k}"),
                "parent_order_id": order_id,
                "product_id": 3_500_000_000_000_000_000i64 + price,
                "sku_id": 1_700_000_000_000 + price,
                "out_sku_id": "",
                "code": "",
                "product_name": format!("抖音商品{}", price % 997),
                "item_num": n,
                "origin_amount": price * i64::from(n),
                "pay_amount": price * i64::from(n),
            })
        });
        json!({
            "order_id": order_id,
            "order_status": self.stage_word(stage),
            "order_status_desc": "",
            "main_status": 0,
            "create_time": created,
            "update_time": modified,
            "pay_time": secs(lc.time_of(Stage::Paid, ev)),
            "ship_time": secs(lc.time_of(Stage::Shipped, ev)),
            "finish_time": secs(lc.time_of(Stage::Finished, ev)),
            "order_amount": lc.goods_total() + lc.post_fee,
            "pay_amount": lc.payment(),
            "post_amount": lc.post_fee,
            "promotion_amount": lc.discount,
            "doudian_open_id": world.buyer_token(p.person, p.shop),
            "encrypt_post_tel": cipher('$', &token, 3),
            "encrypt_post_receiver": cipher('#', &token, 1),
            "mask_post_tel": mask_phone(&person.phone),
            "mask_post_receiver": "*某",
            "mask_post_addr": {"detail": "****"},
            "post_tel": "",
            "post_receiver": "",
            "post_addr": {
                "province": {"name": province, "id": ""},
                "city": {"name": city, "id": ""},
                "town": {"name": "", "id": ""},
                "street": {"name": "", "id": ""},
                "encrypt_detail": cipher('#', &token, 2),
            },
            "buyer_words": "",
            "seller_words": "",
            "sku_order_list": skus,
        })
    }
}

fn log_id() -> String {
    format!(
        "{}{:06X}",
        Utc::now().format("%Y%m%d%H%M%S"),
        rand::random::<u32>() & 0xFF_FFFF
    )
}

fn dy_error(code: i64, msg: &str, sub_code: &str, sub_msg: &str) -> Response {
    json_answer(
        json!({
            "code": code,
            "msg": msg,
            "sub_code": sub_code,
            "sub_msg": sub_msg,
            "log_id": log_id(),
            "data": {},
        })
        .to_string(),
    )
}

fn ok(data: serde_json::Value) -> Response {
    success(data, false)
}

/// A success envelope around `data`, with the legacy `err_no` / `message`
/// pair beside it where `legacy` (the token endpoints send both).
fn success(data: serde_json::Value, legacy: bool) -> Response {
    let mut v = json!({
        "code": CODE_OK,
        "msg": "success",
        "sub_code": "",
        "sub_msg": "",
        "log_id": log_id(),
        "data": data,
    });
    if legacy {
        v["err_no"] = json!(0);
        v["message"] = json!("success");
    }
    json_answer(v.to_string())
}

/// A verified request: its query and business JSON.
struct Verified {
    params: Vec<(String, String)>,
    body: serde_json::Value,
}

/// Method, app key, signature, version and timestamp checks.
#[allow(clippy::result_large_err)] // the error is the answer, sent at once
fn verify(
    sb: &DouyinSandbox,
    method: &str,
    query: Option<String>,
    body: &[u8],
) -> Result<Verified, Response> {
    sb.count_request();
    let params: Vec<(String, String)> = query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let p = |k: &str| param(&params, k);
    let param_json = match std::str::from_utf8(body) {
        Ok(b) if !b.trim().is_empty() => b.to_string(),
        Ok(_) => p("param_json").unwrap_or("{}").to_string(),
        Err(_) => {
            return Err(dy_error(
                CODE_PARAM,
                "参数错误",
                "isv.parameter-invalid",
                "body不是UTF-8",
            ))
        }
    };
    if p("method") != Some(method) {
        return Err(dy_error(
            CODE_PARAM,
            "参数错误",
            "isv.method-invalid",
            "method与路径不一致",
        ));
    }
    if p("app_key") != Some(sb.inner.cfg.app_key.as_str()) {
        return Err(dy_error(
            CODE_BAD_SIGN,
            "app_key不存在",
            "isv.app-key-invalid",
            "app_key无效",
        ));
    }
    let Some(sign_method) = SignMethod::parse(p("sign_method")) else {
        return Err(dy_error(
            CODE_PARAM,
            "参数错误",
            "isv.sign-method-invalid",
            "sign_method无效",
        ));
    };
    let (Some(given), Some(timestamp), Some(v)) = (p("sign"), p("timestamp"), p("v")) else {
        return Err(dy_error(
            CODE_PARAM,
            "缺少公共参数",
            "isv.missing-parameter",
            "sign、timestamp、v必填",
        ));
    };
    let expected = sign(
        Signed {
            app_key: &sb.inner.cfg.app_key,
            method,
            param_json: &param_json,
            timestamp,
            v,
        },
        &sb.inner.cfg.app_secret,
        sign_method,
    );
    if !given.eq_ignore_ascii_case(&expected) {
        return Err(dy_error(
            CODE_BAD_SIGN,
            "签名错误",
            "isv.signature-invalid",
            "签名校验失败",
        ));
    }
    if v != "2" {
        return Err(dy_error(
            CODE_PARAM,
            "参数错误",
            "isv.version-invalid",
            "v必须为2",
        ));
    }
    let sent = timestamp
        .parse::<i64>()
        .ok()
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .or_else(|| parse_beijing(timestamp).ok());
    if sent.is_none_or(|t| (Utc::now() - t).num_seconds().abs() > 600) {
        return Err(dy_error(
            CODE_PARAM,
            "参数错误",
            "isv.timestamp-invalid",
            "timestamp已过期或格式错误",
        ));
    }
    let Ok(body) = serde_json::from_str::<serde_json::Value>(&param_json) else {
        return Err(dy_error(
            CODE_PARAM,
            "参数错误",
            "isv.parameter-invalid",
            "param_json不是合法的JSON",
        ));
    };
    Ok(Verified { params, body })
}

/// Token check and injected faults for the order APIs.
#[allow(clippy::result_large_err)] // the error is the answer, sent at once
async fn authorize(sb: &DouyinSandbox, v: &Verified) -> Result<usize, Response> {
    let shop = match sb
        .issuer
        .check(param(&v.params, "access_token").unwrap_or(""))
    {
        Ok(s) => s,
        Err(TokenProblem::Expired) => {
            return Err(dy_error(
                CODE_TOKEN_EXPIRED,
                "access_token已过期",
                "isv.access-token-expired",
                "access_token已过期",
            ))
        }
        Err(TokenProblem::Unknown) => {
            return Err(dy_error(
                CODE_BAD_TOKEN,
                "access_token不存在",
                "isv.access-token-no-exist",
                "access_token不存在",
            ))
        }
    };
    let answer = sb.refused(true, |r| dy_error(r.code, &r.says, &r.sub, &r.sub_says));
    answer.await.map_or(Ok(shop), Err)
}

/// Every API (its path is the method with `/` for `.`): method, app key,
/// signature and freshness first; then the shop's token and a drawn fault
/// for the shop's APIs, or the token endpoints' own faults.
async fn api_route(
    State(sb): State<DouyinSandbox>,
    RawQuery(q): RawQuery,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    let method = uri.path().trim_start_matches('/').replace('/', ".");
    let v = match verify(&sb, &method, q, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if method.starts_with("token.") {
        return match token_faults(&sb) {
            Some(r) => r,
            None if method == "token.create" => create(&sb, &v),
            None => refresh(&sb, &v),
        };
    }
    match authorize(&sb, &v).await {
        Err(r) => r,
        Ok(shop) if method == SEARCH_API => search(&sb, shop, &v),
        Ok(shop) if method == AFTER_SALE_API => after_sales(&sb, shop, &v),
        Ok(_) => decrypt(&sb, &v),
    }
}

fn search(sb: &DouyinSandbox, shop: usize, v: &Verified) -> Response {
    let param = &v.body;
    let int = |k: &str| param.get(k).and_then(serde_json::Value::as_i64);
    let bad = |m: &str| dy_error(CODE_PARAM, "参数错误", "isv.parameter-invalid", m);
    let (Some(page), Some(size)) = (int("page"), int("size")) else {
        return bad("page和size必填");
    };
    if page < 0 || !(1..=100).contains(&size) {
        return bad("page从0开始，size不能大于100");
    }
    if param.get("create_time_start").is_some() || param.get("create_time_end").is_some() {
        return bad("沙箱仅支持按update_time查询");
    }
    let (Some(start), Some(end)) = (int("update_time_start"), int("update_time_end")) else {
        return bad("update_time_start和update_time_end必填");
    };
    if end < start || end - start > 7 * 86_400 {
        return bad("更新时间跨度不能超过7天");
    }
    if start < sb.as_of().timestamp() - 180 * 86_400 {
        return bad("只能查询近6个月的订单");
    }
    match param.get("order_by").and_then(serde_json::Value::as_str) {
        None | Some("update_time") => {}
        Some(_) => return bad("order_by仅支持update_time"),
    }
    let asc = param
        .get("order_asc")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let idx = sb.book.snapshot();
    let mut list: Vec<(usize, usize)> = idx
        .window(shop, start, end)
        .iter()
        .map(|e| (e.purchase as usize, usize::from(e.event)))
        .collect();
    if asc {
        list.reverse();
    }
    let total = list.len();
    let (from, to, corrupt_at) = sb.page_slice(total, page as usize + 1, size as usize);
    let orders: Vec<serde_json::Value> = (from..to)
        .map(|k| sb.render_order(list[k].0, list[k].1, corrupt_at == Some(k)))
        .collect();
    ok(json!({
        "page": page,
        "size": size,
        "total": total,
        "shop_order_list": orders,
    }))
}

/// `afterSale.List`: the shop's after-sale requests updated between
/// `update_start_time` and `update_end_time` (at most 7 days), newest
/// first, `page` from 0, `size` at most 100.
fn after_sales(sb: &DouyinSandbox, shop: usize, v: &Verified) -> Response {
    let int = |k: &str| v.body.get(k).and_then(serde_json::Value::as_i64);
    let bad = |m: &str| dy_error(CODE_PARAM, "参数错误", "isv.parameter-invalid", m);
    let (Some(page), Some(size)) = (int("page"), int("size")) else {
        return bad("page和size必填");
    };
    if page < 0 || !(1..=100).contains(&size) {
        return bad("page从0开始，size不能大于100");
    }
    let (Some(start), Some(end)) = (int("update_start_time"), int("update_end_time")) else {
        return bad("update_start_time和update_end_time必填");
    };
    if end < start || end - start > 7 * 86_400 {
        return bad("更新时间跨度不能超过7天");
    }
    let book = &sb.book;
    let idx = book.snapshot();
    let list = idx.refund_window(shop, start, end);
    let (from, to, corrupt_at) = sb.page_slice(list.len(), page as usize + 1, size as usize);
    let items: Vec<serde_json::Value> = (from..to)
        .map(|k| {
            let e = &list[k];
            let plan = book.refund_plan(e);
            let p = &sb.world().purchases[e.purchase as usize];
            let order_id = sb.world().order_id(p);
            let status = match e.stage(&plan) {
                RefundStage::Asked => 6,
                RefundStage::Granted => 12,
                RefundStage::Refused => 27,
            };
            json!({
                "aftersale_info": {
                    "aftersale_id": book.refund_no(e).to_string(),
                    "aftersale_status": status,
                    "aftersale_type": if plan.line.is_some() { 0 } else { 2 },
                    "refund_amount": if corrupt_at == Some(k) { json!("12,5") } else { json!(plan.amount) },
                    "create_time": plan.asked,
                    "update_time": e.modified,
                },
                "order_info": {
                    "shop_order_id": order_id,
                    "related_order_info": plan.line.map(|l| vec![json!({
                        "sku_order_id": format!("{order_id}{l}"),
                    })]).unwrap_or_default(),
                },
            })
        })
        .collect();
    ok(json!({
        "page": page,
        "size": size,
        "total": list.len(),
        "has_more": to < list.len(),
        "items": items,
    }))
}

/// `order.batchDecrypt`: at most 50 `{auth_id, cipher_text}`.
fn decrypt(sb: &DouyinSandbox, v: &Verified) -> Response {
    let Some(list) = v
        .body
        .get("cipher_infos")
        .and_then(serde_json::Value::as_array)
    else {
        return dy_error(
            CODE_PARAM,
            "参数错误",
            "isv.parameter-invalid",
            "cipher_infos必填",
        );
    };
    if list.is_empty() || list.len() > DECRYPT_BATCH {
        return dy_error(
            CODE_PARAM,
            "参数错误",
            "isv.parameter-invalid",
            "cipher_infos最多50条",
        );
    }
    sb.count_decrypt();
    let world = sb.world();
    let out: Vec<serde_json::Value> = list
        .iter()
        .map(|q| {
            let auth = q.get("auth_id").cloned().unwrap_or(serde_json::Value::Null);
            let c = q
                .get("cipher_text")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            match token_of(c).and_then(|t| world.receiver_by_cipher(&t)) {
                Some(person) => json!({
                    "auth_id": auth, "cipher_text": c, "decrypt_text": person.phone,
                    "err_no": 0, "err_msg": "", "is_virtual_tel": false,
                    "phone_no_a": "", "phone_no_b": "",
                }),
                None => json!({
                    "auth_id": auth, "cipher_text": c, "decrypt_text": "",
                    "err_no": 300008, "err_msg": "密文无效",
                }),
            }
        })
        .collect();
    ok(json!({"decrypt_infos": out, "custom_err": {"err_code": 0, "err_msg": ""}}))
}

fn token_answer(
    sb: &DouyinSandbox,
    issued: quanyu_connector_sdk::sandbox::tokens::Issued,
) -> Response {
    let shop_id = sb.book.shop_id(issued.shop).to_string();
    let data = json!({
        "access_token": issued.access_token,
        "expires_in": issued.expires_in,
        "refresh_token": issued.refresh_token,
        "scope": "SCOPE",
        "shop_id": shop_id,
        "shop_name": shop_id,
        "authority_id": "",
        "auth_subject_type": "MiniApp",
    });
    success(data, true)
}

fn token_faults(sb: &DouyinSandbox) -> Option<Response> {
    sb.faults.answer_now(false, |r| match r {
        Refusal::Throttled => dy_error(
            CODE_FLOW_LIMIT,
            "流量受限",
            "isv.flow-limited",
            "请求过于频繁",
        ),
        _ => dy_error(
            CODE_UNAVAILABLE,
            "服务不可用",
            "isp.service-unavailable",
            "系统繁忙",
        ),
    })
}

/// `/token/create`: `authorization_self` with `shop_id` (or `test_shop`),
/// or `authorization_code` with the sandbox's codes `sandbox-code-<i>`.
fn create(sb: &DouyinSandbox, v: &Verified) -> Response {
    let text = |k: &str| {
        v.body
            .get(k)
            .and_then(|x| match x {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .filter(|s| !s.is_empty())
    };
    let shops = sb.shops();
    let shop = match text("grant_type").as_deref() {
        Some("authorization_self") => match (text("shop_id"), text("test_shop")) {
            (Some(id), _) => shops.iter().position(|s| *s == id),
            (None, Some(t)) if t == "1" => Some(0).filter(|_| !shops.is_empty()),
            _ => None,
        },
        Some("authorization_code") => sb.shop_of_code(text("code").as_deref()),
        _ => {
            return dy_error(
                CODE_PARAM,
                "参数错误",
                "isv.parameter-invalid",
                "grant_type无效",
            )
        }
    };
    match shop {
        Some(s) => {
            sb.inner.creates.fetch_add(1, Ordering::Relaxed);
            token_answer(sb, sb.issuer.issue(s))
        }
        None => dy_error(
            CODE_PARAM,
            "授权无效",
            "isv.auth-invalid",
            "店铺未授权该应用或code无效",
        ),
    }
}

/// `/token/refresh`: rotates the pair; the old refresh token is spent.
fn refresh(sb: &DouyinSandbox, v: &Verified) -> Response {
    if v.body.get("grant_type").and_then(serde_json::Value::as_str) != Some("refresh_token") {
        return dy_error(
            CODE_PARAM,
            "参数错误",
            "isv.parameter-invalid",
            "grant_type必须为refresh_token",
        );
    }
    let rt = v
        .body
        .get("refresh_token")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    match sb.issuer.refresh(rt) {
        Some(i) => {
            sb.count_refresh();
            token_answer(sb, i)
        }
        None => dy_error(
            CODE_PARAM,
            "refresh_token无效",
            "isv.refresh-token-invalid",
            "refresh_token已过期或已使用",
        ),
    }
}

/// The config that pulls an announced sandbox as `pull` asks.
pub fn config(ann: &SandboxAnnouncement, pull: SandboxPull) -> crate::DouyinConfig {
    let inline = |s: &str| SecretRef::inline(s.to_string());
    crate::DouyinConfig {
        gateway: ann.base_url.clone(),
        app_key: ann.app_key.clone(),
        app_secret: inline(&ann.app_secret),
        sign_method: crate::SignMethod::HmacSha256,
        decrypt: pull.decrypt,
        decrypt_qps: 0,
        pull: PullSettings::sandbox(pull, 100, 24 * 60, 60),
        shops: ann
            .shops
            .iter()
            .map(|s| crate::DouyinShop {
                id: s.id.clone(),
                shop_id: None,
                self_authorize: false,
                access_token: Some(inline(&s.access_token)),
                refresh_token: s.refresh_token.as_deref().map(inline),
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
        let sb = DouyinSandbox::for_test();
        let render = |i, ev, garbled| sb.render_order(i, ev, garbled).to_string();
        check_rendered_order(&sb, render, &crate::MAPPING, token_of);
        assert_eq!(token_of(&cipher('#', "t", 1)), None, "names are not phones");
    }
}
