//! The Douyin shop (抖店) open-platform client: the path per method, the
//! query's system parameters, signing over the JSON body, the
//! `code`/`msg`/`sub_code` envelope, and the shop token's flows:
//! `/token/create` (`authorization_self` for a self-built app, by shop id)
//! and `/token/refresh`.
//!
//! Success is `code` 10000. The failure codes below are our choice where
//! no source we could read pins them (the sandbox answers them, and the
//! classifier also reads `sub_code` and the message): 20000 service
//! unavailable, 30001 unknown access token, 30002 expired access token
//! (the legacy `err_no` 30001–30007 also mean a bad token), 40003 bad
//! parameters, 40004 bad signature or app key, 50002 / 90000 quota or
//! flow control, 80000 environment risk (refused).

use async_trait::async_trait;
use chrono::Utc;
use quanyu_connector_sdk::market::{code_text, error_text, says, values_of};
use quanyu_connector_sdk::market::{no_access_token, read_envelope, SignedCall, TokenGateway};
use quanyu_connector_sdk::Bytes;
use quanyu_connector_sdk::{
    ApiClient, ConnectorError, ErrorKind, RequestContext, Result, Secret, TokenSet,
};
use serde::Deserialize;

use crate::sign::{param_json, sign, SignMethod, Signed};

/// Success.
pub const CODE_OK: i64 = 10000;
/// Service unavailable, retry later.
pub const CODE_UNAVAILABLE: i64 = 20000;
/// The access token is unknown (or was replaced by a refresh).
pub const CODE_BAD_TOKEN: i64 = 30001;
/// The access token expired.
pub const CODE_TOKEN_EXPIRED: i64 = 30002;
/// Bad business or system parameters.
pub const CODE_PARAM: i64 = 40003;
/// The signature does not verify, or the app key is unknown.
pub const CODE_BAD_SIGN: i64 = 40004;
/// The app's or shop's call budget is used up (flow control).
pub const CODE_FLOW_LIMIT: i64 = 90000;
/// Decrypt quota used up.
pub const CODE_QUOTA: i64 = 50002;

/// The gateway's answer envelope (`data` is read by the caller).
#[derive(Debug, Deserialize)]
pub struct Envelope {
    /// 10000 = success.
    pub code: Option<serde_json::Value>,
    /// Message.
    pub msg: Option<String>,
    /// Error sub code (`isv.parameter-invalid` ...).
    pub sub_code: Option<String>,
    /// Error sub message.
    pub sub_msg: Option<String>,
    /// Legacy envelope: error number (0 = success).
    pub err_no: Option<i64>,
    /// Legacy envelope: message.
    pub message: Option<String>,
}

/// Map a failure envelope to a typed error.
pub fn classify(ctx: &RequestContext, e: &Envelope) -> ConnectorError {
    let mut code = code_text(e.code.as_ref());
    if code.is_empty() {
        code = e.err_no.map(|n| n.to_string()).unwrap_or_default();
    }
    let msg = e.msg.as_deref().or(e.message.as_deref()).unwrap_or("");
    let sub = e.sub_code.as_deref().unwrap_or("");
    let sub_msg = e.sub_msg.as_deref().unwrap_or("");
    let text = error_text("code", &code, msg, sub, sub_msg);
    let n: i64 = code.parse().unwrap_or(-1);
    let said = |w: &str| says(&[msg, sub_msg, sub], &[w]);
    let kind = match n {
        CODE_FLOW_LIMIT | CODE_QUOTA => ErrorKind::Throttled,
        CODE_UNAVAILABLE => ErrorKind::Transient,
        CODE_BAD_TOKEN | CODE_TOKEN_EXPIRED | 30005 | 30007 => ErrorKind::TokenExpired,
        CODE_BAD_SIGN | 80000 => ErrorKind::Auth,
        _ if said("限流") || said("频繁") || said("flow") => ErrorKind::Throttled,
        _ if said("繁忙") || said("unavailable") || said("超时") => ErrorKind::Transient,
        _ if said("access_token") && (said("过期") || said("无效") || said("不存在")) => {
            ErrorKind::TokenExpired
        }
        _ if said("签名") || said("sign") => ErrorKind::Auth,
        _ => ErrorKind::InvalidRequest,
    };
    ConnectorError::new(ctx, kind, text).with_code(code)
}

/// Whether an answer may be an error (read whole only then, so a page is
/// parsed once, by its reader): it has neither `"code": 10000` nor
/// `"err_no": 0`.
pub fn may_be_error(body: &[u8]) -> bool {
    !(values_of(body, "code").any(|v| v == b"10000")
        || values_of(body, "err_no").any(|v| v == b"0"))
}

/// Fail on a failure envelope; a body that is not a JSON object is a
/// transient protocol fault (a proxy cut it off).
pub fn check_envelope(ctx: &RequestContext, body: &[u8]) -> Result<()> {
    let env: Envelope = read_envelope(ctx, body)?;
    let ok = match (&env.code, env.err_no) {
        (Some(_), _) => code_text(env.code.as_ref()) == CODE_OK.to_string(),
        (None, Some(n)) => n == 0,
        (None, None) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(classify(ctx, &env))
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    data: Option<TokenData>,
}

#[derive(Deserialize)]
struct TokenData {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
}

/// A signed Douyin shop client for one app.
#[derive(Clone)]
pub struct DyClient {
    api: ApiClient,
    gateway: String,
    app_key: String,
    app_secret: Secret,
    sign_method: SignMethod,
    self_shop_id: Option<String>,
}

impl DyClient {
    /// A client for `gateway` (`https://openapi-fxg.jinritemai.com`).
    pub fn new(
        api: ApiClient,
        gateway: &str,
        app_key: &str,
        app_secret: Secret,
        sign_method: SignMethod,
    ) -> Self {
        DyClient {
            api,
            gateway: gateway.trim_end_matches('/').to_string(),
            app_key: app_key.to_string(),
            app_secret,
            sign_method,
            self_shop_id: None,
        }
    }

    /// The same client for a shop whose token the app may create itself
    /// (`authorization_self` by Douyin's shop id), when `self_shop_id` is given.
    pub fn for_shop(&self, self_shop_id: Option<&str>) -> Self {
        DyClient {
            self_shop_id: self_shop_id.map(str::to_string),
            ..self.clone()
        }
    }

    /// The same client with another HTTP wrapper (other limiters).
    pub fn with_api(&self, api: ApiClient) -> Self {
        DyClient {
            api,
            ..self.clone()
        }
    }

    /// One signed POST of `method` with the business `param` (and the
    /// access token, except for the token endpoints).
    async fn post(
        &self,
        ctx: &RequestContext,
        method: &str,
        access_token: Option<&str>,
        param: &serde_json::Value,
    ) -> Result<Bytes> {
        let body = param_json(param);
        let timestamp = Utc::now().timestamp().to_string();
        let signature = sign(
            Signed {
                app_key: &self.app_key,
                method,
                param_json: &body,
                timestamp: &timestamp,
                v: "2",
            },
            self.app_secret.expose(),
            self.sign_method,
        );
        let mut query: Vec<(&str, &str)> = vec![
            ("app_key", &self.app_key),
            ("method", method),
            ("timestamp", &timestamp),
            ("v", "2"),
            ("sign_method", self.sign_method.as_str()),
            ("sign", &signature),
        ];
        if let Some(t) = access_token {
            query.push(("access_token", t));
        }
        let url = format!("{}/{}", self.gateway, method.replace('.', "/"));
        let req = self
            .api
            .http()
            .post(url)
            .query(&query)
            .header("Content-Type", "application/json")
            .body(body);
        let answer = self.api.send(ctx, req).await?;
        if may_be_error(&answer) {
            check_envelope(ctx, &answer)?;
        }
        Ok(answer)
    }

    async fn token_call(
        &self,
        ctx: &RequestContext,
        method: &str,
        param: serde_json::Value,
    ) -> Result<TokenSet> {
        let rctx = RequestContext::new(&ctx.connector, ctx.scope.as_deref(), method);
        let body = self
            .post(&rctx, method, None, &param)
            .await
            .map_err(|mut e| {
                if matches!(e.kind, ErrorKind::InvalidRequest | ErrorKind::TokenExpired) {
                    e.kind = ErrorKind::Auth;
                    e.message
                        .push_str(" (token refused: authorize the shop again)");
                }
                e
            })?;
        let data = serde_json::from_slice::<TokenAnswer>(&body)
            .ok()
            .and_then(|a| a.data);
        match data {
            Some(TokenData {
                access_token: Some(at),
                refresh_token,
                expires_in,
            }) if !at.is_empty() => Ok(TokenSet::issued(
                &at,
                refresh_token.as_deref(),
                expires_in.unwrap_or(0),
            )),
            _ => Err(no_access_token(&rctx)),
        }
    }

    /// New tokens: `/token/refresh` with the previous refresh token; for a
    /// self-built app without one (or whose refresh was refused), a new
    /// token from `/token/create` with `grant_type=authorization_self`.
    pub async fn renew(
        &self,
        ctx: &RequestContext,
        prev: Option<TokenSet>,
        self_shop_id: Option<&str>,
    ) -> Result<TokenSet> {
        let refreshed = match prev.and_then(|p| p.refresh_token) {
            Some(rt) => Some(
                self.token_call(
                    ctx,
                    "token.refresh",
                    serde_json::json!({"grant_type": "refresh_token", "refresh_token": rt.expose()}),
                )
                .await,
            ),
            None => None,
        };
        match (refreshed, self_shop_id) {
            (Some(Ok(t)), _) => Ok(t),
            (Some(Err(e)), Some(shop)) if e.kind == ErrorKind::Auth => {
                tracing::warn!(shop = %shop, "token refresh refused; creating a new self-authorized token");
                self.create_self(ctx, shop).await
            }
            (Some(Err(e)), _) => Err(e),
            (None, Some(shop)) => self.create_self(ctx, shop).await,
            (None, None) => Err(ConnectorError::new(
                ctx,
                ErrorKind::Auth,
                "the access token expired and the shop has neither a refresh token nor a shop_id for authorization_self: authorize the shop again",
            )),
        }
    }

    /// `/token/create` with `grant_type=authorization_self` for `shop_id`.
    pub async fn create_self(&self, ctx: &RequestContext, shop_id: &str) -> Result<TokenSet> {
        self.token_call(
            ctx,
            "token.create",
            serde_json::json!({"code": "", "grant_type": "authorization_self", "shop_id": shop_id}),
        )
        .await
    }
}

#[async_trait]
impl TokenGateway for DyClient {
    type Params = serde_json::Value;

    fn api(&self) -> &ApiClient {
        &self.api
    }

    async fn attempt(&self, a: SignedCall<'_, Self::Params>) -> Result<Bytes> {
        let (ctx, method, access_token, params) = (a.ctx, a.method, a.access_token, a.params);
        self.post(ctx, method, Some(access_token), params).await
    }

    /// Refresh the shop's token, or create it for a self-built app.
    async fn refresh(&self, ctx: &RequestContext, prev: Option<TokenSet>) -> Result<TokenSet> {
        self.renew(ctx, prev, self.self_shop_id.as_deref()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    quanyu_connector_sdk::envelope_test_kit!("douyin", "shop1", "order.searchList");

    #[test]
    fn classifies_envelopes() {
        let ok =
            r#"{"code":10000,"msg":"success","sub_code":"","sub_msg":"","log_id":"x","data":{}}"#;
        assert!(checked(ok.as_bytes()).is_ok());
        assert!(checked(br#"{"err_no":0,"message":"success","data":{}}"#).is_ok());
        let bad = r#"{"code":40003,"msg":"参数错误","sub_code":"isv.parameter-invalid","sub_msg":"size不能大于100","log_id":"x"}"#;
        let e = checked(bad.as_bytes()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
        assert_eq!(e.code.as_deref(), Some("40003"));
        assert!(e.to_string().contains("douyin [shop shop1]"), "{e}");
        assert!(e.message.contains("size不能大于100"), "{e}");
        assert_eq!(
            kind(
                r#"{"code":30002,"msg":"access_token已过期","sub_code":"isv.access-token-expired"}"#
            ),
            ErrorKind::TokenExpired
        );
        assert_eq!(
            kind(r#"{"err_no":30001,"message":"access_token不存在"}"#),
            ErrorKind::TokenExpired
        );
        assert_eq!(
            kind(r#"{"code":40004,"msg":"签名错误","sub_code":"isv.signature-invalid"}"#),
            ErrorKind::Auth
        );
        assert_eq!(
            kind(r#"{"code":90000,"msg":"流量受限","sub_code":"isv.flow-limited"}"#),
            ErrorKind::Throttled
        );
        assert_eq!(
            kind(r#"{"code":50002,"msg":"解密额度已用完"}"#),
            ErrorKind::Throttled
        );
        assert_eq!(
            kind(r#"{"code":20000,"msg":"服务不可用","sub_code":"isp.service-unavailable"}"#),
            ErrorKind::Transient
        );
        assert_eq!(checked(b"<html>").unwrap_err().kind, ErrorKind::Transient);
    }
}
