//! What a connector tells the rest of the system, so that adding one is a
//! folder and one registration line: its name and channel, how its config
//! section becomes streams, whether it decrypts, how package-insert cards
//! and identity name its orders, and its sandbox for the demo.

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
pub use quanyu_schemas::Channel;
use serde::de::DeserializeOwned;

use crate::sandbox::world::WorldConfig;
use crate::sandbox::{FaultConfig, SandboxHandle};
use crate::setup::{ConfigError, ConnectorSetup};
use crate::source::Stream;

/// How a channel's order ids look and how a card's `state` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderIds {
    /// The prefix of a contact-way `state` that names one of its orders
    /// (`tb_` + order id).
    pub state_prefix: &'static str,
    /// A regular expression a well-formed order id matches whole (a card
    /// naming anything else is not trusted as an order).
    pub pattern: Option<&'static str>,
}

/// A connector: one value of a type implementing this, registered once.
pub trait Connector: Send + Sync + 'static {
    /// The config section (`[[pdd]]`) and the connector name in stream ids.
    fn name(&self) -> &'static str;

    /// What it pulls, in a few words (for listings and errors).
    fn about(&self) -> &'static str;

    /// The channel its rows carry.
    fn channel(&self) -> Channel;

    /// Check one config section (`[[pdd]]` entry, as a generic value) without
    /// resolving its secrets: unknown fields and bad values are an error
    /// naming them.
    fn check(&self, section: &serde_json::Value) -> Result<(), ConfigError>;

    /// The streams of one config section, given as a generic value (unknown
    /// fields are an error that names them).
    fn streams(
        &self,
        section: serde_json::Value,
        setup: &ConnectorSetup,
    ) -> Result<Vec<Arc<dyn Stream>>, ConfigError>;

    /// Whether it can decrypt receiver phones (`decrypt = true`).
    fn decrypts(&self) -> bool {
        false
    }

    /// How its order ids look and how cards name them, where it has orders.
    fn order_ids(&self) -> Option<OrderIds> {
        None
    }

    /// Its sandbox, where it has one for the demo, `quanyu sandbox` and the
    /// bench.
    fn sandbox(&self) -> Option<&dyn SandboxKit> {
        None
    }
}

/// Builds the streams of one typed config section.
pub type BuildStreams<C> = fn(&C, &ConnectorSetup) -> Result<Vec<Arc<dyn Stream>>, ConfigError>;

/// A connector declared as data: its typed config `C` and the function
/// that turns one section into streams. Each connector crate has one
/// `pub static CONNECTOR: ConnectorSpec<...>`; the engine registers it with
/// one line.
pub struct ConnectorSpec<C> {
    /// The config section and connector name.
    pub name: &'static str,
    /// What it pulls, in a few words.
    pub about: &'static str,
    /// The channel its rows carry.
    pub channel: Channel,
    /// One section's streams.
    pub build: BuildStreams<C>,
    /// Whether it can decrypt receiver phones.
    pub decrypts: bool,
    /// How its order ids look and how cards name them.
    pub order_ids: Option<OrderIds>,
    /// Its sandbox.
    pub sandbox: Option<&'static dyn SandboxKit>,
}

impl<C: DeserializeOwned + 'static> Connector for ConnectorSpec<C> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn about(&self) -> &'static str {
        self.about
    }

    fn channel(&self) -> Channel {
        self.channel
    }

    fn check(&self, section: &serde_json::Value) -> Result<(), ConfigError> {
        parse_section::<C>(self.name, section.clone()).map(|_| ())
    }

    fn streams(
        &self,
        section: serde_json::Value,
        setup: &ConnectorSetup,
    ) -> Result<Vec<Arc<dyn Stream>>, ConfigError> {
        (self.build)(&parse_section(self.name, section)?, setup)
    }

    fn decrypts(&self) -> bool {
        self.decrypts
    }

    fn order_ids(&self) -> Option<OrderIds> {
        self.order_ids
    }

    fn sandbox(&self) -> Option<&dyn SandboxKit> {
        self.sandbox
    }
}

/// A marketplace's registration in one call: the `CONNECTOR` static of
/// its crate over its typed config, built by its `build_streams`, with its
/// sandbox `sandbox::KIT`, its card `state` prefix and order-id pattern;
/// and its `MAPPING`, read from the crate's `mapping.toml`.
///
/// ```ignore
/// quanyu_connector_sdk::market_connector! {
///     TaobaoConfig, "taobao", Taobao, "Taobao / Tmall (淘宝/天猫) orders",
///     decrypts: true, state: "tb_", ids: Some("[0-9]{12,20}")
/// }
/// ```
#[macro_export]
macro_rules! market_connector {
    (
        $cfg:ty, $name:literal, $channel:ident, $about:literal,
        decrypts: $decrypts:expr, state: $state:literal, ids: $ids:expr
    ) => {
        /// The connector as the engine registers it.
        pub static CONNECTOR: $crate::connector::ConnectorSpec<$cfg> =
            $crate::connector::ConnectorSpec {
                name: $name,
                about: $about,
                channel: $crate::connector::Channel::$channel,
                build: build_streams,
                decrypts: $decrypts,
                order_ids: Some($crate::connector::OrderIds {
                    state_prefix: $state,
                    pattern: $ids,
                }),
                sandbox: Some(&sandbox::KIT),
            };

        /// The platform's order and refund records as canonical rows: where
        /// each field stands, its unit and what the status words mean are
        /// data (the crate's `mapping.toml`, with its checks).
        pub static MAPPING: $crate::market::RecordMapping = $crate::market::RecordMapping::new(
            $crate::connector::Channel::$channel,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/mapping.toml")),
        );
    };
}

/// Read a config section into the connector's typed config; a problem
/// names the section and the field, never a value.
pub fn parse_section<C: DeserializeOwned>(
    connector: &'static str,
    section: serde_json::Value,
) -> Result<C, ConfigError> {
    let app = section
        .get("app_key")
        .or_else(|| section.get("client_id"))
        .or_else(|| section.get("corp_id"))
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .to_string();
    serde_json::from_value(section).map_err(|e| ConfigError::new(connector, &app, e.to_string()))
}

pub use crate::sandbox::announce::{sandbox_credentials, AnnouncedShop, SandboxAnnouncement};

/// A sandbox kit declared as data: how the emulator is created, the typed
/// config that pulls an announcement of it, and what it answers. Each
/// connector's `sandbox` module has one `pub static KIT`.
pub struct KitSpec<C> {
    /// Create the emulator over a world at a time, with faults, accepting
    /// the default credentials.
    pub create: fn(WorldConfig, DateTime<Utc>, FaultConfig) -> Box<dyn RunningSandbox>,
    /// The config pulling an announced sandbox.
    pub config: fn(&SandboxAnnouncement, SandboxPull) -> C,
    /// The connector's streams of that config.
    pub build: BuildStreams<C>,
    /// What the shared suite checks of it: the connector's
    /// `sandbox.toml` ([`SandboxFacts`]).
    pub facts: &'static str,
    /// What the platform allows of a pull (the connector's `PLATFORM`).
    pub platform: &'static crate::market::PlatformFacts,
    /// How its records map (the connector's `MAPPING`).
    pub mapping: &'static crate::market::RecordMapping,
}

impl<C: crate::market::Pulled + 'static> SandboxKit for KitSpec<C> {
    fn create(
        &self,
        world: WorldConfig,
        as_of: DateTime<Utc>,
        faults: FaultConfig,
    ) -> Box<dyn RunningSandbox> {
        (self.create)(world, as_of, faults)
    }

    fn streams(
        &self,
        announcement: &SandboxAnnouncement,
        pull: SandboxPull,
        setup: &ConnectorSetup,
    ) -> Result<Vec<Arc<dyn Stream>>, ConfigError> {
        (self.build)(&(self.config)(announcement, pull), setup)
    }

    fn facts(&self) -> SandboxFacts {
        SandboxFacts::read(self.facts)
    }

    fn pull_limits(&self) -> Option<&'static crate::market::PullLimits> {
        Some(self.platform.limits())
    }

    fn mapping(&self) -> Option<&'static crate::market::RecordMapping> {
        Some(self.mapping)
    }

    fn streams_with_settings(
        &self,
        announcement: &SandboxAnnouncement,
        settings: &dyn Fn(&mut crate::market::PullSettings),
        setup: &ConnectorSetup,
    ) -> Result<Vec<Arc<dyn Stream>>, ConfigError> {
        let mut cfg = (self.config)(announcement, SandboxPull::default());
        settings(cfg.pull_settings());
        (self.build)(&cfg, setup)
    }
}

/// How a connector's sandbox is started and connected to.
pub trait SandboxKit: Send + Sync {
    /// A sandbox over `world` at `as_of`, accepting the default credentials
    /// ([`sandbox_credentials`]).
    fn create(
        &self,
        world: WorldConfig,
        as_of: DateTime<Utc>,
        faults: FaultConfig,
    ) -> Box<dyn RunningSandbox>;

    /// The streams that pull an announced sandbox as `pull` asks (the
    /// sandbox's secrets are given in code, never through a config section).
    fn streams(
        &self,
        announcement: &SandboxAnnouncement,
        pull: SandboxPull,
        setup: &ConnectorSetup,
    ) -> Result<Vec<Arc<dyn Stream>>, ConfigError>;

    /// What the marketplace suite checks of this sandbox.
    fn facts(&self) -> SandboxFacts;

    /// What the platform allows of the pull settings, where it says.
    fn pull_limits(&self) -> Option<&'static crate::market::PullLimits> {
        None
    }

    /// How the platform's records map to canonical rows, where it is a
    /// marketplace (its `mapping.toml`).
    fn mapping(&self) -> Option<&'static crate::market::RecordMapping> {
        None
    }

    /// The streams of the default sandbox config with its pull settings
    /// changed by `settings` (or the configuration error they meet).
    fn streams_with_settings(
        &self,
        announcement: &SandboxAnnouncement,
        settings: &dyn Fn(&mut crate::market::PullSettings),
        setup: &ConnectorSetup,
    ) -> Result<Vec<Arc<dyn Stream>>, ConfigError>;
}

/// How the streams pulling a sandbox are set up.
#[derive(Debug, Clone, Copy)]
pub struct SandboxPull {
    /// How many days back the first pull starts.
    pub initial_days: i64,
    /// Decrypt receiver phones where the platform can.
    pub decrypt: bool,
    /// The app key's requests per second (0 = no limit).
    pub app_qps: u32,
    /// Also pull the refund lists (off in the order checks).
    pub refunds: bool,
}

impl Default for SandboxPull {
    fn default() -> Self {
        SandboxPull {
            initial_days: 31,
            decrypt: false,
            app_qps: 0,
            refunds: false,
        }
    }
}

/// Which receiver phones a platform sends in clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClearPhones {
    /// None: masks and ciphertexts only.
    None,
    /// Some (a buyer's own phone on some orders), the rest encrypted.
    Some,
    /// All (an ERP relaying its own shops' orders).
    All,
}

/// What a marketplace sandbox answers, for the shared suite's checks: a
/// connector states them as data, in its `sandbox.toml`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxFacts {
    /// The order list API, named in errors.
    pub list_api: String,
    /// What the platform answers a wrong app secret with (a bad
    /// signature, or a refused token grant where the platform signs
    /// nothing).
    pub bad_signature: BadSignature,
    /// How shop tokens are obtained and renewed.
    pub tokens: TokenFlow,
    /// Which receiver phones come in clear.
    pub clear_phones: ClearPhones,
    /// Whether every order carries a masked phone (`138****0000`) without
    /// decrypting; where it does not, only a decrypted phone gives one.
    pub masks: bool,
    /// Whether each order holds one item whatever was bought (Kuaishou's
    /// `orderItemInfo`): one line per order; else one line per item bought.
    #[serde(default)]
    pub one_line_per_order: bool,
    /// The platform's official SDK, where one installs from PyPI: the suite
    /// drives it against the sandbox.
    #[serde(default)]
    pub official_sdk: Option<OfficialSdk>,
    /// What the gateway answers a drawn fault with, in its own words.
    pub refusals: Refusals,
    /// What the platform shows at each stage of an order's life.
    pub stages: StageWords,
}

/// The status an order shows at each stage of its life, as the platform
/// writes it (a number, a word, or a list of the fields that together say
/// it, such as Pinduoduo's order and refund status).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageWords {
    /// Created, not paid.
    pub created: serde_json::Value,
    /// Paid.
    pub paid: serde_json::Value,
    /// Shipped.
    pub shipped: serde_json::Value,
    /// Finished.
    pub finished: serde_json::Value,
    /// Closed before payment.
    pub cancelled: serde_json::Value,
    /// Closed after payment: refunded.
    pub refunded: serde_json::Value,
}

impl StageWords {
    /// What `stage` shows.
    pub fn of(&self, stage: crate::sandbox::lifecycle::Stage) -> &serde_json::Value {
        use crate::sandbox::lifecycle::Stage;
        match stage {
            Stage::Created => &self.created,
            Stage::Paid => &self.paid,
            Stage::Shipped => &self.shipped,
            Stage::Finished => &self.finished,
            Stage::Cancelled => &self.cancelled,
            Stage::Refunded => &self.refunded,
        }
    }
}

/// What a platform's gateway answers each refusal with.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refusals {
    /// Too many calls.
    pub throttled: Refused,
    /// The service is busy or timed out behind the gateway.
    pub busy: Refused,
    /// The shop's token has expired.
    pub token_expired: Refused,
}

/// One refusal in the platform's words: its code and message, and where
/// the platform has them a sub-code and a second message.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refused {
    /// The platform's code.
    pub code: i64,
    /// Its message.
    pub says: String,
    /// A sub-code (`isv.flow-limited`), where the envelope has one.
    #[serde(default)]
    pub sub: String,
    /// A second message (the sub-message, or the English one).
    #[serde(default)]
    pub sub_says: String,
    /// Which of the platform's envelopes answers it, where it has two
    /// (`gateway`); empty for the usual one.
    #[serde(default)]
    pub envelope: String,
}

impl SandboxFacts {
    /// The facts stated in `toml` (a connector's `sandbox.toml`); they are
    /// part of the build, so unreadable facts are a bug naming the field.
    pub fn read(toml: &str) -> Self {
        toml::from_str(toml).unwrap_or_else(|e| panic!("unreadable sandbox facts: {e}"))
    }
}

/// The code and a word of the message a wrong app secret gets.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BadSignature {
    /// The platform's code.
    pub code: String,
    /// A word its message holds.
    pub says: String,
}

/// How a platform's shop tokens come and go.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenFlow {
    /// Configured and never renewed by the connector (Taobao sessions).
    Configured,
    /// Configured, and renewed through the platform's refresh API (named
    /// when a refresh is refused).
    Refresh(String),
    /// Granted to the app itself, per shop, at this endpoint (Youzan's
    /// silent authorization): nothing to configure but the app's secret.
    AppGrant(String),
}

/// An official SDK check: a script (relative to the connector's crate)
/// that pulls one shop's orders through the SDK's own client and signing
/// and prints `{"orders": N}`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficialSdk {
    /// The script, e.g. `tests/sdk_check.py`.
    pub script: String,
    /// Its arguments for one shop (the window is added), where `{base_url}`,
    /// `{host}`, `{port}`, `{app_key}`, `{app_secret}`, `{sign_secret}`,
    /// `{shop_id}` and `{access_token}` stand for the announced values.
    pub args: Vec<String>,
}

impl OfficialSdk {
    /// The arguments for `shop` of the sandbox announced as `ann`.
    pub fn args_for(&self, ann: &SandboxAnnouncement, shop: &AnnouncedShop) -> Vec<String> {
        let url = url::Url::parse(&ann.base_url).ok();
        let host = url.as_ref().and_then(|u| u.host_str()).unwrap_or_default();
        let port = url
            .as_ref()
            .and_then(|u| u.port_or_known_default())
            .unwrap_or(80)
            .to_string();
        let values = [
            ("{base_url}", ann.base_url.as_str()),
            ("{host}", host),
            ("{port}", &port),
            ("{app_key}", &ann.app_key),
            ("{app_secret}", &ann.app_secret),
            (
                "{sign_secret}",
                ann.sign_secret.as_deref().unwrap_or_default(),
            ),
            ("{shop_id}", &shop.id),
            ("{access_token}", &shop.access_token),
        ];
        self.args
            .iter()
            .map(|a| {
                values
                    .iter()
                    .fold(a.clone(), |a, (name, value)| a.replace(name, value))
            })
            .collect()
    }
}

/// A created sandbox.
#[async_trait::async_trait]
pub trait RunningSandbox: Send + Sync {
    /// Serve it on `addr` in the background.
    async fn serve_on(&self, addr: SocketAddr) -> std::io::Result<SandboxHandle>;
    /// How many orders it shows now.
    fn orders_shown(&self) -> usize;
    /// What it accepts, served at `base_url`.
    fn announce(&self, base_url: &str) -> SandboxAnnouncement;
    /// One line saying what it emulates and where.
    fn describe(&self, base_url: &str) -> String;
    /// The sandbox itself, for tests that read its own counters.
    fn as_any(&self) -> &dyn std::any::Any;
    /// Its order book, tokens and counters (marketplaces).
    fn market(&self) -> Option<&crate::sandbox::market::MarketCore> {
        None
    }
}

/// A marketplace emulator made a [`RunningSandbox`] from data: its routes,
/// what it announces and one line describing it (`{base_url}` is replaced
/// by where it serves).
pub struct Emulated<S> {
    /// The emulator (derefs to its order book, tokens and counters).
    pub sandbox: S,
    /// Its routes.
    pub router: fn(&S) -> axum::Router,
    /// What it accepts at a base URL.
    pub announce: fn(&S, &str) -> SandboxAnnouncement,
    /// What it emulates: `Pinduoduo router sandbox at {base_url}/api/router`.
    pub describe: &'static str,
}

#[async_trait::async_trait]
impl<S> RunningSandbox for Emulated<S>
where
    S: std::ops::Deref<Target = crate::sandbox::market::MarketCore> + Send + Sync + 'static,
{
    async fn serve_on(&self, addr: SocketAddr) -> std::io::Result<SandboxHandle> {
        crate::sandbox::serve((self.router)(&self.sandbox), addr).await
    }

    fn orders_shown(&self) -> usize {
        self.sandbox.visible_orders().len()
    }

    fn announce(&self, base_url: &str) -> SandboxAnnouncement {
        (self.announce)(&self.sandbox, base_url)
    }

    fn describe(&self, base_url: &str) -> String {
        self.describe.replace("{base_url}", base_url)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        &self.sandbox
    }

    fn market(&self) -> Option<&crate::sandbox::market::MarketCore> {
        Some(&self.sandbox)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Facts read from their TOML; an SDK's arguments take the announced
    /// values, the port from the base URL.
    #[test]
    fn facts_read_and_sdk_arguments_fill_in() {
        let facts = SandboxFacts::read(
            r#"list_api = "x.list"
            bad_signature = { code = "25", says = "Invalid signature" }
            tokens = { refresh = "x.refresh" }
            clear_phones = "some"
            masks = true
            [stages]
            created = 1
            paid = "WAIT"
            shipped = [2, 1]
            finished = 3
            cancelled = 4
            refunded = 4
            [refusals]
            throttled = { code = 7, says = "App Call Limited", sub = "accesscontrol.limited" }
            busy = { code = 15, says = "Remote service error" }
            token_expired = { code = 27, says = "Invalid session", envelope = "gateway" }
            [official_sdk]
            script = "tests/sdk_check.py"
            args = ["--host", "{host}", "--port", "{port}", "--token", "{access_token}", "--url={base_url}/r"]"#,
        );
        assert_eq!(facts.tokens, TokenFlow::Refresh("x.refresh".into()));
        use crate::sandbox::lifecycle::Stage;
        assert_eq!(facts.stages.of(Stage::Paid), "WAIT");
        assert_eq!(facts.stages.of(Stage::Shipped), &serde_json::json!([2, 1]));
        let r = &facts.refusals;
        assert_eq!(
            (r.throttled.code, r.throttled.sub.as_str()),
            (7, "accesscontrol.limited")
        );
        assert_eq!(
            (r.busy.sub.as_str(), r.token_expired.envelope.as_str()),
            ("", "gateway")
        );
        assert_eq!(
            (facts.clear_phones, facts.one_line_per_order),
            (ClearPhones::Some, false)
        );
        let ann = SandboxAnnouncement {
            platform: Channel::Taobao,
            base_url: "http://127.0.0.1:4100".into(),
            app_key: "k".into(),
            app_secret: "s".into(),
            sign_secret: None,
            shops: vec![],
            orders: 0,
            refunds: 0,
        };
        let shop = AnnouncedShop {
            id: "shop1".into(),
            access_token: "tok".into(),
            refresh_token: None,
        };
        let args = facts.official_sdk.unwrap().args_for(&ann, &shop);
        assert_eq!(
            args,
            [
                "--host",
                "127.0.0.1",
                "--port",
                "4100",
                "--token",
                "tok",
                "--url=http://127.0.0.1:4100/r"
            ]
        );
        let bad = std::panic::catch_unwind(|| SandboxFacts::read("list_api = 1"));
        assert!(bad.is_err(), "unreadable facts are a bug, said at once");
    }
}
