//! The pull settings every marketplace section has (budget, page size,
//! windows), declared once: [`market_config!`](crate::market_config) adds
//! them to a platform's config with the platform's defaults, and
//! [`PullSettings::checked_plan`] checks them against its limits.

use std::ops::RangeInclusive;

use chrono::Duration;

use crate::setup::ConfigError;
use crate::window::WindowPlan;

use super::wiring::AppWiring;

/// A section's pull settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullSettings {
    /// Requests per second for the app key, shared by all its shops (0 = no limit).
    pub qps: u32,
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
    /// Longest window in minutes, and why (said when a setting exceeds it).
    pub window_minutes: (i64, &'static str),
    /// Furthest first pull in days, and why.
    pub initial_days: (i64, &'static str),
    /// How far behind now windows end (the platform's data settles).
    pub end_lag: Duration,
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
        let (window, why) = limits.window_minutes;
        wiring.check_range("window_minutes", self.window_minutes, 1..=window, why)?;
        let (days, why) = limits.initial_days;
        wiring.check_range("initial_days", self.initial_days, 1..=days, why)?;
        Ok(WindowPlan::from_settings(
            self.window_minutes,
            self.lookback_minutes,
            self.initial_days,
            limits.end_lag,
        ))
    }
}

/// A marketplace config: the platform's own fields, then `pull`, the pull
/// settings every marketplace has (`qps`, `page_size`, `window_minutes`,
/// `lookback_minutes`, `initial_days`, `refunds`), read from the same
/// section with the platform's defaults. Unknown fields are an error
/// naming them. Use once per crate (it adds a private module
/// `pull_defaults`).
///
/// ```ignore
/// quanyu_connector_sdk::market_config! {
///     /// One app and its shops.
///     pub struct MyConfig {
///         /// The app key.
///         pub app_key: String,
///     }
///     pull defaults { qps: 10, page_size: 100, window_minutes: 60, lookback_minutes: 30, initial_days: 7 }
/// }
/// ```
#[macro_export]
macro_rules! market_config {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$fmeta:meta])* pub $field:ident: $fty:ty,)*
        }
        pull defaults {
            qps: $qps:expr,
            page_size: $page:expr,
            window_minutes: $window:expr,
            lookback_minutes: $lookback:expr,
            initial_days: $initial:expr $(,)?
        }
    ) => {
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
                #[serde(default = "qps")]
                pub qps: u32,
                #[serde(default = "page_size")]
                pub page_size: u32,
                #[serde(default = "window_minutes")]
                pub window_minutes: i64,
                #[serde(default = "lookback_minutes")]
                pub lookback_minutes: i64,
                #[serde(default = "initial_days")]
                pub initial_days: i64,
                #[serde(default = "refunds")]
                pub refunds: bool,
            }

            impl From<Section> for super::$name {
                fn from(s: Section) -> Self {
                    super::$name {
                        $($field: s.$field,)*
                        pull: $crate::market::PullSettings {
                            qps: s.qps,
                            page_size: s.page_size,
                            window_minutes: s.window_minutes,
                            lookback_minutes: s.lookback_minutes,
                            initial_days: s.initial_days,
                            refunds: s.refunds,
                        },
                    }
                }
            }

            pub fn qps() -> u32 {
                $qps
            }
            pub fn page_size() -> u32 {
                $page
            }
            pub fn window_minutes() -> i64 {
                $window
            }
            pub fn lookback_minutes() -> i64 {
                $lookback
            }
            pub fn initial_days() -> i64 {
                $initial
            }
            pub fn refunds() -> bool {
                true
            }
        }
    };
}
