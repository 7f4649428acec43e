//! The JD open-platform (宙斯 / JOS) client: the `/routerjson` gateway, its
//! system parameters (`method, app_key, access_token, timestamp, v=2.0,
//! 360buy_param_json`), signing, the two error layers (the gateway's
//! `error_response` and the API's own `code` / `apiResult`), and the shop
//! token's OAuth2 refresh at `open-oauth.jd.com`.
//!
//! Gateway codes from JD's published system error table: 2 App Call
//! Limited (throttled), 4/5 version, 7/8 timestamp, 11/12 signature, 14/15
//! method, 19 无效access_token (taken as "expired": the next attempt
//! refreshes), 21 无效App Key and 24 该商家无权调用API (auth), 33/65/66/67
//! platform timeouts / backend faults (transient). JD sends no retry-after.

use async_trait::async_trait;
use chrono::Utc;
use quanyu_connector_sdk::market::{code_text, error_text, says, values_of};
use quanyu_connector_sdk::market::{read_envelope, refresh_by_get, SignedCall, TokenGateway};
use quanyu_connector_sdk::Bytes;
use quanyu_connector_sdk::{
    ApiClient, ConnectorError, ErrorKind, RequestContext, Result, Secret, TokenSet,
};
use quanyu_schemas::time::format_beijing;
use serde::Deserialize;

use crate::sign::sign;

/// App Call Limited: the app's call budget is used up (throttled).
pub const CODE_CALL_LIMITED: i64 = 2;
/// Missing `v`.
pub const CODE_MISSING_VERSION: i64 = 4;
/// Unsupported `v`.
pub const CODE_BAD_VERSION: i64 = 5;
/// Missing `timestamp`.
pub const CODE_MISSING_TIMESTAMP: i64 = 7;
/// Invalid `timestamp` (unreadable, or more than six minutes off).
pub const CODE_BAD_TIMESTAMP: i64 = 8;
/// Missing `sign`.
pub const CODE_MISSING_SIGN: i64 = 11;
/// The signature does not verify.
pub const CODE_BAD_SIGN: i64 = 12;
/// Missing `method`.
pub const CODE_MISSING_METHOD: i64 = 14;
/// Unknown `method`.
pub const CODE_BAD_METHOD: i64 = 15;
/// Missing `access_token`.
pub const CODE_MISSING_TOKEN: i64 = 18;
/// Invalid (unknown, replaced or expired) `access_token`.
pub const CODE_BAD_TOKEN: i64 = 19;
/// Missing `app_key`.
pub const CODE_MISSING_APP_KEY: i64 = 20;
/// Unknown `app_key`.
pub const CODE_BAD_APP_KEY: i64 = 21;
/// The merchant may not call this API.
pub const CODE_NO_PERMISSION: i64 = 24;
/// Backend timeout ("系统处理超时"): retry.
pub const CODE_SYSTEM_TIMEOUT: i64 = 33;
/// The platform timed out reaching the backend service: retry.
pub const CODE_BACKEND_TIMEOUT: i64 = 65;
/// The backend service is unavailable: retry.
pub const CODE_BACKEND_UNAVAILABLE: i64 = 66;
/// The backend service failed: retry.
pub const CODE_BACKEND_ERROR: i64 = 67;
/// The refresh endpoint's path under the OAuth base.
pub const REFRESH_PATH: &str = "/oauth2/refresh_token";
/// The request name errors of the token refresh carry.
pub const REFRESH_API: &str = "oauth2/refresh_token";

/// The body of `error_response` (and of an API root's failure fields).
#[derive(Debug, Default, Deserialize)]
pub struct JdError {
    /// The error code (a string on the wire, sometimes a number).
    pub code: Option<serde_json::Value>,
    /// The Chinese description.
    pub zh_desc: Option<String>,
    /// The English description.
    pub en_desc: Option<String>,
}

/// Map a gateway `error_response` to a typed error.
pub fn classify(ctx: &RequestContext, e: &JdError) -> ConnectorError {
    let code = code_text(e.code.as_ref());
    let zh = e.zh_desc.as_deref().unwrap_or("").trim();
    let en = e.en_desc.as_deref().unwrap_or("").trim();
    let mut message = error_text("code", &code, zh, "", en);
    let texts = [zh, en];
    let n: i64 = code.parse().unwrap_or(-1);
    let kind = match n {
        CODE_CALL_LIMITED => ErrorKind::Throttled,
        CODE_SYSTEM_TIMEOUT
        | CODE_BACKEND_TIMEOUT
        | CODE_BACKEND_UNAVAILABLE
        | CODE_BACKEND_ERROR => ErrorKind::Transient,
        CODE_BAD_TOKEN => ErrorKind::TokenExpired,
        CODE_MISSING_SIGN | CODE_BAD_SIGN | CODE_MISSING_APP_KEY | CODE_BAD_APP_KEY
        | CODE_NO_PERMISSION => ErrorKind::Auth,
        _ if says(&texts, &["Call Limited", "限流", "频繁", "超限"]) => ErrorKind::Throttled,
        _ if says(
            &texts,
            &["繁忙", "超时", "不可用", "Timeout", "Unavailable"],
        ) =>
        {
            ErrorKind::Transient
        }
        _ if says(&texts, &["access_token", "Access Token"])
            && says(&texts, &["无效", "过期", "Invalid", "Expired"]) =>
        {
            ErrorKind::TokenExpired
        }
        _ => ErrorKind::InvalidRequest,
    };
    if n == CODE_BAD_TIMESTAMP {
        message.push_str(" (JD allows six minutes of clock skew: check this machine's clock)");
    }
    ConnectorError::new(ctx, kind, message).with_code(code)
}

/// Classify a business failure an API reports inside its own root
/// (`code != "0"`, or an `apiResult` with `success: false`).
fn business_error(ctx: &RequestContext, code: &str, zh: &str, en: &str) -> ConnectorError {
    let texts = [zh, en];
    let kind = if says(&texts, &["限流", "频繁", "Call Limited"]) {
        ErrorKind::Throttled
    } else if says(&texts, &["繁忙", "超时", "系统异常", "Timeout", "busy"]) {
        ErrorKind::Transient
    } else {
        ErrorKind::InvalidRequest
    };
    let mut message = format!("business code {code}");
    if !zh.is_empty() {
        message.push_str(&format!(": {zh}"));
    }
    if !en.is_empty() {
        message.push_str(&format!(" ({en})"));
    }
    ConnectorError::new(ctx, kind, message).with_code(code)
}

/// Whether an answer may be an error (read whole only then, so a page is
/// parsed once, by its reader): the gateway's `error_response`, a `code`
/// other than `"0"`, or a `"success": false`.
pub fn may_be_error(body: &[u8]) -> bool {
    values_of(body, "error_response").next().is_some()
        || values_of(body, "code").any(|v| v != b"0")
        || values_of(body, "success").any(|v| v == b"false")
}

/// Fail on an error answer: the gateway's `error_response`, an API root
/// (`…_responce` / `…_response`) whose `code` is not `"0"`, or a result
/// whose `apiResult.success` is false. A body that is not a JSON object is a
/// transient protocol fault (a proxy cut it off).
pub fn check_envelope(ctx: &RequestContext, body: &[u8]) -> Result<()> {
    let v: serde_json::Value = read_envelope(ctx, body)?;
    let Some(obj) = v.as_object() else {
        return Err(ConnectorError::new(
            ctx,
            ErrorKind::Transient,
            "answer is not a JSON object",
        ));
    };
    if let Some(e) = obj.get("error_response") {
        let e: JdError = serde_json::from_value(e.clone()).unwrap_or_default();
        return Err(classify(ctx, &e));
    }
    for (name, root) in obj {
        if !(name.ends_with("_responce") || name.ends_with("_response")) {
            continue;
        }
        let Some(root) = root.as_object() else {
            continue;
        };
        let code = code_text(root.get("code"));
        if !code.is_empty() && code != "0" {
            let text = |k: &str| {
                root.get(k)
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let e = JdError {
                code: Some(serde_json::Value::String(code)),
                zh_desc: Some(text("zh_desc")),
                en_desc: Some(text("en_desc")),
            };
            return Err(classify(ctx, &e));
        }
        for result in root.values() {
            let Some(api) = result.get("apiResult") else {
                continue;
            };
            if api.get("success").and_then(serde_json::Value::as_bool) == Some(false) {
                let text = |k: &str| api.get(k).and_then(serde_json::Value::as_str).unwrap_or("");
                let code = match code_text(api.get("numberCode")) {
                    c if c.is_empty() => code_text(api.get("code")),
                    c => c,
                };
                return Err(business_error(
                    ctx,
                    &code,
                    text("chineseErrCode"),
                    text("englishErrCode"),
                ));
            }
        }
    }
    Ok(())
}

/// A signed JD client for one app key.
#[derive(Clone)]
pub struct JdClient {
    api: ApiClient,
    gateway: String,
    oauth_base: String,
    app_key: String,
    app_secret: Secret,
}

impl JdClient {
    /// A client for `gateway` (`https://api.jd.com/routerjson`) and the
    /// OAuth base (`https://open-oauth.jd.com`).
    pub fn new(
        api: ApiClient,
        gateway: &str,
        oauth_base: &str,
        app_key: &str,
        app_secret: Secret,
    ) -> Self {
        JdClient {
            api,
            gateway: gateway.to_string(),
            oauth_base: oauth_base.trim_end_matches('/').to_string(),
            app_key: app_key.to_string(),
            app_secret,
        }
    }

    /// The same client with another HTTP wrapper (other limiters).
    pub fn with_api(&self, api: ApiClient) -> Self {
        JdClient {
            api,
            ..self.clone()
        }
    }
}

#[async_trait]
impl TokenGateway for JdClient {
    /// The `360buy_param_json` text.
    type Params = str;

    fn api(&self) -> &ApiClient {
        &self.api
    }

    /// One signed attempt: system parameters and the signature in the
    /// query, `360buy_param_json` in the form.
    async fn attempt(&self, a: SignedCall<'_, Self::Params>) -> Result<Bytes> {
        let (ctx, method, access_token, param_json) = (a.ctx, a.method, a.access_token, a.params);
        let timestamp = format_beijing(Utc::now());
        let mut system: Vec<(&str, &str)> = vec![
            ("method", method),
            ("app_key", &self.app_key),
            ("access_token", access_token),
            ("timestamp", &timestamp),
            ("v", "2.0"),
        ];
        let signature = sign(
            system
                .iter()
                .copied()
                .chain([("360buy_param_json", param_json)]),
            self.app_secret.expose(),
        );
        system.push(("sign", &signature));
        let req = self
            .api
            .http()
            .post(&self.gateway)
            .query(&system)
            .form(&[("360buy_param_json", param_json)]);
        let body = self.api.send(ctx, req).await?;
        if may_be_error(&body) {
            check_envelope(ctx, &body)?;
        }
        Ok(body)
    }

    /// Exchange the shop's refresh token:
    /// GET `<oauth>/oauth2/refresh_token?app_key&app_secret&grant_type=refresh_token&refresh_token`,
    /// answered `{access_token, expires_in, refresh_token, scope, open_id, …}`
    /// or `{code, msg}` on failure.
    async fn refresh(&self, ctx: &RequestContext, prev: Option<TokenSet>) -> Result<TokenSet> {
        let rctx = RequestContext::new(&ctx.connector, ctx.scope.as_deref(), REFRESH_API);
        let url = format!("{}{REFRESH_PATH}", self.oauth_base);
        let app = ("app_key", self.app_key.as_str());
        let a = refresh_by_get(&self.api, &rctx, &url, app, &self.app_secret, prev).await?;
        let code = code_text(a.code.as_ref());
        let busy = says(&[a.message()], &["繁忙", "超时", "busy"]) || code.starts_with('5');
        let kind = if busy {
            ErrorKind::Transient
        } else {
            ErrorKind::Auth
        };
        let ok = code.is_empty() || code == "0";
        a.tokens(&rctx, ("code", code.as_str()), ok, kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    quanyu_connector_sdk::envelope_test_kit!("jd", "shop1", "jingdong.pop.order.search");

    #[test]
    fn classifies_gateway_envelopes() {
        let sign = r#"{"error_response":{"code":"12","zh_desc":"无效签名","en_desc":"Invalid Signature"}}"#;
        let e = checked(sign.as_bytes()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Auth);
        assert_eq!(e.code.as_deref(), Some("12"));
        assert!(e.to_string().contains("jd [shop shop1]"), "{e}");
        assert!(e.message.contains("无效签名"), "{e}");
        assert_eq!(
            kind(
                r#"{"error_response":{"code":"2","zh_desc":"限制时间内调用失败次数","en_desc":"App Call Limited"}}"#
            ),
            ErrorKind::Throttled
        );
        assert_eq!(
            kind(
                r#"{"error_response":{"code":"19","zh_desc":"无效access_token","en_desc":"Invalid access_token"}}"#
            ),
            ErrorKind::TokenExpired
        );
        assert_eq!(
            kind(
                r#"{"error_response":{"code":"21","zh_desc":"无效App Key","en_desc":"Invalid App Key"}}"#
            ),
            ErrorKind::Auth
        );
        assert_eq!(
            kind(
                r#"{"error_response":{"code":"15","zh_desc":"不存在的方法名","en_desc":"Invalid Method"}}"#
            ),
            ErrorKind::InvalidRequest
        );
        let ts = check_envelope(
            &ctx(),
            r#"{"error_response":{"code":8,"zh_desc":"非法的时间戳参数","en_desc":"Invalid Timestamp"}}"#
                .as_bytes(),
        )
        .unwrap_err();
        assert_eq!(ts.kind, ErrorKind::InvalidRequest);
        assert!(ts.message.contains("clock"), "{ts}");
        assert_eq!(
            kind(
                r#"{"error_response":{"code":"65","zh_desc":"平台连接后端服务超时","en_desc":"Platform Connect Backend Service Timeout"}}"#
            ),
            ErrorKind::Transient
        );
        assert_eq!(checked(b"<html>").unwrap_err().kind, ErrorKind::Transient);
        assert_eq!(checked(b"[1]").unwrap_err().kind, ErrorKind::Transient);
    }

    #[test]
    fn classifies_business_failures_and_passes_success() {
        let ok = r#"{"jingdong_pop_order_search_responce":{"code":"0","searchorderinfo_result":
            {"apiResult":{"success":true,"numberCode":10100000,"chineseErrCode":"成功"},
             "orderTotal":0,"orderInfoList":[]}}}"#;
        assert!(checked(ok.as_bytes()).is_ok());
        let window = r#"{"jingdong_pop_order_search_responce":{"code":"0","searchorderinfo_result":
            {"apiResult":{"success":false,"numberCode":10100035,"code":"10100035",
             "chineseErrCode":"查询时间跨度不能超过一个月","englishErrCode":"date range exceeds one month"},
             "orderTotal":0}}}"#;
        let e = checked(window.as_bytes()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
        assert_eq!(e.code.as_deref(), Some("10100035"));
        assert!(e.message.contains("一个月"), "{e}");
        let busy = r#"{"jingdong_pop_order_search_responce":{"code":"0","searchorderinfo_result":
            {"apiResult":{"success":false,"numberCode":10100099,"chineseErrCode":"系统繁忙"}}}}"#;
        assert_eq!(kind(busy), ErrorKind::Transient);
        let wrapped =
            r#"{"jingdong_pop_order_search_responce":{"code":"19","zh_desc":"无效access_token"}}"#;
        assert_eq!(kind(wrapped), ErrorKind::TokenExpired);
    }
}
