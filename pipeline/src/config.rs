//! `quanyu.toml`: the lake, the lake key, connectors and identity settings.
//! Unknown fields are rejected; secrets are `{ env = ".." }` or `{ file = ".." }`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::identity::IdentityConfig;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the lake lives and how PII is keyed.
    #[serde(default)]
    pub lake: LakeConfig,
    /// How runs commit.
    #[serde(default)]
    pub run: RunConfig,
    /// Taobao / Tmall app keys, each with its shops.
    #[serde(default)]
    pub taobao: Vec<quanyu_taobao::TaobaoConfig>,
    /// JD (JOS) app keys, each with its shops.
    #[serde(default)]
    pub jd: Vec<quanyu_jd::JdConfig>,
    /// Douyin shop (抖店) app keys, each with its shops.
    #[serde(default)]
    pub douyin: Vec<quanyu_douyin::DouyinConfig>,
    /// Pinduoduo apps (client_id), each with its shops.
    #[serde(default)]
    pub pdd: Vec<quanyu_pdd::PddConfig>,
    /// Kuaishou app keys, each with its shops.
    #[serde(default)]
    pub kuaishou: Vec<quanyu_kuaishou::KuaishouConfig>,
    /// Jushuitan ERP accounts, each with its shops.
    #[serde(default)]
    pub jushuitan: Vec<quanyu_jushuitan::JushuitanConfig>,
    /// WeCom corps.
    #[serde(default)]
    pub wecom: Vec<quanyu_wecom::WecomConfig>,
    /// CRM database sources (members, POS orders).
    #[serde(default)]
    pub crm: Vec<quanyu_crm::CrmConfig>,
    /// Identity stitching.
    #[serde(default)]
    pub identity: IdentityConfig,
    /// Callback receivers (`quanyu listen`).
    #[serde(default)]
    pub listen: crate::listen::ListenConfig,
    /// Which bridge and campaign each contact-way `state` prefix belongs to.
    #[serde(default)]
    pub bridges: Vec<crate::listen::BridgeRule>,
    /// Declarative file imports (call logs, card scans, CRM exports).
    #[serde(default)]
    pub imports: Vec<quanyu_files::ImportConfig>,
}

/// `[lake]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    /// The lake's root folder.
    #[serde(default = "default_lake_root")]
    pub root: PathBuf,
    /// The lake key file (HMAC key for PII), kept outside the lake. The
    /// environment variable `QUANYU_LAKE_KEY` (64 hex chars) overrides it.
    #[serde(default = "default_key_file")]
    pub key_file: PathBuf,
    /// Where refreshed shop tokens are kept (one `0600` file per shop);
    /// default: `tokens/` next to the key file.
    #[serde(default)]
    pub tokens_dir: Option<PathBuf>,
}

impl LakeConfig {
    /// The token folder in force.
    pub fn tokens_dir(&self) -> PathBuf {
        self.tokens_dir.clone().unwrap_or_else(|| {
            self.key_file
                .parent()
                .unwrap_or(Path::new("."))
                .join("tokens")
        })
    }
}

impl Default for LakeConfig {
    fn default() -> Self {
        LakeConfig {
            root: default_lake_root(),
            key_file: default_key_file(),
            tokens_dir: None,
        }
    }
}

fn default_lake_root() -> PathBuf {
    PathBuf::from("lake")
}

/// The default key file: `$XDG_CONFIG_HOME/quanyu/lake.key` or `~/.config/quanyu/lake.key`.
pub fn default_key_file() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("quanyu").join("lake.key")
}

/// `[run]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Rows buffered per commit; bounds memory.
    #[serde(default = "default_chunk_rows")]
    pub chunk_rows: usize,
    /// Streams (shops, platforms) pulled at once.
    #[serde(default = "default_parallel_streams")]
    pub parallel_streams: usize,
    /// Windows of one stream pulled at once, within its rate limits (the
    /// cursor moves past windows finished in order).
    #[serde(default = "default_windows_at_once")]
    pub windows_at_once: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            chunk_rows: default_chunk_rows(),
            parallel_streams: default_parallel_streams(),
            windows_at_once: default_windows_at_once(),
        }
    }
}

fn default_parallel_streams() -> usize {
    4
}

fn default_windows_at_once() -> usize {
    32
}

fn default_chunk_rows() -> usize {
    25_000
}

impl Config {
    /// Read and check a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid config {}", path.display()))
    }

    /// Parse config text. A parse error names the line, the column and
    /// what was wrong, never the values written there: a secret pasted in
    /// the wrong place must not reach a terminal or a log.
    pub fn parse(text: &str) -> Result<Config> {
        toml::from_str(text).map_err(|e| anyhow::anyhow!(describe_toml_error(text, &e)))
    }
}

/// `line L, column C: message`, with every value of `text` (strings,
/// numbers, dates, in any position) replaced by `<value>` in the message,
/// and without toml's echo of the source line.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let mut message = e.message().trim().to_string();
    let mut values = Vec::new();
    if let Ok(table) = text.parse::<toml::Table>() {
        collect_values(&toml::Value::Table(table), &mut values);
    }
    // Longest first, so that a value inside a longer one cannot survive.
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    for v in &values {
        for quoted in [
            format!("{v:?}"),
            format!("\"{v}\""),
            format!("`{v}`"),
            format!("'{v}'"),
        ] {
            message = message.replace(&quoted, "<value>");
        }
    }
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// Every scalar value in `v`, as text.
fn collect_values(v: &toml::Value, out: &mut Vec<String>) {
    match v {
        toml::Value::String(s) => out.push(s.clone()),
        toml::Value::Integer(i) => out.push(i.to_string()),
        toml::Value::Float(f) => out.push(f.to_string()),
        toml::Value::Datetime(d) => out.push(d.to_string()),
        toml::Value::Boolean(_) => {}
        toml::Value::Array(a) => a.iter().for_each(|x| collect_values(x, out)),
        toml::Value::Table(t) => t.values().for_each(|x| collect_values(x, out)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quanyu_connector_sdk::SecretRef;

    #[test]
    fn the_example_config_parses() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/quanyu.toml"
        ))
        .unwrap();
        let cfg = Config::parse(&text).unwrap();
        assert_eq!(cfg.taobao.len(), 1);
        assert_eq!(cfg.taobao[0].shops.len(), 2);
        assert_eq!(cfg.wecom.len(), 1);
        assert!(!cfg.identity.state_rules.is_empty());
    }

    #[test]
    fn unknown_fields_and_inline_secrets_are_rejected_without_echoing_values() {
        let err = format!("{:#}", Config::parse("[lake]\nrooot = 'x'").unwrap_err());
        assert!(
            err.starts_with("line 2, column 1:") && err.contains("rooot"),
            "{err}"
        );
        // A secret where a secret goes, in an unknown field, in a known
        // field of another type, as a number, unquoted, inside a source.
        let wecom = "[[wecom]]\ncorp_id = 'ww1'\n";
        for (text, secret) in [
            (format!("{wecom}secret = 'Pl41nTextSecret'\n"), "Pl41nTextSecret"),
            (format!("{wecom}secret = \"Pl41nTextSecret\"\n"), "Pl41nTextSecret"),
            (format!("{wecom}secret = {{ env = 'X' }}\nsecrte = 'Pl41nTextSecret'\n"), "Pl41nTextSecret"),
            ("[[taobao]]\napp_key = 'k'\napp_secret = { env = 'X' }\nqps = 'Pl41nTextSecret'\nshops = []\n".to_string(), "Pl41nTextSecret"),
            (format!("{wecom}secret = 98127361283\n"), "98127361283"),
            (format!("{wecom}secret = Pl41nTextSecret\n"), "Pl41nTextSecret"),
            (format!("{wecom}secret = {{ env = 98127361283 }}\n"), "98127361283"),
            (format!("{wecom}secret = {{ value = 'Pl41nTextSecret' }}\n"), "Pl41nTextSecret"),
            ("[[taobao]]\napp_key = 'k'\napp_secret = 'Pl41nTextSecret'\nshops = []\n".to_string(), "Pl41nTextSecret"),
        ] {
            let err = format!("{:#}", Config::parse(&text).unwrap_err());
            assert!(!err.contains(secret), "{text}: {err}");
            assert!(err.starts_with("line "), "{text}: {err}");
        }
        let err = format!(
            "{:#}",
            Config::parse(&format!("{wecom}secret = 'Pl41nTextSecret'\n")).unwrap_err()
        );
        assert!(err.contains("never written in the config"), "{err}");
        let ok = Config::parse(&format!("{wecom}secret = {{ env = 'X' }}\n")).unwrap();
        assert_eq!(ok.wecom[0].secret, SecretRef::Env("X".into()));
        let ok = Config::parse(&format!("{wecom}secret = {{ file = '/run/s' }}\n")).unwrap();
        assert_eq!(ok.wecom[0].secret, SecretRef::File("/run/s".into()));
    }
}
