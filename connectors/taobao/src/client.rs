//! The TOP gateway client: system parameters, signing, the error envelope.

use std::collections::BTreeMap;
use std::time::Duration;

use quanyu_connector_sdk::market::read_envelope;
use quanyu_connector_sdk::Bytes;
use quanyu_connector_sdk::{ApiClient, ConnectorError, ErrorKind, RequestContext, Result, Secret};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::sign::{sign, SignMethod};

/// TOP's error envelope body.
#[derive(Debug, Deserialize)]
pub struct TopError {
    /// Top-level code (7 throttled, 15 remote service error, 25 bad sign...).
    pub code: Option<serde_json::Value>,
    /// Message.
    pub msg: Option<String>,
    /// Sub code (`isp.*` server side, `isv.*` caller side...).
    pub sub_code: Option<String>,
    /// Sub message.
    pub sub_msg: Option<String>,
}

/// Map a TOP error envelope to a typed error.
pub fn classify(ctx: &RequestContext, e: &TopError) -> ConnectorError {
    let code = match &e.code {
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let sub = e.sub_code.as_deref().unwrap_or("");
    let msg = format!(
        "{}{}{}",
        e.msg.as_deref().unwrap_or("error"),
        if sub.is_empty() { "" } else { " / " },
        [sub, e.sub_msg.as_deref().unwrap_or("")]
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(": ")
    );
    let kind = match code.as_str() {
        "7" => ErrorKind::Throttled,
        "15" | "10" | "11" if sub.starts_with("isp.") || sub.is_empty() => ErrorKind::Transient,
        _ if sub.starts_with("isp.") => ErrorKind::Transient,
        "24" | "25" | "28" | "29" => ErrorKind::Auth,
        "26" | "27" => ErrorKind::Auth,
        "40" | "41" | "21" | "22" | "30" | "31" | "32" | "33" => ErrorKind::InvalidRequest,
        _ => ErrorKind::InvalidRequest,
    };
    let mut err = ConnectorError::new(ctx, kind, msg).with_code(code);
    if kind == ErrorKind::Throttled {
        if let Some(secs) = e.sub_msg.as_deref().and_then(ban_seconds) {
            err = err.with_retry_after(Duration::from_secs(secs));
        }
    }
    if matches!(err.code.as_deref(), Some("26" | "27")) {
        err.message
            .push_str(" (the shop's session is invalid or expired: authorize the shop again)");
    }
    err
}

/// "This ban will last for 31062 more seconds" → 31062.
fn ban_seconds(sub_msg: &str) -> Option<u64> {
    let rest = sub_msg.split("last for ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// A signed TOP gateway client for one app key.
#[derive(Clone)]
pub struct TopClient {
    api: ApiClient,
    gateway: String,
    app_key: String,
    secret: Secret,
    sign_method: SignMethod,
}

impl TopClient {
    /// A client posting to `gateway` (e.g. `https://eco.taobao.com/router/rest`).
    pub fn new(
        api: ApiClient,
        gateway: &str,
        app_key: &str,
        secret: Secret,
        sign_method: SignMethod,
    ) -> Self {
        TopClient {
            api,
            gateway: gateway.to_string(),
            app_key: app_key.to_string(),
            secret,
            sign_method,
        }
    }

    /// The wrapped HTTP client (for its counters).
    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    /// The same client with another HTTP wrapper (other limiters).
    pub fn with_api(&self, api: ApiClient) -> Self {
        TopClient {
            api,
            ..self.clone()
        }
    }

    /// Call `method` for the shop whose user token is `session`, with business
    /// parameters `biz` in the form body. Returns the body of a successful
    /// answer; the error envelope becomes a typed error. Retries per the
    /// client's policy, signing each attempt anew.
    pub async fn call(
        &self,
        ctx: &RequestContext,
        method: &str,
        session: &Secret,
        biz: &[(&str, String)],
    ) -> Result<Bytes> {
        self.call_with(ctx, method, session, biz, |body| {
            check_envelope(ctx, body)?;
            Ok(body.clone())
        })
        .await
    }

    /// [`TopClient::call`], reading the answer with `read` inside the retry
    /// loop: one parse per answer, and an answer cut off mid-way (not JSON)
    /// is retried like a transient fault.
    pub async fn call_with<T>(
        &self,
        ctx: &RequestContext,
        method: &str,
        session: &Secret,
        biz: &[(&str, String)],
        read: impl Fn(&Bytes) -> Result<T>,
    ) -> Result<T> {
        let read = &read;
        self.api
            .call(ctx, |_attempt| async move {
                let timestamp = quanyu_schemas::time::format_beijing(chrono::Utc::now());
                let system: Vec<(&str, &str)> = vec![
                    ("method", method),
                    ("app_key", &self.app_key),
                    ("session", session.expose()),
                    ("timestamp", &timestamp),
                    ("format", "json"),
                    ("v", "2.0"),
                    ("sign_method", self.sign_method.as_str()),
                ];
                let signature = sign(
                    system
                        .iter()
                        .copied()
                        .chain(biz.iter().map(|(k, v)| (*k, v.as_str()))),
                    self.secret.expose(),
                    self.sign_method,
                );
                let mut query = system.clone();
                query.push(("sign", &signature));
                let req = self.api.http().post(&self.gateway).query(&query).form(biz);
                let body = self.api.send(ctx, req).await?;
                if memchr::memmem::find(&body, b"\"error_response\"").is_some() {
                    check_envelope(ctx, &body)?;
                }
                read(&body).map_err(|e| {
                    match serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
                        Ok(_) => e,
                        Err(j) => ConnectorError::new(
                            ctx,
                            ErrorKind::Transient,
                            format!("answer is not a JSON object: {j}"),
                        ),
                    }
                })
            })
            .await
    }
}

/// Fail on an `error_response`; a body that is not a JSON object is a
/// transient protocol fault (a proxy cut it off).
pub fn check_envelope(ctx: &RequestContext, body: &[u8]) -> Result<()> {
    let top: BTreeMap<&str, &RawValue> = read_envelope(ctx, body)?;
    if let Some(raw) = top.get("error_response") {
        let e: TopError = serde_json::from_str(raw.get()).map_err(|e| {
            ConnectorError::new(
                ctx,
                ErrorKind::Protocol,
                format!("unreadable error_response: {e}"),
            )
        })?;
        return Err(classify(ctx, &e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RequestContext {
        RequestContext::new("taobao", Some("shop1"), "taobao.trades.sold.increment.get")
    }

    #[test]
    fn classifies_real_envelopes() {
        let throttle = br#"{"error_response":{"code":7,"msg":"App Call Limited","sub_code":"accesscontrol.limited-by-app-access-count","sub_msg":"This ban will last for 3 more seconds","request_id":"x"}}"#;
        let e = check_envelope(&ctx(), throttle).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Throttled);
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
        let isp = br#"{"error_response":{"code":15,"msg":"Remote service error","sub_code":"isp.top-remote-connection-timeout","request_id":"x"}}"#;
        assert_eq!(
            check_envelope(&ctx(), isp).unwrap_err().kind,
            ErrorKind::Transient
        );
        let sign = br#"{"error_response":{"code":25,"msg":"Invalid signature","request_id":"x"}}"#;
        let e = check_envelope(&ctx(), sign).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Auth);
        assert!(e.to_string().contains("taobao [shop shop1]"));
        let sess = br#"{"error_response":{"code":27,"msg":"Invalid session","sub_code":"invalid-sessionkey","sub_msg":"SessionKey invalid"}}"#;
        let e = check_envelope(&ctx(), sess).unwrap_err();
        assert!(e.message.contains("authorize the shop again"));
        assert!(check_envelope(&ctx(), br#"{"trades_sold_increment_get_response":{}}"#).is_ok());
        assert_eq!(
            check_envelope(&ctx(), b"<html>").unwrap_err().kind,
            ErrorKind::Transient
        );
    }
}
