//! The connector registry: one line per connector turns its config section
//! into streams.

use std::sync::Arc;

use anyhow::Result;
use quanyu_connector_sdk::{ConnectorSetup, Stream};

use crate::config::Config;

/// Every stream the config defines.
pub fn streams(cfg: &Config, setup: &ConnectorSetup) -> Result<Vec<Arc<dyn Stream>>> {
    let mut out = Vec::new();
    for c in &cfg.taobao {
        out.extend(quanyu_taobao::build_streams(c, setup)?);
    }
    for c in &cfg.jd {
        out.extend(quanyu_jd::build_streams(c, setup)?);
    }
    for c in &cfg.douyin {
        out.extend(quanyu_douyin::build_streams(c, setup)?);
    }
    for c in &cfg.pdd {
        out.extend(quanyu_pdd::build_streams(c, setup)?);
    }
    for c in &cfg.kuaishou {
        out.extend(quanyu_kuaishou::build_streams(c, setup)?);
    }
    for c in &cfg.jushuitan {
        out.extend(quanyu_jushuitan::build_streams(c, setup)?);
    }
    for c in &cfg.wecom {
        out.extend(quanyu_wecom::build_streams(c, setup)?);
    }
    for c in &cfg.crm {
        out.extend(quanyu_crm::build_streams(c)?);
    }
    Ok(out)
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
