//! What every emulator answers with: JSON bodies, a gateway's 5xx page,
//! form parameters read from query and body, and the faults drawn for a
//! request answered in the platform's own words.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::DateTime;

use super::{Fault, FaultInjector};

/// A JSON answer with the platform's content type (most say
/// `application/json;charset=UTF-8`).
pub fn json_as(content_type: &'static str, body: impl std::fmt::Display) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body.to_string()).into_response()
}

/// A JSON answer as `application/json;charset=UTF-8`.
pub fn json_answer(body: impl std::fmt::Display) -> Response {
    json_as("application/json;charset=UTF-8", body)
}

/// The gateway's HTML page for an HTTP `code` (a 5xx fault).
pub fn bad_gateway(code: u16) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY),
        "<html><body><h1>502 Bad Gateway</h1></body></html>",
    )
        .into_response()
}

/// The form parameters of a request: the query's, then the body's.
pub fn form_params(query: Option<&str>, body: &[u8]) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = Vec::new();
    if let Some(q) = query {
        params.extend(url::form_urlencoded::parse(q.as_bytes()).into_owned());
    }
    params.extend(url::form_urlencoded::parse(body).into_owned());
    params
}

/// The first non-empty value of `k`.
pub fn param<'a>(params: &'a [(String, String)], k: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `yyyy-MM-dd HH:mm:ss` in Beijing time of unix seconds; empty for none.
pub fn beijing_text(t: Option<i64>) -> String {
    t.and_then(|t| DateTime::from_timestamp(t, 0))
        .map(quanyu_schemas::time::format_beijing)
        .unwrap_or_default()
}

/// A fault a platform answers in its own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many calls.
    Throttled,
    /// The service is busy or timed out behind the gateway.
    Busy,
    /// The token has expired.
    TokenExpired,
}

impl FaultInjector {
    /// Draw the fault for this request (`token_faults`: the endpoint takes
    /// a token): `None` to answer normally (after waiting, for a slow
    /// fault); the gateway's 5xx page; or the platform's own answer to a
    /// refusal, from `answer`.
    pub async fn answer(
        &self,
        token_faults: bool,
        answer: impl FnOnce(Refusal) -> Response,
    ) -> Option<Response> {
        match self.drawn(token_faults, answer) {
            Err(slow) => {
                tokio::time::sleep(slow).await;
                None
            }
            Ok(answer) => answer,
        }
    }

    /// [`FaultInjector::answer`] for an endpoint that answers at once (a
    /// token endpoint): a slow fault is not waited for.
    pub fn answer_now(
        &self,
        token_faults: bool,
        answer: impl FnOnce(Refusal) -> Response,
    ) -> Option<Response> {
        self.drawn(token_faults, answer).unwrap_or(None)
    }

    /// The answer to the drawn fault, or how long a slow one waits.
    fn drawn(
        &self,
        token_faults: bool,
        answer: impl FnOnce(Refusal) -> Response,
    ) -> Result<Option<Response>, std::time::Duration> {
        Ok(match self.draw(token_faults) {
            None => None,
            Some(Fault::Throttle) => Some(answer(Refusal::Throttled)),
            Some(Fault::ServiceError) => Some(answer(Refusal::Busy)),
            Some(Fault::TokenExpired) => Some(answer(Refusal::TokenExpired)),
            Some(Fault::Http5xx(code)) => Some(bad_gateway(code)),
            Some(Fault::Slow(d)) => return Err(d),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_come_from_query_then_body_and_blank_is_absent() {
        let p = form_params(Some("a=1&b="), b"a=2&c=%E4%B8%AD");
        assert_eq!(param(&p, "a"), Some("1"));
        assert_eq!(param(&p, "b"), None);
        assert_eq!(param(&p, "c"), Some("中"));
        assert_eq!(beijing_text(Some(0)), "1970-01-01 08:00:00");
        assert_eq!(beijing_text(None), "");
    }

    #[tokio::test]
    async fn faults_answer_in_the_platforms_words() {
        let every = |f: fn(&mut crate::sandbox::FaultConfig)| {
            let mut c = crate::sandbox::FaultConfig::default();
            f(&mut c);
            FaultInjector::new(c)
        };
        let said = |r: Refusal| json_answer(format!("{r:?}"));
        let throttle = every(|c| c.throttle = 1.0)
            .answer(true, said)
            .await
            .unwrap();
        let body = axum::body::to_bytes(throttle.into_body(), 100)
            .await
            .unwrap();
        assert_eq!(&body[..], b"Throttled");
        let expired = every(|c| c.token_expired = 1.0);
        assert!(
            expired.answer(false, said).await.is_none(),
            "no token, no expiry"
        );
        let gateway = every(|c| c.http_5xx = 1.0)
            .answer(true, said)
            .await
            .unwrap();
        assert!(gateway.status().is_server_error());
        assert!(FaultInjector::new(Default::default())
            .answer(true, said)
            .await
            .is_none());
    }
}
