//! WeCom API client: `gettoken` with caching, refresh on 40014/42001/40001,
//! retry on 45009/45011/-1, errcode envelopes mapped to typed errors.

use std::time::{Duration, Instant};

use quanyu_connector_sdk::{ApiClient, ConnectorError, ErrorKind, RequestContext, Result, Secret};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::sync::Mutex;

/// The errcode/errmsg part every WeCom answer carries.
#[derive(Debug, Deserialize)]
struct Status {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
}

/// Map a non-zero errcode to a typed error.
pub fn classify(
    ctx: &RequestContext,
    errcode: i64,
    errmsg: &str,
    on_token_api: bool,
) -> ConnectorError {
    let kind = match errcode {
        -1 => ErrorKind::Transient,
        45009 | 45011 | 45033 => ErrorKind::Throttled,
        40014 | 42001 | 41001 => ErrorKind::TokenExpired,
        40001 if !on_token_api => ErrorKind::TokenExpired,
        40001 | 40013 | 40091 | 48002 | 60011 | 301002 => ErrorKind::Auth,
        _ => ErrorKind::InvalidRequest,
    };
    // errmsg often ends with a hint URL and request id; keep the first part.
    let msg = errmsg.split(", hint").next().unwrap_or(errmsg);
    let mut e = ConnectorError::new(ctx, kind, msg).with_code(errcode.to_string());
    if kind == ErrorKind::Throttled {
        // WeCom gives no retry-after; a minute breach blocks for about 60 s.
        e = e.with_retry_after(Duration::from_secs(if errcode == 45011 { 60 } else { 1 }));
    }
    e
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// A WeCom client for one corp and secret, caching its access token.
pub struct WecomClient {
    api: ApiClient,
    base_url: String,
    corp_id: String,
    secret: Secret,
    token: Mutex<Option<(Secret, Instant)>>,
}

impl WecomClient {
    /// A client for `base_url` (e.g. `https://qyapi.weixin.qq.com`).
    pub fn new(api: ApiClient, base_url: &str, corp_id: &str, secret: Secret) -> Self {
        WecomClient {
            api,
            base_url: base_url.trim_end_matches('/').to_string(),
            corp_id: corp_id.to_string(),
            secret,
            token: Mutex::new(None),
        }
    }

    /// The wrapped HTTP client.
    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    /// The corp id.
    pub fn corp_id(&self) -> &str {
        &self.corp_id
    }

    /// A valid access token: the cached one, or a new one when `refresh` is
    /// set, none is cached, or it is within five minutes of expiry.
    pub async fn token(&self, refresh: bool) -> Result<Secret> {
        let mut guard = self.token.lock().await;
        if let Some((tok, until)) = guard.as_ref() {
            if !refresh && Instant::now() < *until {
                return Ok(tok.clone());
            }
        }
        let ctx = RequestContext::new("wecom", Some(&self.corp_id), "gettoken");
        let url = format!("{}/cgi-bin/gettoken", self.base_url);
        let answer: TokenAnswer = self
            .api
            .call(&ctx, |_| {
                let req = self.api.http().get(&url).query(&[
                    ("corpid", self.corp_id.as_str()),
                    ("corpsecret", self.secret.expose()),
                ]);
                let ctx = &ctx;
                async move {
                    let body = self.api.send(ctx, req).await?;
                    let a: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
                        ConnectorError::new(
                            ctx,
                            ErrorKind::Transient,
                            format!("gettoken answer is not JSON: {e}"),
                        )
                    })?;
                    if a.errcode != 0 {
                        return Err(classify(ctx, a.errcode, &a.errmsg, true));
                    }
                    Ok(a)
                }
            })
            .await?;
        let tok = answer
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ConnectorError::new(
                    &ctx,
                    ErrorKind::Protocol,
                    "gettoken answered without access_token",
                )
            })?;
        let ttl = Duration::from_secs(answer.expires_in.unwrap_or(7200))
            .saturating_sub(Duration::from_secs(300));
        let tok = Secret::new(tok);
        *guard = Some((tok.clone(), Instant::now() + ttl));
        Ok(tok)
    }

    /// Call an API path (`externalcontact/...`) with the access token; GET
    /// when `body` is `None`, else POST JSON. Retries, refreshes the token on
    /// expiry codes, and decodes the answer as `T` after checking errcode.
    pub async fn call<T: DeserializeOwned>(
        &self,
        ctx: &RequestContext,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<T> {
        let url = format!("{}/cgi-bin/{}", self.base_url, path);
        self.api
            .call(ctx, |attempt| {
                let url = &url;
                async move {
                    let token = self.token(attempt.refresh_token).await?;
                    let req = match body {
                        Some(b) => self.api.http().post(url).json(b),
                        None => self.api.http().get(url),
                    }
                    .query(&[("access_token", token.expose())])
                    .query(query);
                    let bytes = self.api.send(ctx, req).await?;
                    let status: Status = serde_json::from_slice(&bytes).map_err(|e| {
                        ConnectorError::new(
                            ctx,
                            ErrorKind::Transient,
                            format!("answer is not JSON: {e}"),
                        )
                    })?;
                    if status.errcode != 0 {
                        return Err(classify(ctx, status.errcode, &status.errmsg, false));
                    }
                    serde_json::from_slice(&bytes).map_err(|e| {
                        ConnectorError::new(
                            ctx,
                            ErrorKind::Protocol,
                            format!("unexpected answer shape: {e}"),
                        )
                    })
                }
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_errcodes_like_wechatpy() {
        let ctx = RequestContext::new("wecom", Some("ww1"), "externalcontact/batch/get_by_user");
        // (errcode, errmsg, answered by the token API, kind).
        for (code, msg, fresh, want) in [
            (
                42001,
                "access_token expired",
                false,
                ErrorKind::TokenExpired,
            ),
            (
                40014,
                "invalid access_token",
                false,
                ErrorKind::TokenExpired,
            ),
            (40001, "invalid credential", false, ErrorKind::TokenExpired),
            (40001, "invalid credential", true, ErrorKind::Auth),
            (45009, "api freq out of limit", false, ErrorKind::Throttled),
            (-1, "system busy", false, ErrorKind::Transient),
        ] {
            assert_eq!(classify(&ctx, code, msg, fresh).kind, want, "{code} {msg}");
        }
        let e = classify(
            &ctx,
            40058,
            "invalid Request Parameter, hint: [x], from ip: 1.2.3.4",
            false,
        );
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
        assert_eq!(e.message, "invalid Request Parameter");
    }
}
