//! The one HTTP client wrapper every connector uses: rate limiting per app
//! key, retries with exponential backoff and jitter, token refresh on expiry,
//! request timeouts and a tracing span per request.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use tracing::Instrument;

use crate::error::{ConnectorError, ErrorKind, RequestContext, Result};

/// A token-bucket limiter (requests per second).
pub type Limiter = DefaultDirectRateLimiter;

/// One limiter per key (an app key, or an app key and shop), shared by every
/// stream and shop that uses the key within the process.
#[derive(Default, Clone)]
pub struct LimiterRegistry {
    limiters: Arc<Mutex<HashMap<String, Arc<Limiter>>>>,
}

impl LimiterRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The limiter for `key` allowing one request per `period` (decrypt
    /// APIs: Pinduoduo allows one call every 10 s), created on first use.
    pub fn get_every(&self, key: &str, period: Duration) -> Option<Arc<Limiter>> {
        let quota = Quota::with_period(period)?;
        let mut map = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        Some(
            map.entry(key.to_string())
                .or_insert_with(|| Arc::new(RateLimiter::direct(quota)))
                .clone(),
        )
    }

    /// The limiter for `key`, created at `qps` (burst = `qps`) on first use.
    /// `None` means "no limit" (sandbox benchmarks).
    pub fn get(&self, key: &str, qps: Option<u32>) -> Option<Arc<Limiter>> {
        let qps = NonZeroU32::new(qps?)?;
        let mut map = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        Some(
            map.entry(key.to_string())
                .or_insert_with(|| Arc::new(RateLimiter::direct(Quota::per_second(qps))))
                .clone(),
        )
    }
}

/// How hard to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// First backoff; doubles each attempt.
    pub base_delay: Duration,
    /// Backoff ceiling.
    pub max_delay: Duration,
    /// Timeout of one attempt.
    pub request_timeout: Duration,
    /// A platform asking us to wait longer than this (Taobao bans last hours)
    /// fails the call instead of sleeping.
    pub max_retry_after: Duration,
    /// A call whose `max_attempts` are spent still retries transient errors
    /// until this long after its first attempt: an outage of minutes costs
    /// time, not the run. `Duration::ZERO` counts attempts only.
    pub retry_for: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            retry_for: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// Backoff before attempt `n + 1` (n ≥ 1): exponential with equal jitter,
    /// or the platform's retry-after when it gave one.
    pub fn backoff(&self, n: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(d) = retry_after {
            return d.min(self.max_delay);
        }
        let exp = self
            .base_delay
            .saturating_mul(1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX))
            .min(self.max_delay);
        let half = exp / 2;
        let jitter = rand::rng().random_range(0..=half.as_millis().max(1) as u64);
        half + Duration::from_millis(jitter)
    }
}

/// What the request closure is told about the attempt it makes.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub number: u32,
    /// The previous attempt failed on an expired token: fetch a new one first.
    pub refresh_token: bool,
}

/// Counters of one client, for the run report.
#[derive(Debug, Default)]
pub struct ClientStats {
    /// Attempts sent.
    pub requests: AtomicU64,
    /// Attempts that were retried.
    pub retries: AtomicU64,
    /// Attempts of any call of this client that failed (retryably) since
    /// its last success: how widely the platform is failing right now.
    pub failing: AtomicU32,
    /// Milliseconds spent waiting between attempts.
    pub backoff_ms: AtomicU64,
}

/// The HTTP client wrapper. Cheap to clone.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    limiters: Vec<Arc<Limiter>>,
    policy: RetryPolicy,
    stats: Arc<ClientStats>,
}

impl ApiClient {
    /// A client that waits on every limiter in `limiters` (app key, shop...)
    /// before each attempt.
    pub fn new(limiters: Vec<Arc<Limiter>>, policy: RetryPolicy) -> Self {
        let http = reqwest::Client::builder()
            .timeout(policy.request_timeout)
            .pool_max_idle_per_host(8)
            .user_agent(concat!("quanyu/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the TLS backend initializes");
        ApiClient {
            http,
            limiters,
            policy,
            stats: Arc::new(ClientStats::default()),
        }
    }

    /// The same client (limiters, policy, connections) counting its
    /// requests apart: for a second stream sharing the budget, whose run
    /// record must count only its own calls.
    pub fn counted_apart(&self) -> ApiClient {
        ApiClient {
            stats: Arc::new(ClientStats::default()),
            ..self.clone()
        }
    }

    /// The underlying reqwest client, for building requests.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The retry policy in force.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Requests and retries so far.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.stats.requests.load(Ordering::Relaxed),
            self.stats.retries.load(Ordering::Relaxed),
        )
    }

    /// Run one logical API call: `attempt` builds, signs, sends and decodes a
    /// request (signing again each time, since timestamps move). Retryable
    /// errors are retried with backoff; `TokenExpired` sets
    /// [`Attempt::refresh_token`] for the next try and is retried at once.
    ///
    /// The backoff grows with the failures of this call, but only as far as
    /// the client's failures since any of its calls last succeeded: a call
    /// that is unlucky while its siblings get through (failures that are
    /// independent, as a busy gateway's are) retries at the base delay, while
    /// an outage, where every call fails, backs every call off together.
    pub async fn call<T, F, Fut>(&self, ctx: &RequestContext, mut attempt: F) -> Result<T>
    where
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let span = tracing::info_span!(
            "request",
            connector = %ctx.connector,
            shop = ctx.scope.as_deref().unwrap_or(""),
            api = %ctx.api,
        );
        async {
            let mut refresh = false;
            let mut n = 1;
            let mut failures = 0u32;
            let first = Instant::now();
            loop {
                for l in &self.limiters {
                    l.until_ready().await;
                }
                self.stats.requests.fetch_add(1, Ordering::Relaxed);
                let started = Instant::now();
                let res = match tokio::time::timeout(
                    self.policy.request_timeout,
                    attempt(Attempt { number: n, refresh_token: refresh }),
                )
                .await
                {
                    Ok(r) => r,
                    Err(_) => Err(ConnectorError::new(
                        ctx,
                        ErrorKind::Timeout,
                        format!("no answer within {:?}", self.policy.request_timeout),
                    )),
                };
                match res {
                    Ok(v) => {
                        self.stats.failing.store(0, Ordering::Relaxed);
                        tracing::debug!(attempt = n, elapsed_ms = started.elapsed().as_millis() as u64, "ok");
                        return Ok(v);
                    }
                    Err(e)
                        if e.is_retryable()
                            && (n < self.policy.max_attempts
                                || first.elapsed() < self.policy.retry_for) =>
                    {
                        if let Some(ra) = e.retry_after {
                            if ra > self.policy.max_retry_after {
                                tracing::warn!(error = %e, "platform asks to wait longer than allowed; giving up");
                                return Err(e);
                            }
                        }
                        let delay = if e.kind == ErrorKind::TokenExpired {
                            Duration::ZERO
                        } else {
                            failures += 1;
                            let failing = self.stats.failing.fetch_add(1, Ordering::Relaxed) + 1;
                            self.policy.backoff(failures.min(failing), e.retry_after)
                        };
                        tracing::warn!(attempt = n, kind = ?e.kind, code = e.code.as_deref().unwrap_or(""), delay_ms = delay.as_millis() as u64, "retrying: {}", e.message);
                        self.stats.retries.fetch_add(1, Ordering::Relaxed);
                        self.stats
                            .backoff_ms
                            .fetch_add(delay.as_millis() as u64, Ordering::Relaxed);
                        refresh = e.kind == ErrorKind::TokenExpired;
                        tokio::time::sleep(delay).await;
                        n += 1;
                    }
                    Err(e) => {
                        tracing::warn!(attempt = n, error = %e, "request failed");
                        return Err(e);
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Send a request and read its body, mapping transport failures and HTTP
    /// status to error kinds: timeouts and connection errors are `Timeout` /
    /// `Transient`, 429 is `Throttled`, 5xx `Transient`, 401/403 `Auth`,
    /// other non-2xx `InvalidRequest`.
    pub async fn send(&self, ctx: &RequestContext, req: reqwest::RequestBuilder) -> Result<Bytes> {
        self.send_now(ctx, req).await
    }

    /// POST `body` as JSON to `url`, with `access_token` in the query when
    /// given (the gateways that sign nothing: Youzan, WeChat), and read the
    /// answer as [`ApiClient::send`] does.
    pub async fn post_json(
        &self,
        ctx: &RequestContext,
        url: &str,
        access_token: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<Bytes> {
        let mut req = self.http.post(url).json(body);
        if let Some(t) = access_token {
            req = req.query(&[("access_token", t)]);
        }
        self.send(ctx, req).await
    }

    /// Wait for the client's limiters: for a second request inside one
    /// attempt of [`ApiClient::call`] (a token grant or refresh before the
    /// API call), which must spend its own permit.
    pub async fn wait_turn(&self) {
        for l in &self.limiters {
            l.until_ready().await;
        }
    }

    async fn send_now(&self, ctx: &RequestContext, req: reqwest::RequestBuilder) -> Result<Bytes> {
        let resp = req.send().await.map_err(|e| transport_error(ctx, &e))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp.bytes().await.map_err(|e| transport_error(ctx, &e))?;
        if status.is_success() {
            return Ok(body);
        }
        let kind = match status.as_u16() {
            429 => ErrorKind::Throttled,
            500..=599 => ErrorKind::Transient,
            401 | 403 => ErrorKind::Auth,
            _ => ErrorKind::InvalidRequest,
        };
        let mut err = ConnectorError::new(ctx, kind, format!("HTTP {status}"))
            .with_code(status.as_u16().to_string());
        err.retry_after = retry_after;
        Err(err)
    }
}

fn transport_error(ctx: &RequestContext, e: &reqwest::Error) -> ConnectorError {
    // reqwest errors can include the URL with its query (and so a token):
    // keep only the cause.
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Transient
    };
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "response body broke off"
    } else {
        "transport error"
    };
    ConnectorError::new(ctx, kind, what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn ctx() -> RequestContext {
        RequestContext::new("test", Some("s1"), "api.x")
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            request_timeout: Duration::from_millis(200),
            max_retry_after: Duration::from_secs(1),
            retry_for: Duration::ZERO,
        }
    }

    #[tokio::test]
    async fn retries_retryable_errors_then_succeeds() {
        let client = ApiClient::new(vec![], fast());
        let calls = AtomicU32::new(0);
        let out = client
            .call(&ctx(), |a| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    match n {
                        0 => Err(ConnectorError::new(&ctx(), ErrorKind::Throttled, "limited")),
                        1 => Err(ConnectorError::new(
                            &ctx(),
                            ErrorKind::TokenExpired,
                            "expired",
                        )),
                        _ => {
                            assert!(a.refresh_token, "the attempt after an expiry refreshes");
                            Ok(a.number)
                        }
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!(out, 3);
        assert_eq!(client.stats(), (3, 2));
    }

    #[tokio::test]
    async fn does_not_retry_auth_errors_and_gives_up_after_max_attempts() {
        let client = ApiClient::new(vec![], fast());
        // An auth error is tried once; a transient one up to max_attempts.
        for (kind, attempts) in [(ErrorKind::Auth, 1), (ErrorKind::Transient, 4)] {
            let calls = AtomicU32::new(0);
            let err = client
                .call(&ctx(), |_| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async move { Err::<(), _>(ConnectorError::new(&ctx(), kind, "refused")) }
                })
                .await
                .unwrap_err();
            assert_eq!(err.kind, kind);
            assert_eq!(calls.load(Ordering::SeqCst), attempts, "{kind:?}");
        }
    }

    /// A call that fails again and again while the client's other calls get
    /// through retries at the base delay; the same failures with nothing
    /// getting through (an outage) back off exponentially.
    #[tokio::test]
    async fn isolated_failures_retry_quickly_and_an_outage_backs_off() {
        let policy = RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_secs(1),
            ..fast()
        };
        let flaky = |others_succeed: bool| async move {
            let client = ApiClient::new(vec![], policy);
            let calls = AtomicU32::new(0);
            client
                .call(&ctx(), |_| {
                    let client = client.clone();
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if others_succeed {
                            // A sibling call gets through meanwhile.
                            client.call(&ctx(), |_| async { Ok(0) }).await?;
                        }
                        if n < 7 {
                            Err(ConnectorError::new(&ctx(), ErrorKind::Transient, "busy"))
                        } else {
                            Ok(n)
                        }
                    }
                })
                .await
                .unwrap();
            client.stats.backoff_ms.load(Ordering::SeqCst)
        };
        // Seven waits at the base delay (equal jitter: 1-2 ms each).
        let isolated = flaky(true).await;
        assert!(isolated <= 7 * 2, "{isolated} ms");
        // At least half of 2 + 4 + ... + 128 ms.
        let outage = flaky(false).await;
        assert!(outage >= 127, "{outage} ms");
    }

    /// Token expiries are retried at once and do not grow the backoff of
    /// the failures after them (the exponent counted them before).
    #[tokio::test]
    async fn token_expiries_do_not_grow_the_backoff() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_secs(1),
            ..fast()
        };
        let client = ApiClient::new(vec![], policy);
        let calls = AtomicU32::new(0);
        client
            .call(&ctx(), |_| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    match n {
                        0..=5 => Err(ConnectorError::new(
                            &ctx(),
                            ErrorKind::TokenExpired,
                            "expired",
                        )),
                        6 => Err(ConnectorError::new(&ctx(), ErrorKind::Transient, "busy")),
                        _ => Ok(n),
                    }
                }
            })
            .await
            .unwrap();
        // One wait, at the base delay (1–2 ms), not the seventh attempt's.
        let waited = client.stats.backoff_ms.load(Ordering::SeqCst);
        assert!(waited <= 2, "{waited} ms");
        assert_eq!(client.stats(), (8, 7));
    }

    /// An outage longer than the attempts allow: with a time budget the
    /// call keeps retrying past `max_attempts` and gets through; without,
    /// it gives up at `max_attempts`.
    #[tokio::test]
    async fn a_time_budget_outlasts_an_outage_longer_than_the_attempts() {
        let outage = |calls: &AtomicU32| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 12 {
                    Err(ConnectorError::new(&ctx(), ErrorKind::Transient, "down"))
                } else {
                    Ok(n)
                }
            }
        };
        let calls = AtomicU32::new(0);
        let budget = RetryPolicy {
            retry_for: Duration::from_secs(30),
            ..fast()
        };
        let got = ApiClient::new(vec![], budget)
            .call(&ctx(), |_| outage(&calls))
            .await
            .unwrap();
        assert_eq!(got, 12);
        let calls = AtomicU32::new(0);
        let err = ApiClient::new(vec![], fast())
            .call(&ctx(), |_| outage(&calls))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Transient);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // The budget does not retry what is not retryable.
        let calls = AtomicU32::new(0);
        let budget = RetryPolicy {
            retry_for: Duration::from_secs(30),
            ..fast()
        };
        let err = ApiClient::new(vec![], budget)
            .call(&ctx(), |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>(ConnectorError::new(&ctx(), ErrorKind::Auth, "bad sign")) }
            })
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind, calls.load(Ordering::SeqCst)),
            (ErrorKind::Auth, 1)
        );
    }

    #[tokio::test]
    async fn times_out_slow_attempts_and_refuses_long_bans() {
        let client = ApiClient::new(vec![], fast());
        let calls = AtomicU32::new(0);
        let out = client
            .call(&ctx(), |_| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    Ok(n)
                }
            })
            .await
            .unwrap();
        assert_eq!(out, 1);

        let err = client
            .call(&ctx(), |_| async {
                Err::<(), _>(
                    ConnectorError::new(&ctx(), ErrorKind::Throttled, "ban")
                        .with_retry_after(Duration::from_secs(31062)),
                )
            })
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Throttled);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            ..RetryPolicy::default()
        };
        for n in 1..20 {
            let d = p.backoff(n, None);
            assert!(d <= Duration::from_secs(2), "{d:?}");
        }
        let d5 = p.backoff(5, None);
        assert!(d5 >= Duration::from_millis(800), "{d5:?}");
        assert_eq!(
            p.backoff(1, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
    }

    #[tokio::test]
    async fn shared_limiter_is_shared() {
        let reg = LimiterRegistry::new();
        let a = reg.get("taobao/app1", Some(5)).unwrap();
        let b = reg.get("taobao/app1", Some(5)).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(reg.get("taobao/app1", None).is_none());
    }
}
