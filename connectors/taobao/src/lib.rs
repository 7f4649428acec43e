//! Taobao / Tmall (TOP) orders: `taobao.trades.sold.increment.get`, one
//! stream per shop, windows of at most one day, paged backwards from the
//! last page by `total_results` (as TOP recommends: an order modified while
//! pages are read can then never be skipped), signed as TOP signs (md5,
//! hmac, hmac-sha256). Optionally decrypts receivers through
//! `taobao.top.oaid.decrypt` and hashes the phones at once.
#![warn(missing_docs)]

pub mod client;
pub mod mapping;
pub mod sandbox;
pub mod sign;

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use mapping::{MappedTrade, Rejected};
use quanyu_connector_sdk::{
    ApiClient, ConfigError, ConnectorError, ConnectorSetup, CursorMode, ErrorKind, NormalizedPage,
    PageSink, PullContext, PullError, PullReport, RequestContext, Secret, SecretRef, Stream,
    StreamId, Window, WindowPlan,
};
use quanyu_schemas::time::format_beijing;
use quanyu_schemas::{normalize_phone, OrderRow, OrdersBuilder, TableKind};
use serde::Deserialize;
use serde_json::value::RawValue;

pub use client::TopClient;
pub use sign::SignMethod;

/// The production gateway.
pub const DEFAULT_GATEWAY: &str = "https://eco.taobao.com/router/rest";
/// The API this connector pulls.
pub const INCREMENT_API: &str = "taobao.trades.sold.increment.get";
/// The receiver decrypt API.
pub const DECRYPT_API: &str = "taobao.top.oaid.decrypt";
/// Most OAIDs one decrypt call takes.
pub const DECRYPT_BATCH: usize = 20;
/// The trade fields requested (`oaid` is returned only with the receiver fields).
pub const FIELDS: &str =
    "tid,tid_str,status,type,created,modified,pay_time,payment,total_fee,post_fee,\
buyer_open_uid,receiver_name,receiver_address,receiver_mobile,receiver_phone,receiver_state,\
receiver_city,oaid,orders.oid,orders.num";

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
    /// Pages of one window requested at once (1–32), within `qps`.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Window length in minutes (TOP allows at most one day).
    #[serde(default = "default_window_minutes")]
    pub window_minutes: i64,
    /// Look-back overlap in minutes for late updates.
    #[serde(default = "default_lookback_minutes")]
    pub lookback_minutes: i64,
    /// How many days back the first pull starts (TOP keeps three months).
    #[serde(default = "default_initial_days")]
    pub initial_days: i64,
    /// Decrypt receivers through `taobao.top.oaid.decrypt` and hash their
    /// phones (needs the app's 解密 permission; billed per call by TOP).
    #[serde(default)]
    pub decrypt: bool,
    /// Decrypt calls per second for this app key (its own budget).
    #[serde(default = "default_decrypt_qps")]
    pub decrypt_qps: u32,
    /// The decrypt `scene` code (1001–1007 shipping, 2001 after-sales, 2002
    /// customer care).
    #[serde(default = "default_decrypt_scene")]
    pub decrypt_scene: String,
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
fn default_concurrency() -> u32 {
    4
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
fn default_decrypt_scene() -> String {
    "2002".into()
}

/// Build one orders stream per shop.
pub fn build_streams(
    cfg: &TaobaoConfig,
    setup: &ConnectorSetup,
) -> Result<Vec<Arc<dyn Stream>>, ConfigError> {
    let app = cfg.app_key.as_str();
    ConfigError::check_range("taobao", app, "page_size", cfg.page_size, 1..=100, "")?;
    ConfigError::check_range("taobao", app, "concurrency", cfg.concurrency, 1..=32, "")?;
    ConfigError::check_range(
        "taobao",
        app,
        "window_minutes",
        cfg.window_minutes,
        1..=24 * 60,
        " (TOP allows one day)",
    )?;
    ConfigError::check_range(
        "taobao",
        app,
        "initial_days",
        cfg.initial_days,
        1..=90,
        " (TOP keeps three months)",
    )?;
    let secret = ConfigError::secret("taobao", app, &cfg.app_secret)?;
    let app_limiter = setup
        .limiters
        .get(&format!("taobao/{app}"), (cfg.qps > 0).then_some(cfg.qps));
    let client = TopClient::new(
        ApiClient::new(app_limiter.iter().cloned().collect(), setup.policy),
        &cfg.gateway,
        app,
        secret.clone(),
        cfg.sign_method,
    );
    let decryptor = cfg.decrypt.then(|| {
        let limiter = setup.limiters.get(
            &format!("taobao/{app}/decrypt"),
            (cfg.decrypt_qps > 0).then_some(cfg.decrypt_qps),
        );
        Decryptor {
            client: TopClient::new(
                ApiClient::new(
                    app_limiter.iter().chain(limiter.iter()).cloned().collect(),
                    setup.policy,
                ),
                &cfg.gateway,
                app,
                secret.clone(),
                cfg.sign_method,
            ),
            scene: cfg.decrypt_scene.clone(),
        }
    });
    let plan = WindowPlan {
        max_window: Duration::minutes(cfg.window_minutes),
        lookback: Duration::minutes(cfg.lookback_minutes.max(0)),
        initial_start: Utc::now() - Duration::days(cfg.initial_days),
        end_lag: Duration::seconds(60),
    };
    cfg.shops
        .iter()
        .map(|shop| {
            let session = ConfigError::secret("taobao", app, &shop.session)?;
            Ok(Arc::new(TaobaoOrders {
                id: StreamId::new("taobao", "orders", &shop.id),
                shop: shop.id.clone(),
                session,
                client: client.clone(),
                decryptor: decryptor.clone(),
                page_size: cfg.page_size,
                concurrency: cfg.concurrency as usize,
                plan,
            }) as Arc<dyn Stream>)
        })
        .collect()
}

/// Calls `taobao.top.oaid.decrypt` under its own rate limit.
#[derive(Clone)]
struct Decryptor {
    client: TopClient,
    scene: String,
}

#[derive(Deserialize)]
struct DecryptEnvelope {
    top_oaid_decrypt_response: Option<DecryptResponse>,
}

#[derive(Deserialize)]
struct DecryptResponse {
    receiver_list: Option<ReceiverList>,
}

/// TOP wraps lists (`{"receiver":[..]}`); the simplified format does not.
#[derive(Deserialize)]
#[serde(untagged)]
enum ReceiverList {
    Wrapped { receiver: Vec<Receiver> },
    Plain(Vec<Receiver>),
}

#[derive(Deserialize)]
struct Receiver {
    tid: Option<serde_json::Value>,
    mobile: Option<String>,
}

impl Decryptor {
    /// Hash the decrypted phones of `rows` (those with an OAID and no hash).
    async fn decrypt(
        &self,
        shop: &str,
        session: &Secret,
        rows: &mut [(OrderRow, Option<String>)],
        ctx: &PullContext,
    ) -> Result<(), ConnectorError> {
        let rctx = RequestContext::new("taobao", Some(shop), DECRYPT_API);
        let wanted: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i].0.phone_hash.is_none() && rows[i].1.is_some())
            .collect();
        for chunk in wanted.chunks(DECRYPT_BATCH) {
            let query: Vec<serde_json::Value> = chunk
                .iter()
                .map(|&i| {
                    serde_json::json!({
                        "tid": rows[i].0.order_id,
                        "oaid": rows[i].1,
                        "scene": self.scene,
                    })
                })
                .collect();
            let biz = [("query_list", serde_json::Value::Array(query).to_string())];
            let body = self.client.call(&rctx, DECRYPT_API, session, &biz).await?;
            let env: DecryptEnvelope = serde_json::from_slice(&body).map_err(|e| {
                ConnectorError::new(
                    &rctx,
                    ErrorKind::Protocol,
                    format!("unreadable decrypt answer: {e}"),
                )
            })?;
            let receivers = match env.top_oaid_decrypt_response.and_then(|r| r.receiver_list) {
                Some(ReceiverList::Wrapped { receiver }) => receiver,
                Some(ReceiverList::Plain(v)) => v,
                None => vec![],
            };
            for r in receivers {
                let tid = match r.tid {
                    Some(serde_json::Value::String(s)) => s,
                    Some(serde_json::Value::Number(n)) => n.to_string(),
                    _ => continue,
                };
                let Some(&i) = chunk.iter().find(|&&i| rows[i].0.order_id == tid) else {
                    continue;
                };
                match r.mobile.as_deref().map(normalize_phone) {
                    Some(Ok(p)) => {
                        rows[i].0.phone_hash = Some(ctx.hasher.phone(&p));
                        rows[i].0.phone_masked = Some(p.masked());
                    }
                    _ => tracing::warn!(shop, order = %tid, "decrypt returned no usable mobile"),
                }
            }
        }
        Ok(())
    }
}

/// Orders of one shop.
pub struct TaobaoOrders {
    id: StreamId,
    shop: String,
    session: Secret,
    client: TopClient,
    decryptor: Option<Decryptor>,
    page_size: u32,
    concurrency: usize,
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
    #[serde(borrow)]
    trades: Option<TradeList<'a>>,
}

#[derive(Deserialize)]
struct TradeList<'a> {
    #[serde(borrow, default)]
    trade: Vec<&'a RawValue>,
}

/// A guard against a gateway that never says "no more pages".
const MAX_PAGES_PER_WINDOW: u64 = 100_000;

/// One page, parsed once and mapped: `total_results` and each trade in page
/// order, mapped or rejected (with its raw text, for the quarantine).
struct MappedPage {
    total: u64,
    trades: Vec<Result<MappedTrade, (Rejected, String)>>,
}

/// Reads and maps the pages of one window; shared by the page tasks.
struct PageReader {
    client: TopClient,
    session: Secret,
    shop: String,
    page_size: u32,
    start: String,
    end: String,
    hasher: quanyu_schemas::PiiHasher,
}

impl PageReader {
    /// Fetch page `page_no`, parse it once and map its trades.
    async fn read(&self, page_no: u64) -> Result<MappedPage, ConnectorError> {
        let rctx = RequestContext::new("taobao", Some(&self.shop), INCREMENT_API);
        let biz = [
            ("fields", FIELDS.to_string()),
            ("start_modified", self.start.clone()),
            ("end_modified", self.end.clone()),
            ("page_no", page_no.to_string()),
            ("page_size", self.page_size.to_string()),
        ];
        self.client
            .call_with(&rctx, INCREMENT_API, &self.session, &biz, |body| {
                self.map(&rctx, body)
            })
            .await
    }

    fn map(&self, rctx: &RequestContext, body: &[u8]) -> Result<MappedPage, ConnectorError> {
        let env: IncrementEnvelope = serde_json::from_slice(body).map_err(|e| {
            ConnectorError::new(
                rctx,
                ErrorKind::Protocol,
                format!("unreadable trades answer: {e}"),
            )
        })?;
        let resp = env.trades_sold_increment_get_response.ok_or_else(|| {
            ConnectorError::new(
                rctx,
                ErrorKind::Protocol,
                "answer has no trades_sold_increment_get_response",
            )
        })?;
        let total = resp.total_results.ok_or_else(|| {
            ConnectorError::new(rctx, ErrorKind::Protocol, "answer has no total_results")
        })?;
        let trades = resp
            .trades
            .map(|t| t.trade)
            .unwrap_or_default()
            .into_iter()
            .map(|raw| {
                mapping::map_trade_with_oaid(raw.get(), &self.shop, &self.hasher)
                    .map_err(|rej| (rej, raw.get().to_string()))
            })
            .collect();
        Ok(MappedPage { total, trades })
    }
}

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
        use futures::StreamExt;
        let rctx = RequestContext::new("taobao", Some(&self.shop), INCREMENT_API);
        // TOP takes inclusive bounds with one-second resolution: [start, end - 1s].
        let reader = Arc::new(PageReader {
            client: self.client.clone(),
            session: self.session.clone(),
            shop: self.shop.clone(),
            page_size: self.page_size,
            start: format_beijing(window.start),
            end: format_beijing(window.end - Duration::seconds(1)),
            hasher: ctx.hasher.clone(),
        });
        let mut report = PullReport::default();
        let mut seen = HashSet::new();
        let first = reader.read(1).await?;
        let total = first.total;
        report.reported_total = Some(total);
        let pages = total.div_ceil(u64::from(self.page_size));
        if pages > MAX_PAGES_PER_WINDOW {
            return Err(ConnectorError::new(
                &rctx,
                ErrorKind::InvalidRequest,
                format!("{total} trades in one window is more than {MAX_PAGES_PER_WINDOW} pages: use shorter windows"),
            )
            .into());
        }
        if pages <= 1 {
            self.emit(first, ctx, &mut seen, &mut report, sink).await?;
            return Ok(report);
        }
        drop(first);
        // Newest first: read from the last page back to the first, so a
        // trade modified meanwhile (which moves to the front) shifts the
        // unread ones towards us, never past us. Up to `concurrency` pages
        // are fetched and mapped at once, on the runtime's worker threads;
        // they are handed over in page order.
        let mut pages = futures::stream::iter((1..=pages).rev())
            .map(|page_no| {
                let reader = reader.clone();
                let rctx = rctx.clone();
                async move {
                    tokio::spawn(async move { reader.read(page_no).await })
                        .await
                        .map_err(|e| {
                            ConnectorError::new(
                                &rctx,
                                ErrorKind::Protocol,
                                format!("page task failed: {e}"),
                            )
                        })?
                }
            })
            .buffered(self.concurrency.max(1));
        while let Some(page) = pages.next().await {
            self.emit(page?, ctx, &mut seen, &mut report, sink).await?;
        }
        Ok(report)
    }
}

impl TaobaoOrders {
    /// Decrypt and hand over one mapped page, skipping trades already seen
    /// in this window.
    async fn emit(
        &self,
        page: MappedPage,
        ctx: &PullContext,
        seen: &mut HashSet<String>,
        report: &mut PullReport,
        sink: &mut dyn PageSink,
    ) -> Result<(), PullError> {
        let mut rows = Vec::with_capacity(page.trades.len());
        let mut quarantine = Vec::new();
        let mut records_in = 0;
        for t in page.trades {
            match t {
                Ok(m) => {
                    if seen.insert(m.row.order_id.clone()) {
                        rows.push((m.row, m.oaid));
                        records_in += 1;
                    }
                }
                Err((rej, raw)) => {
                    if rej.key.as_ref().is_some_and(|k| !seen.insert(k.clone())) {
                        continue;
                    }
                    records_in += 1;
                    quarantine.push(ctx.reject(
                        &self.id,
                        TableKind::Orders,
                        rej.key,
                        &raw,
                        rej.reason,
                    ))
                }
            }
        }
        if let Some(d) = &self.decryptor {
            d.decrypt(&self.shop, &self.session, &mut rows, ctx).await?;
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
}
