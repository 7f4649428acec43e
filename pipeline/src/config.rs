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
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            chunk_rows: default_chunk_rows(),
            parallel_streams: default_parallel_streams(),
        }
    }
}

fn default_parallel_streams() -> usize {
    4
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

    /// Parse config text.
    pub fn parse(text: &str) -> Result<Config> {
        Ok(toml::from_str(text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn unknown_fields_and_inline_secrets_are_rejected() {
        assert!(Config::parse("[lake]\nrooot = 'x'").is_err());
        let inline = "[[wecom]]\ncorp_id = 'ww1'\nsecret = 'plain-text-secret'\n";
        let err = format!("{:#}", Config::parse(inline).unwrap_err());
        assert!(
            !err.contains("plain-text-secret") || err.contains("secret"),
            "{err}"
        );
        assert!(Config::parse("[[wecom]]\ncorp_id = 'ww1'\nsecret = { env = 'X' }\n").is_ok());
    }
}
