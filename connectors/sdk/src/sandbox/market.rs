//! What every marketplace emulator has: the order book it renders from,
//! the shop tokens it issues, the faults it injects, and the counters the
//! tests read. A platform's sandbox holds one [`MarketCore`] and derefs to
//! it, so the accessors are written once.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use quanyu_schemas::Channel;

use super::announce::{AnnouncedShop, SandboxAnnouncement};
use super::answer::Refusal;
use super::orders::{OrderBook, VisibleOrder, VisibleRefund};
use super::tokens::TokenIssuer;
use super::world::{World, WorldConfig};
use super::{FaultConfig, FaultInjector};
use axum::response::Response;

/// What a marketplace emulator accepts and serves.
#[derive(Debug, Clone)]
pub struct MarketSandboxConfig {
    /// The app key (client id) it accepts.
    pub app_key: String,
    /// The app secret requests are signed with (or tokens granted for).
    pub app_secret: String,
    /// A separate signing secret, where the platform has one (Kuaishou).
    pub sign_secret: String,
    /// The seeded world; its shops of the platform's channel are served.
    pub world: WorldConfig,
    /// Faults to inject.
    pub faults: FaultConfig,
    /// The sandbox clock: records are shown as they stand at this time
    /// (`None` = the wall clock).
    pub as_of: Option<DateTime<Utc>>,
    /// How long an access token lives, in seconds.
    pub token_ttl_secs: i64,
}

impl MarketSandboxConfig {
    /// The default sandbox credentials ([`sandbox_credentials`]) over
    /// `world` at `as_of`, with `faults` and tokens living
    /// `token_ttl_secs`.
    ///
    /// [`sandbox_credentials`]: super::announce::sandbox_credentials
    pub fn new(
        world: WorldConfig,
        as_of: DateTime<Utc>,
        faults: FaultConfig,
        token_ttl_secs: i64,
    ) -> Self {
        use super::announce::sandbox_credentials::{APP_KEY, APP_SECRET, SIGN_SECRET};
        MarketSandboxConfig {
            app_key: APP_KEY.into(),
            app_secret: APP_SECRET.into(),
            sign_secret: SIGN_SECRET.into(),
            world,
            faults,
            as_of: Some(as_of),
            token_ttl_secs,
        }
    }

    /// For a unit test: the demo world of 300 orders in `channel`'s shops
    /// only, at a fixed clock, no faults, hour-long tokens.
    pub fn for_test(channel: Channel) -> Self {
        let now = DateTime::from_timestamp(1_735_000_000, 0).expect("a valid time");
        let mut world = WorldConfig::demo(now, 300);
        world.shops = super::world::WorldShop::only(channel);
        Self::new(world, now, FaultConfig::default(), 3600)
    }
}

/// The order book, token issuer, fault injector and counters of one
/// marketplace emulator.
pub struct MarketCore {
    /// The orders of the platform's shops, rendered at the sandbox clock.
    pub book: OrderBook,
    /// The shop tokens the platform's authorization handed out.
    pub issuer: TokenIssuer,
    /// The faults injected into answers.
    pub faults: FaultInjector,
    /// The faults' answers in the platform's words (its `sandbox.toml`).
    refusals: Option<crate::connector::Refusals>,
    /// What the platform shows at each stage (its `sandbox.toml`).
    stages: Option<crate::connector::StageWords>,
    requests: AtomicU64,
    refreshes: AtomicU64,
    decrypts: AtomicU64,
}

impl MarketCore {
    /// The world `world` seen through `channel`, with one token per shop
    /// (prefixed `token_prefix`, living `token_ttl_secs`).
    pub fn new(
        world: &WorldConfig,
        channel: Channel,
        as_of: Option<DateTime<Utc>>,
        faults: FaultConfig,
        token_prefix: &str,
        token_ttl_secs: i64,
    ) -> Self {
        let book = OrderBook::new(World::shared(world), channel, as_of);
        let issuer = TokenIssuer::new(
            &format!("{token_prefix}-{}", world.seed),
            book.shops().len(),
            token_ttl_secs,
        );
        Self::with_issuer(book, issuer, faults)
    }

    /// A core with its own token issuer (an ERP account with one token for
    /// all shops).
    pub fn with_issuer(book: OrderBook, issuer: TokenIssuer, faults: FaultConfig) -> Self {
        MarketCore {
            book,
            issuer,
            faults: FaultInjector::new(faults),
            refusals: None,
            stages: None,
            requests: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
            decrypts: AtomicU64::new(0),
        }
    }

    /// The core speaking the platform's words of `facts`: its refusals
    /// and the status each stage shows.
    pub fn speaking(mut self, facts: crate::connector::SandboxFacts) -> Self {
        self.refusals = Some(facts.refusals);
        self.stages = Some(facts.stages);
        self
    }

    /// What an order at `stage` shows as its status, in the platform's
    /// words (`sandbox.toml` `[stages]`).
    pub fn stage_word(&self, stage: super::lifecycle::Stage) -> &serde_json::Value {
        self.stages
            .as_ref()
            .expect("a marketplace sandbox's facts state its stages")
            .of(stage)
    }

    /// The drawn fault for this request (`token_faults`: the endpoint
    /// takes a token) answered in the platform's words, which `answer`
    /// makes its envelope; `None` to answer normally (after waiting, for a
    /// slow fault). See [`FaultInjector::answer`].
    pub async fn refused(
        &self,
        token_faults: bool,
        answer: impl Fn(&crate::connector::Refused) -> Response,
    ) -> Option<Response> {
        let r = self
            .refusals
            .as_ref()
            .expect("a marketplace sandbox's facts state its refusals");
        let words = |k| match k {
            Refusal::Throttled => &r.throttled,
            Refusal::Busy => &r.busy,
            Refusal::TokenExpired => &r.token_expired,
        };
        self.faults.answer(token_faults, |k| answer(words(k))).await
    }

    /// The world the orders come from.
    pub fn world(&self) -> &World {
        self.book.world()
    }

    /// The platform's shop ids served, in token order.
    pub fn shops(&self) -> Vec<String> {
        (0..self.book.shops().len())
            .map(|i| self.book.shop_id(i).to_string())
            .collect()
    }

    /// The (access, refresh) pair the authorization of shop `i` handed out.
    pub fn tokens_for(&self, i: usize) -> (String, String) {
        self.issuer.initial(i)
    }

    /// The shop an authorization code names: the sandbox's codes are
    /// `sandbox-code-<shop index>`.
    pub fn shop_of_code(&self, code: Option<&str>) -> Option<usize> {
        code.and_then(|c| c.strip_prefix("sandbox-code-"))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n < self.book.shops().len())
    }

    /// Expire every access token (tests: "a day later").
    pub fn expire_tokens(&self) {
        self.issuer.expire_all();
    }

    /// Move the sandbox clock.
    pub fn set_as_of(&self, t: DateTime<Utc>) {
        self.book.set_as_of(t);
    }

    /// The sandbox clock now.
    pub fn as_of(&self) -> DateTime<Utc> {
        self.book.as_of()
    }

    /// Every order as the platform shows it at the sandbox clock.
    pub fn visible_orders(&self) -> Vec<VisibleOrder> {
        self.book.visible()
    }

    /// How many order lines the visible orders hold: one per order where
    /// the platform has one item per order, else one per item bought.
    pub fn visible_lines(&self, one_per_order: bool) -> usize {
        let idx = self.book.snapshot();
        idx.per_shop
            .iter()
            .flatten()
            .map(|e| {
                let items = self.book.lifecycle(e.purchase as usize).items.len();
                if one_per_order {
                    items.min(1)
                } else {
                    items
                }
            })
            .sum()
    }

    /// Every refund request as the platform shows it at the sandbox clock.
    pub fn visible_refunds(&self) -> Vec<VisibleRefund> {
        self.book.visible_refunds()
    }

    /// What a sandbox whose shops hold refreshable tokens announces: every
    /// shop with the pair its authorization gave, at `base_url`.
    pub fn announce(
        &self,
        platform: Channel,
        base_url: &str,
        app_key: &str,
        app_secret: &str,
    ) -> SandboxAnnouncement {
        SandboxAnnouncement {
            platform,
            base_url: base_url.into(),
            app_key: app_key.into(),
            app_secret: app_secret.into(),
            sign_secret: None,
            shops: self
                .shops()
                .into_iter()
                .enumerate()
                .map(|(i, id)| {
                    let (access_token, refresh_token) = self.tokens_for(i);
                    AnnouncedShop {
                        id,
                        access_token,
                        refresh_token: Some(refresh_token),
                    }
                })
                .collect(),
            orders: self.visible_orders().len(),
            refunds: self.visible_refunds().len(),
        }
    }

    /// The `[from, to)` records of the 1-based page `page` of `size` out of
    /// `len`, and the one to corrupt where the faults ask for a malformed
    /// record (drawn once per page).
    pub fn page_slice(
        &self,
        len: usize,
        page: usize,
        size: usize,
    ) -> (usize, usize, Option<usize>) {
        self.slice_from(len, page.saturating_sub(1).saturating_mul(size), size)
    }

    /// The `[from, to)` records of a page of `size` that starts at record
    /// `from` of `len` (cursor paging), and the one to corrupt, as
    /// [`MarketCore::page_slice`].
    pub fn slice_from(
        &self,
        len: usize,
        from: usize,
        size: usize,
    ) -> (usize, usize, Option<usize>) {
        let from = from.min(len);
        let to = from.saturating_add(size).min(len);
        let corrupt = (to > from && self.faults.draw_malformed())
            .then(|| from + self.requests() as usize % (to - from));
        (from, to, corrupt)
    }

    /// Count one request answered.
    pub fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Count one successful token refresh.
    pub fn count_refresh(&self) {
        self.refreshes.fetch_add(1, Ordering::Relaxed);
    }

    /// Count one successful decrypt call.
    pub fn count_decrypt(&self) {
        self.decrypts.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Successful token refreshes so far.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// Successful decrypt calls so far.
    pub fn decrypt_calls(&self) -> u64 {
        self.decrypts.load(Ordering::Relaxed)
    }
}

/// Check an emulator's rendering against its world (its unit tests call
/// this): the first order its book shows, rendered by
/// `render(purchase, event, garbled)`, maps with `mapping` at the
/// lifecycle's payment; the phone ciphertext the mapping hands to the
/// decrypt API (where it hands one) names the order's receiver through
/// `token_of`; neither the receiver's phone nor their name stands in the
/// rendering in clear; a garbled rendering is refused.
pub fn check_rendered_order(
    core: &MarketCore,
    render: impl Fn(usize, usize, bool) -> String,
    mapping: &crate::market::RecordMapping,
    token_of: impl Fn(&str) -> Option<String>,
) {
    let snap = core.book.snapshot();
    let e = snap.per_shop[0][0];
    let (i, ev) = (e.purchase as usize, usize::from(e.event));
    let text = render(i, ev, false);
    let hasher = quanyu_schemas::PiiHasher::new(&quanyu_schemas::LakeKey::from_bytes([0; 32]));
    let m = mapping
        .order(&text, "x", &hasher)
        .expect("a rendered order maps");
    assert_eq!(m.row.amount_fen, core.book.lifecycle(i).payment());
    let world = core.world();
    let person = world.receiver(&world.purchases[i]);
    if let Some(c) = &m.cipher {
        let token = token_of(c).expect("the ciphertext holds a token");
        let back = world.receiver_by_cipher(&token).expect("a known token");
        assert_eq!(
            back.phone, person.phone,
            "the ciphertext names the receiver"
        );
    }
    assert!(!text.contains(&person.phone), "no clear phone: {text}");
    assert!(!text.contains(&person.name), "no clear name: {text}");
    let garbled = render(i, ev, true);
    assert!(mapping.order(&garbled, "x", &hasher).is_err(), "{garbled}");
}

/// A marketplace emulator's types, declared once: its state `Inner` (the
/// [`MarketSandboxConfig`], the [`MarketCore`] and any fields of its own,
/// each with its initial value) and the handle, cheap to clone, that derefs
/// to the core (shops, tokens, faults, counters, the order book), with
/// `new(cfg)`, `config()`, `announcement(base_url)` and `serve(addr)`
/// (serving the platform's own `router()`), and `for_test()` in the
/// crate's tests.
///
/// `serves` names the channel, the token prefix, how long tokens live and
/// what `emulated` describes (`{base_url}` stands for where it serves);
/// `kit` names the config type, and the macro declares `KIT`, the sandbox
/// kit (the module's `config`, `crate::build_streams`, the crate's
/// `sandbox.toml`, `crate::PLATFORM`);
/// an optional `core`
/// builds the core otherwise (a closure of the config), and an optional
/// `announce` names a method that adjusts what the sandbox announces
/// (`fn(&self, SandboxAnnouncement) -> SandboxAnnouncement`).
///
/// ```ignore
/// quanyu_connector_sdk::market_sandbox! {
///     /// The emulator.
///     pub struct MySandbox {
///         /// A field of its own.
///         grants: std::sync::atomic::AtomicU64 = Default::default(),
///     }
///     serves: Taobao, tokens: "top", token_ttl: 86_400,
///     describe: "TOP gateway sandbox at {base_url}/router/rest", kit: crate::TaobaoConfig,
///     announce: without_refresh_tokens,
/// }
/// ```
#[macro_export]
#[allow(clippy::crate_in_macro_def)] // `crate::build_streams` is the calling connector's
macro_rules! market_sandbox {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$fmeta:meta])* $field:ident: $fty:ty = $init:expr),* $(,)?
        }
        serves: $channel:ident, tokens: $prefix:expr, token_ttl: $ttl:expr,
        describe: $describe:expr, kit: $config:ty
        $(, core: $core:expr)?
        $(, announce: $announce:ident)? $(,)?
    ) => {
        struct Inner {
            cfg: $crate::sandbox::market::MarketSandboxConfig,
            core: $crate::sandbox::market::MarketCore,
            $($(#[$fmeta])* $field: $fty,)*
        }

        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name {
            inner: std::sync::Arc<Inner>,
        }

        impl $name {
            /// A sandbox over `cfg.world`'s shops of this platform.
            pub fn new(cfg: $crate::sandbox::market::MarketSandboxConfig) -> Self {
                #[allow(unused_variables)]
                let core = |cfg: &$crate::sandbox::market::MarketSandboxConfig| {
                    $crate::sandbox::market::MarketCore::new(
                        &cfg.world,
                        $crate::schemas::Channel::$channel,
                        cfg.as_of,
                        cfg.faults,
                        $prefix,
                        cfg.token_ttl_secs,
                    )
                };
                $(let core = $core;)?
                let facts = $crate::connector::SandboxFacts::read(include_str!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/sandbox.toml"
                )));
                $name {
                    inner: std::sync::Arc::new(Inner {
                        core: core(&cfg).speaking(facts),
                        cfg,
                        $($field: $init,)*
                    }),
                }
            }

            /// The emulator over `world` at `as_of` with `faults`, accepting
            /// the default credentials, as a running sandbox.
            pub fn emulated(
                world: $crate::sandbox::world::WorldConfig,
                as_of: chrono::DateTime<chrono::Utc>,
                faults: $crate::sandbox::FaultConfig,
            ) -> Box<dyn $crate::connector::RunningSandbox> {
                let cfg = $crate::sandbox::market::MarketSandboxConfig::new(world, as_of, faults, $ttl);
                Box::new($crate::connector::Emulated {
                    router: Self::router,
                    announce: Self::announcement,
                    describe: $describe,
                    sandbox: Self::new(cfg),
                })
            }

            /// For a unit test: the test world's shops of this platform.
            #[cfg(test)]
            #[allow(dead_code)]
            pub(crate) fn for_test() -> Self {
                Self::new($crate::sandbox::market::MarketSandboxConfig::for_test(
                    $crate::schemas::Channel::$channel,
                ))
            }

            /// What it accepts and serves.
            pub fn config(&self) -> &$crate::sandbox::market::MarketSandboxConfig {
                &self.inner.cfg
            }

            /// What this sandbox accepts, served at `base_url`.
            pub fn announcement(
                &self,
                base_url: &str,
            ) -> $crate::connector::SandboxAnnouncement {
                let cfg = &self.inner.cfg;
                let a = self.inner.core.announce(
                    $crate::schemas::Channel::$channel,
                    base_url,
                    &cfg.app_key,
                    &cfg.app_secret,
                );
                $(let a = self.$announce(a);)?
                a
            }

            /// Serve it on `addr` in the background.
            pub async fn serve(
                &self,
                addr: std::net::SocketAddr,
            ) -> std::io::Result<$crate::sandbox::SandboxHandle> {
                $crate::sandbox::serve(self.router(), addr).await
            }
        }

        /// The sandbox kit: how the emulator is created, the config that
        /// pulls it (this module's `config`), the connector's streams, and
        /// what the shared suite checks of it (the crate's `sandbox.toml`).
        pub static KIT: $crate::connector::KitSpec<$config> = $crate::connector::KitSpec {
            create: $name::emulated,
            config,
            build: crate::build_streams,
            facts: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/sandbox.toml")),
            platform: &crate::PLATFORM,
            mapping: &crate::MAPPING,
        };

        impl std::ops::Deref for $name {
            type Target = $crate::sandbox::market::MarketCore;

            /// The order book, tokens, faults and counters every
            /// marketplace sandbox has.
            fn deref(&self) -> &Self::Target {
                &self.inner.core
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sandbox clock moves orders along their lifecycles.
    #[test]
    fn time_moves_orders_forward() {
        let cfg = MarketSandboxConfig::for_test(Channel::Jd);
        let core = MarketCore::new(&cfg.world, Channel::Jd, cfg.as_of, cfg.faults, "t", 3600);
        let before = core.visible_orders();
        core.set_as_of(core.as_of() + chrono::Duration::days(10));
        let after = core.visible_orders();
        assert!(!before.is_empty());
        assert!(before.iter().zip(&after).any(|(a, b)| a.stage != b.stage));
    }
}
