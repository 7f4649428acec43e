//! The windowed list stream (orders with their lines, refunds) and its
//! one page emitter.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use futures::StreamExt;
use quanyu_schemas::{OrderLinesBuilder, OrdersBuilder, PiiHasher, RefundRow, TableKind};
use serde_json::value::RawValue;

use crate::error::{ConnectorError, ErrorKind, RequestContext};
use crate::http::ApiClient;
use crate::source::{
    CursorMode, NormalizedPage, PageSink, PullContext, PullError, PullReport, PullResult, Stream,
    StreamId,
};
use crate::window::{Window, WindowPlan};

use super::decrypt::{decrypt_phones, PhoneDecrypt};
use super::lists::Lists;
use super::paging::{Paging, MAX_PAGES_PER_WINDOW};
use super::record::{MappedOrder, Rejected};

/// Which page of a window to fetch.
#[derive(Debug, Clone, Copy)]
pub enum PageAt<'a> {
    /// A numbered page.
    Number(u64),
    /// The page at a cursor (`""` for the first).
    Cursor(&'a str),
}

impl<'a> PageAt<'a> {
    /// The page number; asking a numbered listing by cursor is a bug the
    /// platform would answer with an error, so it is one here too.
    pub fn number(self, ctx: &RequestContext) -> Result<u64, ConnectorError> {
        match self {
            PageAt::Number(n) => Ok(n),
            PageAt::Cursor(_) => Err(ConnectorError::new(
                ctx,
                ErrorKind::InvalidRequest,
                "this list pages by number, not by cursor",
            )),
        }
    }

    /// The cursor (`""` for the first page).
    pub fn cursor(self, ctx: &RequestContext) -> Result<&'a str, ConnectorError> {
        match self {
            PageAt::Cursor(c) => Ok(c),
            PageAt::Number(_) => Err(ConnectorError::new(
                ctx,
                ErrorKind::InvalidRequest,
                "this list pages by cursor, not by number",
            )),
        }
    }
}

/// One page of a list, parsed once and mapped: orders by default.
#[derive(Debug)]
pub struct ListPage<R = MappedOrder> {
    /// The platform's count of records in the window (numbered paging needs it).
    pub total: Option<u64>,
    /// The cursor of the next page (cursor paging); `None` when the listing ended.
    pub next: Option<String>,
    /// Each record in page order: mapped, or rejected with its raw text.
    pub records: Vec<Result<R, (Rejected, String)>>,
}

impl<R> Default for ListPage<R> {
    fn default() -> Self {
        ListPage {
            total: None,
            next: None,
            records: Vec::new(),
        }
    }
}

impl<R> ListPage<R> {
    /// Map each raw record with `map`, keeping the raw text of those rejected.
    pub fn mapped<'r>(
        raws: impl IntoIterator<Item = &'r RawValue>,
        map: impl Fn(&str) -> Result<R, Rejected>,
    ) -> Vec<Result<R, (Rejected, String)>> {
        raws.into_iter()
            .map(|raw| map(raw.get()).map_err(|r| (r, raw.get().to_string())))
            .collect()
    }
}

/// What a list yields: an order (landing with its lines) or a refund.
pub trait Listed: Send + Sync + Sized + 'static {
    /// The stream's name (`orders`, `refunds`).
    const STREAM: &'static str;
    /// The table the records land in.
    const TABLE: TableKind;
    /// The record's key within its shop: a record seen twice in one window
    /// lands once.
    fn key(&self) -> &str;
    /// The page's records as a batch of [`Self::TABLE`], and the batches of
    /// its companion tables (an order's lines).
    fn land(records: &[Self], ctx: &PullContext) -> (RecordBatch, Vec<(TableKind, RecordBatch)>);
    /// The records as orders, when they are (for the phone decrypt).
    fn as_orders(records: &mut [Self]) -> Option<&mut [MappedOrder]> {
        let _ = records;
        None
    }
}

impl Listed for MappedOrder {
    const STREAM: &'static str = "orders";
    const TABLE: TableKind = TableKind::Orders;

    fn key(&self) -> &str {
        &self.row.order_id
    }

    fn land(records: &[Self], ctx: &PullContext) -> (RecordBatch, Vec<(TableKind, RecordBatch)>) {
        let mut orders = OrdersBuilder::new(&ctx.run_id, ctx.ingested_at);
        let mut lines = OrderLinesBuilder::new(&ctx.run_id, ctx.ingested_at);
        for m in records {
            orders.append(&m.row);
            m.lines.iter().for_each(|l| lines.append(l));
        }
        (
            orders.finish(),
            vec![(TableKind::OrderLines, lines.finish())],
        )
    }

    fn as_orders(records: &mut [Self]) -> Option<&mut [MappedOrder]> {
        Some(records)
    }
}

impl Listed for RefundRow {
    const STREAM: &'static str = "refunds";
    const TABLE: TableKind = TableKind::Refunds;

    fn key(&self) -> &str {
        &self.refund_id
    }

    fn land(records: &[Self], ctx: &PullContext) -> (RecordBatch, Vec<(TableKind, RecordBatch)>) {
        (
            RefundRow::batch(records, &ctx.run_id, ctx.ingested_at),
            vec![],
        )
    }
}

/// Which page of which window a list is asked for.
#[derive(Debug, Clone, Copy)]
pub struct PageQuery<'a> {
    /// The modification-time window.
    pub window: Window,
    /// The page.
    pub at: PageAt<'a>,
    /// Hashes phones as records are mapped.
    pub hasher: &'a PiiHasher,
}

/// What a platform implements for one of its lists (orders, refunds):
/// fetch one page of a window and map its records.
#[async_trait]
pub trait RecordList<R = MappedOrder>: Lists {
    /// Fetch the page `q.at` of the records modified in `q.window` and map
    /// it (phones hashed with `q.hasher`).
    async fn page(&self, q: PageQuery<'_>) -> Result<ListPage<R>, ConnectorError>;
}

/// How a platform's list is called.
#[derive(Debug, Clone, Copy)]
pub struct Listing {
    /// The list API's name (for errors and spans).
    pub api: &'static str,
    /// How it pages.
    pub paging: Paging,
    /// The longest window it takes, when it limits it (a longer one fails
    /// before any request).
    pub max_window: Option<chrono::Duration>,
    /// The most records one query pages through, when the platform caps
    /// its page depth (Youzan: 3,200): a window holding more is split in
    /// halves until each fits (numbered paging).
    pub max_records: Option<u64>,
}

impl Listing {
    /// The list `api`, paged as `paging`, taking windows of any length and
    /// pages to any depth.
    pub fn new(api: &'static str, paging: Paging) -> Self {
        Listing {
            api,
            paging,
            max_window: None,
            max_records: None,
        }
    }

    /// The same list, taking windows of at most `longest`.
    pub fn within(self, longest: chrono::Duration) -> Self {
        Listing {
            max_window: Some(longest),
            ..self
        }
    }
}

/// The streams of every shop of a section: `streams(shop)` gives one
/// shop's (its orders and, when on, its refunds), or the configuration
/// error that stops the section.
pub fn each_shop<S, T: Into<Vec<Arc<dyn Stream>>>>(
    shops: &[S],
    streams: impl FnMut(&S) -> Result<T, crate::ConfigError>,
) -> Result<Vec<Arc<dyn Stream>>, crate::ConfigError> {
    let per_shop: Vec<T> = shops.iter().map(streams).collect::<Result<_, _>>()?;
    Ok(per_shop.into_iter().flat_map(Into::into).collect())
}

/// One shop's streams: its orders and, when the section pulls refunds,
/// its refunds in the same windows.
pub struct ShopStreams<L> {
    orders: OrderStream<L>,
    refunds: Option<RefundStream<L>>,
}

impl<L: RecordList<MappedOrder> + RecordList<RefundRow>> ShopStreams<L> {
    /// The streams of `connector`'s shop `shop` in windows as `plan` cuts
    /// them: orders listed by `list(api)` as `orders` says and, when
    /// `refunds` is given, refunds listed by `list` through a client
    /// counted apart.
    pub fn new(
        (connector, shop): (&str, &str),
        plan: WindowPlan,
        api: &ApiClient,
        list: impl Fn(ApiClient) -> L,
        orders: Listing,
        refunds: Option<Listing>,
    ) -> Self {
        ShopStreams {
            orders: OrderStream::new(connector, shop, list(api.clone()), orders, plan),
            refunds: refunds.map(|listing| {
                RefundStream::new(connector, shop, list(api.counted_apart()), listing, plan)
            }),
        }
    }

    /// Decrypt the orders' phones through `decrypt` (when given), at most
    /// `batch` ciphertexts a call.
    pub fn decrypting<D: PhoneDecrypt>(self, decrypt: Option<D>, batch: usize) -> Self {
        ShopStreams {
            orders: self.orders.decrypting(decrypt, batch),
            ..self
        }
    }
}

impl<L: RecordList<MappedOrder> + RecordList<RefundRow>> From<ShopStreams<L>>
    for Vec<Arc<dyn Stream>>
{
    fn from(s: ShopStreams<L>) -> Self {
        let mut streams = vec![s.orders.shared()];
        streams.extend(s.refunds.map(ListStream::shared));
        streams
    }
}

/// The records of one shop: windows by modification time, paged as the
/// platform pages, each page deduplicated within the window, quarantined
/// where it does not map, decrypted (orders), built into Arrow and handed
/// over.
pub struct ListStream<L, R> {
    id: StreamId,
    list: Arc<L>,
    listing: Listing,
    plan: WindowPlan,
    decrypt: Option<(Arc<dyn PhoneDecrypt>, usize)>,
    records: std::marker::PhantomData<fn() -> R>,
}

/// The `orders` stream of one shop (orders land with their lines).
pub type OrderStream<L> = ListStream<L, MappedOrder>;

/// The `refunds` stream of one shop.
pub type RefundStream<L> = ListStream<L, RefundRow>;

impl<L: RecordList<MappedOrder>> ListStream<L, MappedOrder> {
    /// Decrypt phones through `decrypt` (when given) after mapping each
    /// page, at most `batch` ciphertexts a call.
    pub fn decrypting<D: PhoneDecrypt>(mut self, decrypt: Option<D>, batch: usize) -> Self {
        self.decrypt = decrypt.map(|d| (Arc::new(d) as Arc<dyn PhoneDecrypt>, batch));
        self
    }
}

impl<R: Listed, L: RecordList<R>> ListStream<L, R> {
    /// The stream of `R` records (`orders`, `refunds`) of `connector` for
    /// `shop`, listed through `list` as `listing` says, in windows as
    /// `plan` cuts them.
    pub fn new(connector: &str, shop: &str, list: L, listing: Listing, plan: WindowPlan) -> Self {
        ListStream {
            id: StreamId::new(connector, R::STREAM, shop),
            list: Arc::new(list),
            listing,
            plan,
            decrypt: None,
            records: std::marker::PhantomData,
        }
    }

    /// As a shared [`Stream`].
    pub fn shared(self) -> Arc<dyn Stream> {
        Arc::new(self)
    }

    fn request_context(&self) -> RequestContext {
        RequestContext::new(&self.id.connector, Some(&self.id.scope), self.listing.api)
    }

    async fn numbered(
        &self,
        window: Window,
        (first, size, ahead): (u64, u32, usize),
        emit: &mut Emitter<'_, R>,
    ) -> Result<(), PullError> {
        let rctx = self.request_context();
        // Windows the platform can page through, earliest first: one the
        // first page says holds more than the page depth allows is split
        // in halves on whole seconds (the orders seen are shared, so an
        // order moving between halves lands once).
        let mut todo = vec![window];
        while let Some(w) = todo.pop() {
            let page = self
                .list
                .page(PageQuery {
                    window: w,
                    at: PageAt::Number(first),
                    hasher: &emit.ctx.hasher,
                })
                .await?;
            let total = page.total.ok_or_else(|| {
                ConnectorError::new(&rctx, ErrorKind::Protocol, "answer has no total")
            })?;
            if let Some(max) = self.listing.max_records.filter(|m| total > *m) {
                let secs = w.len().num_seconds();
                if secs < 2 {
                    return Err(ConnectorError::new(
                        &rctx,
                        ErrorKind::InvalidRequest,
                        format!(
                            "{total} {} changed within one second, more than the {max} {} pages through",
                            R::STREAM,
                            self.id.connector
                        ),
                    )
                    .into());
                }
                let mid = w.start + chrono::Duration::seconds(secs / 2);
                todo.push(Window {
                    start: mid,
                    end: w.end,
                });
                todo.push(Window {
                    start: w.start,
                    end: mid,
                });
                continue;
            }
            *emit.report.reported_total.get_or_insert(0) += total;
            self.pages_of(w, page, total, (first, size, ahead), emit)
                .await?;
        }
        Ok(())
    }

    /// The pages of window `w` whose first page is `page`.
    async fn pages_of(
        &self,
        window: Window,
        page: ListPage<R>,
        total: u64,
        (first, size, ahead): (u64, u32, usize),
        emit: &mut Emitter<'_, R>,
    ) -> Result<(), PullError> {
        let rctx = self.request_context();
        let pages = total.div_ceil(u64::from(size.max(1)));
        if pages > MAX_PAGES_PER_WINDOW {
            return Err(ConnectorError::new(
                &rctx,
                ErrorKind::InvalidRequest,
                format!(
                    "{total} {} in one window is more than {MAX_PAGES_PER_WINDOW} pages: use shorter windows",
                    R::STREAM
                ),
            )
            .into());
        }
        if pages <= 1 {
            return emit.page(self, page).await;
        }
        drop(page);
        // Up to `ahead` pages are fetched and mapped at once on the
        // runtime's workers; they are handed over in page order.
        let mut pages = futures::stream::iter((first..first + pages).rev())
            .map(|n| {
                let list = self.list.clone();
                let hasher = emit.ctx.hasher.clone();
                let rctx = rctx.clone();
                async move {
                    tokio::spawn(async move {
                        let at = PageAt::Number(n);
                        list.page(PageQuery {
                            window,
                            at,
                            hasher: &hasher,
                        })
                        .await
                    })
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
            .buffered(ahead.max(1));
        while let Some(page) = pages.next().await {
            emit.page(self, page?).await?;
        }
        Ok(())
    }

    async fn by_cursor(&self, window: Window, emit: &mut Emitter<'_, R>) -> Result<(), PullError> {
        let rctx = self.request_context();
        let mut cursor = String::new();
        for _ in 0..MAX_PAGES_PER_WINDOW {
            let page = self
                .list
                .page(PageQuery {
                    window,
                    at: PageAt::Cursor(&cursor),
                    hasher: &emit.ctx.hasher,
                })
                .await?;
            let next = page.next.clone().filter(|n| !n.is_empty());
            emit.page(self, page).await?;
            match next {
                None => return Ok(()),
                Some(n) if n == cursor => {
                    return Err(ConnectorError::new(
                        &rctx,
                        ErrorKind::Protocol,
                        "the gateway returned the same cursor again",
                    )
                    .into())
                }
                Some(n) => cursor = n,
            }
        }
        Err(ConnectorError::new(
            &rctx,
            ErrorKind::Protocol,
            format!("the cursor did not end after {MAX_PAGES_PER_WINDOW} pages"),
        )
        .into())
    }
}

/// `max` in the largest whole unit: `30 days`, `12 hours`, `30 minutes`.
fn span_text(max: chrono::Duration) -> String {
    let m = max.num_minutes();
    match m {
        60 => "1 hour".into(),
        1440 => "1 day".into(),
        _ if m > 0 && m % (24 * 60) == 0 => format!("{} days", m / (24 * 60)),
        _ if m > 0 && m % 60 == 0 => format!("{} hours", m / 60),
        _ => format!("{m} minutes"),
    }
}

/// Hands the pages of one window to the sink: skips orders already seen in
/// the window, quarantines rejections, decrypts, builds Arrow, counts.
struct Emitter<'a, R> {
    ctx: &'a PullContext,
    sink: &'a mut dyn PageSink,
    seen: HashSet<String>,
    report: PullReport,
    records: std::marker::PhantomData<fn() -> R>,
}

impl<R: Listed> Emitter<'_, R> {
    async fn page<L>(
        &mut self,
        stream: &ListStream<L, R>,
        page: ListPage<R>,
    ) -> Result<(), PullError> {
        let mut orders = Vec::with_capacity(page.records.len());
        let mut quarantine = Vec::new();
        let mut records_in = 0;
        for record in page.records {
            match record {
                Ok(m) => {
                    if self.seen.insert(m.key().to_string()) {
                        orders.push(m);
                        records_in += 1;
                    }
                }
                Err((rejected, raw)) => {
                    if rejected
                        .key
                        .as_ref()
                        .is_some_and(|k| !self.seen.insert(k.clone()))
                    {
                        continue;
                    }
                    records_in += 1;
                    quarantine.push(self.ctx.reject(
                        &stream.id,
                        R::TABLE,
                        rejected.key,
                        &raw,
                        rejected.reason,
                    ));
                }
            }
        }
        if let (Some((d, batch)), Some(orders)) = (&stream.decrypt, R::as_orders(&mut orders)) {
            decrypt_phones(
                d.as_ref(),
                *batch,
                &stream.id.scope,
                orders,
                &self.ctx.hasher,
            )
            .await?;
        }
        self.report.pages += 1;
        self.report.records += records_in as u64;
        let (batch, extra) = if orders.is_empty() {
            (None, vec![])
        } else {
            let (batch, extra) = R::land(&orders, self.ctx);
            let extra = extra
                .into_iter()
                .filter(|(_, b)| b.num_rows() > 0)
                .collect();
            (Some(batch), extra)
        };
        self.sink
            .page(NormalizedPage {
                batch,
                extra,
                quarantine,
                records_in,
            })
            .await
            .map_err(PullError::Sink)
    }
}

#[async_trait]
impl<R: Listed, L: RecordList<R>> Stream for ListStream<L, R> {
    fn id(&self) -> &StreamId {
        &self.id
    }

    fn table(&self) -> TableKind {
        R::TABLE
    }

    fn cursor_mode(&self) -> CursorMode {
        CursorMode::Windows(self.plan)
    }

    fn request_stats(&self) -> (u64, u64) {
        let (a, b) = self.list.http().stats();
        let (c, d) = self
            .decrypt
            .as_ref()
            .map_or((0, 0), |(d, _)| d.http().stats());
        (a + c, b + d)
    }

    async fn pull(&self, window: Window, ctx: &PullContext, sink: &mut dyn PageSink) -> PullResult {
        if let Some(max) = self.listing.max_window.filter(|m| window.len() > *m) {
            return Err(ConnectorError::new(
                &self.request_context(),
                ErrorKind::InvalidRequest,
                format!(
                    "windows longer than {} are refused by {}",
                    span_text(max),
                    self.id.connector
                ),
            )
            .into());
        }
        let mut emit = Emitter {
            ctx,
            sink,
            seen: HashSet::new(),
            report: PullReport::default(),
            records: std::marker::PhantomData,
        };
        match self.listing.paging {
            Paging::Backward { first, size, ahead } => {
                self.numbered(window, (first, size, ahead), &mut emit)
                    .await?
            }
            Paging::Cursor => self.by_cursor(window, &mut emit).await?,
        }
        Ok(emit.report)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::{TimeZone, Utc};
    use quanyu_schemas::{Channel, LakeKey, OrderRow, OrderStatus};

    use super::*;
    use crate::conformance::market::Batches;

    /// An order list over fixed records, recording which pages were asked.
    struct Fake {
        /// Order ids per page (numbered from `first`), or per cursor step.
        pages: Vec<Vec<&'static str>>,
        first: u64,
        total: u64,
        cursor_stuck: bool,
        asked: Mutex<Vec<String>>,
        http: ApiClient,
    }

    impl Fake {
        /// Pages of ids numbered from `first`, reporting `total` records.
        fn new(pages: Vec<Vec<&'static str>>, first: u64, total: u64) -> Self {
            Fake {
                pages,
                first,
                total,
                cursor_stuck: false,
                asked: Mutex::default(),
                http: ApiClient::new(vec![], Default::default()),
            }
        }
    }

    fn row(id: &str) -> OrderRow {
        let t = Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).unwrap();
        OrderRow {
            channel: Channel::Pdd,
            shop_id: "s".into(),
            order_id: id.into(),
            buyer_id: None,
            status: OrderStatus::Paid,
            platform_status: "1".into(),
            amount_fen: 100,
            created_at: t,
            paid_at: Some(t),
            updated_at: t,
            item_count: 1,
            phone_hash: None,
            phone_masked: None,
            province: None,
            city: None,
            buyer_unionid: None,
            receiver_hash: None,
        }
    }

    impl Lists for Fake {
        fn http(&self) -> &ApiClient {
            &self.http
        }
    }

    #[async_trait]
    impl RecordList for Fake {
        async fn page(&self, q: PageQuery<'_>) -> Result<ListPage, ConnectorError> {
            let at = q.at;
            let (index, next) = match at {
                PageAt::Number(n) => ((n - self.first) as usize, None),
                PageAt::Cursor(c) => {
                    let i = c.parse::<usize>().unwrap_or(0);
                    let next = if self.cursor_stuck {
                        Some(i.to_string())
                    } else {
                        (i + 1 < self.pages.len()).then(|| (i + 1).to_string())
                    };
                    (i, next)
                }
            };
            self.asked.lock().unwrap().push(format!("{at:?}"));
            let records = self.pages[index]
                .iter()
                .map(|id| match *id {
                    "bad" => Err((Rejected::new(None, "unreadable"), "{}".to_string())),
                    id => Ok(MappedOrder {
                        row: row(id),
                        cipher: None,
                        lines: vec![],
                    }),
                })
                .collect();
            Ok(ListPage {
                total: Some(self.total),
                next,
                records,
            })
        }
    }

    fn ctx() -> PullContext {
        PullContext {
            run_id: "r".into(),
            ingested_at: Utc::now(),
            hasher: PiiHasher::new(&LakeKey::from_bytes([1; 32])),
        }
    }

    fn window(minutes: i64) -> Window {
        let end = Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap();
        Window {
            start: end - chrono::Duration::minutes(minutes),
            end,
        }
    }

    fn stream(fake: Fake, paging: Paging) -> OrderStream<Fake> {
        let plan = WindowPlan {
            max_window: chrono::Duration::hours(1),
            lookback: chrono::Duration::zero(),
            initial_start: Utc::now(),
            end_lag: chrono::Duration::zero(),
        };
        let listing = Listing {
            api: "fake.list",
            paging,
            max_window: Some(chrono::Duration::hours(1)),
            max_records: None,
        };
        OrderStream::new("fake", "s", fake, listing, plan)
    }

    fn ids(b: &Batches) -> Vec<String> {
        use arrow::array::AsArray;
        b.0.iter()
            .flat_map(|b| {
                let c = b.column_by_name("order_id").unwrap().as_string::<i32>();
                (0..b.num_rows())
                    .map(|i| c.value(i).to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Numbered pages: the first, then the last back to the first; an
    /// order that moved to an earlier page meanwhile lands once; a record
    /// that does not map is counted and quarantined.
    #[tokio::test]
    async fn numbered_pages_are_read_backwards_and_deduplicated() {
        let fake = Fake::new(vec![vec!["a", "b"], vec!["c", "a"], vec!["d", "bad"]], 1, 6);
        let s = stream(fake, Paging::backward(1, 2));
        let mut out = Batches::default();
        let report = s.pull(window(30), &ctx(), &mut out).await.unwrap();
        assert_eq!(
            s.list.asked.lock().unwrap().clone(),
            ["Number(1)", "Number(3)", "Number(2)", "Number(1)"]
        );
        assert_eq!(ids(&out), ["d", "c", "a", "b"]);
        assert_eq!(report.reported_total, Some(6));
        assert_eq!(report.records, 5, "four orders and one rejected record");
        assert_eq!(report.pages, 3);
    }

    /// Zero-based pages start at 0; one page is read once.
    #[tokio::test]
    async fn a_single_zero_based_page_is_read_once() {
        let fake = Fake::new(vec![vec!["a", "b"]], 0, 2);
        let s = stream(fake, Paging::backward(0, 100));
        let mut out = Batches::default();
        s.pull(window(30), &ctx(), &mut out).await.unwrap();
        assert_eq!(s.list.asked.lock().unwrap().clone(), ["Number(0)"]);
        assert_eq!(ids(&out), ["a", "b"]);
    }

    /// A cursor is followed until it ends; one handed back unchanged is an
    /// error, not an endless loop.
    #[tokio::test]
    async fn a_cursor_is_followed_to_its_end_and_a_stuck_one_fails() {
        let pages = vec![vec!["a"], vec!["b"], vec!["c"]];
        let fake = Fake::new(pages.clone(), 0, 0);
        let s = stream(fake, Paging::Cursor);
        let mut out = Batches::default();
        s.pull(window(30), &ctx(), &mut out).await.unwrap();
        assert_eq!(ids(&out), ["a", "b", "c"]);
        let stuck = Fake {
            cursor_stuck: true,
            ..Fake::new(pages, 0, 0)
        };
        let s = stream(stuck, Paging::Cursor);
        let err = s
            .pull(window(30), &ctx(), &mut Batches::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("same cursor"), "{err}");
    }

    /// A window longer than the platform takes fails before any request; a
    /// total needing more pages than the guard fails with advice.
    #[tokio::test]
    async fn window_and_page_guards() {
        let fake = Fake::new(vec![vec!["a"]], 1, 1);
        let s = stream(fake, Paging::backward(1, 100));
        let err = s
            .pull(window(61), &ctx(), &mut Batches::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("longer than 1 hour"), "{err}");
        assert!(s.list.asked.lock().unwrap().is_empty());
        let huge = Fake::new(vec![vec!["a"]], 1, (MAX_PAGES_PER_WINDOW + 1) * 100);
        let s = stream(huge, Paging::backward(1, 100));
        let err = s
            .pull(window(30), &ctx(), &mut Batches::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("use shorter windows"), "{err}");
    }
}
