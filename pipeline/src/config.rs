//! `quanyu.toml`: the lake, the lake key, connectors and identity settings.
//! Unknown fields are rejected; secrets are `{ env = ".." }` or `{ file = ".." }`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::identity::IdentityConfig;

/// The whole configuration file: the engine's own sections and, for every
/// other top-level name, the sections of the connector registered under it
/// (`[[pdd]]`); a name no connector claims is an error naming the known ones.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Where the lake lives and how PII is keyed.
    pub lake: LakeConfig,
    /// How runs commit.
    pub run: RunConfig,
    /// Identity stitching.
    pub identity: IdentityConfig,
    /// Callback receivers (`quanyu listen`).
    pub listen: crate::listen::ListenConfig,
    /// Which bridge and campaign each contact-way `state` prefix belongs to.
    pub bridges: Vec<crate::listen::BridgeRule>,
    /// Declarative file imports (call logs, card scans, CRM exports).
    pub imports: Vec<quanyu_files::ImportConfig>,
    /// The operators' marts' parameters.
    pub marts: crate::marts::MartsConfig,
    /// Connector sections, in file order.
    pub connectors: Vec<ConnectorSection>,
}

/// The engine's own top-level sections.
const ENGINE_SECTIONS: &[&str] = &[
    "lake", "run", "identity", "listen", "bridges", "imports", "marts",
];

/// One `[[name]]` section of a connector.
#[derive(Debug, Clone)]
pub struct ConnectorSection {
    /// The connector's name.
    pub name: String,
    /// The section's fields, as a generic value.
    pub value: serde_json::Value,
    /// Its 1-based line in the file (0 when not read from a file).
    pub line: usize,
    span: std::ops::Range<usize>,
}

impl ConnectorSection {
    /// Where the section is: `line 12 ([[pdd]])`.
    pub fn place(&self) -> String {
        if self.line > 0 {
            format!("line {}, column 1: [[{}]]", self.line, self.name)
        } else {
            format!("[[{}]]", self.name)
        }
    }

    /// `message` with every value written in the section replaced by
    /// `<value>` (a secret pasted into the wrong field is never repeated).
    pub fn scrub(&self, message: &str) -> String {
        let mut values = Vec::new();
        collect_json_values(&self.value, &mut values);
        scrub_values(message.to_string(), values)
    }
}

impl Config {
    /// Every stream the connector sections define, in file order; a section
    /// that cannot be built (a secret not found) is named by its line.
    pub fn streams(
        &self,
        setup: &quanyu_connector_sdk::ConnectorSetup,
    ) -> Result<Vec<std::sync::Arc<dyn quanyu_connector_sdk::Stream>>> {
        let mut out = Vec::new();
        for section in &self.connectors {
            let connector = crate::registry::find(&section.name)
                .with_context(|| format!("{}: no such connector", section.place()))?;
            let streams = connector
                .streams(section.value.clone(), setup)
                .map_err(|e| {
                    anyhow::anyhow!("{}: {}", section.place(), section.scrub(&e.to_string()))
                })?;
            out.extend(streams);
        }
        Ok(out)
    }

    /// The typed configs of every `[[name]]` section (for the engine's own
    /// use of a connector's settings, such as WeCom's callback keys).
    pub fn sections<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Vec<T>> {
        self.connectors
            .iter()
            .filter(|s| s.name == name)
            .map(|s| {
                serde_json::from_value(s.value.clone())
                    .map_err(|e| anyhow::anyhow!("{}: {}", s.place(), s.scrub(&e.to_string())))
            })
            .collect()
    }
}

impl<'de> Deserialize<'de> for Config {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_map(ConfigVisitor)
    }
}

struct ConfigVisitor;

impl<'de> serde::de::Visitor<'de> for ConfigVisitor {
    type Value = Config;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a quanyu config")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Config, A::Error> {
        use serde::de::Error;
        let mut cfg = Config::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "lake" => cfg.lake = map.next_value()?,
                "run" => cfg.run = map.next_value()?,
                "identity" => cfg.identity = map.next_value()?,
                "listen" => cfg.listen = map.next_value()?,
                "bridges" => cfg.bridges = map.next_value()?,
                "imports" => cfg.imports = map.next_value()?,
                "marts" => cfg.marts = map.next_value()?,
                name => {
                    let Some(connector) = crate::registry::find(name) else {
                        return Err(A::Error::custom(format!(
                            "unknown section `{name}`: the engine's are {}; the connectors' are {}",
                            ENGINE_SECTIONS.join(", "),
                            crate::registry::names().join(", ")
                        )));
                    };
                    let tables: Vec<toml::Spanned<toml::Table>> = map.next_value()?;
                    for t in tables {
                        let span = t.span();
                        let value =
                            serde_json::to_value(t.into_inner()).map_err(A::Error::custom)?;
                        // Checked by `Config::parse`, which knows the line.
                        cfg.connectors.push(ConnectorSection {
                            name: connector.name().into(),
                            value,
                            line: 0,
                            span,
                        });
                    }
                }
            }
        }
        Ok(cfg)
    }
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
        let mut cfg: Config =
            toml::from_str(text).map_err(|e| anyhow::anyhow!(describe_toml_error(text, &e)))?;
        cfg.marts.check()?;
        for section in &mut cfg.connectors {
            let before = text.get(..section.span.start).unwrap_or(text);
            section.line = before.matches('\n').count() + 1;
            let connector = crate::registry::find(&section.name)
                .with_context(|| format!("{}: no such connector", section.place()))?;
            connector.check(&section.value).map_err(|e| {
                anyhow::anyhow!("{}: {}", section.place(), section.scrub(&e.to_string()))
            })?;
        }
        Ok(cfg)
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
    message = scrub_values(message, values);
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
/// `message` with each of `values` (quoted any way) replaced by `<value>`.
fn scrub_values(mut message: String, mut values: Vec<String>) -> String {
    // Longest first, so that a value inside a longer one cannot survive.
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    for v in values.iter().filter(|v| !v.is_empty()) {
        for quoted in [
            format!("{v:?}"),
            format!("\"{v}\""),
            format!("`{v}`"),
            format!("'{v}'"),
        ] {
            message = message.replace(&quoted, "<value>");
        }
    }
    message
}

fn collect_json_values(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Number(n) => out.push(n.to_string()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_json_values(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| collect_json_values(x, out)),
        serde_json::Value::Bool(_) | serde_json::Value::Null => {}
    }
}

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
        let taobao: Vec<quanyu_taobao::TaobaoConfig> = cfg.sections("taobao").unwrap();
        assert_eq!(taobao.len(), 1);
        assert_eq!(taobao[0].shops.len(), 2);
        assert_eq!(
            cfg.sections::<quanyu_wecom::WecomConfig>("wecom")
                .unwrap()
                .len(),
            1
        );
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
        let corps: Vec<quanyu_wecom::WecomConfig> = ok.sections("wecom").unwrap();
        assert_eq!(corps[0].secret, SecretRef::Env("X".into()));
        let ok = Config::parse(&format!("{wecom}secret = {{ file = '/run/s' }}\n")).unwrap();
        let corps: Vec<quanyu_wecom::WecomConfig> = ok.sections("wecom").unwrap();
        assert_eq!(corps[0].secret, SecretRef::File("/run/s".into()));
    }

    #[test]
    fn an_unknown_section_names_the_known_ones_and_sections_know_their_line() {
        let err = format!(
            "{:#}",
            Config::parse("[lake]\n\n[[youzann]]\nx = 1\n").unwrap_err()
        );
        assert!(err.contains("unknown section `youzann`"), "{err}");
        assert!(err.contains("taobao") && err.contains("lake"), "{err}");
        let text = "[lake]\nroot = 'l'\n\n[[wecom]]\ncorp_id = 'ww1'\nsecret = { env = 'X' }\n";
        let cfg = Config::parse(text).unwrap();
        assert_eq!(cfg.connectors.len(), 1);
        assert_eq!(cfg.connectors[0].line, 4);
        assert!(cfg.connectors[0].place().starts_with("line 4"));
        let bad = format!("{text}bogus = 1\n");
        let err = format!("{:#}", Config::parse(&bad).unwrap_err());
        assert!(err.contains("line 4, column 1: [[wecom]]"), "{err}");
        assert!(err.contains("bogus"), "{err}");
    }
}
