//! The marketplace suite: one call runs every check a marketplace
//! connector must pass against its own sandbox, beyond [`run_all`]: a bad
//! signature answered with the platform's envelope, a later pull updating
//! orders without duplicates, refreshed tokens persisting across a
//! restart, decrypt on and off, shops of one app key within one budget.
//!
//! It needs nothing but the registered [`Connector`]: its sandbox kit
//! starts the emulator, says what it answers ([`SandboxFacts`]) and builds
//! the streams that pull it. A platform's test file is one call to
//! [`run_market_suite`] plus the checks that are its own, which start a
//! sandbox with [`Started::start`].

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use quanyu_schemas::{LakeKey, PiiHasher, TableKind};

use super::{fast_retry_policy, run_all, Harness, Key, MemoryLake, Running};
use crate::connector::{
    AnnouncedShop, ClearPhones, Connector, RunningSandbox, SandboxAnnouncement, SandboxFacts,
    SandboxKit, SandboxPull, TokenFlow,
};
use crate::market::PullSettings;
use crate::sandbox::market::MarketCore;
use crate::sandbox::orders::RefundStage;
use crate::sandbox::world::{WorldConfig, WorldShop};
use crate::sandbox::{loopback_any_port, FaultConfig, SandboxHandle};
use crate::secret::Secret;
use crate::setup::ConnectorSetup;
use crate::source::{
    CursorMode, NormalizedPage, PageSink, PullContext, PullError, SinkError, Stream,
};
use crate::token::{ShopToken, TokenSet, TokenStore};
use crate::window::Window;

/// How many days the suite's world spans (orders are modified over them).
pub const WORLD_DAYS: i64 = 2;

/// A connector's sandbox started for a check, on loopback.
pub struct Started {
    /// The connector.
    pub connector: &'static dyn Connector,
    /// The created sandbox.
    pub sandbox: Box<dyn RunningSandbox>,
    /// Its server.
    pub handle: SandboxHandle,
    /// What it announced: URL, credentials, shops and their tokens.
    pub announcement: SandboxAnnouncement,
    /// How many days its world spans.
    pub days: i64,
}

impl Started {
    /// Start `connector`'s sandbox over a world of about `orders` orders
    /// in its own shops, modified over [`WORLD_DAYS`] days; the sandbox
    /// clock runs ten minutes behind the client, so no end lag hides a
    /// change.
    pub async fn start(
        connector: &'static dyn Connector,
        faults: FaultConfig,
        orders: usize,
    ) -> Self {
        Self::start_over(connector, faults, orders, WORLD_DAYS).await
    }

    /// [`Started::start`] over a world spanning `days` days (after-sale
    /// requests come days after an order is finished).
    pub async fn start_over(
        connector: &'static dyn Connector,
        faults: FaultConfig,
        orders: usize,
        days: i64,
    ) -> Self {
        let kit = Self::kit_of(connector);
        let as_of = Utc::now() - Duration::minutes(10);
        let mut world = WorldConfig::demo(as_of, orders);
        world.start = as_of - Duration::days(days);
        world.days = days;
        world.shops = WorldShop::only(connector.channel());
        let sandbox = kit.create(world, as_of, faults);
        let handle = sandbox
            .serve_on(loopback_any_port())
            .await
            .expect("the sandbox serves on loopback");
        let announcement = sandbox.announce(&handle.base_url());
        Started {
            connector,
            sandbox,
            handle,
            announcement,
            days,
        }
    }

    fn kit_of(connector: &'static dyn Connector) -> &'static dyn SandboxKit {
        connector
            .sandbox()
            .unwrap_or_else(|| panic!("{} has no sandbox", connector.name()))
    }

    /// What the sandbox answers.
    pub fn facts(&self) -> SandboxFacts {
        Self::kit_of(self.connector).facts()
    }

    /// Its order book, tokens and counters.
    pub fn core(&self) -> &MarketCore {
        self.sandbox
            .market()
            .expect("a marketplace sandbox has an order book")
    }

    /// Streams pulling the sandbox as `pull` asks (the first pull reaches
    /// back over the whole world).
    pub fn streams(&self, pull: SandboxPull, setup: &ConnectorSetup) -> Vec<Arc<dyn Stream>> {
        self.streams_for(&self.announcement, pull, setup)
    }

    /// Streams signing with wrong secrets.
    pub fn streams_with_wrong_secrets(&self) -> Vec<Arc<dyn Stream>> {
        self.wrong_streams(SandboxPull::default())
    }

    fn wrong_streams(&self, pull: SandboxPull) -> Vec<Arc<dyn Stream>> {
        let mut wrong = self.announcement.clone();
        wrong.app_secret = "wrong-app-secret".into();
        if wrong.sign_secret.is_some() {
            wrong.sign_secret = Some("wrong-sign-secret".into());
        }
        self.streams_for(&wrong, pull, &setup())
    }

    fn streams_for(
        &self,
        announcement: &SandboxAnnouncement,
        pull: SandboxPull,
        setup: &ConnectorSetup,
    ) -> Vec<Arc<dyn Stream>> {
        let pull = SandboxPull {
            initial_days: self.days + 1,
            ..pull
        };
        Self::kit_of(self.connector)
            .streams(announcement, pull, setup)
            .expect("the sandbox's streams build")
    }

    /// The sandbox as its own type (for its own counters).
    pub fn concrete<T: 'static>(&self) -> &T {
        self.sandbox
            .as_any()
            .downcast_ref()
            .expect("the connector's own sandbox type")
    }

    /// The first shop's tokens as a live token (in memory), for calling the
    /// gateway directly.
    pub fn first_shop_token(&self) -> ShopToken {
        let shop = &self.announcement.shops[0];
        ShopToken::open(
            &TokenStore::memory(),
            "direct",
            Some(TokenSet::configured(
                Secret::new(&shop.access_token),
                shop.refresh_token.as_deref().map(Secret::new),
            )),
        )
        .expect("an in-memory token")
    }

    /// Run an official SDK's check script (`tests/sdk_check.py` of the
    /// connector) once per shop with `args(shop)` plus `--start`/`--end`
    /// spanning the world, and sum the orders each run printed. `None`
    /// (after printing why) when Python or the SDK is not installed,
    /// except under `CI=true`, where that fails.
    pub fn official_sdk_orders(
        &self,
        script: &std::path::Path,
        args: impl Fn(&AnnouncedShop) -> Vec<String>,
    ) -> Option<u64> {
        let as_of = self.core().as_of().timestamp();
        let window = [
            "--start".to_string(),
            (as_of - (WORLD_DAYS + 1) * 86_400).to_string(),
            "--end".to_string(),
            (as_of + 1).to_string(),
        ];
        let mut orders = 0;
        for shop in &self.announcement.shops {
            let mut all = args(shop);
            all.extend(window.iter().cloned());
            let out = super::run_sdk_check(script, &all)?;
            orders += out["orders"]
                .as_u64()
                .expect("the script prints its order count");
        }
        Some(orders)
    }

    /// The secrets the good streams use (none may leak).
    pub fn secrets(&self) -> Vec<String> {
        let a = &self.announcement;
        std::iter::once(a.app_secret.clone())
            .chain(a.sign_secret.clone())
            .collect()
    }

    /// The order keys the sandbox shows now.
    pub fn expected_keys(&self) -> BTreeSet<Key> {
        let connector = self.connector.name();
        self.core()
            .visible_orders()
            .into_iter()
            .map(|o| vec![connector.to_string(), o.shop, o.order_id])
            .collect()
    }

    /// Stop the server.
    pub async fn stop(self) {
        self.handle.stop().await;
    }
}

/// The refund streams of a connector's sandbox, as a [`Harness`]: the base
/// suite's checks run on refunds (every refund once under faults, resume
/// after a crash at any page, malformed records quarantined, bad
/// credentials, expired tokens, reported totals).
pub fn refunds_harness(connector: &'static dyn Connector) -> impl Harness {
    SuiteHarness {
        connector,
        refunds: true,
    }
}

/// A connector's sandbox as a [`Harness`] of its orders, or of its refunds.
struct SuiteHarness {
    connector: &'static dyn Connector,
    refunds: bool,
}

#[async_trait]
impl Harness for SuiteHarness {
    async fn start(&self, faults: FaultConfig) -> Box<dyn Running> {
        if self.refunds {
            let started = Started::start_over(self.connector, faults, 1000, REFUND_DAYS).await;
            Box::new(RefundsRunning(AsRunning(started)))
        } else {
            Box::new(AsRunning(Started::start(self.connector, faults, 300).await))
        }
    }
}

/// How many days the refund checks' world spans: refunds of closed orders
/// and after-sale requests days after delivery, asked, granted or refused.
const REFUND_DAYS: i64 = 6;

/// The pull settings with the refund lists on.
const WITH_REFUNDS: SandboxPull = SandboxPull {
    initial_days: REFUND_DAYS + 1,
    decrypt: false,
    app_qps: 0,
    refunds: true,
};

fn only(table: TableKind, streams: Vec<Arc<dyn Stream>>) -> Vec<Arc<dyn Stream>> {
    streams.into_iter().filter(|s| s.table() == table).collect()
}

struct RefundsRunning(AsRunning);

#[async_trait]
impl Running for RefundsRunning {
    fn streams(&self, good_credentials: bool) -> Vec<Arc<dyn Stream>> {
        let sb = &self.0 .0;
        only(
            TableKind::Refunds,
            if good_credentials {
                sb.streams(WITH_REFUNDS, &setup())
            } else {
                sb.wrong_streams(WITH_REFUNDS)
            },
        )
    }
    fn expected_keys(&self) -> BTreeSet<Key> {
        let sb = &self.0 .0;
        sb.core()
            .visible_refunds()
            .into_iter()
            .map(|r| vec![sb.connector.name().to_string(), r.shop, r.refund_id])
            .collect()
    }
    fn secret(&self) -> String {
        self.0.secret()
    }
    fn expire_tokens(&self) -> bool {
        self.0.expire_tokens()
    }
    async fn stop(self: Box<Self>) {
        self.0 .0.stop().await
    }
}

/// Assert `answer` is the gateway refusing a bad request (a window or
/// page it does not serve): an invalid-request error with the platform's
/// `code`, whose message says `says`.
pub fn assert_refused<T: std::fmt::Debug>(
    answer: Result<T, crate::ConnectorError>,
    code: &str,
    says: &str,
) {
    let e = answer.expect_err("the gateway refuses it");
    assert_eq!(e.kind, crate::ErrorKind::InvalidRequest, "{e}");
    assert_eq!(e.code.as_deref(), Some(code), "{e}");
    assert!(e.message.contains(says), "{e}");
}

/// A setup with the suites' short retries and in-memory tokens.
pub fn setup() -> ConnectorSetup {
    ConnectorSetup::new(fast_retry_policy())
}

struct AsRunning(Started);

#[async_trait]
impl Running for AsRunning {
    fn streams(&self, good_credentials: bool) -> Vec<Arc<dyn Stream>> {
        if good_credentials {
            self.0.streams(SandboxPull::default(), &setup())
        } else {
            self.0.streams_with_wrong_secrets()
        }
    }
    fn expected_keys(&self) -> BTreeSet<Key> {
        self.0.expected_keys()
    }
    fn secret(&self) -> String {
        self.0.announcement.app_secret.clone()
    }
    fn expire_tokens(&self) -> bool {
        if self.0.facts().tokens == TokenFlow::Configured {
            return false;
        }
        self.0.core().expire_tokens();
        true
    }
    async fn stop(self: Box<Self>) {
        self.0.stop().await
    }
}

/// A connector's sandbox as a plain [`Harness`] (300 orders), for running
/// the base suite's single checks.
pub fn as_harness(connector: &'static dyn Connector) -> impl Harness {
    SuiteHarness {
        connector,
        refunds: false,
    }
}

/// Keeps the batches of every page (and of their companion tables).
#[derive(Default)]
pub struct Batches(pub Vec<RecordBatch>, pub Vec<(TableKind, RecordBatch)>);

#[async_trait]
impl PageSink for Batches {
    async fn page(&mut self, page: NormalizedPage) -> Result<(), SinkError> {
        self.0.extend(page.batch);
        self.1.extend(page.extra);
        Ok(())
    }
}

/// A pull context with a fixed lake key.
pub fn pull_context() -> PullContext {
    PullContext {
        run_id: "suite".into(),
        ingested_at: Utc::now(),
        hasher: PiiHasher::new(&LakeKey::from_bytes([7; 32])),
    }
}

/// Windows of `len` ending at `end`, back to `start`, newest last.
fn windows(start: DateTime<Utc>, end: DateTime<Utc>, len: Duration) -> Vec<Window> {
    let mut out = Vec::new();
    let mut e = end;
    while e > start {
        let s = (e - len).max(start);
        out.push(Window { start: s, end: e });
        e = s;
    }
    out.reverse();
    out
}

/// The marketplace suite as a test of the calling crate, in one line:
/// `quanyu_connector_sdk::market_suite!(CONNECTOR);` (a test named
/// `marketplace_suite` running [`run_market_suite`]).
#[macro_export]
macro_rules! market_suite {
    ($connector:path) => {
        /// The whole marketplace suite against the connector's own sandbox.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn marketplace_suite() {
            $crate::conformance::market::run_market_suite(&$connector).await;
        }
    };
}

/// Every check of [`run_all`], then every marketplace check, against
/// `connector`'s own sandbox.
pub async fn run_market_suite(connector: &'static dyn Connector) {
    check_mapping(connector);
    run_all(&as_harness(connector)).await;
    check_bad_signature(connector).await;
    check_later_pull_updates(connector).await;
    check_tokens_persist_across_restart(connector).await;
    check_decrypt_on_and_off(connector).await;
    check_shops_share_one_budget(connector).await;
    check_official_sdk(connector).await;
    check_pull_limits(connector).await;
    check_orders_land_with_their_lines(connector).await;
    run_all(&refunds_harness(connector)).await;
    check_refunds_as_shown(connector).await;
}

/// The connector's `mapping.toml` reads and every check in it holds.
pub fn check_mapping(connector: &'static dyn Connector) {
    let mapping = Started::kit_of(connector)
        .mapping()
        .unwrap_or_else(|| panic!("{} names no record mapping", connector.name()));
    match mapping.check() {
        Ok(n) => eprintln!("{}: {n} mapping checks hold", connector.name()),
        Err(e) => panic!("{} mapping.toml:\n{e}", connector.name()),
    }
}

/// Pull every window of `streams` over the suite's world into one sink.
async fn pull_all(sb: &Started, streams: &[Arc<dyn Stream>]) -> Batches {
    let ctx = pull_context();
    let core = sb.core();
    let start = core.world().config.start - Duration::days(1);
    let mut out = Batches::default();
    for s in streams {
        for w in windows(
            start,
            core.as_of() + Duration::seconds(1),
            max_window(s.as_ref()),
        ) {
            s.pull(w, &ctx, &mut out).await.expect("a pull");
        }
    }
    out
}

/// Every order lands with its lines: one key per line, each order's
/// lines add up to its item count, every line belongs to a landed order.
pub async fn check_orders_land_with_their_lines(connector: &'static dyn Connector) {
    let sb = Started::start(connector, FaultConfig::default(), 150).await;
    let got = pull_all(&sb, &sb.streams(SandboxPull::default(), &setup())).await;
    let mut pieces: HashMap<(String, String), (i64, i64)> = HashMap::new();
    for b in &got.0 {
        let (shops, ids) = (strings(b, "shop_id"), strings(b, "order_id"));
        let count = b.column_by_name("item_count").expect("item_count");
        let count = count.as_primitive::<arrow::datatypes::Int32Type>();
        for i in 0..b.num_rows() {
            let key = (shops.value(i).to_string(), ids.value(i).to_string());
            pieces.insert(key, (i64::from(count.value(i)), 0));
        }
    }
    assert_eq!(
        pieces.len(),
        sb.core().visible_orders().len(),
        "every order"
    );
    let mut keys = BTreeSet::new();
    for (kind, b) in &got.1 {
        assert_eq!(*kind, TableKind::OrderLines);
        assert_eq!(b.schema(), TableKind::OrderLines.schema());
        let (shops, ids, lines) = (
            strings(b, "shop_id"),
            strings(b, "order_id"),
            strings(b, "line_id"),
        );
        let qty = b.column_by_name("quantity").expect("quantity");
        let qty = qty.as_primitive::<arrow::datatypes::Int32Type>();
        for i in 0..b.num_rows() {
            let order = (shops.value(i).to_string(), ids.value(i).to_string());
            keys.insert((order.clone(), lines.value(i).to_string()));
            pieces
                .get_mut(&order)
                .unwrap_or_else(|| panic!("a line of an order that did not land: {order:?}"))
                .1 += i64::from(qty.value(i));
        }
    }
    let rows: usize = got.1.iter().map(|(_, b)| b.num_rows()).sum();
    assert!(
        rows >= pieces.len(),
        "{rows} lines for {} orders",
        pieces.len()
    );
    assert!(
        keys.len() == rows,
        "a line key landed twice in one pass: {} of {rows}",
        keys.len()
    );
    for (order, (count, lines)) in &pieces {
        assert_eq!(
            count, lines,
            "{order:?}: item_count vs the lines' quantities"
        );
    }
    sb.stop().await;
}

/// The refunds land as the platform shows them: each request once, with
/// its order, status and amount.
pub async fn check_refunds_as_shown(connector: &'static dyn Connector) {
    let sb = Started::start_over(connector, FaultConfig::default(), 1000, REFUND_DAYS).await;
    let streams = sb.streams(WITH_REFUNDS, &setup());
    let got = pull_all(&sb, &only(TableKind::Refunds, streams.clone())).await;
    // A shop's orders and refunds share its budget, not their counts: the
    // orders streams made no request while the refunds were pulled.
    for s in only(TableKind::Orders, streams) {
        assert_eq!(
            s.request_stats(),
            (0, 0),
            "{} counts the refunds' requests",
            s.id()
        );
    }
    let mut landed = Vec::new();
    for b in &got.0 {
        assert_eq!(b.schema(), TableKind::Refunds.schema());
        let (shops, ids, orders, status) = (
            strings(b, "shop_id"),
            strings(b, "refund_id"),
            strings(b, "order_id"),
            strings(b, "status"),
        );
        let fen = b.column_by_name("refund_fen").expect("refund_fen");
        let fen = fen.as_primitive::<arrow::datatypes::Int64Type>();
        for i in 0..b.num_rows() {
            landed.push((
                shops.value(i).to_string(),
                ids.value(i).to_string(),
                orders.value(i).to_string(),
                status.value(i).to_string(),
                fen.value(i),
            ));
        }
    }
    landed.sort();
    let mut shown: Vec<_> = sb
        .core()
        .visible_refunds()
        .into_iter()
        .map(|r| {
            let status = match r.stage {
                RefundStage::Asked => "pending",
                RefundStage::Granted => "succeeded",
                RefundStage::Refused => "closed",
            };
            (
                r.shop,
                r.refund_id,
                r.order_id,
                status.to_string(),
                r.amount_fen,
            )
        })
        .collect();
    shown.sort();
    assert!(shown.len() >= 10, "the world has refunds: {}", shown.len());
    let missing: Vec<_> = shown
        .iter()
        .filter(|r| !landed.contains(r))
        .take(3)
        .collect();
    let extra: Vec<_> = landed
        .iter()
        .filter(|r| !shown.contains(r))
        .take(3)
        .collect();
    assert!(
        landed == shown,
        "refunds as the platform shows them: {} landed, {} shown; missing e.g. {missing:?}; unexpected e.g. {extra:?}",
        landed.len(),
        shown.len()
    );
    sb.stop().await;
}

fn strings(b: &RecordBatch, name: &str) -> arrow::array::StringArray {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("{name}"))
        .as_string::<i32>()
        .clone()
}

/// The platform's official SDK, pointed at the sandbox, signs its own
/// requests and gets every order (skipped with a reason where Python or the
/// SDK is missing, except under `CI=true`).
pub async fn check_official_sdk(connector: &'static dyn Connector) {
    let sb = Started::start(connector, FaultConfig::default(), 150).await;
    if let Some(sdk) = sb.facts().official_sdk {
        let ann = sb.announcement.clone();
        let script = std::path::Path::new(&sdk.script);
        if let Some(got) = sb.official_sdk_orders(script, |shop| sdk.args_for(&ann, shop)) {
            assert_eq!(
                got as usize,
                sb.core().visible_orders().len(),
                "the official SDK got every order"
            );
        }
    }
    sb.stop().await;
}

/// The pull settings are held to the platform's limits: a page size, a
/// window or a first pull beyond them is refused naming the field, the
/// limit and the platform's reason; at the limits the streams build; and
/// every stream refuses a window longer than the platform serves before
/// any request.
pub async fn check_pull_limits(connector: &'static dyn Connector) {
    let kit = Started::kit_of(connector);
    let limits = kit
        .pull_limits()
        .unwrap_or_else(|| panic!("{} states no pull limits", connector.name()));
    let sb = Started::start(connector, FaultConfig::default(), 50).await;
    let build = |change: &dyn Fn(&mut PullSettings)| {
        kit.streams_with_settings(&sb.announcement, change, &setup())
    };
    let (pages, (window, window_why), (days, days_why)) = (
        limits.page_size.clone(),
        limits.window_minutes.clone(),
        limits.initial_days.clone(),
    );
    let at_limits = build(&|p| {
        p.page_size = *pages.end();
        p.window_minutes = window;
        p.initial_days = days;
    });
    assert!(at_limits.is_ok(), "at the limits: {:?}", at_limits.err());
    type Refused<'a> = (&'a str, &'a dyn Fn(&mut PullSettings), String);
    let refused: [Refused; 4] = [
        (
            "page_size",
            &|p| p.page_size = *pages.end() + 1,
            format!("..={}", pages.end()),
        ),
        (
            "page_size",
            &|p| p.page_size = *pages.start() - 1,
            format!("{}..", pages.start()),
        ),
        (
            "window_minutes",
            &|p| p.window_minutes = window + 1,
            format!("..={window}{window_why}"),
        ),
        (
            "initial_days",
            &|p| p.initial_days = days + 1,
            format!("..={days}{days_why}"),
        ),
    ];
    for (field, change, says) in refused {
        let err = build(change)
            .err()
            .unwrap_or_else(|| panic!("{field} beyond the limit builds"));
        let text = err.to_string();
        assert!(
            text.contains(field) && text.contains(&says),
            "{field}: {text}"
        );
    }
    // The streams themselves refuse a window longer than the platform
    // serves, before any request (a scheduler or backfill may ask).
    let streams = build(&|_| {}).expect("the default settings build");
    let as_of = sb.core().as_of();
    let too_long = crate::Window {
        start: as_of - Duration::minutes(window + 1),
        end: as_of,
    };
    for s in &streams {
        let before = s.request_stats();
        let err = s
            .pull(too_long, &pull_context(), &mut Batches::default())
            .await
            .expect_err("a window longer than the platform serves is refused");
        assert!(
            err.to_string().contains("windows longer than"),
            "{:?}: {err}",
            s.id()
        );
        assert_eq!(
            s.request_stats(),
            before,
            "{:?}: refused before any call",
            s.id()
        );
    }
    sb.stop().await;
}

/// A wrong secret is answered with the platform's own envelope, and the
/// error names connector, shop and API, never a secret.
pub async fn check_bad_signature(connector: &'static dyn Connector) {
    let sb = Started::start(connector, FaultConfig::default(), 100).await;
    let facts = sb.facts();
    let err = MemoryLake::default()
        .run(&sb.streams_with_wrong_secrets(), None)
        .await
        .expect_err("a wrong secret must fail");
    let PullError::Connector(e) = err else {
        panic!("expected a connector error, got {err}")
    };
    assert_eq!(e.kind, crate::ErrorKind::Auth, "{e}");
    assert_eq!(
        e.code.as_deref(),
        Some(facts.bad_signature.code.as_str()),
        "{e}"
    );
    let text = e.to_string();
    assert!(text.contains(connector.name()), "{text}");
    assert!(text.contains(&facts.list_api), "{text}");
    assert!(text.contains(&facts.bad_signature.says), "{text}");
    assert!(
        sb.core().shops().iter().any(|s| text.contains(s.as_str())),
        "{text}"
    );
    for secret in sb
        .secrets()
        .iter()
        .map(String::as_str)
        .chain(["wrong-app-secret", "wrong-sign-secret"])
    {
        assert!(!text.contains(secret), "{text}");
    }
    sb.stop().await;
}

/// A pull a day ago, then one now: every order once, some modified since.
pub async fn check_later_pull_updates(connector: &'static dyn Connector) {
    let sb = Started::start(connector, FaultConfig::default(), 300).await;
    let streams = sb.streams(SandboxPull::default(), &setup());
    let core = sb.core();
    let now = core.as_of();
    core.set_as_of(now - Duration::days(1));
    let mut lake = MemoryLake::default();
    lake.run_at(
        &streams,
        None,
        now - Duration::days(1) + Duration::minutes(10),
    )
    .await
    .expect("the first pull");
    let first = lake.rows.clone();
    core.set_as_of(now);
    lake.run(&streams, None).await.expect("the later pull");
    let expected = sb.expected_keys();
    assert!(
        lake.keys() == expected,
        "one row per order after the re-pull: {} landed, {} expected",
        lake.keys().len(),
        expected.len()
    );
    let changed = first
        .iter()
        .filter(|(k, v)| lake.rows.get(*k) != Some(v))
        .count();
    assert!(changed > 0, "some orders must have been modified again");
    sb.stop().await;
}

/// Expired tokens are renewed (once per token) through the platform's
/// flow, and what was renewed persists across a restart. Refreshed tokens:
/// a restart with the same (stale) configured tokens uses the persisted
/// pair; without the store the spent tokens fail with an auth error naming
/// the refresh API. Tokens the app grants itself: each shop's is granted
/// once, a restart asks for none, and only a run without the store asks
/// again.
pub async fn check_tokens_persist_across_restart(connector: &'static dyn Connector) {
    let sb = Started::start(connector, FaultConfig::default(), 200).await;
    let tokens = sb.facts().tokens;
    if tokens == TokenFlow::Configured {
        sb.stop().await;
        return;
    }
    let dir = std::env::temp_dir().join(format!(
        "quanyu-{}-tokens-{}-{}",
        connector.name(),
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    let stored = || {
        let mut s = setup();
        s.tokens = TokenStore::in_dir(&dir);
        s
    };
    let core = sb.core();
    let shops = core.shops().len() as u64;
    let before = core.refreshes();
    let run = |setup: ConnectorSetup| {
        let streams = sb.streams(SandboxPull::default(), &setup);
        async move {
            let mut lake = MemoryLake::default();
            lake.run(&streams, None).await.map(|_| lake)
        }
    };
    let granted = match tokens {
        TokenFlow::AppGrant(_) => shops,
        _ => 0,
    };
    run(stored()).await.expect("a first run");
    assert_eq!(
        core.refreshes() - before,
        granted,
        "fresh tokens need no refresh; granted tokens are asked once per shop"
    );
    run(stored()).await.expect("a restart");
    assert_eq!(
        core.refreshes() - before,
        granted,
        "a restart asks for none"
    );
    core.expire_tokens();
    run(stored()).await.expect("expired tokens are renewed");
    let renewed = core.refreshes() - before - granted;
    assert!(renewed >= 1, "the expired tokens were renewed");
    assert!(renewed <= shops, "one renewal per token at most: {renewed}");
    let lake = run(stored())
        .await
        .expect("the persisted tokens work after a restart");
    assert_eq!(
        core.refreshes() - before - granted,
        renewed,
        "no further renewal"
    );
    assert!(lake.keys() == sb.expected_keys());
    match tokens {
        TokenFlow::Refresh(refresh_api) => {
            let err = run(setup())
                .await
                .expect_err("without the store the spent tokens fail");
            let PullError::Connector(e) = err else {
                panic!("{err}")
            };
            assert_eq!(e.kind, crate::ErrorKind::Auth, "{e}");
            assert!(e.to_string().contains(refresh_api.as_str()), "{e}");
        }
        _ => {
            let asked = core.refreshes();
            run(setup()).await.expect("without the store, granted anew");
            assert_eq!(core.refreshes() - asked, shops, "each shop asks again");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    sb.stop().await;
}

/// The longest window the stream asks for.
fn max_window(stream: &dyn Stream) -> Duration {
    match stream.cursor_mode() {
        CursorMode::Windows(plan) => plan.max_window,
        _ => Duration::days(1),
    }
}

/// With decrypt on, every row carries the hash of its receiver's phone in
/// the world and its mask (the platform's, or made from the clear phone); off (the default), no decrypt call is made
/// and only phones the platform sends in clear are hashed. A platform
/// without decrypt is checked off only.
pub async fn check_decrypt_on_and_off(connector: &'static dyn Connector) {
    let sb = Started::start(connector, FaultConfig::default(), 150).await;
    let facts = sb.facts();
    let ctx = pull_context();
    let core = sb.core();
    let world = core.world();
    let expected: HashMap<String, Option<String>> = world
        .purchases
        .iter()
        .filter(|o| o.channel == connector.channel())
        .map(|o| {
            (
                world.order_id(o),
                ctx.hasher.phone_text(&world.receiver(o).phone),
            )
        })
        .collect();
    let as_of = core.as_of();
    let start = world.config.start - Duration::days(1);
    let modes: &[bool] = if connector.decrypts() {
        &[false, true]
    } else {
        &[false]
    };
    for &decrypt in modes {
        let pull = SandboxPull {
            decrypt,
            ..SandboxPull::default()
        };
        let streams = sb.streams(pull, &setup());
        let calls_before = core.decrypt_calls();
        let mut rows = Batches::default();
        for s in &streams {
            for w in windows(start, as_of + Duration::seconds(1), max_window(s.as_ref())) {
                s.pull(w, &ctx, &mut rows).await.expect("a pull");
            }
        }
        let (mut hashed, mut masked, mut total) = (0, 0, 0);
        for b in &rows.0 {
            let col = |n: &str| b.column_by_name(n).expect(n).as_string::<i32>().clone();
            let (ids, hashes, masks) = (col("order_id"), col("phone_hash"), col("phone_masked"));
            for i in 0..b.num_rows() {
                total += 1;
                if masks.is_valid(i) {
                    masked += 1;
                    assert!(masks.value(i).contains("****"), "{}", masks.value(i));
                }
                if hashes.is_valid(i) {
                    hashed += 1;
                    assert_eq!(
                        Some(hashes.value(i).to_string()),
                        expected[ids.value(i)],
                        "the hash of the world's phone"
                    );
                }
            }
        }
        assert_eq!(total, core.visible_orders().len(), "every order pulled");
        if facts.masks || decrypt {
            assert_eq!(masked, total, "every row keeps the mask");
        } else {
            assert_eq!(masked, hashed, "only a phone in clear gives a mask");
        }
        if decrypt {
            assert_eq!(hashed, total, "every receiver decrypted and hashed");
            assert!(core.decrypt_calls() > calls_before);
            continue;
        }
        assert_eq!(core.decrypt_calls(), calls_before, "no decrypt call");
        match facts.clear_phones {
            ClearPhones::None => assert_eq!(hashed, 0, "ciphertext only: no hash"),
            ClearPhones::Some => assert!(
                0 < hashed && hashed < total,
                "only the clear phones are hashed: {hashed} of {total}"
            ),
            ClearPhones::All => assert_eq!(hashed, total, "every clear phone is hashed"),
        }
    }
    sb.stop().await;
}

/// Two shops of one app key share its one budget: at 4 requests per
/// second the two shops' calls together never exceed it. A shop's own
/// budget (`shop_qps`) holds too: at 4 per second for each shop and no
/// app budget, one shop's calls never exceed it.
pub async fn check_shops_share_one_budget(connector: &'static dyn Connector) {
    let sb = Started::start(connector, FaultConfig::default(), 20).await;
    let pull = SandboxPull {
        app_qps: 4,
        ..SandboxPull::default()
    };
    let streams = sb.streams(pull, &setup());
    assert!(
        streams.len() >= 2,
        "the world has two shops of {}",
        connector.name()
    );
    assert_within_four_per_second(&sb, &streams[..2], 6).await;
    let kit = Started::kit_of(connector);
    let by_shop = |p: &mut PullSettings| p.shop_qps = 4;
    let streams = kit
        .streams_with_settings(&sb.announcement, &by_shop, &setup())
        .expect("shop_qps builds");
    assert_within_four_per_second(&sb, &streams[..1], 12).await;
    sb.stop().await;
}

/// Pull `windows` windows of each of `streams` at once and assert their
/// calls together kept to 4 per second (after a burst of 4).
async fn assert_within_four_per_second(sb: &Started, streams: &[Arc<dyn Stream>], windows: i32) {
    let core = sb.core();
    let as_of = core.as_of();
    let before = core.requests();
    let started = std::time::Instant::now();
    let tasks: Vec<_> = streams
        .iter()
        .map(|s| {
            let s = s.clone();
            let ctx = pull_context();
            let len = max_window(s.as_ref()).min(Duration::hours(1));
            tokio::spawn(async move {
                for k in 0..windows {
                    let w = Window {
                        start: as_of - len * (k + 1),
                        end: as_of - len * k,
                    };
                    s.pull(w, &ctx, &mut Batches::default())
                        .await
                        .expect("a pull");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("the pull task");
    }
    let calls = core.requests() - before;
    assert!(calls >= 12, "{calls}");
    // 4 at once (the burst), then 4 per second.
    let floor = (calls - 4) as f64 / 4.0;
    assert!(
        started.elapsed().as_secs_f64() >= floor - 0.3,
        "{calls} calls in {:?}",
        started.elapsed()
    );
}
