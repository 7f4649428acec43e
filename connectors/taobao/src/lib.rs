//! Taobao / Tmall (TOP) orders: `taobao.trades.sold.increment.get`, one
//! stream per shop, windows of at most one day, `use_has_next` paging,
//! signed as TOP signs (md5, hmac, hmac-sha256).
#![warn(missing_docs)]

pub mod client;
pub mod mapping;
pub mod sandbox;
pub mod sign;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use quanyu_connector_sdk::secret::SecretError;
use quanyu_connector_sdk::{
    ApiClient, ConnectorError, CursorMode, ErrorKind, LimiterRegistry, NormalizedPage, PageSink,
    PullContext, PullError, PullReport, RequestContext, RetryPolicy, Secret, SecretRef, Stream,
    StreamId, Window, WindowPlan,
};
use quanyu_schemas::time::format_beijing;
use quanyu_schemas::{OrdersBuilder, TableKind};
use serde::Deserialize;
use serde_json::value::RawValue;

pub use client::TopClient;
pub use sign::SignMethod;

/// The production gateway.
pub const DEFAULT_GATEWAY: &str = "https://eco.taobao.com/router/rest";
/// The API this connector pulls.
pub const INCREMENT_API: &str = "taobao.trades.sold.increment.get";
/// The trade fields requested.
pub const FIELDS: &str =
    "tid,tid_str,status,type,created,modified,pay_time,payment,total_fee,post_fee,\
buyer_open_uid,receiver_mobile,receiver_state,receiver_city,orders.oid,orders.num";

/// One Taobao app key and the shops authorized to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaobaoConfig {
    /// TOP gateway URL.
    #[serde(default = "default_gateway")]
    pub gateway: String,
    /// The app key.
    pub app_key: String,
    /// The app secret: `{ env = "..." }` or `{ file = "..." }`.
    pub app_secret: SecretRef,
    /// `md5`, `hmac` or `hmac-sha256`.
    #[serde(default)]
    pub sign_method: SignMethod,
    /// Requests per second for this app key, shared by all its shops; 0 = no limit.
    #[serde(default = "default_qps")]
    pub qps: u32,
    /// Trades per page (1–100).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Window length in minutes (TOP allows at most one day).
    #[serde(default = "default_window_minutes")]
    pub window_minutes: i64,
    /// Look-back overlap in minutes for late updates.
    #[serde(default = "default_lookback_minutes")]
    pub lookback_minutes: i64,
    /// How many days back the first pull starts (TOP keeps three months).
    #[serde(default = "default_initial_days")]
    pub initial_days: i64,
    /// The shops, each with its own session (user access token).
    pub shops: Vec<TaobaoShop>,
}

/// One authorized shop.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaobaoShop {
    /// The shop id used in the lake (seller nick or shop id).
    pub id: String,
    /// The shop's session key.
    pub session: SecretRef,
}

fn default_gateway() -> String {
    DEFAULT_GATEWAY.into()
}
fn default_qps() -> u32 {
    10
}
fn default_page_size() -> u32 {
    100
}
fn default_window_minutes() -> i64 {
    24 * 60
}
fn default_lookback_minutes() -> i64 {
    60
}
fn default_initial_days() -> i64 {
    30
}

/// A configuration problem found before any request.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A secret could not be read.
    #[error("taobao app {app_key}: {source}")]
    Secret {
        /// The app key.
        app_key: String,
        /// Why.
        source: SecretError,
    },
    /// A value is out of range.
    #[error("taobao app {app_key}: {message}")]
    Invalid {
        /// The app key.
        app_key: String,
        /// What is wrong.
        message: String,
    },
}

/// Build one orders stream per shop.
pub fn build_streams(
    cfg: &TaobaoConfig,
    limiters: &LimiterRegistry,
    policy: RetryPolicy,
) -> Result<Vec<Arc<dyn Stream>>, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        app_key: cfg.app_key.clone(),
        message,
    };
    if !(1..=100).contains(&cfg.page_size) {
        return Err(invalid(format!(
            "page_size must be 1..=100, got {}",
            cfg.page_size
        )));
    }
    if !(1..=24 * 60).contains(&cfg.window_minutes) {
        return Err(invalid(format!(
            "window_minutes must be 1..=1440 (TOP allows one day), got {}",
            cfg.window_minutes
        )));
    }
    if !(1..=90).contains(&cfg.initial_days) {
        return Err(invalid(format!(
            "initial_days must be 1..=90 (TOP keeps three months), got {}",
            cfg.initial_days
        )));
    }
    let secret = cfg
        .app_secret
        .resolve()
        .map_err(|source| ConfigError::Secret {
            app_key: cfg.app_key.clone(),
            source,
        })?;
    let limiter = limiters.get(
        &format!("taobao/{}", cfg.app_key),
        (cfg.qps > 0).then_some(cfg.qps),
    );
    let client = TopClient::new(
        ApiClient::new(limiter.into_iter().collect(), policy),
        &cfg.gateway,
        &cfg.app_key,
        secret,
        cfg.sign_method,
    );
    let plan = WindowPlan {
        max_window: Duration::minutes(cfg.window_minutes),
        lookback: Duration::minutes(cfg.lookback_minutes.max(0)),
        initial_start: Utc::now() - Duration::days(cfg.initial_days),
        end_lag: Duration::seconds(60),
    };
    cfg.shops
        .iter()
        .map(|shop| {
            let session = shop
                .session
                .resolve()
                .map_err(|source| ConfigError::Secret {
                    app_key: cfg.app_key.clone(),
                    source,
                })?;
            Ok(Arc::new(TaobaoOrders {
                id: StreamId::new("taobao", "orders", &shop.id),
                shop: shop.id.clone(),
                session,
                client: client.clone(),
                page_size: cfg.page_size,
                plan,
            }) as Arc<dyn Stream>)
        })
        .collect()
}

/// Orders of one shop.
pub struct TaobaoOrders {
    id: StreamId,
    shop: String,
    session: Secret,
    client: TopClient,
    page_size: u32,
    plan: WindowPlan,
}

#[derive(Deserialize)]
struct IncrementEnvelope<'a> {
    #[serde(borrow)]
    trades_sold_increment_get_response: Option<IncrementResponse<'a>>,
}

#[derive(Deserialize)]
struct IncrementResponse<'a> {
    total_results: Option<u64>,
    has_next: Option<bool>,
    #[serde(borrow)]
    trades: Option<TradeList<'a>>,
}

#[derive(Deserialize)]
struct TradeList<'a> {
    #[serde(borrow, default)]
    trade: Vec<&'a RawValue>,
}

/// A guard against a gateway that never says "no more pages".
const MAX_PAGES_PER_WINDOW: u32 = 100_000;

#[async_trait]
impl Stream for TaobaoOrders {
    fn id(&self) -> &StreamId {
        &self.id
    }

    fn table(&self) -> TableKind {
        TableKind::Orders
    }

    fn cursor_mode(&self) -> CursorMode {
        CursorMode::Windows(self.plan)
    }

    fn request_stats(&self) -> (u64, u64) {
        self.client.api().stats()
    }

    async fn pull(
        &self,
        window: Window,
        ctx: &PullContext,
        sink: &mut dyn PageSink,
    ) -> Result<PullReport, PullError> {
        let rctx = RequestContext::new("taobao", Some(&self.shop), INCREMENT_API);
        // TOP takes inclusive bounds with one-second resolution: [start, end - 1s].
        let start = format_beijing(window.start);
        let end = format_beijing(window.end - Duration::seconds(1));
        let mut report = PullReport::default();
        let mut builder = OrdersBuilder::new(&ctx.run_id, ctx.ingested_at);
        for page_no in 1..=MAX_PAGES_PER_WINDOW {
            let biz = [
                ("fields", FIELDS.to_string()),
                ("start_modified", start.clone()),
                ("end_modified", end.clone()),
                ("page_no", page_no.to_string()),
                ("page_size", self.page_size.to_string()),
                ("use_has_next", "true".to_string()),
            ];
            let body = self
                .client
                .call(&rctx, INCREMENT_API, &self.session, &biz)
                .await?;
            let env: IncrementEnvelope = serde_json::from_slice(&body).map_err(|e| {
                ConnectorError::new(
                    &rctx,
                    ErrorKind::Protocol,
                    format!("unreadable trades answer: {e}"),
                )
            })?;
            let resp = env.trades_sold_increment_get_response.ok_or_else(|| {
                ConnectorError::new(
                    &rctx,
                    ErrorKind::Protocol,
                    "answer has no trades_sold_increment_get_response",
                )
            })?;
            let trades = resp.trades.map(|t| t.trade).unwrap_or_default();
            let mut quarantine = Vec::new();
            for raw in &trades {
                match mapping::map_trade(raw.get(), &self.shop, &ctx.hasher) {
                    Ok(row) => builder.append(&row),
                    Err(rej) => quarantine.push(ctx.reject(
                        &self.id,
                        TableKind::Orders,
                        rej.key,
                        raw.get(),
                        rej.reason,
                    )),
                }
            }
            report.pages += 1;
            report.records += trades.len() as u64;
            if resp.total_results.is_some() {
                report.reported_total = resp.total_results;
            }
            let batch = (!builder.is_empty()).then(|| builder.finish());
            sink.page(NormalizedPage {
                batch,
                quarantine,
                records_in: trades.len(),
            })
            .await
            .map_err(PullError::Sink)?;
            if !resp.has_next.unwrap_or(false) {
                return Ok(report);
            }
        }
        Err(ConnectorError::new(
            &rctx,
            ErrorKind::Protocol,
            format!("gateway still had more pages after {MAX_PAGES_PER_WINDOW}"),
        )
        .into())
    }
}
