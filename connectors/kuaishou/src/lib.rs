//! Kuaishou shop (快手电商 kwaixiaodian) orders: `open.order.cursor.list`,
//! one stream per shop, windows of at most seven days by update time, read
//! with the platform's cursor until it answers `"nomore"`, signed with the
//! app's signSecret (MD5 or HMAC_SHA256). Shop tokens are refreshed through
//! `/oauth2/refresh_token` and persisted. Optionally decrypts receiver
//! phones through `open.order.decrypt.batch` and hashes them at once.
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

pub use client::KsClient;
pub use sign::SignMethod;

/// The production gateway (also the OAuth host).
pub const DEFAULT_GATEWAY: &str = "https://openapi.kwaixiaodian.com";
/// The API this connector pulls.
pub const CURSOR_LIST_API: &str = "open.order.cursor.list";
/// The receiver decrypt API.
pub const DECRYPT_API: &str = "open.order.decrypt.batch";
/// Most ciphertexts one decrypt call takes.
pub const DECRYPT_BATCH: usize = 100;
/// The cursor value that ends a listing.
pub const NO_MORE: &str = "nomore";
/// Longest window the list API takes.
pub const MAX_WINDOW_MINUTES: i64 = 7 * 24 * 60;

/// One Kuaishou app and the shops authorized to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KuaishouConfig {
    /// API gateway (`https://openapi.kwaixiaodian.com`); the method's dots
    /// become the path.
    #[serde(default = "default_gateway")]
    pub gateway: String,
    /// OAuth base for `/oauth2/refresh_token` (the gateway host by default).
    #[serde(default)]
    pub oauth_base: Option<String>,
    /// The app key (`appkey` / `app_id`).
    pub app_key: String,
    /// The app secret, used only for the OAuth token refresh.
    pub app_secret: SecretRef,
    /// The signSecret, used to sign API calls (distinct from the app secret).
    pub sign_secret: SecretRef,
    /// `MD5` or `HMAC_SHA256`.
    #[serde(default)]
    pub sign_method: SignMethod,
    /// Requests per second for this app key, shared by all its shops; 0 = no limit.
    #[serde(default = "default_qps")]
    pub qps: u32,
    /// Requests per second per shop; 0 = no per-shop limit.
    #[serde(default)]
    pub shop_qps: u32,
    /// Orders per page (1–50).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Window length in minutes (the API allows at most seven days).
    #[serde(default = "default_window_minutes")]
    pub window_minutes: i64,
    /// Look-back overlap in minutes for late updates.
    #[serde(default = "default_lookback_minutes")]
    pub lookback_minutes: i64,
    /// How many days back the first pull starts (update time ≤ 90 days).
    #[serde(default = "default_initial_days")]
    pub initial_days: i64,
    /// Decrypt receiver phones through `open.order.decrypt.batch` and hash
    /// them (uses the merchant's decrypt quota).
    #[serde(default)]
    pub decrypt: bool,
    /// Decrypt calls per second per shop (their own budget); 0 = no limit.
    #[serde(default = "default_decrypt_qps")]
    pub decrypt_qps: u32,
    /// The shops, each with its own tokens.
    pub shops: Vec<KuaishouShop>,
}

/// One authorized shop.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KuaishouShop {
    /// The shop id used in the lake.
    pub id: String,
    /// The shop's access token (from the authorization).
    pub access_token: SecretRef,
    /// The shop's refresh token (needed to refresh an expired access token).
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
    50
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

/// Build one orders stream per shop.
pub fn build_streams(
    cfg: &KuaishouConfig,
    setup: &ConnectorSetup,
) -> Result<Vec<Arc<dyn Stream>>, ConfigError> {
    let app = cfg.app_key.as_str();
    ConfigError::check_range("kuaishou", app, "page_size", cfg.page_size, 1..=50, "")?;
    ConfigError::check_range(
        "kuaishou",
        app,
        "window_minutes",
        cfg.window_minutes,
        1..=MAX_WINDOW_MINUTES,
        " (Kuaishou allows seven days)",
    )?;
    ConfigError::check_range(
        "kuaishou",
        app,
        "initial_days",
        cfg.initial_days,
        1..=90,
        " (Kuaishou lists updates of the last 90 days)",
    )?;
    let app_secret = ConfigError::secret("kuaishou", app, &cfg.app_secret)?;
    let sign_secret = ConfigError::secret("kuaishou", app, &cfg.sign_secret)?;
    let app_limiter = setup
        .limiters
        .get(&format!("kuaishou/{app}"), (cfg.qps > 0).then_some(cfg.qps));
    let base = KsClient::new(
        ApiClient::new(app_limiter.iter().cloned().collect(), setup.policy),
        &cfg.gateway,
        cfg.oauth_base.as_deref().unwrap_or(&cfg.gateway),
        app,
        app_secret,
        sign_secret,
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
            let access = ConfigError::secret("kuaishou", app, &shop.access_token)?;
            let refresh = match &shop.refresh_token {
                Some(r) => Some(ConfigError::secret("kuaishou", app, r)?),
                None => None,
            };
            let token = ShopToken::open(
                &setup.tokens,
                &format!("kuaishou/{app}/{}", shop.id),
                Some(TokenSet::configured(access, refresh)),
            )
            .map_err(|e| {
                ConfigError::new(
                    "kuaishou",
                    app,
                    format!("shop {}: token store: {e}", shop.id),
                )
            })?;
            let shop_limiter = setup.limiters.get(
                &format!("kuaishou/{app}/{}", shop.id),
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
                    &format!("kuaishou/{app}/{}/decrypt", shop.id),
                    (cfg.decrypt_qps > 0).then_some(cfg.decrypt_qps),
                );
                base.with_api(ApiClient::new(
                    limiters.iter().chain(own.iter()).cloned().collect(),
                    setup.policy,
                ))
            });
            Ok(Arc::new(KuaishouOrders {
                id: StreamId::new("kuaishou", "orders", &shop.id),
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
pub struct KuaishouOrders {
    id: StreamId,
    shop: String,
    token: Arc<ShopToken>,
    client: KsClient,
    decryptor: Option<KsClient>,
    page_size: u32,
    plan: WindowPlan,
}

#[derive(Deserialize)]
struct ListEnvelope<'a> {
    #[serde(borrow)]
    data: Option<ListData<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListData<'a> {
    cursor: Option<String>,
    #[serde(borrow, default)]
    order_list: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct DecryptEnvelope {
    data: Option<DecryptData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DecryptData {
    #[serde(default, alias = "decryptResult", alias = "batchDecryptList")]
    decrypt_list: Vec<Decrypted>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Decrypted {
    biz_id: Option<serde_json::Value>,
    encrypted_data: Option<String>,
    decrypted_data: Option<String>,
    error_code: Option<i64>,
}

/// A guard against a gateway whose cursor never ends.
const MAX_PAGES_PER_WINDOW: u64 = 100_000;

#[async_trait]
impl Stream for KuaishouOrders {
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
        let rctx = RequestContext::new("kuaishou", Some(&self.shop), CURSOR_LIST_API);
        if window.len() > Duration::minutes(MAX_WINDOW_MINUTES) {
            return Err(ConnectorError::new(
                &rctx,
                ErrorKind::InvalidRequest,
                "windows longer than seven days are refused by Kuaishou",
            )
            .into());
        }
        // Inclusive millisecond bounds: [start, end - 1 ms].
        let begin = window.start.timestamp_millis();
        let end = window.end.timestamp_millis() - 1;
        let mut report = PullReport::default();
        let mut seen = HashSet::new();
        let mut cursor = String::new();
        let mut pages = 0u64;
        loop {
            pages += 1;
            if pages > MAX_PAGES_PER_WINDOW {
                return Err(ConnectorError::new(
                    &rctx,
                    ErrorKind::Protocol,
                    format!("the cursor did not end after {MAX_PAGES_PER_WINDOW} pages"),
                )
                .into());
            }
            let param = serde_json::json!({
                "orderViewStatus": 1,
                "pageSize": self.page_size,
                "sort": 1,
                "queryType": 2,
                "beginTime": begin,
                "endTime": end,
                "cursor": cursor,
            })
            .to_string();
            let body = self
                .client
                .call(&rctx, CURSOR_LIST_API, &self.token, &param, false)
                .await?;
            let env: ListEnvelope = serde_json::from_slice(&body).map_err(|e| {
                ConnectorError::new(
                    &rctx,
                    ErrorKind::Protocol,
                    format!("unreadable order list answer: {e}"),
                )
            })?;
            let data = env.data.ok_or_else(|| {
                ConnectorError::new(&rctx, ErrorKind::Protocol, "answer has no data")
            })?;
            let orders = data.order_list.unwrap_or_default();
            self.emit(&orders, ctx, &mut seen, &mut report, sink)
                .await?;
            let next = data.cursor.unwrap_or_default();
            if next.is_empty() || next == NO_MORE {
                break;
            }
            if next == cursor {
                return Err(ConnectorError::new(
                    &rctx,
                    ErrorKind::Protocol,
                    "the gateway returned the same cursor again",
                )
                .into());
            }
            cursor = next;
        }
        Ok(report)
    }
}

impl KuaishouOrders {
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
                        rows.push((m.row, m.encrypted_mobile));
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
        client: &KsClient,
        rows: &mut [(OrderRow, Option<String>)],
        ctx: &PullContext,
    ) -> Result<(), ConnectorError> {
        let rctx = RequestContext::new("kuaishou", Some(&self.shop), DECRYPT_API);
        let wanted: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i].0.phone_hash.is_none() && rows[i].1.is_some())
            .collect();
        for chunk in wanted.chunks(DECRYPT_BATCH) {
            let list: Vec<serde_json::Value> = chunk
                .iter()
                .map(|&i| {
                    serde_json::json!({
                        "bizId": rows[i].0.order_id,
                        "encryptedData": rows[i].1,
                    })
                })
                .collect();
            let param = serde_json::json!({ "batchDecryptList": list }).to_string();
            let body = client
                .call(&rctx, DECRYPT_API, &self.token, &param, true)
                .await?;
            let env: DecryptEnvelope = serde_json::from_slice(&body).map_err(|e| {
                ConnectorError::new(
                    &rctx,
                    ErrorKind::Protocol,
                    format!("unreadable decrypt answer: {e}"),
                )
            })?;
            let results = env.data.map(|d| d.decrypt_list).unwrap_or_default();
            for &i in chunk {
                let id = &rows[i].0.order_id;
                let cipher = rows[i].1.as_deref();
                let hit = results.iter().find(|r| {
                    let biz = match &r.biz_id {
                        Some(serde_json::Value::String(s)) => s.clone(),
                        Some(serde_json::Value::Number(n)) => n.to_string(),
                        _ => String::new(),
                    };
                    biz == *id
                        && (r.encrypted_data.is_none() || r.encrypted_data.as_deref() == cipher)
                });
                let phone = hit
                    .filter(|r| r.error_code.is_none_or(|c| c == 1))
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
