//! The Youzan cloud (有赞云) gateway client: shop tokens by silent
//! authorization, `POST /api/{name}/{version}?access_token=…` with a JSON
//! body, and the two error envelopes.
//!
//! Youzan does not sign requests: the token in the query string is the
//! only credential (the official PHP, Node and C# SDKs build no signature;
//! a token in a header or the body is answered `4201`). A self-use app
//! (自用型) gets each shop's token from `POST /auth/token` with
//! `authorize_type=silent`, its `client_id`, `client_secret` and the shop's
//! `kdt_id` as `grant_id`; the answer's `expires` is an absolute epoch in
//! milliseconds (7 days ahead). A wrong secret is answered there, with
//! `{"success":false,"code":1000,…}`, before any order call.
//!
//! Errors come back with HTTP 200 in one of two shapes:
//! - the gateway's `{"gw_err_resp":{"err_code":4202,"err_msg":…}}`: 4101
//!   throttled; 4201 (illegal credential), 4202 (expired) and 4203 (no such
//!   token) make the connector fetch the shop's token again; 4204 no
//!   capability; 4001–4010 and 5001 bad requests; 5002/5003 transient.
//! - the API's `{"success":false,"code":106000001,"message":…}`: throttled
//!   where the code is 500100004 or 123000042 or the message says 限流;
//!   106100118 (超时) transient; anything else a bad request.

use async_trait::async_trait;
use chrono::Utc;
use quanyu_connector_sdk::market::{
    no_access_token, post_json_attempt, read_envelope, read_token_answer, values_of, SignedCall,
    TokenGateway,
};
use quanyu_connector_sdk::Bytes;
use quanyu_connector_sdk::{
    ApiClient, ConnectorError, ErrorKind, RequestContext, Result, Secret, TokenSet,
};
use serde::Deserialize;

/// The token endpoint, below the gateway URL.
pub const TOKEN_PATH: &str = "/auth/token";
/// Gateway: too many requests (请求太频繁).
pub const GW_THROTTLED: i64 = 4101;
/// Gateway: illegal credential (no token, or the shop withdrew it).
pub const GW_ILLEGAL_TOKEN: i64 = 4201;
/// Gateway: the token expired.
pub const GW_TOKEN_EXPIRED: i64 = 4202;
/// Gateway: no such token.
pub const GW_NO_TOKEN: i64 = 4203;
/// Gateway: the app has no capability for this API.
pub const GW_NO_PERMISSION: i64 = 4204;
/// Gateway: unknown API name or version.
pub const GW_NO_API: i64 = 4005;
/// Gateway: system error (usually a parameter of the wrong type).
pub const GW_SYSTEM: i64 = 5001;
/// Token endpoint: wrong app credentials.
pub const AUTH_BAD_APP: i64 = 1000;
/// Token endpoint: no such client or grant.
pub const AUTH_NO_CLIENT: i64 = 1103;
/// API: a parameter out of range (page size, time span...).
pub const API_PARAM: i64 = 5000;
/// API: the created/updated window is longer than one year.
pub const API_WINDOW: i64 = 106_000_001;
/// API: timed out inside Youzan, retry.
pub const API_TIMEOUT: i64 = 106_100_118;
/// API: throttled (business form).
pub const API_THROTTLED: i64 = 500_100_004;

#[derive(Deserialize)]
struct GatewayError {
    err_code: Option<i64>,
    #[serde(alias = "err_message")]
    err_msg: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    gw_err_resp: Option<GatewayError>,
    success: Option<bool>,
    code: Option<i64>,
    message: Option<String>,
}

/// The error an answer carries, if it is one of Youzan's error envelopes;
/// a body that is not a JSON object is a transient fault (cut off).
pub fn check_envelope(ctx: &RequestContext, body: &[u8]) -> Result<()> {
    let env: Envelope = read_envelope(ctx, body)?;
    if let Some(gw) = env.gw_err_resp {
        let code = gw.err_code.unwrap_or(-1);
        let msg = gw.err_msg.unwrap_or_default();
        let kind = match code {
            GW_THROTTLED => ErrorKind::Throttled,
            GW_ILLEGAL_TOKEN | GW_TOKEN_EXPIRED | GW_NO_TOKEN => ErrorKind::TokenExpired,
            GW_NO_PERMISSION => ErrorKind::Auth,
            5002 | 5003 => ErrorKind::Transient,
            _ => ErrorKind::InvalidRequest,
        };
        return Err(
            ConnectorError::new(ctx, kind, format!("gateway error {code}: {msg}"))
                .with_code(code.to_string()),
        );
    }
    if env.success == Some(false) {
        let code = env.code.unwrap_or(-1);
        let msg = env.message.unwrap_or_default();
        let kind = match code {
            API_THROTTLED | 123_000_042 => ErrorKind::Throttled,
            _ if msg.contains("限流") || msg.contains("频繁") => ErrorKind::Throttled,
            API_TIMEOUT => ErrorKind::Transient,
            _ if msg.contains("超时") || msg.contains("繁忙") => ErrorKind::Transient,
            _ => ErrorKind::InvalidRequest,
        };
        return Err(
            ConnectorError::new(ctx, kind, format!("error {code}: {msg}"))
                .with_code(code.to_string()),
        );
    }
    Ok(())
}

/// Whether an answer may be an error envelope (read only then, so a page
/// is parsed once, by its reader).
fn names_an_error(body: &[u8]) -> bool {
    values_of(body, "gw_err_resp").next().is_some()
        || values_of(body, "success").any(|v| v == b"false")
}

#[derive(Deserialize)]
struct TokenAnswer {
    success: Option<bool>,
    code: Option<i64>,
    message: Option<String>,
    data: Option<TokenData>,
}

#[derive(Deserialize)]
struct TokenData {
    access_token: Option<String>,
    /// Absolute expiry, epoch milliseconds.
    expires: Option<i64>,
}

/// The seconds a granted token has left, from its absolute `expires`
/// (epoch ms) at `now_ms`; 0 (no known expiry) without a usable one, so
/// the token lives until the gateway says it expired (4202) instead of
/// being asked for again on every call.
pub fn seconds_left(expires: Option<i64>, now_ms: i64) -> i64 {
    expires
        .map(|ms| (ms - now_ms) / 1000)
        .filter(|s| *s > 0)
        .unwrap_or(0)
}

/// A Youzan client for one shop (`kdt_id`) of one self-use app.
#[derive(Clone)]
pub struct YouzanClient {
    api: ApiClient,
    gateway: String,
    client_id: String,
    client_secret: Secret,
    kdt_id: String,
}

impl YouzanClient {
    /// A client for shop `kdt_id` at `gateway` (`https://open.youzanyun.com`).
    pub fn new(
        api: ApiClient,
        gateway: &str,
        client_id: &str,
        client_secret: Secret,
        kdt_id: &str,
    ) -> Self {
        YouzanClient {
            api,
            gateway: gateway.trim_end_matches('/').to_string(),
            client_id: client_id.to_string(),
            client_secret,
            kdt_id: kdt_id.to_string(),
        }
    }

    /// The same client with another HTTP wrapper (other limiters).
    pub fn with_api(&self, api: ApiClient) -> Self {
        YouzanClient {
            api,
            ..self.clone()
        }
    }

    /// Ask `/auth/token` for the shop's token by silent authorization;
    /// `renew` asks for a new one even while the old one is valid (the
    /// platform returns the same token otherwise).
    async fn silent_token(&self, ctx: &RequestContext, renew: bool) -> Result<TokenSet> {
        let body = serde_json::json!({
            "client_id": self.client_id,
            "client_secret": self.client_secret.expose(),
            "authorize_type": "silent",
            "grant_id": self.kdt_id,
            "refresh": renew,
        });
        let answer = self
            .api
            .post_json(ctx, &format!("{}{TOKEN_PATH}", self.gateway), None, &body)
            .await?;
        let t: TokenAnswer = read_token_answer(ctx, &answer)?;
        let refused = |code: i64, msg: &str| {
            let kind = match code {
                // Asking too often is throttled; the rest is the app's or
                // the shop's authorization.
                _ if msg.contains("频繁") || msg.contains("限流") => ErrorKind::Throttled,
                _ if msg.contains("繁忙") => ErrorKind::Transient,
                _ => ErrorKind::Auth,
            };
            ConnectorError::new(
                ctx,
                kind,
                format!(
                    "silent authorization at {TOKEN_PATH} refused (error {code}: {msg}): check \
                     client_id, client_secret and the shop's kdt_id"
                ),
            )
            .with_code(code.to_string())
        };
        match t {
            TokenAnswer {
                success: Some(true),
                data:
                    Some(TokenData {
                        access_token: Some(at),
                        expires,
                    }),
                ..
            } if !at.is_empty() => {
                let left = seconds_left(expires, Utc::now().timestamp_millis());
                Ok(TokenSet::issued(&at, None, left))
            }
            TokenAnswer {
                success: Some(false),
                code,
                message,
                ..
            } => Err(refused(
                code.unwrap_or(-1),
                message.as_deref().unwrap_or(""),
            )),
            _ => Err(no_access_token(ctx)),
        }
    }
}

#[async_trait]
impl TokenGateway for YouzanClient {
    /// The JSON body of the call.
    type Params = serde_json::Value;

    fn api(&self) -> &ApiClient {
        &self.api
    }

    /// `method` is `name/version` (`youzan.trades.sold.get/4.0.4`).
    async fn attempt(&self, a: SignedCall<'_, Self::Params>) -> Result<Bytes> {
        let url = &format!("{}/api/{}", self.gateway, a.method);
        post_json_attempt(&self.api, a, url, names_an_error, check_envelope).await
    }

    /// A self-use app fetches the shop's token itself: the first time
    /// (`prev` is `None`), and anew once the gateway said it expired.
    async fn refresh(&self, ctx: &RequestContext, prev: Option<TokenSet>) -> Result<TokenSet> {
        self.silent_token(ctx, prev.is_some()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RequestContext {
        RequestContext::new("youzan", Some("mall"), "youzan.trades.sold.get")
    }

    fn err(body: &str) -> ConnectorError {
        assert!(names_an_error(body.as_bytes()), "{body}");
        check_envelope(&ctx(), body.as_bytes()).unwrap_err()
    }

    #[test]
    fn a_token_without_a_usable_expiry_is_not_due_at_once() {
        let now = 1_773_817_700_000;
        assert_eq!(seconds_left(Some(now + 7 * 86_400_000), now), 7 * 86_400);
        let no_expiry = TokenSet::issued("t", None, seconds_left(None, now));
        assert!(
            !no_expiry.expiring(),
            "missing: lives until the gateway says"
        );
        let past = TokenSet::issued("t", None, seconds_left(Some(now - 1), now));
        assert!(!past.expiring(), "in the past (a skewed clock): the same");
        let soon = TokenSet::issued("t", None, seconds_left(Some(now + 60_000), now));
        assert!(soon.expiring(), "a minute left: renewed");
    }

    #[test]
    fn classifies_both_envelopes() {
        // Shapes from the gateway probes and a captured 2026 answer.
        let e = err(
            r#"{"gw_err_resp":{"trace_id":"yz7-0a34-1773817700690-1","err_msg":"非法的请求凭证","err_code":4201}}"#,
        );
        assert_eq!(e.kind, ErrorKind::TokenExpired);
        assert_eq!(e.code.as_deref(), Some("4201"));
        assert!(e.to_string().contains("youzan [shop mall]"), "{e}");
        assert_eq!(
            err(r#"{"gw_err_resp":{"err_msg":"请求凭证过期","err_code":4202}}"#).kind,
            ErrorKind::TokenExpired
        );
        assert_eq!(
            err(r#"{"gw_err_resp":{"err_msg":"请求太频繁","err_code":4101}}"#).kind,
            ErrorKind::Throttled
        );
        assert_eq!(
            err(r#"{"gw_err_resp":{"err_message":"无权限访问","err_code":4204}}"#).kind,
            ErrorKind::Auth
        );
        let e = err(
            r#"{"trace_id":"t","code":106000001,"data":{"full_order_info_list":[]},"success":false,"message":"每次可搜索一年订单记录,请重新选择起止时间"}"#,
        );
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
        assert!(e.message.contains("一年"), "{e}");
        assert_eq!(
            err(r#"{"code":123000042,"success":false,"message":"请求被限流"}"#).kind,
            ErrorKind::Throttled
        );
        assert_eq!(
            err(r#"{"code":106100118,"success":false,"message":"系统超时"}"#).kind,
            ErrorKind::Transient
        );
        let ok = br#"{"trace_id":"t","code":200,"data":{"total_results":0},"success":true,"message":"successful"}"#;
        assert!(!names_an_error(ok));
        assert!(check_envelope(&ctx(), ok).is_ok());
        assert_eq!(
            check_envelope(&ctx(), b"<html>").unwrap_err().kind,
            ErrorKind::Transient
        );
    }
}
