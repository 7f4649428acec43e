//! The connector registry: one line per connector. Everything else the
//! engine knows of a connector (its config section, channel, streams,
//! decrypt, order ids and sandbox) it asks the connector.

use std::sync::Arc;

use anyhow::Result;
use quanyu_connector_sdk::{Connector, Stream};

/// Every connector, by its config section name.
pub static CONNECTORS: &[&dyn Connector] = &[
    &quanyu_taobao::CONNECTOR,
    &quanyu_jd::CONNECTOR,
    &quanyu_pdd::CONNECTOR,
    &quanyu_douyin::CONNECTOR,
    &quanyu_kuaishou::CONNECTOR,
    &quanyu_jushuitan::CONNECTOR,
    &quanyu_youzan::CONNECTOR,
    &quanyu_wechat_shop::CONNECTOR,
    &quanyu_wecom::CONNECTOR,
    &quanyu_crm::CONNECTOR,
];

/// The connector whose config section is `name`.
pub fn find(name: &str) -> Option<&'static dyn Connector> {
    CONNECTORS.iter().copied().find(|c| c.name() == name)
}

/// The names of every connector's section, for error messages.
pub fn names() -> Vec<&'static str> {
    CONNECTORS.iter().map(|c| c.name()).collect()
}

/// The connectors that have a sandbox (the demo serves them).
pub fn with_sandbox() -> impl Iterator<Item = &'static dyn Connector> {
    CONNECTORS.iter().copied().filter(|c| c.sandbox().is_some())
}

/// The channels whose connector can decrypt phones (the demo decrypts
/// them, and the seeded world's predictions count on it).
pub fn decrypting_channels() -> Vec<quanyu_schemas::Channel> {
    CONNECTORS
        .iter()
        .filter(|c| c.decrypts())
        .map(|c| c.channel())
        .collect()
}

/// Keep the streams matching any selector: `connector`, `connector.stream`
/// or `connector.stream@scope`. No selector keeps all.
pub fn select(streams: Vec<Arc<dyn Stream>>, selectors: &[String]) -> Result<Vec<Arc<dyn Stream>>> {
    if selectors.is_empty() {
        return Ok(streams);
    }
    for s in selectors {
        if !streams.iter().any(|st| matches(st.as_ref(), s)) {
            let known: Vec<String> = streams.iter().map(|s| s.id().to_string()).collect();
            anyhow::bail!(
                "no stream matches {s:?}; configured streams: {}",
                known.join(", ")
            );
        }
    }
    Ok(streams
        .into_iter()
        .filter(|st| selectors.iter().any(|s| matches(st.as_ref(), s)))
        .collect())
}

fn matches(stream: &dyn Stream, selector: &str) -> bool {
    let id = stream.id();
    let (path, scope) = match selector.split_once('@') {
        Some((p, s)) => (p, Some(s)),
        None => (selector, None),
    };
    let (conn, st) = match path.split_once('.') {
        Some((c, s)) => (c, Some(s)),
        None => (path, None),
    };
    id.connector == conn && st.is_none_or(|s| s == id.stream) && scope.is_none_or(|s| s == id.scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names, state prefixes and channels are each claimed once; every
    /// marketplace with orders says how cards name them.
    #[test]
    fn registrations_do_not_collide() {
        let mut names = names();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CONNECTORS.len());
        let prefixes: Vec<&str> = CONNECTORS
            .iter()
            .filter_map(|c| c.order_ids())
            .map(|o| o.state_prefix)
            .collect();
        for p in &prefixes {
            assert_eq!(prefixes.iter().filter(|q| q == &p).count(), 1, "{p}");
            for q in &prefixes {
                assert!(p == q || !q.starts_with(p), "{q} starts with {p}");
            }
        }
        for c in with_sandbox() {
            assert!(
                c.order_ids().is_some(),
                "{} has a sandbox of orders",
                c.name()
            );
            // Its sandbox.toml reads (a bad one panics naming the field).
            let facts = c.sandbox().map(|k| k.facts());
            assert!(
                facts.is_some_and(|f| !f.list_api.is_empty()),
                "{}",
                c.name()
            );
        }
    }
}
