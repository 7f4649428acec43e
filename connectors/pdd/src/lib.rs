//! Pinduoduo (拼多多) orders: `pdd.order.number.list.increment.get`, one
//! stream per shop, windows of at most 30 minutes by update time, 1-based
//! pages read from the last page backwards (the list is newest first, so an
//! order updated meanwhile never shifts an unread one past us), with
//! `total_count` checked against what was fetched. Signed
//! MD5(client_secret + Σ sorted key+value + client_secret). Shop tokens
//! are refreshed through `pdd.pop.auth.token.refresh` and persisted.
//! Optionally decrypts receiver phones through `pdd.open.decrypt.batch`
//! (at most 100 per call, once per 10 seconds outside 多多云 by default)
//! and hashes them at once. Pinduoduo exposes no buyer id: an order joins
//! other records only through its phone or a card naming it.
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
use quanyu_schemas::{normalize_phone, OrderRow, OrdersBuilder, TableKind};
use serde::Deserialize;
use serde_json::value::RawValue;

pub use client::PddClient;

/// The production router.
pub const DEFAULT_ROUTER: &str = "https://gw-api.pinduoduo.com/api/router";
/// The API this connector pulls.
pub const INCREMENT_API: &str = "pdd.order.number.list.increment.get";
/// The receiver decrypt API.
pub const DECRYPT_API: &str = "pdd.open.decrypt.batch";
/// Most ciphertexts one decrypt call takes.
pub const DECRYPT_BATCH: usize = 100;
/// Longest window the increment API takes.
pub const MAX_WINDOW_MINUTES: i64 = 30;

/// One Pinduoduo app (client_id) and the shops authorized to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PddConfig {
    /// The router URL (`https://gw-api.pinduoduo.com/api/router`).
    #[serde(default = "default_router")]
    pub router: String,
    /// The app's client_id.
    pub client_id: String,
    /// The app's client_secret.
    pub client_secret: SecretRef,
    /// Requests per second for this client_id, shared by all its shops; 0 = no limit.
    #[serde(default = "default_qps")]
    pub qps: u32,
    /// Requests per second per shop; 0 = no per-shop limit.
    #[serde(default)]
    pub shop_qps: u32,
    /// Orders per page (1–100).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Window length in minutes (the API allows at most 30).
    #[serde(default = "default_window_minutes")]
    pub window_minutes: i64,
    /// Look-back overlap in minutes for late updates.
    #[serde(default = "default_lookback_minutes")]
    pub lookback_minutes: i64,
    /// How many days back the first pull starts (each day is 48 windows).
    #[serde(default = "default_initial_days")]
    pub initial_days: i64,
    /// Decrypt receiver phones through `pdd.open.decrypt.batch` and hash
    /// them (uses the shop's decrypt quota).
    #[serde(default)]
    pub decrypt: bool,
    /// Seconds between decrypt calls per shop: Pinduoduo allows one call
    /// per 10 seconds outside 多多云; 0 = no limit.
    #[serde(default = "default_decrypt_interval_secs")]
    pub decrypt_interval_secs: u64,
    /// The shops, each with its own tokens.
    pub shops: Vec<PddShop>,
}

/// One authorized shop (mall).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PddShop {
    /// The shop id used in the lake (the mall id or a name of your choice).
    pub id: String,
    /// The shop's access token (from `pdd.pop.auth.token.create`).
    pub access_token: SecretRef,
    /// The shop's refresh token (needed to refresh an expired access token).
    #[serde(default)]
    pub refresh_token: Option<SecretRef>,
}

fn default_router() -> String {
    DEFAULT_ROUTER.into()
}
fn default_qps() -> u32 {
    10
}
fn default_page_size() -> u32 {
    100
}
fn default_window_minutes() -> i64 {
    MAX_WINDOW_MINUTES
}
fn default_lookback_minutes() -> i64 {
    30
}
fn default_initial_days() -> i64 {
    7
}
fn default_decrypt_interval_secs() -> u64 {
    10
}

/// Build one orders stream per shop.
pub fn build_streams(
    cfg: &PddConfig,
    setup: &ConnectorSetup,
) -> Result<Vec<Arc<dyn Stream>>, ConfigError> {
    let app = cfg.client_id.as_str();
    ConfigError::check_range("pdd", app, "page_size", cfg.page_size, 1..=100, "")?;
    ConfigError::check_range(
        "pdd",
        app,
        "window_minutes",
        cfg.window_minutes,
        1..=MAX_WINDOW_MINUTES,
        " (Pinduoduo allows 30 minutes)",
    )?;
    ConfigError::check_range(
        "pdd",
        app,
        "initial_days",
        cfg.initial_days,
        1..=90,
        " (Pinduoduo lists updates of the last 90 days)",
    )?;
    let secret = ConfigError::secret("pdd", app, &cfg.client_secret)?;
    let app_limiter = setup
        .limiters
        .get(&format!("pdd/{app}"), (cfg.qps > 0).then_some(cfg.qps));
    let base = PddClient::new(
        ApiClient::new(app_limiter.iter().cloned().collect(), setup.policy),
        &cfg.router,
        app,
        secret,
    );
    let plan = WindowPlan {
        max_window: Duration::minutes(cfg.window_minutes),
        lookback: Duration::minutes(cfg.lookback_minutes.max(0)),
        initial_start: Utc::now() - Duration::days(cfg.initial_days),
        // The increment API's data settles about three minutes behind.
        end_lag: Duration::minutes(3),
    };
    cfg.shops
        .iter()
        .map(|shop| {
            let access = ConfigError::secret("pdd", app, &shop.access_token)?;
            let refresh = match &shop.refresh_token {
                Some(r) => Some(ConfigError::secret("pdd", app, r)?),
                None => None,
            };
            let token = ShopToken::open(
                &setup.tokens,
                &format!("pdd/{app}/{}", shop.id),
                Some(TokenSet::configured(access, refresh)),
            )
            .map_err(|e| {
                ConfigError::new("pdd", app, format!("shop {}: token store: {e}", shop.id))
            })?;
            let shop_limiter = setup.limiters.get(
                &format!("pdd/{app}/{}", shop.id),
                (cfg.shop_qps > 0).then_some(cfg.shop_qps),
            );
            let limiters: Vec<_> = app_limiter
                .iter()
                .chain(shop_limiter.iter())
                .cloned()
                .collect();
            let client = base.with_api(ApiClient::new(limiters.clone(), setup.policy));
            let decryptor = cfg.decrypt.then(|| {
                let own = (cfg.decrypt_interval_secs > 0)
                    .then(|| {
                        setup.limiters.get_every(
                            &format!("pdd/{app}/{}/decrypt", shop.id),
                            std::time::Duration::from_secs(cfg.decrypt_interval_secs),
                        )
                    })
                    .flatten();
                base.with_api(ApiClient::new(
                    limiters.iter().chain(own.iter()).cloned().collect(),
                    setup.policy,
                ))
            });
            Ok(Arc::new(PddOrders {
                id: StreamId::new("pdd", "orders", &shop.id),
                shop: shop.id.clone(),
                token: Arc::new(token),
                client,
                decryptor,
                page_size: cfg.page_size,
                plan,
            }) as Arc<dyn Stream>)
        })
        .collect()
}

/// Orders of one shop.
pub struct PddOrders {
    id: StreamId,
    shop: String,
    token: Arc<ShopToken>,
    client: PddClient,
    decryptor: Option<PddClient>,
    page_size: u32,
    plan: WindowPlan,
}

#[derive(Deserialize)]
struct ListEnvelope<'a> {
    #[serde(borrow)]
    order_sn_increment_get_response: Option<ListData<'a>>,
}

#[derive(Deserialize)]
struct ListData<'a> {
    total_count: Option<u64>,
    #[serde(borrow, default)]
    order_sn_list: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct DecryptEnvelope {
    open_decrypt_batch_response: Option<DecryptData>,
}

#[derive(Deserialize)]
struct DecryptData {
    #[serde(default)]
    data_decrypt_list: Vec<Decrypted>,
}

#[derive(Deserialize)]
struct Decrypted {
    data_tag: Option<String>,
    encrypted_data: Option<String>,
    decrypted_data: Option<String>,
    error_code: Option<i64>,
}

/// A guard against a window too full to page through.
const MAX_PAGES: u64 = 10_000;

#[async_trait]
impl Stream for PddOrders {
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
        let (a, b) = self.client.api().stats();
        let (c, d) = self
            .decryptor
            .as_ref()
            .map(|d| d.api().stats())
            .unwrap_or((0, 0));
        (a + c, b + d)
    }

    async fn pull(
        &self,
        window: Window,
        ctx: &PullContext,
        sink: &mut dyn PageSink,
    ) -> Result<PullReport, PullError> {
        let rctx = RequestContext::new("pdd", Some(&self.shop), INCREMENT_API);
        if window.len() > Duration::minutes(MAX_WINDOW_MINUTES) {
            return Err(ConnectorError::new(
                &rctx,
                ErrorKind::InvalidRequest,
                "windows longer than 30 minutes are refused by Pinduoduo",
            )
            .into());
        }
        // Inclusive second bounds: [start, end - 1 s] (one second at least,
        // for a window shorter than a second).
        let start = window.start.timestamp();
        let end = (window.end.timestamp() - 1).max(start);
        let mut report = PullReport::default();
        let mut seen = HashSet::new();
        let first = self.fetch(&rctx, start, end, 1).await?;
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
            let body = self.fetch(&rctx, start, end, page).await?;
            let (_, orders) = Self::parse(&rctx, &body)?;
            self.emit(&orders, ctx, &mut seen, &mut report, sink)
                .await?;
        }
        Ok(report)
    }
}

impl PddOrders {
    async fn fetch(
        &self,
        rctx: &RequestContext,
        start: i64,
        end: i64,
        page: u64,
    ) -> Result<quanyu_connector_sdk::Bytes, ConnectorError> {
        let (start, end, page, size) = (
            start.to_string(),
            end.to_string(),
            page.to_string(),
            self.page_size.to_string(),
        );
        self.client
            .call(
                rctx,
                INCREMENT_API,
                &self.token,
                &[
                    ("start_updated_at", &start),
                    ("end_updated_at", &end),
                    ("is_lucky_flag", "0"),
                    ("order_status", "5"),
                    ("refund_status", "5"),
                    ("page", &page),
                    ("page_size", &size),
                ],
            )
            .await
    }

    fn parse<'a>(
        rctx: &RequestContext,
        body: &'a [u8],
    ) -> Result<(u64, Vec<&'a RawValue>), ConnectorError> {
        let env: ListEnvelope = serde_json::from_slice(body).map_err(|e| {
            ConnectorError::new(
                rctx,
                ErrorKind::Protocol,
                format!("unreadable order list answer: {e}"),
            )
        })?;
        let data = env.order_sn_increment_get_response.ok_or_else(|| {
            ConnectorError::new(
                rctx,
                ErrorKind::Protocol,
                "answer has no order_sn_increment_get_response",
            )
        })?;
        let orders = data.order_sn_list.unwrap_or_default();
        let total = data.total_count.ok_or_else(|| {
            ConnectorError::new(rctx, ErrorKind::Protocol, "answer has no total_count")
        })?;
        Ok((total, orders))
    }

    /// Map, decrypt and hand over one page, skipping orders already seen in
    /// this window.
    async fn emit(
        &self,
        orders: &[&RawValue],
        ctx: &PullContext,
        seen: &mut HashSet<String>,
        report: &mut PullReport,
        sink: &mut dyn PageSink,
    ) -> Result<(), PullError> {
        let mut rows = Vec::with_capacity(orders.len());
        let mut quarantine = Vec::new();
        let mut records_in = 0;
        for raw in orders {
            match mapping::map_order_with_cipher(raw.get(), &self.shop, &ctx.hasher) {
                Ok(m) => {
                    if seen.insert(m.row.order_id.clone()) {
                        rows.push((m.row, m.encrypted_phone));
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
                    ))
                }
            }
        }
        if let Some(d) = &self.decryptor {
            self.decrypt(d, &mut rows, ctx).await?;
        }
        let mut builder = OrdersBuilder::new(&ctx.run_id, ctx.ingested_at);
        for (row, _) in &rows {
            builder.append(row);
        }
        report.pages += 1;
        report.records += records_in as u64;
        let batch = (!builder.is_empty()).then(|| builder.finish());
        sink.page(NormalizedPage {
            batch,
            quarantine,
            records_in,
        })
        .await
        .map_err(PullError::Sink)
    }

    /// Decrypt the phones of `rows` that have a ciphertext and no hash, in
    /// batches of at most 100, and hash them at once.
    async fn decrypt(
        &self,
        client: &PddClient,
        rows: &mut [(OrderRow, Option<String>)],
        ctx: &PullContext,
    ) -> Result<(), ConnectorError> {
        let rctx = RequestContext::new("pdd", Some(&self.shop), DECRYPT_API);
        let wanted: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i].0.phone_hash.is_none() && rows[i].1.is_some())
            .collect();
        for chunk in wanted.chunks(DECRYPT_BATCH) {
            let list: Vec<serde_json::Value> = chunk
                .iter()
                .map(|&i| {
                    serde_json::json!({
                        "data_tag": rows[i].0.order_id,
                        "encrypted_data": rows[i].1,
                    })
                })
                .collect();
            let data_list = serde_json::Value::Array(list).to_string();
            let body = client
                .call(
                    &rctx,
                    DECRYPT_API,
                    &self.token,
                    &[("data_list", &data_list)],
                )
                .await?;
            let env: DecryptEnvelope = serde_json::from_slice(&body).map_err(|e| {
                ConnectorError::new(
                    &rctx,
                    ErrorKind::Protocol,
                    format!("unreadable decrypt answer: {e}"),
                )
            })?;
            let results = env
                .open_decrypt_batch_response
                .map(|d| d.data_decrypt_list)
                .unwrap_or_default();
            for &i in chunk {
                let id = &rows[i].0.order_id;
                let cipher = rows[i].1.as_deref();
                let phone = results
                    .iter()
                    .find(|r| {
                        r.data_tag.as_deref() == Some(id.as_str())
                            && r.encrypted_data.as_deref() == cipher
                    })
                    .filter(|r| r.error_code.is_none_or(|c| c == 0))
                    .and_then(|r| r.decrypted_data.as_deref())
                    .map(normalize_phone);
                match phone {
                    Some(Ok(p)) => {
                        rows[i].0.phone_hash = Some(ctx.hasher.phone(&p));
                        rows[i].0.phone_masked = Some(p.masked());
                    }
                    _ => tracing::warn!(
                        shop = %self.shop,
                        order = %id,
                        "decrypt returned no usable mobile for this order"
                    ),
                }
            }
        }
        Ok(())
    }
}
