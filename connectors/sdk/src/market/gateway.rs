//! A signed gateway that takes a shop token: the platform signs one
//! attempt and refreshes a token; the provided `call` does the rest.

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{ConnectorError, ErrorKind, RequestContext, Result};
use crate::http::ApiClient;
use crate::secret::Secret;
use crate::token::{ShopToken, TokenSet};

/// A platform gateway whose calls carry a shop's access token.
#[async_trait]
pub trait TokenGateway: Send + Sync {
    /// The business parameters of one call (form pairs, a JSON `param`...).
    type Params: ?Sized + Sync;

    /// The HTTP client: limiters, retries, counters.
    fn api(&self) -> &ApiClient;

    /// One signed attempt of `method` with `access_token`: the answer body
    /// once it is not the platform's error envelope (which becomes a typed
    /// error: an expired token must be `TokenExpired`).
    async fn attempt(
        &self,
        ctx: &RequestContext,
        method: &str,
        access_token: &str,
        params: &Self::Params,
    ) -> Result<Bytes>;

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
        self.call_with(ctx, method, token, params, |body| Ok(body.clone()))
            .await
    }

    /// As [`TokenGateway::call`], reading the answer with `read` inside the
    /// retry: an answer that does not read (cut off by a proxy) is retried
    /// like any transient failure, and the page is parsed once.
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
                let tokens = match token.get().await {
                    Some(t) if !attempt.refresh_token && !t.expiring() => t,
                    Some(t) => {
                        let stale = t.access_token.clone();
                        token
                            .renew(Some(&stale), |prev| self.refresh(ctx, prev))
                            .await?
                    }
                    // No token yet: a platform whose app creates shop tokens
                    // itself creates one; the others say to authorize.
                    None => token.renew(None, |prev| self.refresh(ctx, prev)).await?,
                };
                let body = self
                    .attempt(ctx, method, tokens.access_token.expose(), params)
                    .await?;
                read(&body)
            })
            .await
    }
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
