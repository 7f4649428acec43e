//! The Pinduoduo open-platform client: the router, system parameters,
//! signing, the `error_response` envelope, and the shop token's refresh
//! through `pdd.pop.auth.token.refresh`.
//!
//! Error codes: 10000 (business parameters), 10001 (public parameters) and
//! 10019 (`access_token已过期`) are Pinduoduo's own. The others are not
//! published in a source we could read, so the sandbox answers these and
//! the classifier also reads the message: 10002 unknown client_id, 20004
//! bad signature, 10014 unknown access token, 52101 throttled (also any
//! 5210x and 70031, and a message saying 限流 / 频繁), 50000 system busy.

use async_trait::async_trait;
use chrono::Utc;
use quanyu_connector_sdk::market::{
    code_text, error_text, read_envelope, read_token_answer, refresh_refused, refresh_token_of,
    says, SignedCall, TokenGateway,
};
use quanyu_connector_sdk::Bytes;
use quanyu_connector_sdk::{
    ApiClient, ConnectorError, ErrorKind, RequestContext, Result, Secret, TokenSet,
};
use serde::Deserialize;

use crate::sign::sign;

/// Bad business parameters.
pub const CODE_PARAM: i64 = 10000;
/// Bad or missing public (system) parameters.
pub const CODE_PUBLIC_PARAM: i64 = 10001;
/// Unknown client_id.
pub const CODE_BAD_CLIENT: i64 = 10002;
/// The access token is unknown (or was replaced by a refresh).
pub const CODE_BAD_TOKEN: i64 = 10014;
/// The access token expired (`access_token已过期`).
pub const CODE_TOKEN_EXPIRED: i64 = 10019;
/// The signature does not verify.
pub const CODE_BAD_SIGN: i64 = 20004;
/// The call was throttled (app or API flow control).
pub const CODE_THROTTLED: i64 = 52101;
/// Service error, retry later.
pub const CODE_SYSTEM: i64 = 50000;
/// The token-refresh API.
pub const REFRESH_API: &str = "pdd.pop.auth.token.refresh";

/// The body of `error_response`.
#[derive(Debug, Deserialize)]
pub struct PddError {
    /// The error code.
    pub error_code: Option<serde_json::Value>,
    /// The error message.
    pub error_msg: Option<String>,
    /// The sub code (often null).
    pub sub_code: Option<serde_json::Value>,
    /// The sub message.
    pub sub_msg: Option<String>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error_response: Option<PddError>,
}

/// Map an `error_response` to a typed error.
pub fn classify(ctx: &RequestContext, e: &PddError) -> ConnectorError {
    let code = code_text(e.error_code.as_ref());
    let sub = code_text(e.sub_code.as_ref());
    let msg_text = e.error_msg.as_deref().unwrap_or("");
    let sub_msg = e.sub_msg.as_deref().unwrap_or("");
    let message = error_text("error_code", &code, msg_text, &sub, sub_msg);
    let n: i64 = code.parse().unwrap_or(-1);
    let said = |w: &str| says(&[msg_text, sub_msg], &[w]);
    let kind = match n {
        CODE_THROTTLED | 52102 | 52103 | 70031 => ErrorKind::Throttled,
        CODE_SYSTEM | 50001 => ErrorKind::Transient,
        CODE_TOKEN_EXPIRED | CODE_BAD_TOKEN => ErrorKind::TokenExpired,
        CODE_BAD_SIGN | CODE_BAD_CLIENT => ErrorKind::Auth,
        _ if said("限流") || said("频繁") => ErrorKind::Throttled,
        _ if said("繁忙") || said("超时") => ErrorKind::Transient,
        _ if said("access_token") && (said("过期") || said("无效")) => ErrorKind::TokenExpired,
        _ => ErrorKind::InvalidRequest,
    };
    ConnectorError::new(ctx, kind, message).with_code(code)
}

/// Fail on an error envelope; a body that is not a JSON object is a
/// transient protocol fault (a proxy cut it off).
pub fn check_envelope(ctx: &RequestContext, body: &[u8]) -> Result<()> {
    let env: ErrorEnvelope = read_envelope(ctx, body)?;
    match env.error_response {
        Some(e) => Err(classify(ctx, &e)),
        None => Ok(()),
    }
}

#[derive(Deserialize)]
struct RefreshEnvelope {
    pop_auth_token_refresh_response: Option<RefreshAnswer>,
}

#[derive(Deserialize)]
struct RefreshAnswer {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
}

/// A signed Pinduoduo client for one app (client_id).
#[derive(Clone)]
pub struct PddClient {
    api: ApiClient,
    router: String,
    client_id: String,
    client_secret: Secret,
}

impl PddClient {
    /// A client for `router` (`https://gw-api.pinduoduo.com/api/router`).
    pub fn new(api: ApiClient, router: &str, client_id: &str, client_secret: Secret) -> Self {
        PddClient {
            api,
            router: router.to_string(),
            client_id: client_id.to_string(),
            client_secret,
        }
    }

    /// The same client with another HTTP wrapper (other limiters).
    pub fn with_api(&self, api: ApiClient) -> Self {
        PddClient {
            api,
            ..self.clone()
        }
    }

    /// One signed POST of `api_type` with `params` (and the access token,
    /// when given); the answer body once it is not an error envelope.
    async fn post(
        &self,
        ctx: &RequestContext,
        api_type: &str,
        access_token: Option<&str>,
        params: &[(&str, &str)],
    ) -> Result<Bytes> {
        let timestamp = Utc::now().timestamp().to_string();
        let mut all: Vec<(&str, &str)> = vec![
            ("type", api_type),
            ("client_id", &self.client_id),
            ("timestamp", &timestamp),
            ("data_type", "JSON"),
            ("version", "V1"),
        ];
        if let Some(t) = access_token {
            all.push(("access_token", t));
        }
        all.extend_from_slice(params);
        let signature = sign(all.iter().copied(), self.client_secret.expose());
        all.push(("sign", &signature));
        let req = self.api.http().post(&self.router).form(&all);
        let body = self.api.send(ctx, req).await?;
        // The envelope is read only when the answer names one: a page is
        // parsed once, by its reader (which retries an answer that is not
        // JSON at all).
        if memchr::memmem::find(&body, b"\"error_response\"").is_some() {
            check_envelope(ctx, &body)?;
        }
        Ok(body)
    }
}

#[async_trait]
impl TokenGateway for PddClient {
    type Params = [(&'static str, String)];

    fn api(&self) -> &ApiClient {
        &self.api
    }

    async fn attempt(&self, a: SignedCall<'_, Self::Params>) -> Result<Bytes> {
        let (ctx, method, access_token, params) = (a.ctx, a.method, a.access_token, a.params);
        let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.post(ctx, method, Some(access_token), &pairs).await
    }

    /// Exchange the shop's refresh token through `pdd.pop.auth.token.refresh`.
    async fn refresh(&self, ctx: &RequestContext, prev: Option<TokenSet>) -> Result<TokenSet> {
        let rctx = RequestContext::new(&ctx.connector, ctx.scope.as_deref(), REFRESH_API);
        let rt = refresh_token_of(&rctx, prev)?;
        let body = self
            .post(&rctx, REFRESH_API, None, &[("refresh_token", rt.expose())])
            .await
            .map_err(refresh_refused)?;
        let answer =
            read_token_answer::<RefreshEnvelope>(&rctx, &body)?.pop_auth_token_refresh_response;
        match answer {
            Some(RefreshAnswer {
                access_token: Some(at),
                refresh_token,
                expires_in,
            }) if !at.is_empty() => Ok(TokenSet::issued(
                &at,
                refresh_token.as_deref(),
                expires_in.unwrap_or(0),
            )),
            _ => Err(ConnectorError::new(
                &rctx,
                ErrorKind::Protocol,
                "the refresh answer has no access_token",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RequestContext {
        RequestContext::new("pdd", Some("shop1"), "pdd.order.number.list.increment.get")
    }

    fn kind(body: &str) -> ErrorKind {
        check_envelope(&ctx(), body.as_bytes()).unwrap_err().kind
    }

    #[test]
    fn classifies_real_envelopes() {
        let public = r#"{"error_response":{"error_code":10001,"error_msg":"公共参数错误:type","sub_code":null,"sub_msg":"","request_id":"15440104776643887"}}"#;
        let e = check_envelope(&ctx(), public.as_bytes()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
        assert_eq!(e.code.as_deref(), Some("10001"));
        assert!(e.to_string().contains("pdd [shop shop1]"), "{e}");
        assert!(e.message.contains("公共参数错误:type"), "{e}");
        assert_eq!(
            kind(r#"{"error_response":{"error_code":10019,"error_msg":"access_token已过期"}}"#),
            ErrorKind::TokenExpired
        );
        assert_eq!(
            kind(r#"{"error_response":{"error_code":20004,"error_msg":"签名错误"}}"#),
            ErrorKind::Auth
        );
        assert_eq!(
            kind(
                r#"{"error_response":{"error_code":52101,"error_msg":"当前接口您已被限流，请求过于频繁"}}"#
            ),
            ErrorKind::Throttled
        );
        assert_eq!(
            kind(r#"{"error_response":{"error_code":"99999","error_msg":"调用过于频繁"}}"#),
            ErrorKind::Throttled
        );
        assert_eq!(
            kind(r#"{"error_response":{"error_code":50000,"error_msg":"系统繁忙"}}"#),
            ErrorKind::Transient
        );
        assert!(check_envelope(
            &ctx(),
            br#"{"order_sn_increment_get_response":{"total_count":0}}"#
        )
        .is_ok());
        assert_eq!(
            check_envelope(&ctx(), b"<html>").unwrap_err().kind,
            ErrorKind::Transient
        );
    }
}
