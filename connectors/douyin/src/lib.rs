//! Douyin shop (抖店 openapi-fxg) orders: `order.searchList`, one stream per
//! shop, windows of at most seven days by update time, 0-based pages read
//! from the last page backwards (the list is newest first, so an order
//! updated meanwhile never shifts an unread one past us), with `total`
//! checked against what was fetched. Signed HMAC-SHA256 (or MD5) over the
//! fixed pattern. A self-built app creates its shop tokens itself
//! (`/token/create`, `authorization_self`); tokens are refreshed through
//! `/token/refresh` and persisted. Optionally decrypts receiver phones
//! through `order.batchDecrypt` (at most 50 per call) and hashes them at
//! once.
//!
//! The longest window is our choice (seven days): no source we could read
//! states one for `update_time_start/end`.
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

pub use client::DyClient;
pub use sign::SignMethod;

/// The production gateway.
pub const DEFAULT_GATEWAY: &str = "https://openapi-fxg.jinritemai.com";
/// The API this connector pulls.
pub const SEARCH_API: &str = "order.searchList";
/// The receiver decrypt API.
pub const DECRYPT_API: &str = "order.batchDecrypt";
/// Most ciphertexts one decrypt call takes.
pub const DECRYPT_BATCH: usize = 50;
/// Longest window this connector asks for.
pub const MAX_WINDOW_MINUTES: i64 = 7 * 24 * 60;

/// One Douyin shop app and the shops authorized to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DouyinConfig {
    /// API gateway (`https://openapi-fxg.jinritemai.com`); the method's dots
    /// become the path.
    #[serde(default = "default_gateway")]
    pub gateway: String,
    /// The app key.
    pub app_key: String,
    /// The app secret (signs every call).
    pub app_secret: SecretRef,
    /// `hmac-sha256` or `md5`.
    #[serde(default)]
    pub sign_method: SignMethod,
    /// Requests per second for this app key, shared by all its shops; 0 = no limit.
    #[serde(default = "default_qps")]
    pub qps: u32,
    /// Requests per second per shop; 0 = no per-shop limit.
    #[serde(default)]
    pub shop_qps: u32,
    /// Orders per page (1–100).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Window length in minutes (at most seven days).
    #[serde(default = "default_window_minutes")]
    pub window_minutes: i64,
    /// Look-back overlap in minutes for late updates.
    #[serde(default = "default_lookback_minutes")]
    pub lookback_minutes: i64,
    /// How many days back the first pull starts.
    #[serde(default = "default_initial_days")]
    pub initial_days: i64,
    /// Decrypt receiver phones through `order.batchDecrypt` and hash them
    /// (uses the shop's decrypt quota).
    #[serde(default)]
    pub decrypt: bool,
    /// Decrypt calls per second per shop (their own budget); 0 = no limit.
    #[serde(default = "default_decrypt_qps")]
    pub decrypt_qps: u32,
    /// The shops.
    pub shops: Vec<DouyinShop>,
}

/// One authorized shop.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DouyinShop {
    /// The shop id used in the lake.
    pub id: String,
    /// Douyin's shop id, for a self-built app's `authorization_self` token
    /// (defaults to `id`); set `self_authorize = false` for a tool app.
    #[serde(default)]
    pub shop_id: Option<String>,
    /// Whether the app may create this shop's token itself
    /// (`grant_type=authorization_self`, self-built apps).
    #[serde(default = "default_true")]
    pub self_authorize: bool,
    /// An access token from an authorization (optional for self-built apps).
    #[serde(default)]
    pub access_token: Option<SecretRef>,
    /// Its refresh token.
    #[serde(default)]
    pub refresh_token: Option<SecretRef>,
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
fn default_decrypt_qps() -> u32 {
    2
}
fn default_true() -> bool {
    true
}

/// Build one orders stream per shop.
pub fn build_streams(
    cfg: &DouyinConfig,
    setup: &ConnectorSetup,
) -> Result<Vec<Arc<dyn Stream>>, ConfigError> {
    let app = cfg.app_key.as_str();
    ConfigError::check_range("douyin", app, "page_size", cfg.page_size, 1..=100, "")?;
    ConfigError::check_range(
        "douyin",
        app,
        "window_minutes",
        cfg.window_minutes,
        1..=MAX_WINDOW_MINUTES,
        " (at most seven days)",
    )?;
    ConfigError::check_range(
        "douyin",
        app,
        "initial_days",
        cfg.initial_days,
        1..=180,
        " (order.searchList reaches back about six months)",
    )?;
    let secret = ConfigError::secret("douyin", app, &cfg.app_secret)?;
    let app_limiter = setup
        .limiters
        .get(&format!("douyin/{app}"), (cfg.qps > 0).then_some(cfg.qps));
    let base = DyClient::new(
        ApiClient::new(app_limiter.iter().cloned().collect(), setup.policy),
        &cfg.gateway,
        app,
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
            let configured = match &shop.access_token {
                Some(a) => Some(TokenSet::configured(
                    ConfigError::secret("douyin", app, a)?,
                    match &shop.refresh_token {
                        Some(r) => Some(ConfigError::secret("douyin", app, r)?),
                        None => None,
                    },
                )),
                None if shop.self_authorize => None,
                None => {
                    return Err(ConfigError::new(
                        "douyin",
                        app,
                        format!(
                            "shop {}: needs an access_token (or self_authorize = true for a self-built app)",
                            shop.id
                        ),
                    ))
                }
            };
            let token = ShopToken::open(
                &setup.tokens,
                &format!("douyin/{app}/{}", shop.id),
                configured,
            )
            .map_err(|e| {
                ConfigError::new("douyin", app, format!("shop {}: token store: {e}", shop.id))
            })?;
            let shop_limiter = setup.limiters.get(
                &format!("douyin/{app}/{}", shop.id),
                (cfg.shop_qps > 0).then_some(cfg.shop_qps),
            );
            let limiters: Vec<_> = app_limiter
                .iter()
                .chain(shop_limiter.iter())
                .cloned()
                .collect();
            let client = base.with_api(ApiClient::new(limiters.clone(), setup.policy));
            let decryptor = cfg.decrypt.then(|| {
                let own = setup.limiters.get(
                    &format!("douyin/{app}/{}/decrypt", shop.id),
                    (cfg.decrypt_qps > 0).then_some(cfg.decrypt_qps),
                );
                base.with_api(ApiClient::new(
                    limiters.iter().chain(own.iter()).cloned().collect(),
                    setup.policy,
                ))
            });
            Ok(Arc::new(DouyinOrders {
                id: StreamId::new("douyin", "orders", &shop.id),
                shop: shop.id.clone(),
                self_shop_id: shop
                    .self_authorize
                    .then(|| shop.shop_id.clone().unwrap_or_else(|| shop.id.clone())),
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
pub struct DouyinOrders {
    id: StreamId,
    shop: String,
    self_shop_id: Option<String>,
    token: Arc<ShopToken>,
    client: DyClient,
    decryptor: Option<DyClient>,
    page_size: u32,
    plan: WindowPlan,
}

#[derive(Deserialize)]
struct ListEnvelope<'a> {
    #[serde(borrow)]
    data: Option<ListData<'a>>,
}

#[derive(Deserialize)]
struct ListData<'a> {
    total: Option<u64>,
    #[serde(borrow, default)]
    shop_order_list: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct DecryptEnvelope {
    data: Option<DecryptData>,
}

#[derive(Deserialize)]
struct DecryptData {
    #[serde(default)]
    decrypt_infos: Vec<Decrypted>,
}

#[derive(Deserialize)]
struct Decrypted {
    auth_id: Option<String>,
    cipher_text: Option<String>,
    decrypt_text: Option<String>,
    err_no: Option<i64>,
}

/// A guard against a window too full to page through.
const MAX_PAGES: u64 = 10_000;

#[async_trait]
impl Stream for DouyinOrders {
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
        let rctx = RequestContext::new("douyin", Some(&self.shop), SEARCH_API);
        if window.len() > Duration::minutes(MAX_WINDOW_MINUTES) {
            return Err(ConnectorError::new(
                &rctx,
                ErrorKind::InvalidRequest,
                "windows longer than seven days are not asked for",
            )
            .into());
        }
        // Inclusive second bounds: [start, end - 1 s] (one second at least).
        let start = window.start.timestamp();
        let end = (window.end.timestamp() - 1).max(start);
        let mut report = PullReport::default();
        let mut seen = HashSet::new();
        let first = self.fetch(&rctx, start, end, 0).await?;
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
        for page in (0..pages).rev() {
            let body = self.fetch(&rctx, start, end, page).await?;
            let (_, orders) = Self::parse(&rctx, &body)?;
            self.emit(&orders, ctx, &mut seen, &mut report, sink)
                .await?;
        }
        Ok(report)
    }
}

impl DouyinOrders {
    async fn fetch(
        &self,
        rctx: &RequestContext,
        start: i64,
        end: i64,
        page: u64,
    ) -> Result<quanyu_connector_sdk::Bytes, ConnectorError> {
        let param = serde_json::json!({
            "page": page,
            "size": self.page_size,
            "update_time_start": start,
            "update_time_end": end,
            "order_by": "update_time",
            "order_asc": false,
        });
        self.client
            .call(
                rctx,
                SEARCH_API,
                &self.token,
                self.self_shop_id.as_deref(),
                &param,
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
        let data = env
            .data
            .ok_or_else(|| ConnectorError::new(rctx, ErrorKind::Protocol, "answer has no data"))?;
        let total = data
            .total
            .ok_or_else(|| ConnectorError::new(rctx, ErrorKind::Protocol, "answer has no total"))?;
        Ok((total, data.shop_order_list.unwrap_or_default()))
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
                        rows.push((m.row, m.encrypted_tel));
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
    /// batches of at most 50, and hash them at once.
    async fn decrypt(
        &self,
        client: &DyClient,
        rows: &mut [(OrderRow, Option<String>)],
        ctx: &PullContext,
    ) -> Result<(), ConnectorError> {
        let rctx = RequestContext::new("douyin", Some(&self.shop), DECRYPT_API);
        let wanted: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i].0.phone_hash.is_none() && rows[i].1.is_some())
            .collect();
        for chunk in wanted.chunks(DECRYPT_BATCH) {
            let list: Vec<serde_json::Value> = chunk
                .iter()
                .map(|&i| {
                    serde_json::json!({
                        "auth_id": rows[i].0.order_id,
                        "cipher_text": rows[i].1,
                    })
                })
                .collect();
            let param = serde_json::json!({ "cipher_infos": list });
            let body = client
                .call(
                    &rctx,
                    DECRYPT_API,
                    &self.token,
                    self.self_shop_id.as_deref(),
                    &param,
                )
                .await?;
            let env: DecryptEnvelope = serde_json::from_slice(&body).map_err(|e| {
                ConnectorError::new(
                    &rctx,
                    ErrorKind::Protocol,
                    format!("unreadable decrypt answer: {e}"),
                )
            })?;
            let results = env.data.map(|d| d.decrypt_infos).unwrap_or_default();
            for &i in chunk {
                let id = &rows[i].0.order_id;
                let cipher = rows[i].1.as_deref();
                let phone = results
                    .iter()
                    .find(|r| {
                        r.auth_id.as_deref() == Some(id.as_str())
                            && r.cipher_text.as_deref() == cipher
                    })
                    .filter(|r| r.err_no.is_none_or(|c| c == 0))
                    .and_then(|r| r.decrypt_text.as_deref())
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
