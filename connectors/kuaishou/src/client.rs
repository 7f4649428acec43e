//! The Kuaishou open-platform client: system parameters, signing, the
//! `result` envelope, and the shop token's refresh flow.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use quanyu_connector_sdk::market::{code_text, error_text, says, values_of};
use quanyu_connector_sdk::market::{read_envelope, refresh_by_get, SignedCall, TokenGateway};
use quanyu_connector_sdk::Bytes;
use quanyu_connector_sdk::{
    ApiClient, ConnectorError, ErrorKind, RequestContext, Result, Secret, TokenSet,
};
use serde::Deserialize;

use crate::sign::{sign, SignMethod};

/// Throttled: the app's or shop's QPS limit was hit (our choice, see the
/// crate docs: Kuaishou's flow-control code is not published in a source
/// we could read).
pub const CODE_QPS: i64 = 17;
/// The signature does not verify.
pub const CODE_BAD_SIGN: i64 = 24;
/// Unknown app key.
pub const CODE_BAD_APP: i64 = 25;
/// The access token is not (or no longer) valid: replaced by a refresh.
pub const CODE_BAD_TOKEN: i64 = 27;
/// The access token expired.
pub const CODE_TOKEN_EXPIRED: i64 = 28;
/// Service error / busy.
pub const CODE_SYSTEM: i64 = 10;
/// Business failure (bad parameters: "endTime无效"...).
pub const CODE_BUSINESS: i64 = 2001;
/// The app's daily call quota is used up ("APP已达到当天调用额度限制").
pub const CODE_DAILY_QUOTA: i64 = 802006;

/// Kuaishou's envelope: `result == 1` is success.
#[derive(Debug, Deserialize)]
pub struct KsEnvelope {
    /// 1 = success; anything else is an error code.
    pub result: Option<serde_json::Value>,
    /// Error sub code.
    #[serde(rename = "subCode")]
    pub sub_code: Option<serde_json::Value>,
    /// Error sub message.
    #[serde(rename = "subMsg")]
    pub sub_msg: Option<String>,
    /// Error message.
    #[serde(rename = "errorMsg", alias = "error_msg")]
    pub error_msg: Option<String>,
    /// Summary message ("业务处理失败").
    pub msg: Option<String>,
}

/// Seconds until the next Beijing midnight (when daily quotas reset).
fn secs_to_beijing_midnight() -> u64 {
    let beijing_secs = Utc::now().timestamp() + 8 * 3600;
    (86_400 - beijing_secs.rem_euclid(86_400)).max(1) as u64
}

/// Map an error envelope to a typed error.
pub fn classify(ctx: &RequestContext, e: &KsEnvelope) -> ConnectorError {
    let code = code_text(e.result.as_ref());
    let sub = code_text(e.sub_code.as_ref());
    let detail = e
        .error_msg
        .as_deref()
        .or(e.sub_msg.as_deref())
        .unwrap_or("");
    let msg = error_text(
        "result",
        &code,
        e.msg.as_deref().unwrap_or(""),
        &sub,
        detail,
    );
    let n: i64 = code.parse().unwrap_or(-1);
    let busy = says(&[detail], &["繁忙"]) || sub.to_ascii_uppercase().starts_with("SYSTEM");
    let kind = match n {
        CODE_QPS | CODE_DAILY_QUOTA => ErrorKind::Throttled,
        CODE_SYSTEM | 11 | 500 => ErrorKind::Transient,
        CODE_BAD_TOKEN | CODE_TOKEN_EXPIRED => ErrorKind::TokenExpired,
        CODE_BAD_SIGN | CODE_BAD_APP => ErrorKind::Auth,
        _ if busy => ErrorKind::Transient,
        _ => ErrorKind::InvalidRequest,
    };
    let mut err = ConnectorError::new(ctx, kind, msg).with_code(code);
    if n == CODE_DAILY_QUOTA {
        // Retrying today cannot help: ask for a wait longer than any policy allows.
        err = err.with_retry_after(Duration::from_secs(secs_to_beijing_midnight()));
        err.message
            .push_str(" (the app's daily call quota is used up; it resets at Beijing midnight)");
    }
    err
}

/// Whether an answer may be an error (read whole only then, so a page is
/// parsed once, by its reader): it has no `"result": 1`.
pub fn may_be_error(body: &[u8]) -> bool {
    !values_of(body, "result").any(|v| v == b"1")
}

/// Fail on an error envelope; a body that is not a JSON object is a
/// transient protocol fault (a proxy cut it off).
pub fn check_envelope(ctx: &RequestContext, body: &[u8]) -> Result<()> {
    let env: KsEnvelope = read_envelope(ctx, body)?;
    if code_text(env.result.as_ref()) == "1" {
        return Ok(());
    }
    Err(classify(ctx, &env))
}

/// A signed Kuaishou open-platform client for one app key.
#[derive(Clone)]
pub struct KsClient {
    api: ApiClient,
    gateway: String,
    oauth_base: String,
    app_key: String,
    app_secret: Secret,
    sign_secret: Secret,
    sign_method: SignMethod,
}

impl KsClient {
    /// A client for `gateway` (`https://openapi.kwaixiaodian.com`) and the
    /// OAuth base (the same host in production).
    pub fn new(
        api: ApiClient,
        gateway: &str,
        oauth_base: &str,
        app_key: &str,
        app_secret: Secret,
        sign_secret: Secret,
        sign_method: SignMethod,
    ) -> Self {
        KsClient {
            api,
            gateway: gateway.trim_end_matches('/').to_string(),
            oauth_base: oauth_base.trim_end_matches('/').to_string(),
            app_key: app_key.to_string(),
            app_secret,
            sign_secret,
            sign_method,
        }
    }

    /// The same client with another HTTP wrapper (other limiters).
    pub fn with_api(&self, api: ApiClient) -> Self {
        KsClient {
            api,
            ..self.clone()
        }
    }
}

/// The business parameters of one call: the `param` JSON and whether it
/// goes as a POST form (the decrypt API) or a GET query (the lists).
#[derive(Debug, Clone)]
pub struct KsParam {
    /// The `param` JSON text.
    pub json: String,
    /// POST (form) rather than GET (query).
    pub post: bool,
}

impl KsParam {
    /// A GET call with `json` as its `param`.
    pub fn get(json: String) -> Self {
        KsParam { json, post: false }
    }

    /// A POST call with `json` as its `param`.
    pub fn post(json: String) -> Self {
        KsParam { json, post: true }
    }
}

#[async_trait]
impl TokenGateway for KsClient {
    type Params = KsParam;

    fn api(&self) -> &ApiClient {
        &self.api
    }

    /// One signed attempt: system parameters, `param` and the signature in
    /// the query (GET) or form (POST) of `{gateway}/{method with / for .}`.
    async fn attempt(&self, a: SignedCall<'_, Self::Params>) -> Result<Bytes> {
        let (ctx, method, access_token, param) = (a.ctx, a.method, a.access_token, a.params);
        let timestamp = Utc::now().timestamp_millis().to_string();
        let mut params: Vec<(&str, &str)> = vec![
            ("appkey", &self.app_key),
            ("method", method),
            ("version", "1"),
            ("access_token", access_token),
            ("timestamp", &timestamp),
            ("signMethod", self.sign_method.as_str()),
            ("param", &param.json),
        ];
        let signature = sign(
            params.iter().copied(),
            self.sign_secret.expose(),
            self.sign_method,
        );
        params.push(("sign", &signature));
        let url = format!("{}/{}", self.gateway, method.replace('.', "/"));
        let req = if param.post {
            self.api.http().post(&url).form(&params)
        } else {
            self.api.http().get(&url).query(&params)
        };
        let body = self.api.send(ctx, req).await?;
        if may_be_error(&body) {
            check_envelope(ctx, &body)?;
        }
        Ok(body)
    }

    /// Exchange the shop's refresh token:
    /// GET `<oauth>/oauth2/refresh_token?app_id&app_secret&grant_type=refresh_token&refresh_token`.
    async fn refresh(&self, ctx: &RequestContext, prev: Option<TokenSet>) -> Result<TokenSet> {
        let rctx =
            RequestContext::new(&ctx.connector, ctx.scope.as_deref(), "oauth2.refresh_token");
        let url = format!("{}/oauth2/refresh_token", self.oauth_base);
        let app = ("app_id", self.app_key.as_str());
        let a = refresh_by_get(&self.api, &rctx, &url, app, &self.app_secret, prev).await?;
        let code = code_text(a.result.as_ref());
        let kind = match code.parse::<i64>().unwrap_or(-1) {
            CODE_QPS => ErrorKind::Throttled,
            CODE_SYSTEM | 11 | 500 => ErrorKind::Transient,
            _ => ErrorKind::Auth,
        };
        a.tokens(&rctx, ("result", code.as_str()), code == "1", kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    quanyu_connector_sdk::envelope_test_kit!("kuaishou", "shop1", "open.order.cursor.list");

    #[test]
    fn classifies_real_envelopes() {
        let biz = r#"{"result":2001,"subCode":"2001","subMsg":"endTime无效","errorMsg":"endTime无效","msg":"业务处理失败","success":false}"#.as_bytes();
        let e = checked(biz).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
        assert!(e.to_string().contains("kuaishou [shop shop1]"), "{e}");
        assert!(e.message.contains("endTime无效"));
        let quota = r#"{"result":802006,"subCode":"802006","errorMsg":"APP已达到当天调用额度限制","msg":"业务处理失败","success":false}"#.as_bytes();
        let e = checked(quota).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Throttled);
        assert!(e.retry_after.is_some_and(|d| d.as_secs() >= 1));
        let qps = r#"{"result":17,"subCode":"17","errorMsg":"调用频率超过限制","msg":"调用频率超过限制","success":false}"#.as_bytes();
        assert_eq!(checked(qps).unwrap_err().kind, ErrorKind::Throttled);
        let exp = r#"{"result":28,"errorMsg":"access_token已过期","success":false}"#.as_bytes();
        assert_eq!(checked(exp).unwrap_err().kind, ErrorKind::TokenExpired);
        let sign = r#"{"result":24,"errorMsg":"签名验证失败","success":false}"#.as_bytes();
        assert_eq!(checked(sign).unwrap_err().kind, ErrorKind::Auth);
        let busy = r#"{"result":10,"errorMsg":"系统繁忙","success":false}"#.as_bytes();
        assert_eq!(checked(busy).unwrap_err().kind, ErrorKind::Transient);
        assert!(checked(br#"{"result":1,"data":{}}"#).is_ok());
        assert_eq!(checked(b"<html>").unwrap_err().kind, ErrorKind::Transient);
    }
}
