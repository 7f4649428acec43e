//! An emulator of the Pinduoduo open-platform router for
//! `pdd.order.number.list.increment.get`, `pdd.open.decrypt.batch`,
//! `pdd.pop.auth.token.create` and `pdd.pop.auth.token.refresh`.
//!
//! One path (`/api/router`), the API named by `type`, system parameters in
//! the query or the form body (the official SDK puts them in the query),
//! the real MD5 signature check answered with Pinduoduo's `error_response`
//! envelope, a ten-minute timestamp check, the 30-minute window and
//! 100-order page limits. Orders are listed only once paid (as Pinduoduo
//! does), sorted by update time descending, paged by 1-based page numbers
//! with `total_count`. Receiver fields are ciphertext with masks beside
//! them. Tokens rotate on refresh and expire; faults (52101 throttling,
//! 50000 busy, HTTP 5xx, slow answers, 10019 token expiry, a corrupt order)
//! are injected on request.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use chrono::{DateTime, Utc};
use quanyu_connector_sdk::connector::{SandboxAnnouncement, SandboxPull};
use quanyu_connector_sdk::market::PullSettings;
use quanyu_connector_sdk::sandbox::answer::{beijing_text, json_answer, param, Refusal};
use quanyu_connector_sdk::sandbox::market::MarketSandboxConfig;
use quanyu_connector_sdk::sandbox::orders::{RefundStage, Stage};
use quanyu_connector_sdk::sandbox::tokens::TokenProblem;
use quanyu_connector_sdk::sandbox::world::REGIONS;
use quanyu_connector_sdk::sandbox::world::{cipher_payload, token_in};
use quanyu_connector_sdk::SecretRef;
use quanyu_schemas::time::format_beijing;
use serde_json::json;

use crate::client::{
    CODE_BAD_CLIENT, CODE_BAD_SIGN, CODE_BAD_TOKEN, CODE_PARAM, CODE_PUBLIC_PARAM, CODE_SYSTEM,
    CODE_THROTTLED, CODE_TOKEN_EXPIRED, REFRESH_API,
};
use crate::sign::sign;
use crate::{DECRYPT_API, INCREMENT_API, REFUNDS_API};

/// The token-creation API (authorization code → tokens).
pub const CREATE_API: &str = "pdd.pop.auth.token.create";

/// What the sandbox accepts and serves.
pub type PddSandboxConfig = MarketSandboxConfig;

quanyu_connector_sdk::market_sandbox! {
    /// The Pinduoduo router emulator. Cheap to clone.
    pub struct PddSandbox {}
    serves: Pdd, tokens: "pdd", token_ttl: 86_400,
    describe: "Pinduoduo router sandbox at {base_url}/api/router",
    kit: crate::PddConfig,
}

/// A ciphertext in Pinduoduo's style, e.g. `$Y/YK$AgAAAA…$0$$` for phones,
/// `~AgAAAA…~e3T2~0~~` for names: separator, a search index, the payload,
/// the key version.
fn cipher(sep: char, token: &str, field: u8) -> String {
    let payload = cipher_payload(token, field);
    let index = &payload[..payload.len().min(6)];
    format!("{sep}{index}{sep}AgAAAA{payload}{sep}0{sep}{sep}")
}

/// The cipher token inside a phone ciphertext.
fn token_of(c: &str) -> Option<String> {
    let payload = c.strip_prefix('$')?.split('$').nth(1)?;
    token_in(payload.strip_prefix("AgAAAA")?, 6)
}

/// `1*********5`: Pinduoduo masks all but the first and last digit.
fn pdd_mask(phone: &str) -> String {
    match (phone.chars().next(), phone.chars().last()) {
        (Some(a), Some(b)) if phone.len() == 11 => format!("{a}*********{b}"),
        _ => "***".into(),
    }
}

fn yuan(fen: i64) -> serde_json::Value {
    // Pinduoduo sends yuan as JSON numbers (188.3): the shortest decimal
    // that round-trips, as its gateway prints them.
    json!(fen as f64 / 100.0)
}

impl PddSandbox {
    /// The axum router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/router", any(router_route))
            .with_state(self.clone())
    }

    /// One order JSON as the increment API shows it.
    fn render_order(&self, i: usize, ev: usize, corrupt: bool) -> serde_json::Value {
        let v = self.book.view(i, ev);
        let (world, p, lc, person) = (v.world, v.purchase, v.lifecycle, &v.receiver);
        let (modified, stage) = (v.modified, v.stage);
        let at = beijing_text;
        let created = v.created_as(corrupt, |t| beijing_text(Some(t)));
        let paid = lc.time_of(Stage::Paid, ev);
        let words = self.stage_word(stage);
        let (order_status, refund_status) = (&words[0], &words[1]);
        let (province, city) = REGIONS[person.region];
        let token = world.cipher_token(p);
        let items = lc.render_items(|k, n, price| {
            json!({
                "goods_id": 300_000_000 + price % 997 + k as i64,
                "sku_id": 900_000_000 + price % 991 + k as i64,
                "goods_name": format!("拼单商品{}", price % 997),
                "goods_spec": "默认",
                "goods_count": n,
                "goods_price": yuan(price),
                "outer_id": "",
                "outer_goods_id": "",
            })
        });
        json!({
            "order_sn": world.order_id(p),
            "order_status": order_status,
            "refund_status": refund_status,
            "confirm_status": 1,
            "trade_type": 0,
            "created_time": created,
            "confirm_time": at(paid),
            "pay_time": at(paid),
            "updated_at": at(Some(modified)),
            "shipping_time": at(lc.time_of(Stage::Shipped, ev)),
            "receive_time": at(lc.time_of(Stage::Finished, ev)),
            "pay_amount": yuan(lc.payment()),
            "goods_amount": yuan(lc.goods_total()),
            "discount_amount": yuan(lc.discount),
            "seller_discount": yuan(lc.discount),
            "platform_discount": 0,
            "postage": yuan(lc.post_fee),
            "receiver_name": cipher('~', &token, 5),
            "receiver_phone": cipher('$', &token, 6),
            "receiver_address": cipher('~', &token, 7),
            "receiver_name_mask": quanyu_connector_sdk::sandbox::world::mask_name(&person.name),
            "receiver_phone_mask": pdd_mask(&person.phone),
            "receiver_address_mask": quanyu_connector_sdk::sandbox::world::mask_address(&person.address),
            "province": province,
            "city": city,
            "town": "",
            "item_list": items,
            "remark": "",
            "buyer_memo": "",
            "risk_control_status": 0,
        })
    }
}

fn request_id() -> String {
    format!(
        "{}{:05}",
        Utc::now().timestamp_millis(),
        rand::random::<u16>()
    )
}

fn pdd_error(code: i64, msg: &str) -> Response {
    json_answer(
        json!({
            "error_response": {
                "error_code": code,
                "error_msg": msg,
                "sub_code": null,
                "sub_msg": "",
                "request_id": request_id(),
            }
        })
        .to_string(),
    )
}

/// `/api/router`: public parameters, signature, freshness; then the API.
async fn router_route(
    State(sb): State<PddSandbox>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    sb.count_request();
    let mut params: Vec<(String, String)> = Vec::new();
    if let Some(q) = q {
        params.extend(url::form_urlencoded::parse(q.as_bytes()).into_owned());
    }
    params.extend(url::form_urlencoded::parse(&body).into_owned());
    let p = |k: &str| param(&params, k);
    let Some(api) = p("type") else {
        return pdd_error(CODE_PUBLIC_PARAM, "公共参数错误:type");
    };
    match p("client_id") {
        Some(c) if c == sb.inner.cfg.app_key => {}
        Some(_) => return pdd_error(CODE_BAD_CLIENT, "client_id不存在"),
        None => return pdd_error(CODE_PUBLIC_PARAM, "公共参数错误:client_id"),
    }
    let Some(given) = p("sign") else {
        return pdd_error(CODE_PUBLIC_PARAM, "公共参数错误:sign");
    };
    let expected = sign(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &sb.inner.cfg.app_secret,
    );
    if !given.eq_ignore_ascii_case(&expected) {
        return pdd_error(CODE_BAD_SIGN, "签名错误");
    }
    let fresh = p("timestamp")
        .and_then(|t| t.parse::<i64>().ok())
        .is_some_and(|t| (Utc::now().timestamp() - t).abs() <= 600);
    if !fresh {
        return pdd_error(CODE_PUBLIC_PARAM, "公共参数错误:timestamp");
    }
    if p("data_type").is_some_and(|d| !d.eq_ignore_ascii_case("JSON")) {
        return pdd_error(CODE_PUBLIC_PARAM, "公共参数错误:data_type");
    }
    match api {
        REFRESH_API | CREATE_API => return token_api(&sb, api, &params),
        INCREMENT_API | DECRYPT_API | REFUNDS_API => {}
        other => return pdd_error(CODE_PUBLIC_PARAM, &format!("公共参数错误:type {other}")),
    }
    let shop = match sb.issuer.check(p("access_token").unwrap_or("")) {
        Ok(s) => s,
        Err(TokenProblem::Expired) => return pdd_error(CODE_TOKEN_EXPIRED, "access_token已过期"),
        Err(TokenProblem::Unknown) => return pdd_error(CODE_BAD_TOKEN, "access_token不存在"),
    };
    if let Some(answer) = sb.refused(true, |r| pdd_error(r.code, &r.says)).await {
        return answer;
    }
    match api {
        DECRYPT_API => decrypt(&sb, &params),
        REFUNDS_API => refunds(&sb, shop, &params),
        _ => increment(&sb, shop, &params),
    }
}

/// An increment list's update-time window (at most 30 minutes, within 90
/// days) and 1-based page of at most 100: `(start, end, page, size)`.
#[allow(clippy::result_large_err)] // the error is the answer, sent at once
fn window_query(
    sb: &PddSandbox,
    params: &[(String, String)],
) -> Result<(i64, i64, usize, usize), Response> {
    let int = |k: &str| param(params, k).map(|v| v.trim().parse::<i64>());
    let (Some(Ok(start)), Some(Ok(end))) = (int("start_updated_at"), int("end_updated_at")) else {
        return Err(pdd_error(
            CODE_PARAM,
            "参数错误:start_updated_at和end_updated_at必填",
        ));
    };
    if end < start {
        return Err(pdd_error(
            CODE_PARAM,
            "参数错误:end_updated_at不能小于start_updated_at",
        ));
    }
    if end - start > 30 * 60 {
        return Err(pdd_error(CODE_PARAM, "参数错误:更新时间间隔不能超过30分钟"));
    }
    if start < sb.as_of().timestamp() - 90 * 86_400 {
        return Err(pdd_error(CODE_PARAM, "参数错误:只能查询90天内更新的订单"));
    }
    let page = match int("page") {
        None => 1,
        Some(Ok(n)) if n >= 1 => n as usize,
        Some(_) => return Err(pdd_error(CODE_PARAM, "参数错误:page")),
    };
    let size = match int("page_size") {
        None => 100,
        Some(Ok(n @ 1..=100)) => n as usize,
        Some(_) => return Err(pdd_error(CODE_PARAM, "参数错误:page_size最大为100")),
    };
    Ok((start, end, page, size))
}

/// `pdd.refund.list.increment.get`: the shop's after-sale requests updated
/// in the window, newest first (`after_sales_status` and
/// `after_sales_type` 1 = all).
fn refunds(sb: &PddSandbox, shop: usize, params: &[(String, String)]) -> Response {
    let (start, end, page, size) = match window_query(sb, params) {
        Ok(q) => q,
        Err(answer) => return answer,
    };
    for k in ["after_sales_status", "after_sales_type"] {
        if param(params, k).is_none() {
            return pdd_error(CODE_PARAM, &format!("参数错误:{k}必填"));
        }
    }
    let book = &sb.book;
    let idx = book.snapshot();
    let list = idx.refund_window(shop, start, end);
    let (from, to, corrupt_at) = sb.page_slice(list.len(), page, size);
    let time = |t: i64| format_beijing(DateTime::from_timestamp(t, 0).expect("valid"));
    let rows: Vec<serde_json::Value> = (from..to)
        .map(|k| {
            let e = &list[k];
            let plan = book.refund_plan(e);
            let p = &sb.world().purchases[e.purchase as usize];
            let status = match e.stage(&plan) {
                RefundStage::Asked if plan.line.is_some() => 3,
                RefundStage::Asked => 2,
                RefundStage::Granted => 10,
                RefundStage::Refused => 9,
            };
            json!({
                "id": book.refund_no(e),
                "order_sn": sb.world().order_id(p),
                "after_sales_status": status,
                "after_sales_type": if plan.line.is_some() { 3 } else { 2 },
                "refund_amount": if corrupt_at == Some(k) { json!("12,5") } else { json!(plan.amount) },
                "goods_id": plan.line.map(|l| 300_000_000 + book.lifecycle(e.purchase as usize).items[l].1 % 997 + l as i64),
                "created_time": time(plan.asked),
                "updated_time": time(e.modified),
            })
        })
        .collect();
    json_answer(
        json!({
            "refund_increment_get_response": {
                "total_count": list.len(),
                "refund_list": rows,
                "request_id": request_id(),
            }
        })
        .to_string(),
    )
}

fn increment(sb: &PddSandbox, shop: usize, params: &[(String, String)]) -> Response {
    let int = |k: &str| param(params, k).map(|v| v.trim().parse::<i64>());
    let (start, end, page, size) = match window_query(sb, params) {
        Ok(q) => q,
        Err(answer) => return answer,
    };
    let order_status = match int("order_status") {
        None | Some(Ok(5)) => None,
        Some(Ok(s @ 1..=3)) => Some(s),
        Some(_) => return pdd_error(CODE_PARAM, "参数错误:order_status"),
    };
    let refund_status = match int("refund_status") {
        None | Some(Ok(5)) => None,
        Some(Ok(s @ 1..=4)) => Some(s),
        Some(_) => return pdd_error(CODE_PARAM, "参数错误:refund_status"),
    };
    let idx = sb.book.snapshot();
    let list: Vec<(usize, usize)> = idx
        .window(shop, start, end)
        .iter()
        .map(|e| (e.purchase as usize, usize::from(e.event)))
        .filter(|&(i, ev)| {
            let words = sb.stage_word(sb.book.lifecycle(i).events[ev].1);
            let (os, rs) = (words[0].as_i64(), words[1].as_i64());
            order_status.is_none_or(|w| Some(w) == os)
                && refund_status.is_none_or(|w| Some(w) == rs)
        })
        .collect();
    let total = list.len();
    let (from, to, corrupt_at) = sb.page_slice(total, page, size);
    let orders: Vec<serde_json::Value> = (from..to)
        .map(|k| sb.render_order(list[k].0, list[k].1, corrupt_at == Some(k)))
        .collect();
    json_answer(
        json!({
            "order_sn_increment_get_response": {
                "total_count": total,
                "has_next": to < total,
                "order_sn_list": orders,
                "request_id": request_id(),
            }
        })
        .to_string(),
    )
}

/// `pdd.open.decrypt.batch`: `data_list`, a JSON list of at most 100
/// `{data_tag, encrypted_data}`.
fn decrypt(sb: &PddSandbox, params: &[(String, String)]) -> Response {
    let Some(list) = param(params, "data_list")
        .and_then(|s| serde_json::from_str::<Vec<serde_json::Value>>(s).ok())
    else {
        return pdd_error(CODE_PARAM, "参数错误:data_list");
    };
    if list.is_empty() || list.len() > 100 {
        return pdd_error(CODE_PARAM, "参数错误:data_list条数为1到100");
    }
    sb.count_decrypt();
    let world = sb.world();
    let out: Vec<serde_json::Value> = list
        .iter()
        .map(|q| {
            let tag = q
                .get("data_tag")
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            let enc = q
                .get("encrypted_data")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            match token_of(enc).and_then(|t| world.receiver_by_cipher(&t)) {
                Some(person) => json!({
                    "data_tag": tag, "data_type": 6, "encrypted_data": enc,
                    "decrypted_data": person.phone, "error_code": 0, "error_msg": "",
                    "virtual_identify_number": "",
                }),
                None => json!({
                    "data_tag": tag, "data_type": 6, "encrypted_data": enc,
                    "decrypted_data": "", "error_code": CODE_PARAM, "error_msg": "密文无效",
                }),
            }
        })
        .collect();
    json_answer(
        json!({"open_decrypt_batch_response": {"data_decrypt_list": out, "request_id": request_id()}})
            .to_string(),
    )
}

/// `pdd.pop.auth.token.create {code}` and `pdd.pop.auth.token.refresh
/// {refresh_token}`: the sandbox's authorization codes are
/// `sandbox-code-<shop index>`; a refresh rotates the pair.
fn token_api(sb: &PddSandbox, api: &str, params: &[(String, String)]) -> Response {
    if let Some(answer) = sb.faults.answer_now(false, |r| match r {
        Refusal::Throttled => pdd_error(CODE_THROTTLED, "当前接口您已被限流，请求过于频繁"),
        Refusal::Busy | Refusal::TokenExpired => pdd_error(CODE_SYSTEM, "系统繁忙，请稍后重试"),
    }) {
        return answer;
    }
    let (issued, root) = if api == REFRESH_API {
        let Some(rt) = param(params, "refresh_token") else {
            return pdd_error(CODE_PARAM, "参数错误:refresh_token");
        };
        let Some(i) = sb.issuer.refresh(rt) else {
            return pdd_error(CODE_PARAM, "refresh_token已过期或无效");
        };
        sb.count_refresh();
        (i, "pop_auth_token_refresh_response")
    } else {
        let Some(s) = sb.shop_of_code(param(params, "code")) else {
            return pdd_error(CODE_PARAM, "code无效或已过期");
        };
        (sb.issuer.issue(s), "pop_auth_token_create_response")
    };
    let shop_id = sb.book.shop_id(issued.shop).to_string();
    json_answer(
        json!({
            root: {
                "access_token": issued.access_token,
                "expires_in": issued.expires_in,
                "expires_at": Utc::now().timestamp() + issued.expires_in,
                "refresh_token": issued.refresh_token,
                "refresh_token_expires_in": issued.refresh_expires_in,
                "refresh_token_expires_at": Utc::now().timestamp() + issued.refresh_expires_in,
                "owner_id": shop_id,
                "owner_name": shop_id,
                "scope": ["pdd.order.number.list.increment.get", "pdd.open.decrypt.batch"],
                "request_id": request_id(),
            }
        })
        .to_string(),
    )
}

/// The config that pulls an announced sandbox as `pull` asks.
pub fn config(ann: &SandboxAnnouncement, pull: SandboxPull) -> crate::PddConfig {
    let inline = |s: &str| SecretRef::inline(s.to_string());
    crate::PddConfig {
        router: format!("{}/api/router", ann.base_url),
        client_id: ann.app_key.clone(),
        client_secret: inline(&ann.app_secret),
        decrypt: pull.decrypt,
        // The sandbox keeps no decrypt quota; against the real router
        // leave the default (one call per 10 s outside 多多云).
        decrypt_interval_secs: 0,
        pull: PullSettings::sandbox(pull, 100, 30, 30),
        shops: quanyu_connector_sdk::market::TokenShop::announced(ann),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use quanyu_connector_sdk::sandbox::market::check_rendered_order;

    #[test]
    fn rendered_orders_map_and_ciphertexts_resolve() {
        let sb = PddSandbox::for_test();
        let render = |i, ev, garbled| sb.render_order(i, ev, garbled).to_string();
        check_rendered_order(&sb, render, &crate::MAPPING, token_of);
        assert_eq!(
            token_of(&cipher('~', "tok", 5)),
            None,
            "names are not phones"
        );
    }

    #[test]
    fn yuan_numbers_are_exact_after_reading() {
        for fen in [0, 5, 30, 18830, 3990, 59_800, 123_456_789] {
            let text = yuan(fen).to_string();
            assert_eq!(
                quanyu_schemas::time::yuan_to_fen(&text).unwrap(),
                fen,
                "{text}"
            );
        }
    }

    #[test]
    fn only_paid_orders_are_listed_and_time_moves_them() {
        let sb = PddSandbox::for_test();
        let before = sb.visible_orders();
        assert!(before
            .iter()
            .all(|o| !matches!(o.stage, Stage::Created | Stage::Cancelled)));
        sb.set_as_of(sb.as_of() + Duration::days(10));
        let after = sb.visible_orders();
        assert!(!before.is_empty());
        assert!(before.iter().zip(&after).any(|(a, b)| a.stage != b.stage));
        assert_eq!(pdd_mask("13912345678"), "1*********8");
    }
}
