//! The Jushuitan open API v2 client: form posts with system parameters and
//! the MD5 signature, the `{code, msg, data}` envelope, and the company
//! token's refresh flow (`/openWeb/auth/refreshToken`).
//!
//! Error codes are not published in a source we could read; quanyu treats
//! them as follows (and its sandbox answers them): 100 bad signature and
//! 101 unknown app key (Auth), 10 / 11 token invalid or expired (refresh),
//! 199 call frequency exceeded (Throttled), 500 / 9999 system busy
//! (Transient), anything else non-zero a bad request.

use async_trait::async_trait;
use chrono::Utc;
use quanyu_connector_sdk::market::values_of;
use quanyu_connector_sdk::market::{read_envelope, SignedCall, TokenGateway};
use quanyu_connector_sdk::Bytes;
use quanyu_connector_sdk::{
    ApiClient, ConnectorError, ErrorKind, RequestContext, Result, Secret, TokenSet,
};
use serde::Deserialize;

use crate::sign::sign;

/// Bad signature.
pub const CODE_BAD_SIGN: i64 = 100;
/// Unknown app key.
pub const CODE_BAD_APP: i64 = 101;
/// The access token is not valid (replaced by a refresh).
pub const CODE_BAD_TOKEN: i64 = 10;
/// The access token expired.
pub const CODE_TOKEN_EXPIRED: i64 = 11;
/// Call frequency exceeded.
pub const CODE_QPS: i64 = 199;
/// System busy.
pub const CODE_BUSY: i64 = 500;
/// Bad parameters.
pub const CODE_BAD_PARAM: i64 = 1000;

/// The envelope of every answer.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    /// 0 = success.
    pub code: Option<serde_json::Value>,
    /// Message.
    pub msg: Option<String>,
}

fn code_of(v: &Option<serde_json::Value>) -> Option<i64> {
    match v {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Map a non-zero envelope to a typed error.
pub fn classify(ctx: &RequestContext, code: i64, msg: &str) -> ConnectorError {
    let kind = match code {
        CODE_BAD_SIGN | CODE_BAD_APP => ErrorKind::Auth,
        CODE_BAD_TOKEN | CODE_TOKEN_EXPIRED => ErrorKind::TokenExpired,
        CODE_QPS => ErrorKind::Throttled,
        CODE_BUSY | 9999 => ErrorKind::Transient,
        _ => ErrorKind::InvalidRequest,
    };
    ConnectorError::new(ctx, kind, format!("code {code}: {msg}")).with_code(code.to_string())
}

/// Whether an answer may be an error (read whole only then, so a page is
/// parsed once, by its reader): it has no `"code": 0`.
pub fn may_be_error(body: &[u8]) -> bool {
    !values_of(body, "code").any(|v| v == b"0")
}

/// Fail on a non-zero `code`; a body that is not the envelope is a transient
/// protocol fault (a proxy cut it off).
pub fn check_envelope(ctx: &RequestContext, body: &[u8]) -> Result<()> {
    let e: Envelope = read_envelope(ctx, body)?;
    match code_of(&e.code) {
        Some(0) => Ok(()),
        Some(c) => Err(classify(ctx, c, e.msg.as_deref().unwrap_or(""))),
        None => Err(ConnectorError::new(
            ctx,
            ErrorKind::Protocol,
            "answer has no code",
        )),
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    code: Option<serde_json::Value>,
    msg: Option<String>,
    data: Option<TokenData>,
}

#[derive(Deserialize)]
struct TokenData {
    access_token: Option<String>,
    expires_in: Option<i64>,
    refresh_token: Option<String>,
}

/// A signed client for one app key.
#[derive(Clone)]
pub struct JstClient {
    api: ApiClient,
    gateway: String,
    app_key: String,
    secret: Secret,
}

impl JstClient {
    /// The same client calling through `api`.
    pub fn with_api(&self, api: ApiClient) -> Self {
        JstClient {
            api,
            ..self.clone()
        }
    }

    /// A client posting to `gateway` (`https://openapi.jushuitan.com`).
    pub fn new(api: ApiClient, gateway: &str, app_key: &str, secret: Secret) -> Self {
        JstClient {
            api,
            gateway: gateway.trim_end_matches('/').to_string(),
            app_key: app_key.into(),
            secret,
        }
    }

    /// Post a signed form to `path`.
    async fn post(
        &self,
        ctx: &RequestContext,
        path: &str,
        mut params: Vec<(&str, &str)>,
    ) -> Result<Bytes> {
        let timestamp = Utc::now().timestamp().to_string();
        params.push(("app_key", &self.app_key));
        params.push(("timestamp", &timestamp));
        params.push(("charset", "utf-8"));
        let signature = sign(params.iter().copied(), self.secret.expose());
        params.push(("sign", &signature));
        let req = self
            .api
            .http()
            .post(format!("{}{path}", self.gateway))
            .form(&params);
        self.api.send(ctx, req).await
    }
}

#[async_trait]
impl TokenGateway for JstClient {
    /// The `biz` JSON text.
    type Params = str;

    fn api(&self) -> &ApiClient {
        &self.api
    }

    /// One signed POST of `path` (the method) with the account's token.
    async fn attempt(&self, a: SignedCall<'_, Self::Params>) -> Result<Bytes> {
        let (ctx, path, access_token, biz) = (a.ctx, a.method, a.access_token, a.params);
        let body = self
            .post(
                ctx,
                path,
                vec![
                    ("access_token", access_token),
                    ("version", "2"),
                    ("biz", biz),
                ],
            )
            .await?;
        if may_be_error(&body) {
            check_envelope(ctx, &body)?;
        }
        Ok(body)
    }

    /// Exchange the refresh token (`grant_type=refresh_token`, `scope=all`).
    async fn refresh(&self, ctx: &RequestContext, prev: Option<TokenSet>) -> Result<TokenSet> {
        let rctx = RequestContext::new(
            "jushuitan",
            ctx.scope.as_deref(),
            "openWeb/auth/refreshToken",
        );
        let Some(rt) = prev.and_then(|p| p.refresh_token) else {
            return Err(ConnectorError::new(
                &rctx,
                ErrorKind::Auth,
                "the access token expired and there is no refresh token: authorize the app again",
            ));
        };
        let body = self
            .post(
                &rctx,
                "/openWeb/auth/refreshToken",
                vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.expose()),
                    ("scope", "all"),
                ],
            )
            .await?;
        let a: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            ConnectorError::new(
                &rctx,
                ErrorKind::Transient,
                format!("unreadable token answer: {e}"),
            )
        })?;
        match (code_of(&a.code), a.data) {
            (
                Some(0),
                Some(TokenData {
                    access_token: Some(at),
                    expires_in,
                    refresh_token,
                }),
            ) if !at.is_empty() => Ok(TokenSet::issued(
                &at,
                refresh_token.as_deref(),
                expires_in.unwrap_or(0),
            )),
            (code, _) => {
                let code = code.unwrap_or(-1);
                let mut e = classify(&rctx, code, a.msg.as_deref().unwrap_or(""));
                if e.kind == ErrorKind::TokenExpired || e.kind == ErrorKind::InvalidRequest {
                    // A refused refresh cannot be fixed by retrying.
                    e.kind = ErrorKind::Auth;
                    e.message
                        .push_str(" (token refresh refused: authorize the app again)");
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    quanyu_connector_sdk::envelope_test_kit!("jushuitan", "jst-miniapp", "orders/single/query");

    #[test]
    fn classifies_envelopes() {
        assert!(check_envelope(
            &ctx(),
            r#"{"code":0,"msg":"执行成功","data":{}}"#.as_bytes()
        )
        .is_ok());
        for (body, want) in [
            (r#"{"code":100,"msg":"签名错误"}"#, ErrorKind::Auth),
            (
                r#"{"code":11,"msg":"access_token已过期"}"#,
                ErrorKind::TokenExpired,
            ),
            (
                r#"{"code":"199","msg":"调用频率超限"}"#,
                ErrorKind::Throttled,
            ),
            (r#"{"code":500,"msg":"系统繁忙"}"#, ErrorKind::Transient),
            (
                r#"{"code":1000,"msg":"参数错误"}"#,
                ErrorKind::InvalidRequest,
            ),
            ("<html>", ErrorKind::Transient),
        ] {
            assert_eq!(kind(body), want, "{body}");
        }
        let e = checked(r#"{"code":100,"msg":"签名错误"}"#.as_bytes()).unwrap_err();
        assert!(
            e.to_string()
                .contains("jushuitan [shop jst-miniapp] orders/single/query"),
            "{e}"
        );
    }
}
