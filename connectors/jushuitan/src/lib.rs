//! Jushuitan (聚水潭) ERP orders: `orders/single/query` by modified time,
//! windows of at most 7 days, 1-based pages read from the last page
//! backwards (the list is newest first, so an order modified meanwhile never
//! shifts an unread one past us), `data_count` checked against what was
//! fetched. One ERP account (company) has one access token, refreshed
//! through `/openWeb/auth/refreshToken` and persisted; each configured ERP
//! shop is its own stream sharing it. The ERP has no decrypt API: it
//! returns receiver phones as its source channel gave them (its own
//! mini-program shops: in clear, hashed at once).
//!
//! Not built: the `start_ts` row-version cursor (an alternative to modified
//! windows); modified windows with a look-back cover the same changes.
#![warn(missing_docs)]

pub mod client;
pub mod mapping;
pub mod sandbox;
pub mod sign;

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use quanyu_connector_sdk::{
    ApiClient, ConfigError, ConnectorError, ConnectorSetup, CursorMode, ErrorKind, NormalizedPage,
    PageSink, PullContext, PullError, PullReport, RequestContext, SecretRef, ShopToken, Stream,
    StreamId, TokenSet, Window, WindowPlan,
};
use quanyu_schemas::time::format_beijing;
use quanyu_schemas::{OrdersBuilder, TableKind};
use serde::Deserialize;
use serde_json::value::RawValue;

pub use client::JstClient;

/// The production gateway.
pub const DEFAULT_GATEWAY: &str = "https://openapi.jushuitan.com";
/// The order query path.
pub const ORDERS_PATH: &str = "/open/orders/single/query";

/// One Jushuitan app key and the ERP account (company) it is authorized for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JushuitanConfig {
    /// Gateway URL.
    #[serde(default = "default_gateway")]
    pub gateway: String,
    /// The app key.
    pub app_key: String,
    /// The app secret.
    pub app_secret: SecretRef,
    /// The company's access token.
    pub access_token: SecretRef,
    /// The company's refresh token.
    #[serde(default)]
    pub refresh_token: Option<SecretRef>,
    /// Requests per second for this app key, shared by every shop; 0 = no limit.
    #[serde(default = "default_qps")]
    pub qps: u32,
    /// Orders per page (1–100).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Window length in minutes (at most 7 days).
    #[serde(default = "default_window_minutes")]
    pub window_minutes: i64,
    /// Look-back overlap in minutes.
    #[serde(default = "default_lookback_minutes")]
    pub lookback_minutes: i64,
    /// How many days back the first pull starts.
    #[serde(default = "default_initial_days")]
    pub initial_days: i64,
    /// The ERP shops to pull, each a stream.
    pub shops: Vec<JushuitanShop>,
}

/// One ERP shop.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JushuitanShop {
    /// The shop id used in the lake.
    pub id: String,
    /// The ERP's numeric `shop_id`.
    pub shop_id: i64,
}

fn default_gateway() -> String {
    DEFAULT_GATEWAY.into()
}
fn default_qps() -> u32 {
    5
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

/// Build one orders stream per ERP shop.
pub fn build_streams(
    cfg: &JushuitanConfig,
    setup: &ConnectorSetup,
) -> Result<Vec<Arc<dyn Stream>>, ConfigError> {
    let app = cfg.app_key.as_str();
    ConfigError::check_range("jushuitan", app, "page_size", cfg.page_size, 1..=100, "")?;
    ConfigError::check_range(
        "jushuitan",
        app,
        "window_minutes",
        cfg.window_minutes,
        1..=7 * 24 * 60,
        " (Jushuitan allows 7 days)",
    )?;
    let secret = ConfigError::secret("jushuitan", app, &cfg.app_secret)?;
    let access = ConfigError::secret("jushuitan", app, &cfg.access_token)?;
    let refresh = match &cfg.refresh_token {
        Some(r) => Some(ConfigError::secret("jushuitan", app, r)?),
        None => None,
    };
    let token = Arc::new(
        ShopToken::open(
            &setup.tokens,
            &format!("jushuitan/{app}/company"),
            Some(TokenSet::configured(access, refresh)),
        )
        .map_err(|e| ConfigError::new("jushuitan", app, format!("token store: {e}")))?,
    );
    let limiter = setup.limiters.get(
        &format!("jushuitan/{app}"),
        (cfg.qps > 0).then_some(cfg.qps),
    );
    let client = JstClient::new(
        ApiClient::new(limiter.into_iter().collect(), setup.policy),
        &cfg.gateway,
        app,
        secret,
    );
    let plan = WindowPlan {
        max_window: Duration::minutes(cfg.window_minutes),
        lookback: Duration::minutes(cfg.lookback_minutes.max(0)),
        initial_start: Utc::now() - Duration::days(cfg.initial_days.max(1)),
        end_lag: Duration::seconds(60),
    };
    Ok(cfg
        .shops
        .iter()
        .map(|s| {
            Arc::new(JushuitanOrders {
                id: StreamId::new("jushuitan", "orders", &s.id),
                shop: s.clone(),
                client: client.clone(),
                token: token.clone(),
                page_size: cfg.page_size,
                plan,
            }) as Arc<dyn Stream>
        })
        .collect())
}

/// Orders of one ERP shop.
pub struct JushuitanOrders {
    id: StreamId,
    shop: JushuitanShop,
    client: JstClient,
    token: Arc<ShopToken>,
    page_size: u32,
    plan: WindowPlan,
}

#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow)]
    data: Option<Data<'a>>,
}

#[derive(Deserialize)]
struct Data<'a> {
    data_count: Option<u64>,
    #[serde(borrow, default)]
    orders: Vec<&'a RawValue>,
}

/// A guard against a gateway that never runs out of pages.
const MAX_PAGES: u64 = 100_000;

impl JushuitanOrders {
    async fn fetch(
        &self,
        rctx: &RequestContext,
        start: &str,
        end: &str,
        page: u64,
    ) -> Result<quanyu_connector_sdk::Bytes, ConnectorError> {
        let biz = serde_json::json!({
            "shop_id": self.shop.shop_id,
            "modified_begin": start,
            "modified_end": end,
            "date_type": 0,
            "page_index": page,
            "page_size": self.page_size,
        })
        .to_string();
        self.client.call(rctx, ORDERS_PATH, &self.token, &biz).await
    }

    fn parse<'a>(
        rctx: &RequestContext,
        body: &'a [u8],
    ) -> Result<(u64, Vec<&'a RawValue>), ConnectorError> {
        let a: Answer = serde_json::from_slice(body).map_err(|e| {
            ConnectorError::new(
                rctx,
                ErrorKind::Protocol,
                format!("unreadable orders answer: {e}"),
            )
        })?;
        let d = a
            .data
            .ok_or_else(|| ConnectorError::new(rctx, ErrorKind::Protocol, "answer has no data"))?;
        let total = d.data_count.ok_or_else(|| {
            ConnectorError::new(rctx, ErrorKind::Protocol, "answer has no data_count")
        })?;
        Ok((total, d.orders))
    }

    async fn emit(
        &self,
        orders: &[&RawValue],
        ctx: &PullContext,
        seen: &mut HashSet<String>,
        report: &mut PullReport,
        sink: &mut dyn PageSink,
    ) -> Result<(), PullError> {
        let mut b = OrdersBuilder::new(&ctx.run_id, ctx.ingested_at);
        let mut quarantine = Vec::new();
        let mut records_in = 0;
        for raw in orders {
            match mapping::map_order(raw.get(), &self.shop.id, &ctx.hasher) {
                Ok(row) => {
                    if seen.insert(row.order_id.clone()) {
                        b.append(&row);
                        records_in += 1;
                    }
                }
                Err(rej) => {
                    if rej.key.as_ref().is_some_and(|k| !seen.insert(k.clone())) {
                        continue;
                    }
                    records_in += 1;
                    quarantine.push(ctx.reject(
                        &self.id,
                        TableKind::Orders,
                        rej.key,
                        raw.get(),
                        rej.reason,
                    ));
                }
            }
        }
        report.pages += 1;
        report.records += records_in as u64;
        let batch = (!b.is_empty()).then(|| b.finish());
        sink.page(NormalizedPage {
            batch,
            quarantine,
            records_in,
        })
        .await
        .map_err(PullError::Sink)
    }
}

#[async_trait]
impl Stream for JushuitanOrders {
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
        let rctx = RequestContext::new("jushuitan", Some(&self.shop.id), "orders/single/query");
        // Inclusive bounds with one-second resolution: [start, end - 1s].
        let start = format_beijing(window.start);
        let end = format_beijing(window.end - Duration::seconds(1));
        let mut report = PullReport::default();
        let mut seen = HashSet::new();
        let first = self.fetch(&rctx, &start, &end, 1).await?;
        let (total, orders) = Self::parse(&rctx, &first)?;
        report.reported_total = Some(total);
        let pages = total.div_ceil(u64::from(self.page_size));
        if pages > MAX_PAGES {
            return Err(ConnectorError::new(
                &rctx,
                ErrorKind::InvalidRequest,
                format!("{total} orders in one window: use shorter windows"),
            )
            .into());
        }
        if pages <= 1 {
            self.emit(&orders, ctx, &mut seen, &mut report, sink)
                .await?;
            return Ok(report);
        }
        for page in (1..=pages).rev() {
            let body = self.fetch(&rctx, &start, &end, page).await?;
            let (_, orders) = Self::parse(&rctx, &body)?;
            self.emit(&orders, ctx, &mut seen, &mut report, sink)
                .await?;
        }
        Ok(report)
    }
}
