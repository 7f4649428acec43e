//! The pull settings every marketplace section has (budget, page size,
//! windows), declared once: [`market_config!`](crate::market_config) adds
//! them to a platform's config with the platform's defaults, and
//! [`PullSettings::checked_plan`] checks them against its limits. Both
//! are data: the connector's `platform.toml` ([`PlatformFacts`]).

use std::ops::RangeInclusive;
use std::sync::OnceLock;

use chrono::Duration;

use crate::setup::ConfigError;
use crate::window::WindowPlan;

use super::wiring::AppWiring;

/// A section's pull settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullSettings {
    /// Requests per second for the app key, shared by all its shops (0 = no limit).
    pub qps: u32,
    /// Requests per second per shop, within the app's (0 = no per-shop
    /// limit).
    pub shop_qps: u32,
    /// Orders per page.
    pub page_size: u32,
    /// Window length in minutes.
    pub window_minutes: i64,
    /// Look-back overlap in minutes for late updates.
    pub lookback_minutes: i64,
    /// How many days back the first pull starts.
    pub initial_days: i64,
    /// Also pull each shop's refund / after-sale list (a `refunds` stream
    /// per shop).
    pub refunds: bool,
}

/// A config with pull settings (every `market_config!` config).
pub trait Pulled {
    /// Its pull settings, to change.
    fn pull_settings(&mut self) -> &mut PullSettings;
}

/// What a platform allows of the pull settings.
#[derive(Debug, Clone)]
pub struct PullLimits {
    /// Page sizes the list takes.
    pub page_size: RangeInclusive<u32>,
    /// Longest window in minutes, and why (` (…)`, said when a setting
    /// exceeds it).
    pub window_minutes: (i64, String),
    /// Furthest first pull in days, and why.
    pub initial_days: (i64, String),
    /// How far behind now windows end (the platform's data settles).
    pub end_lag: Duration,
}

impl PullLimits {
    /// The longest window the platform serves.
    pub fn longest_window(&self) -> Duration {
        Duration::minutes(self.window_minutes.0)
    }
}

/// The pull settings a section that says nothing gets on a platform.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullDefaults {
    /// Requests per second for the app key (0 = no limit).
    pub qps: u32,
    /// Requests per second per shop (0 = no per-shop limit, the default).
    #[serde(default)]
    pub shop_qps: u32,
    /// Orders per page.
    pub page_size: u32,
    /// Window length in minutes.
    pub window_minutes: i64,
    /// Look-back overlap in minutes.
    pub lookback_minutes: i64,
    /// How many days back the first pull starts.
    pub initial_days: i64,
}

/// A platform's `[limits]` as written.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsText {
    page_size: [u32; 2],
    window_minutes: i64,
    #[serde(default)]
    window_why: String,
    initial_days: i64,
    #[serde(default)]
    initial_why: String,
    end_lag_seconds: i64,
}

/// A platform's `platform.toml` as written.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlatformText {
    pull: PullDefaults,
    limits: LimitsText,
}

/// What a platform allows of a pull and what a pull asks of it by default,
/// as data: the connector's `platform.toml`, with `[pull]` (the defaults:
/// `qps`, `shop_qps` (0 where absent), `page_size`, `window_minutes`, `lookback_minutes`,
/// `initial_days`) and `[limits]` (`page_size = [min, max]`,
/// `window_minutes` and `window_why`, `initial_days` and `initial_why`,
/// `end_lag_seconds`). [`market_config!`](crate::market_config) reads it
/// into the crate's `PLATFORM`.
pub struct PlatformFacts {
    text: &'static str,
    read: OnceLock<(PullDefaults, PullLimits)>,
}

impl PlatformFacts {
    /// The facts `text` (the connector's `platform.toml`) states.
    pub const fn new(text: &'static str) -> Self {
        PlatformFacts {
            text,
            read: OnceLock::new(),
        }
    }

    /// Read `text`; a file that does not read, or whose defaults break its
    /// own limits, says why.
    pub fn read(text: &str) -> Result<(PullDefaults, PullLimits), String> {
        let t: PlatformText = toml::from_str(text).map_err(|e| e.to_string())?;
        let why = |w: &str| match w.trim() {
            "" => String::new(),
            w => format!(" ({w})"),
        };
        let [low, high] = t.limits.page_size;
        let limits = PullLimits {
            page_size: low..=high,
            window_minutes: (t.limits.window_minutes, why(&t.limits.window_why)),
            initial_days: (t.limits.initial_days, why(&t.limits.initial_why)),
            end_lag: Duration::seconds(t.limits.end_lag_seconds),
        };
        let d = t.pull;
        let outside = |field: &str| format!("[pull] {field} is outside [limits]");
        let broken = [
            (
                low == 0 || low > high,
                "[limits] page_size is not [min, max] with 1 <= min <= max".to_string(),
            ),
            (
                t.limits.end_lag_seconds < 0,
                "[limits] end_lag_seconds is negative".to_string(),
            ),
            (
                !limits.page_size.contains(&d.page_size),
                outside("page_size"),
            ),
            (
                !(1..=limits.window_minutes.0).contains(&d.window_minutes),
                outside("window_minutes"),
            ),
            (
                !(1..=limits.initial_days.0).contains(&d.initial_days),
                outside("initial_days"),
            ),
            (
                d.lookback_minutes < 0,
                "[pull] lookback_minutes is negative".to_string(),
            ),
        ];
        match broken.into_iter().find(|(bad, _)| *bad) {
            Some((_, why)) => Err(why),
            None => Ok((d, limits)),
        }
    }

    fn facts(&self) -> &(PullDefaults, PullLimits) {
        self.read
            .get_or_init(|| Self::read(self.text).unwrap_or_else(|e| panic!("platform.toml: {e}")))
    }

    /// The pull settings a section that says nothing gets.
    pub fn defaults(&self) -> &PullDefaults {
        &self.facts().0
    }

    /// What the platform allows of the pull settings.
    pub fn limits(&self) -> &PullLimits {
        &self.facts().1
    }
}

impl PullSettings {
    /// The settings a sandbox pull asks for (`pull`), with the platform's
    /// page size, window and look-back.
    pub fn sandbox(
        pull: crate::connector::SandboxPull,
        page_size: u32,
        window_minutes: i64,
        lookback_minutes: i64,
    ) -> Self {
        PullSettings {
            qps: pull.app_qps,
            shop_qps: 0,
            page_size,
            window_minutes,
            lookback_minutes,
            initial_days: pull.initial_days,
            refunds: pull.refunds,
        }
    }

    /// Check the settings against `limits` (an error names the field and
    /// the platform's reason) and cut the windows they ask for.
    pub fn checked_plan(
        &self,
        wiring: &AppWiring,
        limits: &PullLimits,
    ) -> Result<WindowPlan, ConfigError> {
        wiring.check_range("page_size", self.page_size, limits.page_size.clone(), "")?;
        let (window, why) = &limits.window_minutes;
        wiring.check_range("window_minutes", self.window_minutes, 1..=*window, why)?;
        let (days, why) = &limits.initial_days;
        wiring.check_range("initial_days", self.initial_days, 1..=*days, why)?;
        Ok(WindowPlan::from_settings(
            self.window_minutes,
            self.lookback_minutes,
            self.initial_days,
            limits.end_lag,
        ))
    }
}

/// A marketplace config: the platform's own fields, then `pull`, the pull
/// settings every marketplace has (`qps`, `shop_qps`, `page_size`, `window_minutes`,
/// `lookback_minutes`, `initial_days`, `refunds`), read from the same
/// section with the platform's defaults. Unknown fields are an error
/// naming them. The defaults and limits are the crate's `platform.toml`,
/// read into `pub static PLATFORM` ([`PlatformFacts`]). Use once per crate
/// (it adds a private module `pull_defaults`).
///
/// ```ignore
/// quanyu_connector_sdk::market_config! {
///     /// One app and its shops.
///     pub struct MyConfig {
///         /// The app key.
///         pub app_key: String,
///     }
/// }
/// ```
#[macro_export]
macro_rules! market_config {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$fmeta:meta])* pub $field:ident: $fty:ty,)*
        }
    ) => {
        /// What the platform allows of a pull and what a pull asks of it by
        /// default (the crate's `platform.toml`).
        pub static PLATFORM: $crate::market::PlatformFacts = $crate::market::PlatformFacts::new(
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/platform.toml")),
        );

        $(#[$meta])*
        #[derive(Debug, Clone, serde::Deserialize)]
        #[serde(from = "pull_defaults::Section")]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $fty,)*
            /// The pull settings, read from the same section.
            pub pull: $crate::market::PullSettings,
        }

        impl $crate::market::Pulled for $name {
            fn pull_settings(&mut self) -> &mut $crate::market::PullSettings {
                &mut self.pull
            }
        }

        /// The pull settings' defaults on this platform, and the section as
        /// it is written (flat).
        mod pull_defaults {
            #[allow(unused_imports)]
            use super::*;

            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            pub struct Section {
                $($(#[$fmeta])* pub $field: $fty,)*
                pub qps: Option<u32>,
                pub shop_qps: Option<u32>,
                pub page_size: Option<u32>,
                pub window_minutes: Option<i64>,
                pub lookback_minutes: Option<i64>,
                pub initial_days: Option<i64>,
                pub refunds: Option<bool>,
            }

            impl From<Section> for super::$name {
                fn from(s: Section) -> Self {
                    let d = super::PLATFORM.defaults();
                    super::$name {
                        $($field: s.$field,)*
                        pull: $crate::market::PullSettings {
                            qps: s.qps.unwrap_or(d.qps),
                            shop_qps: s.shop_qps.unwrap_or(d.shop_qps),
                            page_size: s.page_size.unwrap_or(d.page_size),
                            window_minutes: s.window_minutes.unwrap_or(d.window_minutes),
                            lookback_minutes: s.lookback_minutes.unwrap_or(d.lookback_minutes),
                            initial_days: s.initial_days.unwrap_or(d.initial_days),
                            refunds: s.refunds.unwrap_or(true),
                        },
                    }
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::PlatformFacts;

    const FACTS: &str = r#"
        [pull]
        qps = 10
        page_size = 100
        window_minutes = 60
        lookback_minutes = 30
        initial_days = 7

        [limits]
        page_size = [1, 100]
        window_minutes = 1440
        window_why = "one day"
        initial_days = 90
        end_lag_seconds = 120
    "#;

    #[test]
    fn platform_facts_read_into_defaults_and_limits() {
        let (d, l) = PlatformFacts::read(FACTS).unwrap();
        assert_eq!((d.qps, d.page_size, d.window_minutes), (10, 100, 60));
        assert_eq!(l.page_size, 1..=100);
        assert_eq!(l.window_minutes, (1440, " (one day)".to_string()));
        assert_eq!(l.initial_days, (90, String::new()));
        assert_eq!(l.end_lag, chrono::Duration::seconds(120));
        assert_eq!(l.longest_window(), chrono::Duration::days(1));
    }

    #[test]
    fn platform_facts_that_contradict_themselves_are_refused() {
        // (what is changed, into what, what the refusal says)
        for (from, to, says) in [
            (
                "page_size = 100",
                "page_size = 101",
                "page_size is outside [limits]",
            ),
            (
                "window_minutes = 60",
                "window_minutes = 1441",
                "window_minutes is outside",
            ),
            (
                "page_size = [1, 100]",
                "page_size = [100, 1]",
                "1 <= min <= max",
            ),
            (
                "end_lag_seconds = 120",
                "end_lag_seconds = -5",
                "end_lag_seconds is negative",
            ),
        ] {
            let e = PlatformFacts::read(&FACTS.replace(from, to)).err();
            assert!(
                e.as_deref().is_some_and(|e| e.contains(says)),
                "{to}: {e:?}"
            );
        }
        let unknown = FACTS.replace("end_lag_seconds", "end_lag_secs");
        assert!(PlatformFacts::read(&unknown).is_err());
    }
}
