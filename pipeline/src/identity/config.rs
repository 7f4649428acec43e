//! `[identity]` settings: which `state` values name orders, how many people
//! an identifier may stand for, which identifiers are cut first when a
//! customer grows too big, and the blocklist.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// A `state` prefix that names an order: `tb_3100...` → Taobao order
/// `3100...`, provided the rest matches the channel's order-id format (a
/// card printed with a batch code such as `dy_batch07` names no order).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StateRule {
    /// The prefix of the `state` value.
    pub prefix: String,
    /// The channel whose order id follows the prefix.
    pub channel: String,
    /// The order id's format (a regular expression matched against the whole
    /// rest of the state). Default: the channel's known format, else
    /// letters, digits, `-` and `_`, 6 to 40 of them.
    #[serde(default)]
    pub order_pattern: Option<String>,
}

impl StateRule {
    /// A rule with the channel's default order-id format.
    pub fn new(prefix: &str, channel: &str) -> Self {
        StateRule {
            prefix: prefix.into(),
            channel: channel.into(),
            order_pattern: None,
        }
    }

    /// The order-id pattern in force (anchored).
    pub fn pattern(&self) -> String {
        let p = match &self.order_pattern {
            Some(p) => p.clone(),
            None => default_order_pattern(&self.channel).to_string(),
        };
        format!("^(?:{p})$")
    }
}

/// The order-id format the connector of `channel` states (Taobao tids,
/// Pinduoduo `yymmdd-` order_sn, ...), else letters, digits, `-` and `_`,
/// 6 to 40 of them.
pub fn default_order_pattern(channel: &str) -> &'static str {
    crate::registry::find(channel)
        .and_then(|c| c.order_ids()?.pattern)
        .unwrap_or("[A-Za-z0-9_-]{6,40}")
}

/// Compiled state rules: `state` → (channel, order id) when it names an order.
#[derive(Debug, Clone, Default)]
pub struct StateRules {
    rules: Vec<(StateRule, Regex)>,
}

impl StateRules {
    /// Compile `rules`; a bad pattern is a config error naming the rule.
    pub fn new(rules: &[StateRule]) -> Result<Self> {
        let rules = rules
            .iter()
            .map(|r| {
                let re = Regex::new(&r.pattern()).with_context(|| {
                    format!(
                        "identity.state_rules: bad order_pattern for prefix {:?}",
                        r.prefix
                    )
                })?;
                Ok((r.clone(), re))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(StateRules { rules })
    }

    /// The order a `state` names: (channel, order id), or `None` for a state
    /// that names no order (a campaign or batch code).
    pub fn order(&self, state: &str) -> Option<(&str, String)> {
        self.rules.iter().find_map(|(r, re)| {
            let rest = state.strip_prefix(r.prefix.as_str())?;
            re.is_match(rest)
                .then(|| (r.channel.as_str(), rest.to_string()))
        })
    }

    /// The rules.
    pub fn rules(&self) -> impl Iterator<Item = &StateRule> {
        self.rules.iter().map(|(r, _)| r)
    }
}

/// Identity settings (`[identity]`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// How card / contact-way `state` values name orders.
    pub state_rules: Vec<StateRule>,
    /// The most distinct people one identifier may stand for, per identifier
    /// type (`*_buyer` matches every marketplace's buyer type). People are
    /// counted from the records around the identifier (buyer ids per shop,
    /// contacts, members, receivers), never from raw neighbours: a loyal
    /// buyer's phone on 60 orders is one person; a store phone on 45 CRM
    /// members is 45. Above the limit the identifier is kept out of stitching.
    pub max_people: BTreeMap<String, u32>,
    /// Identifier types from most to least trusted (`*` patterns allowed).
    /// When a customer exceeds a cap, its shared identifiers of the least
    /// trusted type are cut first.
    pub priority: Vec<String>,
    /// Most person-level identifiers (everything but orders) one customer
    /// may hold before it is cut.
    pub max_component_identifiers: u32,
    /// Most evidence rows (edges) one customer may hold before it is cut.
    pub max_component_evidence: u32,
    /// Most people one customer may stand for before it is cut, counted
    /// like `max_people` over the whole customer (distinct phones, buyer
    /// ids of one shop, contacts, members, receivers of one marketplace):
    /// a household of three fits; a parcel station's phone joining ten
    /// buyers does not.
    pub max_component_people: u32,
    /// Extra junk values: exact values of any type (case-insensitive; phones
    /// are normalized and hashed before matching).
    pub blocklist: Vec<String>,
    /// Junk patterns (regular expressions, case-insensitive) matched against
    /// the whole value of non-phone identifiers, before the `@shop` scope.
    pub blocklist_patterns: Vec<String>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            // Every registered connector's own prefix.
            state_rules: crate::registry::CONNECTORS
                .iter()
                .filter_map(|c| Some(StateRule::new(c.order_ids()?.state_prefix, c.name())))
                .collect(),
            max_people: [
                ("phone_hash", 3),
                ("unionid", 2),
                ("wecom_external_userid", 3),
                ("*_member", 3),
                ("*_buyer", 20),
                ("order", 3),
            ]
            .into_iter()
            .map(|(t, n)| (t.to_string(), n))
            .collect(),
            priority: [
                "unionid",
                "wecom_external_userid",
                "*_buyer",
                "*_member",
                "order",
                "phone_hash",
            ]
            .into_iter()
            .map(str::to_string)
            .collect(),
            max_component_identifiers: 60,
            max_component_evidence: 50_000,
            max_component_people: 3,
            blocklist: vec![],
            blocklist_patterns: vec![],
        }
    }
}

/// `true` when `pattern` (an exact type or `prefix*suffix` with one `*`)
/// matches `id_type`.
pub fn type_matches(pattern: &str, id_type: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == id_type,
        Some((pre, suf)) => {
            id_type.len() >= pre.len() + suf.len()
                && id_type.starts_with(pre)
                && id_type.ends_with(suf)
        }
    }
}

impl IdentityConfig {
    /// The people limit for `id_type`: an exact entry wins over a pattern.
    pub fn people_limit(&self, id_type: &str) -> Option<u32> {
        self.max_people.get(id_type).copied().or_else(|| {
            self.max_people
                .iter()
                .find(|(p, _)| p.contains('*') && type_matches(p, id_type))
                .map(|(_, &n)| n)
        })
    }

    /// The trust rank of `id_type`: 0 is the most trusted; types the list
    /// does not name rank after all named ones.
    pub fn priority_rank(&self, id_type: &str) -> u32 {
        self.priority
            .iter()
            .position(|p| type_matches(p, id_type))
            .unwrap_or(self.priority.len()) as u32
    }

    /// A fingerprint of every setting that changes identity's result: a
    /// build under a changed config recomputes everything.
    pub fn fingerprint(&self) -> i64 {
        let text = serde_json::to_string(self).expect("config serializes");
        let d = <sha2::Sha256 as sha2::Digest>::digest(text.as_bytes());
        i64::from_be_bytes(d[..8].try_into().expect("8 bytes")) & i64::MAX
    }

    /// Check patterns and limits; errors name the setting.
    pub fn validate(&self) -> Result<()> {
        StateRules::new(&self.state_rules)?;
        for p in &self.blocklist_patterns {
            Regex::new(p)
                .with_context(|| format!("identity.blocklist_patterns: bad pattern {p:?}"))?;
        }
        anyhow::ensure!(
            self.max_component_identifiers >= 2,
            "identity.max_component_identifiers must be at least 2"
        );
        anyhow::ensure!(
            self.max_component_people >= 1,
            "identity.max_component_people must be at least 1"
        );
        anyhow::ensure!(
            self.max_component_evidence >= 1,
            "identity.max_component_evidence must be at least 1"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_rules_name_orders_only_in_their_format() {
        let rules = StateRules::new(&IdentityConfig::default().state_rules).unwrap();
        assert_eq!(
            rules.order("tb_3100000000000123"),
            Some(("taobao", "3100000000000123".to_string()))
        );
        assert_eq!(
            rules.order("pdd_240601-000000000012345"),
            Some(("pdd", "240601-000000000012345".to_string()))
        );
        assert_eq!(rules.order("dy_batch07"), None, "a batch code is no order");
        assert_eq!(rules.order("tb_618batch"), None);
        assert_eq!(rules.order("tb_"), None);
        assert_eq!(rules.order("pk_tm_2403"), None);
        assert_eq!(
            rules.order("jst_XCX000000001234"),
            Some(("jushuitan", "XCX000000001234".to_string()))
        );
    }

    #[test]
    fn limits_and_priorities_by_type_pattern() {
        let cfg = IdentityConfig::default();
        assert_eq!(cfg.people_limit("phone_hash"), Some(3));
        assert_eq!(cfg.people_limit("taobao_buyer"), Some(20));
        assert_eq!(cfg.people_limit("crm_member"), Some(3));
        assert_eq!(cfg.people_limit("something_else"), None);
        assert!(cfg.priority_rank("phone_hash") > cfg.priority_rank("order"));
        assert!(cfg.priority_rank("order") > cfg.priority_rank("jd_buyer"));
        assert_eq!(cfg.priority_rank("unionid"), 0);
        assert!(type_matches("*_buyer", "douyin_buyer"));
        assert!(!type_matches("*_buyer", "order"));
    }

    #[test]
    fn fingerprint_follows_settings_and_bad_patterns_are_errors() {
        let a = IdentityConfig::default();
        let mut b = a.clone();
        assert_eq!(a.fingerprint(), b.fingerprint());
        b.max_people.insert("phone_hash".into(), 5);
        assert_ne!(a.fingerprint(), b.fingerprint());
        let mut c = a.clone();
        c.blocklist_patterns.push("(".into());
        let err = format!("{:#}", c.validate().unwrap_err());
        assert!(err.contains("blocklist_patterns"), "{err}");
        let mut d = a;
        d.state_rules[0].order_pattern = Some("[".into());
        assert!(d.validate().is_err());
    }
}
