//! `[marts]`: the parameters of the operators' marts (the reference day,
//! the recall window, the bridge-ROI window and unit costs, the rep rule,
//! the super-user share, product categories). Every mart that reads one
//! is rebuilt when it changes.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use chrono::{FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Beijing time (UTC+8, no daylight saving): days, weeks and months of the
/// marts are Beijing calendar days.
pub fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// `[marts]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MartsConfig {
    /// The reference day (a Beijing date, `2026-06-30`) the marts answer
    /// for: recency, the recall window, trailing-365-day GMV. Today in
    /// Beijing when unset, so the marts move on by themselves each day.
    #[serde(deserialize_with = "date")]
    pub as_of: Option<NaiveDate>,
    /// `[marts.recall]`: who is due a recall call or message.
    pub recall: RecallConfig,
    /// `[marts.bridge_roi]`: what a bridge's added contacts earned back.
    pub bridge_roi: BridgeRoiConfig,
    /// `[marts.rep_attribution]`: which rep an order belongs to.
    pub rep_attribution: RepAttributionConfig,
    /// `[marts.super_users]`: the share of customers that are super users.
    pub super_users: SuperUsersConfig,
    /// `[marts.categories]`: category name → words of product titles that
    /// put an order line in it (`"面霜" = ["面霜", "霜"]`); an order's
    /// category is its largest line's. Orders matching none are `other`;
    /// with no categories every order is `all`.
    pub categories: BTreeMap<String, Vec<String>>,
}

/// A date written as a TOML date (`2026-06-30`) or as text
/// (`"2026-06-30"`).
fn date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Toml(toml::value::Datetime),
        Text(String),
    }
    let text = match Written::deserialize(d)? {
        Written::Toml(t) => t.to_string(),
        Written::Text(t) => t,
    };
    NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| {
            serde::de::Error::custom(format!("as_of must be a date (2026-06-30), not {text:?}"))
        })
}

/// `[marts.recall]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RecallConfig {
    /// Fewest days since the last purchase for a customer to be due (the
    /// short end of the repurchase cycle).
    pub min_days: u32,
    /// Most days since the last purchase (beyond it the customer is
    /// considered lost, not due).
    pub max_days: u32,
    /// A customer reached by an AI call or SMS within this many days before
    /// the reference day is suppressed (not called again so soon).
    pub contacted_within_days: u32,
    /// Tags meaning "do not contact", as `contacts.tags` holds them (WeCom:
    /// tag ids; CRM: the mapped tags): a customer with one on any contact
    /// is suppressed.
    pub opt_out_tags: Vec<String>,
}

impl Default for RecallConfig {
    fn default() -> Self {
        RecallConfig {
            min_days: 90,
            max_days: 180,
            contacted_within_days: 14,
            opt_out_tags: Vec::new(),
        }
    }
}

/// `[marts.bridge_roi]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeRoiConfig {
    /// Days after a customer joins WeCom whose revenue counts for the
    /// bridge that brought them.
    pub window_days: u32,
    /// The cohort a touchpoint falls in: `month` or `week` (ISO weeks,
    /// starting Monday).
    pub cohort: CohortPeriod,
    /// Cost per touchpoint in fen, per bridge (`package_card = 30`), for
    /// touchpoints whose feed gave no cost.
    pub unit_cost_fen: BTreeMap<String, i64>,
}

impl Default for BridgeRoiConfig {
    fn default() -> Self {
        BridgeRoiConfig {
            window_days: 30,
            cohort: CohortPeriod::Month,
            unit_cost_fen: BTreeMap::new(),
        }
    }
}

/// The length of a bridge cohort.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CohortPeriod {
    /// Calendar months (Beijing).
    #[default]
    Month,
    /// ISO weeks starting Monday (Beijing).
    Week,
}

/// `[marts.rep_attribution]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RepAttributionConfig {
    /// Which rep an order belongs to.
    pub rule: RepRule,
}

/// Which WeCom owner an order is attributed to. Under every rule an order
/// belongs to at most one rep, and only when it was created at or after
/// that rep added the customer.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RepRule {
    /// The rep who added the customer first keeps them.
    #[default]
    First,
    /// The rep who holds the customer now (the latest added contact not
    /// deleted since) takes every order since they added them.
    Current,
    /// The rep whose contact with the customer was the latest added before
    /// the order (and not deleted before it).
    AtOrder,
}

/// `[marts.super_users]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SuperUsersConfig {
    /// The top share of customers by trailing-365-day net GMV that are
    /// super users (0 < share ≤ 1).
    pub share: f64,
}

impl Default for SuperUsersConfig {
    fn default() -> Self {
        SuperUsersConfig { share: 0.10 }
    }
}

impl MartsConfig {
    /// The reference day: `as_of`, or today in Beijing.
    pub fn reference_day(&self) -> NaiveDate {
        self.as_of
            .unwrap_or_else(|| Utc::now().with_timezone(&beijing()).date_naive())
    }

    /// Refuse settings that contradict themselves, saying which.
    pub fn check(&self) -> Result<()> {
        let r = &self.recall;
        if r.min_days > r.max_days {
            bail!(
                "[marts.recall]: min_days ({}) is above max_days ({})",
                r.min_days,
                r.max_days
            );
        }
        if self.bridge_roi.window_days == 0 {
            bail!("[marts.bridge_roi]: window_days must be at least 1");
        }
        for (bridge, fen) in &self.bridge_roi.unit_cost_fen {
            if bridge.parse::<quanyu_schemas::Bridge>().is_err() {
                bail!(
                    "[marts.bridge_roi.unit_cost_fen]: {bridge:?} is not a bridge (one of {})",
                    quanyu_schemas::Bridge::ALL
                        .iter()
                        .map(|b| b.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            if *fen < 0 {
                bail!("[marts.bridge_roi.unit_cost_fen]: {bridge} costs less than nothing ({fen})");
            }
        }
        let share = self.super_users.share;
        if !(share > 0.0 && share <= 1.0) {
            bail!("[marts.super_users]: share must be above 0 and at most 1 (is {share})");
        }
        for (category, words) in &self.categories {
            if category == "all" {
                bail!("[marts.categories]: \"all\" is the marts' name for every category");
            }
            if words.is_empty() || words.iter().any(|w| w.trim().is_empty()) {
                bail!("[marts.categories]: {category:?} needs non-empty title words");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MartsConfig> {
        let cfg: MartsConfig = toml::from_str(text)?;
        cfg.check()?;
        Ok(cfg)
    }

    #[test]
    fn defaults_are_the_operators_rules_of_thumb() {
        let cfg = parse("").unwrap();
        assert_eq!((cfg.recall.min_days, cfg.recall.max_days), (90, 180));
        assert_eq!(cfg.bridge_roi.window_days, 30);
        assert_eq!(cfg.rep_attribution.rule, RepRule::First);
        assert_eq!(cfg.super_users.share, 0.10);
        assert_eq!(cfg.as_of, None);
    }

    #[test]
    fn settings_are_read_and_contradictions_refused_saying_which() {
        let cfg = parse(
            "as_of = 2026-06-30\n[recall]\nmin_days = 60\nmax_days = 120\n\
             [rep_attribution]\nrule = \"at_order\"\n[bridge_roi]\ncohort = \"week\"\n\
             unit_cost_fen = { package_card = 30 }\n[categories]\n\"面霜\" = [\"霜\"]\n",
        )
        .unwrap();
        assert_eq!(
            cfg.reference_day(),
            NaiveDate::from_ymd_opt(2026, 6, 30).unwrap()
        );
        assert_eq!(cfg.rep_attribution.rule, RepRule::AtOrder);
        assert_eq!(cfg.bridge_roi.cohort, CohortPeriod::Week);
        for (text, says) in [
            (
                "[recall]\nmin_days = 200",
                "min_days (200) is above max_days (180)",
            ),
            (
                "[bridge_roi]\nwindow_days = 0",
                "window_days must be at least 1",
            ),
            (
                "[bridge_roi]\nunit_cost_fen = { fax = 1 }",
                "\"fax\" is not a bridge",
            ),
            (
                "[bridge_roi]\nunit_cost_fen = { ai_sms = -1 }",
                "costs less than nothing",
            ),
            ("[super_users]\nshare = 0.0", "share must be above 0"),
            ("[super_users]\nshare = 1.5", "share must be above 0"),
            ("[categories]\nx = []", "needs non-empty title words"),
            ("[rep_attribution]\nrule = \"last\"", "unknown variant"),
            ("[recall]\nmax_day = 3", "unknown field"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
