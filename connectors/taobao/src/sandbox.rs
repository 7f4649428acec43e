//! An emulator of the TOP gateway for `taobao.trades.sold.increment.get`
//! and `taobao.refunds.receive.get`.
//!
//! Same path (`/router/rest`), same system parameters, the real signature
//! check (md5, hmac, hmac-sha256) answered with TOP's own error envelope, the
//! one-day window limit and the three-month history limit, `page_no` /
//! `page_size` paging with `has_next` or `total_results`, trades sorted by
//! `modified` descending. Trades come from the shared seeded world; each has a
//! lifecycle (created → paid → shipped → finished, or closed), and the
//! gateway shows each trade as it stands at the sandbox's clock, so a later
//! pull sees orders modified again. Faults (code 7 throttling with a ban
//! time, code 15 `isp.*` errors, HTTP 5xx, slow answers, a corrupt trade)
//! are injected on request.

use std::fmt::Write as _;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use quanyu_connector_sdk::connector::{SandboxAnnouncement, SandboxPull};
use quanyu_connector_sdk::market::PullSettings;
use quanyu_connector_sdk::sandbox::answer::json_answer;
use quanyu_connector_sdk::sandbox::market::{MarketCore, MarketSandboxConfig};
use quanyu_connector_sdk::sandbox::orders::{
    fen_text, mask_phone, RefundEntry, RefundStage, Stage,
};
use quanyu_connector_sdk::sandbox::tokens::TokenProblem;
use quanyu_connector_sdk::sandbox::world::REGIONS;
use quanyu_connector_sdk::SecretRef;
use quanyu_schemas::time::{format_beijing, parse_beijing};
use quanyu_schemas::Channel;

use crate::sign::{sign, SignMethod};

/// What the sandbox accepts and serves.
pub type TopSandboxConfig = MarketSandboxConfig;

/// How long a session key lives: TOP's sessions outlive any test (the
/// shop renews the authorization on the platform).
const SESSION_TTL_SECS: i64 = 30 * 86_400;

/// One order as the gateway shows it at a time: the ground truth for tests.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VisibleTrade {
    /// Shop id.
    pub shop: String,
    /// Trade id.
    pub tid: String,
    /// TOP status.
    pub status: String,
    /// Payment in fen.
    pub payment_fen: i64,
}

quanyu_connector_sdk::market_sandbox! {
    /// The TOP gateway emulator. Cheap to clone.
    pub struct TopSandbox {}
    serves: Taobao, tokens: "top-session", token_ttl: SESSION_TTL_SECS,
    describe: "TOP gateway sandbox at {base_url}/router/rest",
    kit: crate::TaobaoConfig,
    // Session keys are the shops' access tokens.
    core: |cfg: &MarketSandboxConfig| {
        MarketCore::new(&cfg.world, Channel::Taobao, cfg.as_of, cfg.faults, "top-session", SESSION_TTL_SECS)
    },
    announce: without_refresh_tokens,
}

impl TopSandbox {
    /// Session keys are not refreshed by the connector: none is announced.
    fn without_refresh_tokens(&self, mut a: SandboxAnnouncement) -> SandboxAnnouncement {
        for s in &mut a.shops {
            s.refresh_token = None;
        }
        a
    }

    /// The session key the shop `i` authorization gave.
    pub fn session_for(&self, i: usize) -> String {
        self.tokens_for(i).0
    }

    /// Every trade as the gateway shows it at the sandbox clock.
    pub fn visible_trades(&self) -> Vec<VisibleTrade> {
        self.book
            .visible()
            .into_iter()
            .map(|o| VisibleTrade {
                shop: o.shop,
                tid: o.order_id,
                status: self
                    .stage_word(o.stage)
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                payment_fen: o.payment_fen,
            })
            .collect()
    }

    /// The axum router serving `/router/rest`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/router/rest", any(handle))
            .with_state(self.clone())
    }

    fn render_trade(&self, out: &mut String, i: usize, ev: usize, corrupt: bool) {
        let v = self.book.view(i, ev);
        let (world, p, lc, person) = (v.world, v.purchase, v.lifecycle, &v.receiver);
        let shop = &world.config.shops[p.shop].id;
        let (status_time, stage) = (v.modified, v.stage);
        let ts = |t: i64| format_beijing(DateTime::from_timestamp(t, 0).expect("valid"));
        let created = v.created_as(corrupt, ts);
        let created = created.as_str().unwrap_or_default();
        let paid = lc.time_of(Stage::Paid, ev).map(ts);
        let mobile = if p.phone_plain {
            person.phone.clone()
        } else {
            mask_phone(&person.phone)
        };
        let (province, city) = REGIONS[person.region];
        let _ = write!(
            out,
            r#"{{"tid":{tid},"tid_str":"{tid}","status":"{status}","type":"fixed","created":"{created}","modified":"{modified}","#,
            tid = p.order_no,
            status = self.stage_word(stage).as_str().unwrap_or_default(),
            modified = ts(status_time),
        );
        if let Some(paid) = paid {
            let _ = write!(out, r#""pay_time":"{paid}","#);
        }
        let _ = write!(
            out,
            r#""payment":"{payment}","total_fee":"{total}","post_fee":"{post}","discount_fee":"{discount}","buyer_nick":"t**1","buyer_open_uid":"AAH{uid}","oaid":"{oaid}","receiver_name":"*某","receiver_mobile":"{mobile}","receiver_state":"{province}","receiver_city":"{city}","receiver_address":"**********","seller_nick":"{shop}","orders":{{"order":["#,
            payment = fen_text(lc.payment()),
            total = fen_text(lc.goods_total()),
            post = fen_text(lc.post_fee),
            discount = fen_text(lc.discount),
            uid = world.buyer_token(p.person, p.shop),
            oaid = world.cipher_token(p),
        );
        for (k, (num, price)) in lc.items.iter().enumerate() {
            let _ = write!(
                out,
                r#"{comma}{{"oid":{oid},"num_iid":{iid},"title":"商品{iid}","num":{num},"price":"{price}","payment":"{pay}","status":"{status}"}}"#,
                comma = if k == 0 { "" } else { "," },
                oid = p.order_no * 10 + k as u64,
                iid = 600_000_000 + (price % 997),
                price = fen_text(*price),
                pay = fen_text(i64::from(*num) * price),
                status = self.stage_word(stage).as_str().unwrap_or_default(),
            );
        }
        out.push_str("]}}");
    }
}

impl TopSandbox {
    fn render_refund(&self, out: &mut String, e: &RefundEntry, corrupt: bool) {
        let book = &self.book;
        let p = &book.world().purchases[e.purchase as usize];
        let plan = book.refund_plan(e);
        let ts = |t: i64| format_beijing(DateTime::from_timestamp(t, 0).expect("valid"));
        let status = match e.stage(&plan) {
            RefundStage::Asked => "WAIT_SELLER_AGREE",
            RefundStage::Granted => "SUCCESS",
            RefundStage::Refused => "CLOSED",
        };
        let _ = write!(
            out,
            r#"{{"refund_id":{rid},"tid":{tid},"oid":{oid},"total_fee":"{total}","refund_fee":"{fee}","status":"{status}","created":"{created}","modified":"{modified}","has_good_return":{goods}}}"#,
            rid = book.refund_no(e),
            tid = p.order_no,
            oid = plan.line.map_or(p.order_no, |l| p.order_no * 10 + l as u64),
            total = fen_text(book.lifecycle(e.purchase as usize).payment()),
            fee = if corrupt {
                "12,5".to_string()
            } else {
                fen_text(plan.amount)
            },
            created = ts(plan.asked),
            modified = ts(e.modified),
            goods = plan.line.is_some(),
        );
    }
}

fn top_error(
    code: u32,
    msg: &str,
    sub_code: Option<&str>,
    sub_msg: Option<&str>,
    request_id: u64,
) -> Response {
    let mut body = serde_json::json!({"error_response": {"code": code, "msg": msg, "request_id": format!("{request_id:x}")}});
    if let Some(s) = sub_code {
        body["error_response"]["sub_code"] = s.into();
    }
    if let Some(s) = sub_msg {
        body["error_response"]["sub_msg"] = s.into();
    }
    json_answer(body.to_string())
}

async fn handle(State(sb): State<TopSandbox>, RawQuery(query): RawQuery, body: Bytes) -> Response {
    sb.count_request();
    let rid = sb.requests();
    let mut params: Vec<(String, String)> = Vec::new();
    if let Some(q) = query {
        params.extend(url::form_urlencoded::parse(q.as_bytes()).into_owned());
    }
    params.extend(url::form_urlencoded::parse(&body).into_owned());
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };

    let Some(method) = get("method") else {
        return top_error(21, "Missing Method", None, None, rid);
    };
    let Some(app_key) = get("app_key") else {
        return top_error(28, "Missing App Key", None, None, rid);
    };
    if app_key != sb.inner.cfg.app_key {
        return top_error(29, "Invalid App Key", None, None, rid);
    }
    let Some(given) = get("sign") else {
        return top_error(24, "Missing Signature", None, None, rid);
    };
    let Some(sign_method) = SignMethod::parse(get("sign_method").unwrap_or("md5")) else {
        return top_error(
            41,
            "Invalid Arguments",
            Some("isv.invalid-parameter:sign_method"),
            None,
            rid,
        );
    };
    let expected = sign(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &sb.inner.cfg.app_secret,
        sign_method,
    );
    if !given.eq_ignore_ascii_case(&expected) {
        return top_error(25, "Invalid signature", None, None, rid);
    }
    let Some(ts) = get("timestamp") else {
        return top_error(30, "Missing Timestamp", None, None, rid);
    };
    let sent = ts
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .or_else(|| parse_beijing(ts).ok());
    match sent {
        Some(t) if (Utc::now() - t).num_seconds().abs() <= 600 => {}
        _ => {
            return top_error(
                31,
                "Invalid Timestamp",
                None,
                Some("时间戳错误或与服务器时间相差超过10分钟"),
                rid,
            )
        }
    }
    let Some(session) = get("session") else {
        return top_error(26, "Missing Session", None, None, rid);
    };
    let shop = match sb.issuer.check(session) {
        Ok(shop) => shop,
        Err(TokenProblem::Expired) => {
            return top_error(
                27,
                "Invalid session",
                Some("session-expired"),
                Some("SessionKey过期"),
                rid,
            )
        }
        Err(TokenProblem::Unknown) => {
            return top_error(
                27,
                "Invalid session",
                Some("invalid-sessionkey"),
                Some("SessionKey非法"),
                rid,
            )
        }
    };
    if ![crate::INCREMENT_API, crate::DECRYPT_API, crate::REFUNDS_API].contains(&method) {
        return top_error(22, "Invalid Method", None, None, rid);
    }
    // Faults come after authentication, as the real gateway's flow control does.
    if let Some(answer) = sb
        .refused(false, |r| {
            top_error(r.code as u32, &r.says, Some(&r.sub), Some(&r.sub_says), rid)
        })
        .await
    {
        return answer;
    }
    if method == crate::DECRYPT_API {
        return oaid_decrypt(&sb, &get, rid);
    }
    list(&sb, shop, &get, rid, method == crate::REFUNDS_API)
}

/// A list call's window and page: `fields`, `start_modified` and
/// `end_modified` (at most one day apart, within three months), `page_no`,
/// `page_size` (1–100) and `use_has_next`; or TOP's error answer.
struct ListQuery {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    page_no: usize,
    page_size: usize,
    use_has_next: bool,
}

#[allow(clippy::result_large_err)] // the error is the answer, sent at once
fn list_query<'a>(
    sb: &TopSandbox,
    get: &impl Fn(&str) -> Option<&'a str>,
    rid: u64,
) -> Result<ListQuery, Response> {
    let invalid = |field: &str, msg: &str| {
        top_error(
            41,
            "Invalid Arguments",
            Some(&format!("isv.invalid-parameter:{field}")),
            Some(msg),
            rid,
        )
    };
    let missing = |field: &str| {
        top_error(
            40,
            "Missing Required Arguments",
            Some(&format!("isv.missing-parameter:{field}")),
            None,
            rid,
        )
    };
    if get("fields").is_none() {
        return Err(missing("fields"));
    }
    let (Some(s), Some(e)) = (get("start_modified"), get("end_modified")) else {
        return Err(missing("start_modified"));
    };
    let (Ok(start), Ok(end)) = (parse_beijing(s), parse_beijing(e)) else {
        return Err(invalid(
            "start_modified",
            "时间格式错误，应为 yyyy-MM-dd HH:mm:ss",
        ));
    };
    if end < start {
        return Err(invalid(
            "end_modified",
            "end_modified不能早于start_modified",
        ));
    }
    if end - start > Duration::days(1) {
        return Err(invalid(
            "end_modified",
            "start_modified和end_modified的时间间隔不能超过一天",
        ));
    }
    if start < sb.as_of() - Duration::days(90) {
        return Err(invalid("start_modified", "只能查询三个月内的订单"));
    }
    let page_no: usize = match get("page_no").map(str::parse).unwrap_or(Ok(1)) {
        Ok(n) if n >= 1 => n,
        _ => return Err(invalid("page_no", "page_no必须大于0")),
    };
    let page_size: usize = match get("page_size").map(str::parse).unwrap_or(Ok(40)) {
        Ok(n) if (1..=100).contains(&n) => n,
        _ => return Err(invalid("page_size", "page_size必须在1到100之间")),
    };
    Ok(ListQuery {
        start,
        end,
        page_no,
        page_size,
        use_has_next: get("use_has_next") == Some("true"),
    })
}

impl ListQuery {
    /// This page of `list` as `{"<root>":{<count>,"<outer>":{"<inner>":[…]},
    /// "request_id":…}}`, each record written by `render` (about
    /// `bytes_each` long; the one to corrupt told so).
    fn page<E>(
        &self,
        sb: &TopSandbox,
        rid: u64,
        (root, outer, inner): (&str, &str, &str),
        list: &[E],
        bytes_each: usize,
        render: impl Fn(&mut String, &E, bool),
    ) -> Response {
        let (from, to, corrupt_at) = sb.page_slice(list.len(), self.page_no, self.page_size);
        let mut out = String::with_capacity(64 + (to - from) * bytes_each);
        let _ = write!(out, r#"{{"{root}":{{"#);
        self.count(&mut out, to, list.len());
        let _ = write!(out, r#""{outer}":{{"{inner}":["#);
        for (k, e) in list[from..to].iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            render(&mut out, e, corrupt_at == Some(from + k));
        }
        let _ = write!(out, r#"]}},"request_id":"{rid:x}"}}}}"#);
        json_answer(out)
    }

    /// The page's count field: `has_next` or `total_results`.
    fn count(&self, out: &mut String, to: usize, len: usize) {
        if self.use_has_next {
            let _ = write!(out, r#""has_next":{},"#, to < len);
        } else {
            let _ = write!(out, r#""total_results":{len},"#);
        }
    }
}

/// `taobao.top.oaid.decrypt`: `query_list` of at most 20 `{tid, oaid, scene}`.
fn oaid_decrypt<'a>(sb: &TopSandbox, get: &impl Fn(&str) -> Option<&'a str>, rid: u64) -> Response {
    sb.count_decrypt();
    let invalid = |msg: &str| {
        top_error(
            41,
            "Invalid Arguments",
            Some("isv.invalid-parameter:query_list"),
            Some(msg),
            rid,
        )
    };
    let Some(list) = get("query_list") else {
        return top_error(
            40,
            "Missing Required Arguments",
            Some("isv.missing-parameter:query_list"),
            None,
            rid,
        );
    };
    let Ok(queries) = serde_json::from_str::<Vec<serde_json::Value>>(list) else {
        return invalid("query_list必须是JSON数组");
    };
    if queries.is_empty() || queries.len() > 20 {
        return invalid("query_list最多20个");
    }
    let world = sb.world();
    let receivers: Vec<serde_json::Value> = queries
        .iter()
        .filter_map(|q| {
            let oaid = q.get("oaid")?.as_str()?;
            let tid = q.get("tid")?;
            let person = world.receiver_by_cipher(oaid)?;
            let (state, city) = REGIONS[person.region];
            Some(serde_json::json!({
                "tid": tid, "oaid": oaid, "matched": true,
                "name": "张*", "mobile": person.phone, "state": state, "city": city,
                "address_detail": "某街道1号",
            }))
        })
        .collect();
    json_answer(
        serde_json::json!({"top_oaid_decrypt_response": {
            "receiver_list": {"receiver": receivers},
            "request_id": format!("{rid:x}"),
        }})
        .to_string(),
    )
}

/// A list call of `shop`: `taobao.trades.sold.increment.get` (the trades
/// modified in the window, newest first) or, where `refunds`,
/// `taobao.refunds.receive.get` (the refunds modified in the window, each
/// on one sub-order: `oid`, the trade's id for a refund of the whole trade).
fn list<'a>(
    sb: &TopSandbox,
    shop: usize,
    get: &impl Fn(&str) -> Option<&'a str>,
    rid: u64,
    refunds: bool,
) -> Response {
    let q = match list_query(sb, get, rid) {
        Ok(q) => q,
        Err(answer) => return answer,
    };
    let idx = sb.book.snapshot();
    let (start, end) = (q.start.timestamp(), q.end.timestamp());
    if refunds {
        let names = ("refunds_receive_get_response", "refunds", "refund");
        return q.page(
            sb,
            rid,
            names,
            idx.refund_window(shop, start, end),
            300,
            |out, e, bad| sb.render_refund(out, e, bad),
        );
    }
    let names = ("trades_sold_increment_get_response", "trades", "trade");
    q.page(
        sb,
        rid,
        names,
        idx.window(shop, start, end),
        900,
        |out, e, bad| sb.render_trade(out, e.purchase as usize, usize::from(e.event), bad),
    )
}

/// The config that pulls an announced sandbox as `pull` asks.
pub fn config(ann: &SandboxAnnouncement, pull: SandboxPull) -> crate::TaobaoConfig {
    let inline = |s: &str| SecretRef::inline(s.to_string());
    crate::TaobaoConfig {
        gateway: format!("{}/router/rest", ann.base_url),
        app_key: ann.app_key.clone(),
        app_secret: inline(&ann.app_secret),
        sign_method: crate::SignMethod::HmacSha256,
        concurrency: 4,
        decrypt: pull.decrypt,
        decrypt_qps: 0,
        decrypt_scene: "2002".into(),
        pull: PullSettings::sandbox(pull, 100, 24 * 60, 60),
        shops: ann
            .shops
            .iter()
            .map(|s| crate::TaobaoShop {
                id: s.id.clone(),
                session: inline(&s.access_token),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_trades_are_valid_json_and_map() {
        let sb = TopSandbox::for_test();
        let first = sb
            .world()
            .purchases
            .iter()
            .position(|p| p.channel == Channel::Taobao)
            .unwrap();
        let mut s = String::new();
        sb.render_trade(&mut s, first, 0, false);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["status"], "WAIT_BUYER_PAY");
        let hasher = quanyu_schemas::PiiHasher::new(&quanyu_schemas::LakeKey::from_bytes([0; 32]));
        crate::MAPPING.order(&s, "x", &hasher).unwrap();
        let mut bad = String::new();
        sb.render_trade(&mut bad, first, 0, true);
        assert!(crate::MAPPING.order(&bad, "x", &hasher).is_err());
    }

    #[test]
    fn time_moves_trades_forward() {
        let sb = TopSandbox::for_test();
        let before = sb.visible_trades();
        sb.set_as_of(sb.as_of() + Duration::days(10));
        let after = sb.visible_trades();
        assert_eq!(
            before.len(),
            after.len(),
            "the demo world's orders are all created by as_of"
        );
        assert!(!before.is_empty());
        assert!(before.iter().zip(&after).any(|(a, b)| a.status != b.status));
    }
}
