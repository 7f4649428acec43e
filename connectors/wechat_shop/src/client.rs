//! The WeChat API client for a Channels shop (微信小店): the shop account's
//! token from `POST /cgi-bin/stable_token`, `POST {path}?access_token=…`
//! with a JSON body, and the `errcode` envelope.
//!
//! `stable_token` in normal mode (`force_refresh=false`) returns the
//! account's current token while it lives and a new one in its last five
//! minutes or once it expired, so the connector never forces a refresh
//! (forcing is limited to 20 a day and kills the token other programs of
//! the brand hold). Every answer is HTTP 200 with `errcode`: 0 is success;
//! 40001 (not the latest token), 40014 (invalid) and 42001 (expired) make
//! the connector ask `stable_token` again; 45009 (daily quota) and 45011
//! (too frequent) are throttling; -1 (system busy) is retried; 40013
//! (invalid appid), 40125 (invalid secret) and 48001 (API not authorized)
//! are authorization problems; anything else is a bad request.

use async_trait::async_trait;
use quanyu_connector_sdk::market::{
    no_access_token, post_json_attempt, read_envelope, read_token_answer, values_of, SignedCall,
    TokenGateway,
};
use quanyu_connector_sdk::Bytes;
use quanyu_connector_sdk::{
    ApiClient, ConnectorError, ErrorKind, RequestContext, Result, Secret, TokenSet,
};
use serde::Deserialize;

/// The token endpoint.
pub const TOKEN_PATH: &str = "/cgi-bin/stable_token";
/// System busy, retry.
pub const CODE_BUSY: i64 = -1;
/// Invalid credential: a wrong secret at the token endpoint, a token that
/// is not the latest on an API.
pub const CODE_BAD_CREDENTIAL: i64 = 40_001;
/// Invalid appid.
pub const CODE_BAD_APPID: i64 = 40_013;
/// Invalid access token.
pub const CODE_BAD_TOKEN: i64 = 40_014;
/// Invalid app secret.
pub const CODE_BAD_SECRET: i64 = 40_125;
/// Expired access token.
pub const CODE_TOKEN_EXPIRED: i64 = 42_001;
/// The API's daily quota is used up.
pub const CODE_QUOTA: i64 = 45_009;
/// Calls too frequent.
pub const CODE_TOO_FREQUENT: i64 = 45_011;
/// A parameter is invalid (time range, page size...).
pub const CODE_PARAM: i64 = 47_001;
/// The account has no permission for the API.
pub const CODE_UNAUTHORIZED: i64 = 48_001;

#[derive(Deserialize)]
struct Envelope {
    errcode: Option<i64>,
    errmsg: Option<String>,
}

/// The kind of error an `errcode` is, on an API call.
pub fn kind_of(code: i64) -> ErrorKind {
    match code {
        CODE_BAD_CREDENTIAL | CODE_BAD_TOKEN | CODE_TOKEN_EXPIRED => ErrorKind::TokenExpired,
        CODE_QUOTA | CODE_TOO_FREQUENT => ErrorKind::Throttled,
        CODE_BUSY => ErrorKind::Transient,
        CODE_BAD_APPID | CODE_BAD_SECRET | CODE_UNAUTHORIZED => ErrorKind::Auth,
        _ => ErrorKind::InvalidRequest,
    }
}

/// The error an answer carries (`errcode` not 0); a body that is not a
/// JSON object is a transient fault (cut off).
pub fn check_envelope(ctx: &RequestContext, body: &[u8]) -> Result<()> {
    let env: Envelope = read_envelope(ctx, body)?;
    match env.errcode {
        None | Some(0) => Ok(()),
        Some(code) => Err(ConnectorError::new(
            ctx,
            kind_of(code),
            format!("errcode {code}: {}", env.errmsg.unwrap_or_default()),
        )
        .with_code(code.to_string())),
    }
}

/// Whether an answer may carry an error: it has an `errcode` other than
/// `0` (read only then, so a page is parsed once, by its reader).
fn names_an_error(body: &[u8]) -> bool {
    values_of(body, "errcode").any(|v| v != b"0")
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    expires_in: Option<i64>,
    errcode: Option<i64>,
    errmsg: Option<String>,
}

/// A client for one shop account (appid).
#[derive(Clone)]
pub struct ShopClient {
    api: ApiClient,
    api_base: String,
    appid: String,
    secret: Secret,
}

impl ShopClient {
    /// The same client calling through `api`.
    pub fn with_api(&self, api: ApiClient) -> Self {
        ShopClient {
            api,
            ..self.clone()
        }
    }

    /// A client for the shop account `appid` at `api_base`
    /// (`https://api.weixin.qq.com`).
    pub fn new(api: ApiClient, api_base: &str, appid: &str, secret: Secret) -> Self {
        ShopClient {
            api,
            api_base: api_base.trim_end_matches('/').to_string(),
            appid: appid.to_string(),
            secret,
        }
    }

    /// The account's token from `stable_token` (normal mode).
    async fn stable_token(&self, ctx: &RequestContext) -> Result<TokenSet> {
        let body = serde_json::json!({
            "grant_type": "client_credential",
            "appid": self.appid,
            "secret": self.secret.expose(),
            "force_refresh": false,
        });
        let answer = self
            .api
            .post_json(ctx, &format!("{}{TOKEN_PATH}", self.api_base), None, &body)
            .await?;
        let t: TokenAnswer = read_token_answer(ctx, &answer)?;
        match t {
            TokenAnswer {
                access_token: Some(at),
                expires_in,
                ..
            } if !at.is_empty() => Ok(TokenSet::issued(&at, None, expires_in.unwrap_or(7200))),
            TokenAnswer {
                errcode: Some(code),
                errmsg,
                ..
            } => {
                let kind = match code {
                    CODE_BUSY => ErrorKind::Transient,
                    CODE_QUOTA | CODE_TOO_FREQUENT => ErrorKind::Throttled,
                    _ => ErrorKind::Auth,
                };
                Err(ConnectorError::new(
                    ctx,
                    kind,
                    format!(
                        "{TOKEN_PATH} refused (errcode {code}: {}): check the shop's appid and secret",
                        errmsg.unwrap_or_default()
                    ),
                )
                .with_code(code.to_string()))
            }
            _ => Err(no_access_token(ctx)),
        }
    }
}

#[async_trait]
impl TokenGateway for ShopClient {
    /// The JSON body of the call.
    type Params = serde_json::Value;

    fn api(&self) -> &ApiClient {
        &self.api
    }

    /// `method` is the API's path (`/channels/ec/order/list/get`).
    async fn attempt(&self, a: SignedCall<'_, Self::Params>) -> Result<Bytes> {
        let url = &format!("{}{}", self.api_base, a.method);
        post_json_attempt(&self.api, a, url, names_an_error, check_envelope).await
    }

    /// The shop account's token: the first time, and again once an API
    /// said it is no longer valid.
    async fn refresh(&self, ctx: &RequestContext, _prev: Option<TokenSet>) -> Result<TokenSet> {
        self.stable_token(ctx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RequestContext {
        RequestContext::new("wechat_shop", Some("store"), "/channels/ec/order/list/get")
    }

    fn err(body: &str) -> ConnectorError {
        assert!(names_an_error(body.as_bytes()), "{body}");
        check_envelope(&ctx(), body.as_bytes()).unwrap_err()
    }

    #[test]
    fn classifies_errcodes() {
        let e = err(r#"{"errcode":42001,"errmsg":"access_token expired rid: 6790b5c1-1"}"#);
        assert_eq!(e.kind, ErrorKind::TokenExpired);
        assert_eq!(e.code.as_deref(), Some("42001"));
        assert!(e.to_string().contains("wechat_shop [shop store]"), "{e}");
        assert_eq!(
            err(r#"{"errcode":40001,"errmsg":"invalid credential"}"#).kind,
            ErrorKind::TokenExpired
        );
        assert_eq!(
            err(r#"{"errcode": 45011, "errmsg":"api minute-quota reach limit"}"#).kind,
            ErrorKind::Throttled
        );
        assert_eq!(
            err(r#"{"errcode":45009,"errmsg":"reach max api daily quota limit"}"#).kind,
            ErrorKind::Throttled
        );
        assert_eq!(
            err(r#"{"errcode":-1,"errmsg":"system error"}"#).kind,
            ErrorKind::Transient
        );
        assert_eq!(
            err(r#"{"errcode":48001,"errmsg":"api unauthorized"}"#).kind,
            ErrorKind::Auth
        );
        assert_eq!(
            err(r#"{"errcode":47001,"errmsg":"data format error"}"#).kind,
            ErrorKind::InvalidRequest
        );
        for ok in [
            r#"{"errcode":0,"errmsg":"ok","order_id_list":[],"has_more":false}"#,
            r#"{"errcode": 0 ,"errmsg":"ok"}"#,
            r#"{"access_token":"t","expires_in":7200}"#,
        ] {
            assert!(!names_an_error(ok.as_bytes()), "{ok}");
            assert!(check_envelope(&ctx(), ok.as_bytes()).is_ok());
        }
        assert_eq!(
            check_envelope(&ctx(), b"<html>").unwrap_err().kind,
            ErrorKind::Transient
        );
    }
}
