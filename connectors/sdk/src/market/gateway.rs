//! A signed gateway that takes a shop token: the platform signs one
//! attempt and refreshes a token; the provided `call` does the rest.

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{ConnectorError, ErrorKind, RequestContext, Result};
use crate::http::ApiClient;
use crate::secret::Secret;
use crate::token::{ShopToken, TokenSet};

use super::answer::ListAnswer;
use super::record::Rejected;
use super::stream::ListPage;

/// What one signed attempt of a gateway call is asked: the request's context, the API
/// method, the shop's current access token and the business parameters.
pub struct SignedCall<'a, P: ?Sized> {
    /// The request's context (platform, shop, API), for errors.
    pub ctx: &'a RequestContext,
    /// The API method (or path) called.
    pub method: &'a str,
    /// The shop's access token for this attempt.
    pub access_token: &'a str,
    /// The business parameters.
    pub params: &'a P,
}

/// A platform gateway whose calls carry a shop's access token.
#[async_trait]
pub trait TokenGateway: Send + Sync {
    /// The business parameters of one call (form pairs, a JSON `param`...).
    type Params: ?Sized + Sync;

    /// The HTTP client: limiters, retries, counters.
    fn api(&self) -> &ApiClient;

    /// One signed attempt of `a.method` with `a.access_token`: the answer
    /// body once it is not the platform's error envelope (which becomes a
    /// typed error: an expired token must be `TokenExpired`).
    async fn attempt(&self, a: SignedCall<'_, Self::Params>) -> Result<Bytes>;

    /// Exchange the shop's refresh token (in `prev`) through the platform's
    /// own flow (`prev` is `None` when the shop has no token yet: a platform
    /// whose apps create shop tokens themselves creates one).
    async fn refresh(&self, ctx: &RequestContext, prev: Option<TokenSet>) -> Result<TokenSet>;

    /// Call `method` for the shop whose tokens are `token`: refreshes the
    /// token when the previous attempt saw it expired (or it is about to),
    /// persists the refreshed pair, signs every attempt anew and retries
    /// under the client's policy.
    async fn call(
        &self,
        ctx: &RequestContext,
        method: &str,
        token: &ShopToken,
        params: &Self::Params,
    ) -> Result<Bytes> {
        self.call_with(ctx, method, token, params, |body| {
            serde_json::from_slice::<serde::de::IgnoredAny>(body)
                .map(|_| body.clone())
                .map_err(|e| cut_off(ctx, &e))
        })
        .await
    }

    /// One page of a list: [`TokenGateway::call_with`] reading the answer
    /// where `answer` says and mapping each record with `map`.
    async fn list_page<R, M>(
        &self,
        ctx: &RequestContext,
        method: &str,
        token: &ShopToken,
        params: &Self::Params,
        answer: &ListAnswer,
        map: M,
    ) -> Result<ListPage<R>>
    where
        R: Send,
        M: Fn(&str) -> std::result::Result<R, Rejected> + Send + Sync,
    {
        self.call_with(ctx, method, token, params, |body| {
            answer.read(ctx, body, &map)
        })
        .await
    }

    /// As [`TokenGateway::call`], reading the answer with `read` inside the
    /// retry: an answer that is not JSON at all (cut off by a proxy) is
    /// retried like any transient failure, and the page is parsed once where
    /// the platform's `attempt` reads its error envelope only when the
    /// answer names one.
    async fn call_with<T, R>(
        &self,
        ctx: &RequestContext,
        method: &str,
        token: &ShopToken,
        params: &Self::Params,
        read: R,
    ) -> Result<T>
    where
        T: Send,
        R: Fn(&Bytes) -> Result<T> + Send + Sync,
    {
        let read = &read;
        self.api()
            .call(ctx, |attempt| async move {
                // A refresh or grant is a request of its own: it waits for
                // its own permit under the client's limiters.
                let renew = |prev| async move {
                    self.api().wait_turn().await;
                    self.refresh(ctx, prev).await
                };
                let tokens = match token.get().await {
                    Some(t) if !attempt.refresh_token && !t.expiring() => t,
                    Some(t) => {
                        let stale = t.access_token.clone();
                        token.renew(Some(&stale), renew).await?
                    }
                    // No token yet: a platform whose app creates shop tokens
                    // itself creates one; the others say to authorize.
                    None => token.renew(None, renew).await?,
                };
                let access_token = tokens.access_token.expose();
                let body = self
                    .attempt(SignedCall {
                        ctx,
                        method,
                        access_token,
                        params,
                    })
                    .await?;
                read(&body).map_err(|e| {
                    match serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
                        Ok(_) => e,
                        Err(j) => cut_off(ctx, &j),
                    }
                })
            })
            .await
    }
}

/// A platform's answer `body` read as its envelope `T` (borrowing from it
/// where `T` does); an answer that is not JSON was cut off on the way and
/// is a transient fault, retried.
pub fn read_envelope<'a, T: serde::Deserialize<'a>>(
    ctx: &RequestContext,
    body: &'a [u8],
) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| cut_off(ctx, &e))
}

/// An answer that is not JSON: a proxy cut it off; retried.
fn cut_off(ctx: &RequestContext, e: &serde_json::Error) -> ConnectorError {
    ConnectorError::new(
        ctx,
        ErrorKind::Transient,
        format!("answer is not a JSON object: {e}"),
    )
}

/// One attempt at a JSON API that takes the shop's token in its query
/// (`?access_token=`): the answer, once it is not an error envelope
/// (`check` reads it only where `may_be_error` says it may be one, so a
/// page is parsed once, by its reader).
pub async fn post_json_attempt(
    api: &ApiClient,
    a: SignedCall<'_, serde_json::Value>,
    url: &str,
    may_be_error: fn(&[u8]) -> bool,
    check: fn(&RequestContext, &[u8]) -> Result<()>,
) -> Result<Bytes> {
    let body = api
        .post_json(a.ctx, url, Some(a.access_token), a.params)
        .await?;
    if may_be_error(&body) {
        check(a.ctx, &body)?;
    }
    Ok(body)
}

/// A token answer that holds neither a token nor an error the platform
/// names: a protocol error.
pub fn no_access_token(ctx: &RequestContext) -> ConnectorError {
    ConnectorError::new(
        ctx,
        ErrorKind::Protocol,
        "the token answer has no access_token",
    )
}

/// The refresh token of `prev`, or the error that says the shop must be
/// authorized again (the access token expired and there is nothing to
/// refresh it with).
pub fn refresh_token_of(ctx: &RequestContext, prev: Option<TokenSet>) -> Result<Secret> {
    prev.and_then(|p| p.refresh_token).ok_or_else(|| {
        ConnectorError::new(
            ctx,
            ErrorKind::Auth,
            "the access token expired and the shop has no refresh token: authorize the shop again",
        )
    })
}

/// What an OAuth2 refresh-token exchange answers (JD's and Kuaishou's
/// `/oauth2/refresh_token`): new tokens, or a code and a message.
#[derive(Debug, Default, serde::Deserialize)]
pub struct RefreshAnswer {
    /// The new access token.
    pub access_token: Option<String>,
    /// The new refresh token (kept as it was where absent).
    pub refresh_token: Option<String>,
    /// Seconds the access token lives (a number or a numeric text).
    pub expires_in: Option<serde_json::Value>,
    /// The answer's code (JD: `code`, `0` or absent on success).
    pub code: Option<serde_json::Value>,
    /// The answer's result (Kuaishou: `1` on success).
    pub result: Option<serde_json::Value>,
    /// The message (JD).
    pub msg: Option<String>,
    /// The message (Kuaishou).
    pub error_msg: Option<String>,
    /// The short error (Kuaishou).
    pub error: Option<String>,
}

impl RefreshAnswer {
    /// The first message the answer gives, or an empty text.
    pub fn message(&self) -> &str {
        [&self.msg, &self.error_msg, &self.error]
            .into_iter()
            .flatten()
            .map(|m| m.trim())
            .find(|m| !m.is_empty())
            .unwrap_or("")
    }

    /// The new tokens where the platform said `ok` and gave an access
    /// token; else the refusal, of `kind`, naming `code` (what the
    /// platform calls it: `label`) and the message.
    pub fn tokens(
        self,
        ctx: &RequestContext,
        (label, code): (&str, &str),
        ok: bool,
        kind: ErrorKind,
    ) -> Result<TokenSet> {
        let expires_in = self
            .expires_in
            .as_ref()
            .and_then(super::int_of)
            .unwrap_or(0);
        match self.access_token.as_deref().filter(|t| ok && !t.is_empty()) {
            Some(at) => Ok(TokenSet::issued(
                at,
                self.refresh_token.as_deref(),
                expires_in,
            )),
            None => {
                let code_said = if code.is_empty() { "none" } else { code };
                let msg = match self.message() {
                    "" => String::new(),
                    m => format!(": {m}"),
                };
                let message = format!(
                    "token refresh refused ({label} {code_said}{msg}): authorize the shop again if this persists"
                );
                Err(ConnectorError::new(ctx, kind, message).with_code(code))
            }
        }
    }
}

/// Exchange the shop's refresh token by GET `url?<key name>=<app
/// key>&app_secret&grant_type=refresh_token&refresh_token` (`app` is the
/// key's name and value), as JD's and Kuaishou's OAuth2 take it.
pub async fn refresh_by_get(
    api: &ApiClient,
    ctx: &RequestContext,
    url: &str,
    app: (&str, &str),
    app_secret: &Secret,
    prev: Option<TokenSet>,
) -> Result<RefreshAnswer> {
    let rt = refresh_token_of(ctx, prev)?;
    let req = api.http().get(url).query(&[
        app,
        ("app_secret", app_secret.expose()),
        ("grant_type", "refresh_token"),
        ("refresh_token", rt.expose()),
    ]);
    let body = api.send(ctx, req).await?;
    serde_json::from_slice(&body).map_err(|e| {
        let message = format!("unreadable refresh answer: {e}");
        ConnectorError::new(ctx, ErrorKind::Transient, message)
    })
}

/// A refresh call the platform refused (bad or expired refresh token) is
/// an authorization problem: retrying cannot help.
pub fn refresh_refused(mut e: ConnectorError) -> ConnectorError {
    if matches!(e.kind, ErrorKind::InvalidRequest | ErrorKind::TokenExpired) {
        e.kind = ErrorKind::Auth;
        e.message
            .push_str(" (token refresh refused: authorize the shop again)");
    }
    e
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::token::TokenStore;

    /// Answers a cut-off body first, then a whole one.
    struct CutOnce {
        api: ApiClient,
        calls: AtomicU32,
    }

    #[async_trait]
    impl TokenGateway for CutOnce {
        type Params = str;

        fn api(&self) -> &ApiClient {
            &self.api
        }

        async fn attempt(&self, _: SignedCall<'_, str>) -> Result<Bytes> {
            Ok(match self.calls.fetch_add(1, Ordering::Relaxed) {
                0 => Bytes::from_static(br#"{"list":[{"id":"#),
                _ => Bytes::from_static(br#"{"list":[{"id":1}]}"#),
            })
        }

        async fn refresh(&self, ctx: &RequestContext, _: Option<TokenSet>) -> Result<TokenSet> {
            Err(ConnectorError::new(ctx, ErrorKind::Auth, "no refresh here"))
        }
    }

    /// An answer cut off on the way is not JSON: retried as transient,
    /// whether the caller reads it itself or takes the body.
    #[tokio::test]
    async fn a_cut_off_answer_is_retried() {
        let ctx = RequestContext::new("t", Some("s"), "list");
        let token = ShopToken::open(
            &TokenStore::memory(),
            "t",
            Some(TokenSet::configured(Secret::new("at"), None)),
        )
        .unwrap();
        for read_it in [false, true] {
            let gw = CutOnce {
                api: ApiClient::new(vec![], crate::conformance::fast_retry_policy()),
                calls: AtomicU32::new(0),
            };
            let body = if read_it {
                gw.call_with(&ctx, "list", &token, "", |b| {
                    serde_json::from_slice::<serde_json::Value>(b)
                        .map_err(|e| ConnectorError::new(&ctx, ErrorKind::Protocol, e.to_string()))
                })
                .await
                .unwrap()
            } else {
                let b = gw.call(&ctx, "list", &token, "").await.unwrap();
                serde_json::from_slice(&b).unwrap()
            };
            assert_eq!(body["list"][0]["id"], 1);
            assert_eq!(gw.api.stats(), (2, 1), "one retry");
        }
    }
}
