//! An emulator of the JD open platform (宙斯 / JOS) for
//! `jingdong.pop.order.search` on `/routerjson`, and of its OAuth2 token
//! endpoints (`/oauth2/access_token`, `/oauth2/refresh_token`, served on the
//! same server).
//!
//! System parameters in the query or the form body (the official Python SDK
//! puts everything in the query, JD's Java SDK the JSON in the body), the
//! real MD5 signature check and the gateway's `error_response` envelope
//! with JD's system codes (12 无效签名, 8 非法的时间戳参数 past six minutes of
//! skew, 19 无效access_token, 2 App Call Limited …), the one-month window
//! and 100-order page limits and the three-month history of modification
//! times as business failures (`apiResult.success: false`). Orders are
//! listed from creation (unpaid ones as `NOT_PAY`), searched by
//! modification (`dateType` 0) or creation time (1), sorted descending
//! (`sortType` 1) or ascending, paged by 1-based page numbers with
//! `orderTotal`, and cut to the requested `optional_fields`. Receivers are
//! TDE-style ciphertext (base64 of a typed, key-id-tagged blob) with a
//! masked mobile beside it; JD's decrypt (TDE) is not emulated. Tokens
//! rotate on refresh and expire; faults (code 2 throttling, code 65
//! backend timeouts, HTTP 5xx, slow answers, code 19 token expiry, a
//! corrupt order) are injected on request.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use quanyu_connector_sdk::connector::{SandboxAnnouncement, SandboxPull};
use quanyu_connector_sdk::market::PullSettings;
use quanyu_connector_sdk::sandbox::answer::{beijing_text, form_params, json_as, param, Refusal};
use quanyu_connector_sdk::sandbox::market::MarketSandboxConfig;
use quanyu_connector_sdk::sandbox::orders::{fen_text, mask_phone, RefundStage, Stage};
use quanyu_connector_sdk::sandbox::world::REGIONS;
use quanyu_connector_sdk::SecretRef;
use quanyu_schemas::time::{format_beijing, parse_beijing};
use serde_json::json;

use crate::client::{
    CODE_BAD_APP_KEY, CODE_BAD_METHOD, CODE_BAD_SIGN, CODE_BAD_TIMESTAMP, CODE_BAD_TOKEN,
    CODE_BAD_VERSION, CODE_MISSING_APP_KEY, CODE_MISSING_METHOD, CODE_MISSING_SIGN,
    CODE_MISSING_TIMESTAMP, CODE_MISSING_TOKEN, CODE_MISSING_VERSION, REFRESH_PATH,
};
use crate::sign::sign;
use crate::{REFUND_API, REFUND_ROOT, SEARCH_API, SEARCH_ROOT};

/// `apiResult.numberCode` of a successful search.
pub const BIZ_OK: i64 = 10_100_000;
/// `apiResult.numberCode` of a search refused for its parameters (the
/// sandbox's choice: JD's business codes are not published).
pub const BIZ_PARAM: i64 = 10_100_003;
/// OAuth error: a missing or unsupported parameter.
pub const OAUTH_BAD_REQUEST: i64 = 400;
/// OAuth error: unknown app_key or wrong app_secret.
pub const OAUTH_BAD_CLIENT: i64 = 401;
/// OAuth error: unknown, used or expired refresh token / code.
pub const OAUTH_BAD_GRANT: i64 = 402;
/// OAuth error: service busy.
pub const OAUTH_BUSY: i64 = 500;
/// Clock skew the gateway allows, in seconds.
pub const MAX_SKEW_SECS: i64 = 6 * 60;

/// What the sandbox accepts and serves.
pub type JdSandboxConfig = MarketSandboxConfig;

fn state_remark(stage: Stage) -> &'static str {
    match stage {
        Stage::Created => "等待付款",
        Stage::Paid => "等待出库",
        Stage::Shipped => "等待确认收货",
        Stage::Finished => "完成",
        Stage::Cancelled | Stage::Refunded => "取消",
    }
}

/// The states `order_state` may name.
const STATES: [&str; 11] = [
    "NOT_PAY",
    "WAIT_SELLER_STOCK_OUT",
    "WAIT_SELLER_DELIVERY",
    "WAIT_GOODS_RECEIVE_CONFIRM",
    "FINISHED_L",
    "TRADE_CANCELED",
    "LOCKED",
    "PAUSE",
    "DELIVERY_RETURN",
    "POP_ORDER_PAUSE",
    "WAIT_SEND_CODE",
];

quanyu_connector_sdk::market_sandbox! {
    /// The JD open-platform emulator. Cheap to clone.
    pub struct JdSandbox {}
    serves: Jd, tokens: "jd", token_ttl: 30 * 86_400,
    describe: "JD (JOS) gateway sandbox at {base_url}/routerjson",
    kit: crate::JdConfig,
}

/// The sandbox's 16-byte TDE key id.
const KEY_ID: &[u8; 16] = b"quanyu-sandbox-k";

/// A ciphertext in the style of JD's TDE: base64 of a blob starting with
/// the cipher type (1, regular), the key id's length (2 bytes, big endian)
/// and the key id, then the payload. Fields: 1 name, 2 address, 3 mobile,
/// 4 telephone.
fn tde(token: &str, field: u8) -> String {
    let mut blob = vec![1u8, 0, KEY_ID.len() as u8];
    blob.extend_from_slice(KEY_ID);
    blob.extend_from_slice(format!("{token}:{field}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(blob)
}

/// The cipher token inside a mobile ciphertext (what a TDE decrypt would
/// resolve).
#[cfg(test)]
fn token_of(c: &str) -> Option<String> {
    let blob = base64::engine::general_purpose::STANDARD.decode(c).ok()?;
    if blob.first() != Some(&1) || blob.len() < 3 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([blob[1], blob[2]]));
    let payload = blob.get(3 + len..)?;
    let text = std::str::from_utf8(payload).ok()?;
    let (token, field) = text.split_once(':')?;
    (field == "3").then(|| token.to_string())
}

impl JdSandbox {
    /// The venderId JD shows for local shop `i`.
    pub fn vender_id(&self, i: usize) -> String {
        (10_080_000 + i).to_string()
    }

    /// The axum router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/routerjson", any(router_route))
            .route(REFRESH_PATH, any(oauth_route))
            .route("/oauth2/access_token", any(oauth_route))
            .with_state(self.clone())
    }

    /// One order JSON as `jingdong.pop.order.search` shows it (all fields).
    fn render_order(&self, i: usize, ev: usize, corrupt: bool) -> serde_json::Value {
        let v = self.book.view(i, ev);
        let (world, p, lc, person) = (v.world, v.purchase, v.lifecycle, &v.receiver);
        let (modified, stage) = (v.modified, v.stage);
        let at = beijing_text;
        let created = v.created_as(corrupt, |t| beijing_text(Some(t)));
        let paid = lc.time_of(Stage::Paid, ev);
        let ended = match stage {
            Stage::Finished | Stage::Cancelled | Stage::Refunded => Some(modified),
            _ => None,
        };
        let (province, city) = REGIONS[person.region];
        let token = world.cipher_token(p);
        let buyer = world.buyer_token(p.person, p.shop);
        let local_shop = self
            .book
            .shops()
            .iter()
            .position(|&s| s == p.shop)
            .unwrap_or(0);
        let items = lc.render_items(|k, n, price| {
            json!({
                "skuId": (100_000_000_000 + price % 991 + k as i64).to_string(),
                "outerSkuId": "",
                "skuName": format!("京东商品{}", price % 997),
                "jdPrice": fen_text(price),
                "itemTotal": n.to_string(),
                "wareId": (10_000_000_000 + price % 997).to_string(),
                "giftPoint": "0",
            })
        });
        json!({
            "orderId": world.order_id(p),
            "venderId": self.vender_id(local_shop),
            "orderType": "22",
            "payType": "4-在线支付",
            "orderState": self.stage_word(stage),
            "orderStateRemark": state_remark(stage),
            "orderTotalPrice": fen_text(lc.goods_total()),
            "orderSellerPrice": fen_text(lc.goods_total() - lc.discount),
            "orderPayment": fen_text(lc.payment()),
            "freightPrice": fen_text(lc.post_fee),
            "sellerDiscount": fen_text(lc.discount),
            "orderStartTime": created,
            "paymentConfirmTime": at(paid),
            "orderEndTime": at(ended),
            "modified": at(Some(modified)),
            "pin": format!("jd_{}****", buyer.get(..4).unwrap_or_default()),
            "open_id_buyer": buyer,
            "orderRemark": "",
            "venderRemark": "",
            "consigneeInfo": {
                "fullname": tde(&token, 1),
                "fullAddress": tde(&token, 2),
                "mobile": tde(&token, 3),
                "telephone": tde(&token, 4),
                "desen_mobile": mask_phone(&person.phone),
                "province": province,
                "city": city,
                "county": "",
                "town": "",
            },
            "itemInfoList": items,
        })
    }
}

/// The gateway's error envelope.
fn jd_error(code: i64, zh: &str, en: &str) -> Response {
    json_as(
        "application/json;charset=utf-8",
        json!({"error_response": {"code": code.to_string(), "zh_desc": zh, "en_desc": en}})
            .to_string(),
    )
}

/// `yyyy-MM-dd HH:mm:ss` Beijing, or with milliseconds and an offset
/// (`2024-01-01 12:00:00.000+0800`, as JD's SDKs send it).
fn parse_timestamp(t: &str) -> Option<DateTime<Utc>> {
    let t = t.trim();
    if let Ok(d) = DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%z") {
        return Some(d.with_timezone(&Utc));
    }
    parse_beijing(t).ok()
}

/// `/routerjson`: system parameters, signature, freshness, token, faults;
/// then the API.
async fn router_route(State(sb): State<JdSandbox>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    sb.count_request();
    let params = form_params(q.as_deref(), &body);
    let p = |k: &str| param(&params, k);
    let Some(method) = p("method") else {
        return jd_error(CODE_MISSING_METHOD, "缺少方法名参数", "Missing Method");
    };
    match p("app_key") {
        Some(k) if k == sb.inner.cfg.app_key => {}
        Some(_) => return jd_error(CODE_BAD_APP_KEY, "无效App Key", "Invalid App Key"),
        None => return jd_error(CODE_MISSING_APP_KEY, "缺少App Key参数", "Missing App Key"),
    }
    match p("v") {
        Some("2.0") => {}
        Some(_) => return jd_error(CODE_BAD_VERSION, "不支持的版本号", "Unsupported Version"),
        None => return jd_error(CODE_MISSING_VERSION, "缺少版本参数", "Missing Version"),
    }
    let Some(timestamp) = p("timestamp") else {
        return jd_error(
            CODE_MISSING_TIMESTAMP,
            "缺少时间戳参数",
            "Missing Timestamp",
        );
    };
    let Some(given) = p("sign") else {
        return jd_error(CODE_MISSING_SIGN, "缺少签名参数", "Missing Signature");
    };
    let expected = sign(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &sb.inner.cfg.app_secret,
    );
    if !given.eq_ignore_ascii_case(&expected) {
        return jd_error(CODE_BAD_SIGN, "无效签名", "Invalid Signature");
    }
    let fresh = parse_timestamp(timestamp)
        .is_some_and(|t| (Utc::now() - t).num_seconds().abs() <= MAX_SKEW_SECS);
    if !fresh {
        return jd_error(CODE_BAD_TIMESTAMP, "非法的时间戳参数", "Invalid Timestamp");
    }
    if method != SEARCH_API && method != REFUND_API {
        return jd_error(CODE_BAD_METHOD, "不存在的方法名", "Invalid Method");
    }
    let Some(access_token) = p("access_token") else {
        return jd_error(
            CODE_MISSING_TOKEN,
            "缺少access_token参数",
            "Missing Access Token",
        );
    };
    // JD answers 19 for an unknown, replaced or expired token alike.
    let Ok(shop) = sb.issuer.check(access_token) else {
        return jd_error(CODE_BAD_TOKEN, "无效access_token", "Invalid access_token");
    };
    if let Some(answer) = sb
        .refused(true, |r| jd_error(r.code, &r.says, &r.sub_says))
        .await
    {
        return answer;
    }
    let param = match p("360buy_param_json") {
        None => json!({}),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            _ => return search_error("360buy_param_json不是合法的JSON对象"),
        },
    };
    if method == REFUND_API {
        return refund_apply(&sb, shop, &param);
    }
    search(&sb, shop, &param)
}

/// A refund query's answer: `queryResult` under the API's root.
fn refund_answer(
    success: bool,
    code: &str,
    result: Vec<serde_json::Value>,
    total: usize,
) -> Response {
    json_as(
        "application/json;charset=utf-8",
        json!({
            REFUND_ROOT: {
                "code": "0",
                "queryResult": {
                    "success": success,
                    "resultCode": code,
                    "result": result,
                    "totalCount": total,
                }
            }
        })
        .to_string(),
    )
}

/// `jingdong.pop.afs.soa.refundapply.queryPageList`: the shop's refund
/// applications asked (`applyTimeStart`/`applyTimeEnd`) or reviewed
/// (`checkTimeStart`/`checkTimeEnd`) in a window of at most 30 days, as
/// they stand now, newest first; `pageIndex` from 1, `pageSize` at most 50.
fn refund_apply(sb: &JdSandbox, shop: usize, param: &serde_json::Value) -> Response {
    let time = |k: &str| text_of(param, k).map(|t| parse_beijing(&t).map(|d| d.timestamp()));
    let by_check = match (time("applyTimeStart"), time("checkTimeStart")) {
        (Some(_), None) => false,
        (None, Some(_)) => true,
        _ => return refund_answer(false, "PARAM_ERROR", vec![], 0),
    };
    let (s, e) = if by_check {
        (time("checkTimeStart"), time("checkTimeEnd"))
    } else {
        (time("applyTimeStart"), time("applyTimeEnd"))
    };
    let (Some(Ok(start)), Some(Ok(end))) = (s, e) else {
        return refund_answer(false, "PARAM_ERROR", vec![], 0);
    };
    if end < start || end - start > 30 * 86_400 {
        return refund_answer(false, "TIME_RANGE_ERROR", vec![], 0);
    }
    let int = |k: &str| text_of(param, k).and_then(|t| t.parse::<usize>().ok());
    let (page, size) = (int("pageIndex").unwrap_or(1), int("pageSize").unwrap_or(10));
    if page < 1 || !(1..=50).contains(&size) {
        return refund_answer(false, "PARAM_ERROR", vec![], 0);
    }
    let book = &sb.book;
    let snap = book.snapshot();
    let mut list: Vec<_> = snap.refunds_per_shop[shop]
        .iter()
        .filter_map(|e| {
            let plan = book.refund_plan(e);
            let at = if by_check {
                e.settled.then_some(plan.settled)?
            } else {
                plan.asked
            };
            (start <= at && at <= end).then_some((at, book.refund_no(e), *e, plan))
        })
        .collect();
    list.sort_unstable_by_key(|x| std::cmp::Reverse((x.0, x.1)));
    let (from, to, corrupt) = sb.page_slice(list.len(), page, size);
    let ts = |t: i64| format_beijing(DateTime::from_timestamp(t, 0).expect("valid"));
    let world = sb.world();
    let rows = (from..to)
        .map(|k| {
            let (_, refund_no, e, plan) = &list[k];
            let p = &world.purchases[e.purchase as usize];
            let status = match e.stage(plan) {
                RefundStage::Asked => 0,
                RefundStage::Granted => 3,
                RefundStage::Refused => 2,
            };
            json!({
                "id": refund_no,
                "orderId": world.order_id(p),
                "status": status,
                "applyRefundSum": if corrupt == Some(k) { json!("12,5") } else { json!(plan.amount) },
                "applyTime": ts(plan.asked),
                "checkTime": e.settled.then(|| ts(plan.settled)),
                "buyerId": "",
            })
        })
        .collect();
    refund_answer(true, "SUCCESS", rows, list.len())
}

/// A search refused for its parameters: the API root with a failed
/// `apiResult`.
fn search_error(zh: &str) -> Response {
    let failed = (false, BIZ_PARAM, zh, "invalid parameter");
    search_answer(failed, 0, Vec::new())
}

/// The search's answer: its `apiResult` (success, code, Chinese and
/// English words), the total and the page of orders.
fn search_answer(
    (success, code, zh, en): (bool, i64, &str, &str),
    total: usize,
    orders: Vec<serde_json::Value>,
) -> Response {
    let body = json!({
        SEARCH_ROOT: {
            "code": "0",
            "searchorderinfo_result": {
                "apiResult": {
                    "success": success,
                    "numberCode": code,
                    "code": code.to_string(),
                    "chineseErrCode": zh,
                    "englishErrCode": en,
                },
                "orderTotal": total,
                "orderInfoList": orders,
            }
        }
    });
    json_as("application/json;charset=utf-8", body.to_string())
}

/// A business parameter as text (JD takes strings; numbers are tolerated).
fn text_of(v: &serde_json::Value, k: &str) -> Option<String> {
    match v.get(k)? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn search(sb: &JdSandbox, shop: usize, param: &serde_json::Value) -> Response {
    let time = |k: &str| text_of(param, k).map(|t| parse_beijing(&t).map(|d| d.timestamp()));
    let (Some(Ok(start)), Some(Ok(end))) = (time("start_date"), time("end_date")) else {
        return search_error("start_date和end_date不能为空，格式为yyyy-MM-dd HH:mm:ss");
    };
    if end < start {
        return search_error("end_date不能早于start_date");
    }
    if end - start > 30 * 86_400 {
        return search_error("查询时间跨度不能超过一个月");
    }
    let by_created = text_of(param, "dateType").as_deref() == Some("1");
    let as_of = sb.as_of().timestamp();
    if !by_created && start < as_of - 90 * 86_400 {
        return search_error("按修改时间只能查询三个月内的订单");
    }
    let int = |k: &str| text_of(param, k).map(|t| t.parse::<i64>());
    let page = match int("page") {
        None => 1,
        Some(Ok(n)) if n >= 1 => n as usize,
        Some(_) => return search_error("page必须为正整数"),
    };
    let size = match int("page_size") {
        None => 20,
        Some(Ok(n @ 1..=100)) => n as usize,
        Some(_) => return search_error("page_size取值范围为1到100"),
    };
    let desc = text_of(param, "sortType").as_deref() == Some("1");
    let wanted: Option<Vec<String>> = match text_of(param, "order_state") {
        None => None,
        Some(s) if s.eq_ignore_ascii_case("ALL") => None,
        Some(s) => {
            let list: Vec<String> = s.split(',').map(|x| x.trim().to_string()).collect();
            if let Some(bad) = list.iter().find(|x| !STATES.contains(&x.as_str())) {
                return search_error(&format!("order_state取值错误:{bad}"));
            }
            Some(list)
        }
    };
    let fields: Option<Vec<String>> = text_of(param, "optional_fields")
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
    let book = &sb.book;
    let idx = book.snapshot();
    // (sort time, purchase, event), newest first.
    let mut list: Vec<(i64, usize, usize)> = if by_created {
        let mut v: Vec<_> = idx.per_shop[shop]
            .iter()
            .map(|e| {
                let i = e.purchase as usize;
                (book.lifecycle(i).created(), i, usize::from(e.event))
            })
            .filter(|&(c, _, _)| c >= start && c <= end)
            .collect();
        v.sort_unstable_by_key(|x| std::cmp::Reverse((x.0, x.1)));
        v
    } else {
        idx.window(shop, start, end)
            .iter()
            .map(|e| (e.modified, e.purchase as usize, usize::from(e.event)))
            .collect()
    };
    if let Some(w) = &wanted {
        list.retain(|&(_, i, ev)| {
            let state = sb.stage_word(book.lifecycle(i).events[ev].1).as_str();
            w.iter().any(|s| Some(s.as_str()) == state)
        });
    }
    if !desc {
        list.reverse();
    }
    let total = list.len();
    let (from, to, corrupt_at) = sb.page_slice(total, page, size);
    let orders: Vec<serde_json::Value> = (from..to)
        .map(|k| {
            let mut o = sb.render_order(list[k].1, list[k].2, corrupt_at == Some(k));
            if let (Some(f), Some(obj)) = (&fields, o.as_object_mut()) {
                obj.retain(|name, _| f.iter().any(|x| x == name));
            }
            o
        })
        .collect();
    search_answer((true, BIZ_OK, "成功", "success"), total, orders)
}

fn oauth_error(code: i64, msg: &str) -> Response {
    json_as(
        "application/json;charset=utf-8",
        json!({
            "code": code,
            "msg": msg,
            "requestId": format!("{}{:05}", Utc::now().timestamp_millis(), rand::random::<u16>()),
        })
        .to_string(),
    )
}

/// The client check and the faults every OAuth endpoint shares.
fn oauth_gate(sb: &JdSandbox, params: &[(String, String)]) -> Option<Response> {
    if param(params, "app_key") != Some(sb.inner.cfg.app_key.as_str())
        || param(params, "app_secret") != Some(sb.inner.cfg.app_secret.as_str())
    {
        return Some(oauth_error(OAUTH_BAD_CLIENT, "app_key或app_secret无效"));
    }
    sb.faults.answer_now(false, |r| match r {
        Refusal::Throttled => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
            json!({"code": 429, "msg": "请求过于频繁"}).to_string(),
        )
            .into_response(),
        _ => oauth_error(OAUTH_BUSY, "系统繁忙，请稍后再试"),
    })
}

fn token_answer(sb: &JdSandbox, i: quanyu_connector_sdk::sandbox::tokens::Issued) -> Response {
    let shop = sb.book.shop_id(i.shop).to_string();
    json_as(
        "application/json;charset=utf-8",
        json!({
            "access_token": i.access_token,
            "expires_in": i.expires_in,
            "refresh_token": i.refresh_token,
            "scope": "snsapi_base",
            "open_id": format!("seller-{shop}"),
            "uid": sb.vender_id(i.shop),
            "time": Utc::now().timestamp_millis(),
            "token_type": "bearer",
            "code": 0,
        })
        .to_string(),
    )
}

/// The OAuth endpoints: the app key and secret first, then the grant the path names.
async fn oauth_route(
    State(sb): State<JdSandbox>,
    RawQuery(q): RawQuery,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    sb.count_request();
    let params = form_params(q.as_deref(), &body);
    match oauth_gate(&sb, &params) {
        Some(r) => r,
        None if uri.path() == REFRESH_PATH => refresh(&sb, &params),
        None => access_token(&sb, &params),
    }
}

/// `/oauth2/refresh_token?app_key&app_secret&grant_type=refresh_token&refresh_token`:
/// rotates the pair (the old refresh token and access tokens stop working).
fn refresh(sb: &JdSandbox, params: &[(String, String)]) -> Response {
    if param(params, "grant_type") != Some("refresh_token") {
        return oauth_error(OAUTH_BAD_REQUEST, "grant_type必须为refresh_token");
    }
    let Some(rt) = param(params, "refresh_token") else {
        return oauth_error(OAUTH_BAD_REQUEST, "refresh_token不能为空");
    };
    match sb.issuer.refresh(rt) {
        Some(i) => {
            sb.count_refresh();
            token_answer(sb, i)
        }
        None => oauth_error(OAUTH_BAD_GRANT, "refresh_token无效或已过期"),
    }
}

/// `/oauth2/access_token?app_key&app_secret&grant_type=authorization_code&code`:
/// the sandbox's authorization codes are `sandbox-code-<shop index>`.
fn access_token(sb: &JdSandbox, params: &[(String, String)]) -> Response {
    if param(params, "grant_type") != Some("authorization_code") {
        return oauth_error(OAUTH_BAD_REQUEST, "grant_type必须为authorization_code");
    }
    let shop = sb.shop_of_code(param(params, "code"));
    match shop {
        Some(s) => token_answer(sb, sb.issuer.issue(s)),
        None => oauth_error(OAUTH_BAD_GRANT, "code无效或已过期"),
    }
}

/// The config that pulls an announced sandbox as `pull` asks.
pub fn config(ann: &SandboxAnnouncement, pull: SandboxPull) -> crate::JdConfig {
    let inline = |s: &str| SecretRef::inline(s.to_string());
    crate::JdConfig {
        gateway: format!("{}/routerjson", ann.base_url),
        oauth_base: ann.base_url.clone(),
        app_key: ann.app_key.clone(),
        app_secret: inline(&ann.app_secret),
        pull: PullSettings::sandbox(pull, 100, 7 * 24 * 60, 60),
        shops: quanyu_connector_sdk::market::TokenShop::announced(ann),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    use quanyu_schemas::{LakeKey, OrderStatus, PiiHasher};

    #[test]
    fn rendered_orders_map_and_ciphertexts_resolve() {
        let sb = JdSandbox::for_test();
        let hasher = PiiHasher::new(&LakeKey::from_bytes([0; 32]));
        let snap = sb.book.snapshot();
        let mut seen_states = std::collections::HashSet::new();
        for e in snap.per_shop.iter().flatten() {
            let i = e.purchase as usize;
            let v = sb.render_order(i, usize::from(e.event), false);
            let row = crate::MAPPING
                .order(&v.to_string(), "x", &hasher)
                .unwrap()
                .row;
            let lc = sb.book.lifecycle(i);
            let stage = lc.events[usize::from(e.event)].1;
            let want = match stage {
                Stage::Created => OrderStatus::PendingPayment,
                Stage::Paid => OrderStatus::Paid,
                Stage::Shipped => OrderStatus::Shipped,
                Stage::Finished => OrderStatus::Completed,
                Stage::Cancelled => OrderStatus::Cancelled,
                Stage::Refunded => OrderStatus::Refunded,
            };
            assert_eq!(row.status, want);
            seen_states.insert(stage);
            assert_eq!(row.amount_fen, lc.payment());
            assert_eq!(row.item_count as u32, lc.pieces());
            assert_eq!(row.phone_hash, None);
            let person = sb.world().receiver(&sb.world().purchases[i]);
            assert_eq!(
                row.phone_masked.as_deref(),
                Some(mask_phone(&person.phone).as_str())
            );
            let mobile = v["consigneeInfo"]["mobile"].as_str().unwrap();
            let back = sb.world().receiver_by_cipher(&token_of(mobile).unwrap());
            assert_eq!(back.map(|r| &r.phone), Some(&person.phone));
            assert!(!v.to_string().contains(&person.phone), "no clear phone");
            assert_eq!(row.order_id.len(), 12, "12-digit JD order ids");
        }
        assert!(seen_states.len() >= 4, "{seen_states:?}");
        let e = snap.per_shop[0][0];
        let bad = sb.render_order(e.purchase as usize, usize::from(e.event), true);
        assert!(crate::MAPPING
            .order(&bad.to_string(), "x", &hasher)
            .is_err());
        assert_eq!(token_of(&tde("tok", 1)), None, "names are not mobiles");
        assert_eq!(token_of("not base64!"), None);
    }

    async fn answer(r: Response) -> serde_json::Value {
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test]
    async fn search_by_creation_or_modification_sorted_and_cut_to_fields() {
        let sb = JdSandbox::for_test();
        let as_of = sb.as_of();
        let start = format_beijing(as_of - chrono::Duration::days(20));
        let end = format_beijing(as_of);
        let book = &sb.book;
        let world = sb.world();
        let created_in = |i: usize| {
            let c = book.lifecycle(i).created();
            c >= (as_of - chrono::Duration::days(20)).timestamp() && c <= as_of.timestamp()
        };
        let want_created = (0..world.purchases.len())
            .filter(|&i| world.purchases[i].shop == book.shops()[0] && created_in(i))
            .count();
        let mut totals = vec![];
        for (date_type, sort) in [("1", "1"), ("0", "1"), ("0", "0")] {
            let param = json!({"start_date": start, "end_date": end, "page": "1",
                "page_size": "100", "dateType": date_type, "sortType": sort,
                "optional_fields": "orderId,modified,orderStartTime"});
            let v = answer(search(&sb, 0, &param)).await;
            let r = &v[SEARCH_ROOT]["searchorderinfo_result"];
            assert_eq!(r["apiResult"]["success"], true, "{v}");
            let list = r["orderInfoList"].as_array().unwrap();
            assert!(!list.is_empty());
            for o in list {
                let keys: Vec<_> = o.as_object().unwrap().keys().cloned().collect();
                assert_eq!(keys.len(), 3, "only the requested fields: {keys:?}");
            }
            let key = if date_type == "1" {
                "orderStartTime"
            } else {
                "modified"
            };
            let times: Vec<&str> = list.iter().map(|o| o[key].as_str().unwrap()).collect();
            let mut sorted = times.clone();
            sorted.sort_unstable();
            if sort == "1" {
                sorted.reverse();
            }
            assert_eq!(times, sorted, "dateType {date_type} sortType {sort}");
            totals.push(r["orderTotal"].as_u64().unwrap());
        }
        assert_eq!(totals[0] as usize, want_created);
        assert_eq!(totals[1], totals[2]);
        let bad = json!({"start_date": start, "end_date": end, "order_state": "WAIT_FOREVER"});
        let v = answer(search(&sb, 0, &bad)).await;
        let api = &v[SEARCH_ROOT]["searchorderinfo_result"]["apiResult"];
        assert_eq!(api["success"], false);
        assert_eq!(api["numberCode"], BIZ_PARAM);
        let only_unpaid = json!({"start_date": start, "end_date": end, "page_size": 100,
            "order_state": "NOT_PAY", "optional_fields": "orderState"});
        let v = answer(search(&sb, 0, &only_unpaid)).await;
        let list = v[SEARCH_ROOT]["searchorderinfo_result"]["orderInfoList"]
            .as_array()
            .unwrap()
            .clone();
        assert!(list.iter().all(|o| o["orderState"] == "NOT_PAY"), "{v}");
    }

    #[test]
    fn timestamps_in_both_forms_are_read() {
        let a = parse_timestamp("2024-01-01 12:00:00").unwrap();
        let b = parse_timestamp("2024-01-01 04:00:00.000+0000").unwrap();
        let c = parse_timestamp("2024-01-01 12:00:00.000+0800").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn time_moves_orders_forward() {
        let sb = JdSandbox::for_test();
        let before = sb.visible_orders();
        sb.set_as_of(sb.as_of() + Duration::days(10));
        let after = sb.visible_orders();
        assert!(!before.is_empty());
        assert!(
            before.iter().any(|o| o.stage == Stage::Created),
            "JD lists unpaid orders"
        );
        assert!(before.iter().zip(&after).any(|(a, b)| a.stage != b.stage));
    }
}
