//! Starting the embedded sandboxes for `quanyu demo`, `quanyu sandbox` and
//! `quanyu bench`. Every marketplace sandbox announces itself the same way
//! (URL, app credentials, shops with their tokens, orders served), and a
//! config section is built from an announcement, so the demo, the bench's
//! child-process sandbox and a user's `quanyu sandbox` all connect alike.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use quanyu_connector_sdk::sandbox::world::WorldConfig;
use quanyu_connector_sdk::sandbox::{serve, FaultConfig, SandboxHandle};
use quanyu_connector_sdk::SecretRef;
use quanyu_schemas::Channel;
use quanyu_taobao::sandbox::{TopSandbox, TopSandboxConfig};
use quanyu_wecom::sandbox::{WecomSandbox, WecomSandboxConfig};
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// The marketplaces the demo serves from sandboxes.
pub const DEMO_CHANNELS: &[Channel] = &[
    Channel::Taobao,
    Channel::Jd,
    Channel::Pdd,
    Channel::Douyin,
    Channel::Kuaishou,
    Channel::Jushuitan,
];

/// The app key every marketplace sandbox accepts by default.
pub const APP_KEY: &str = "12345678";
/// The app secret every marketplace sandbox accepts by default.
pub const APP_SECRET: &str = "sandbox-app-secret";
/// Kuaishou's separate signing secret in the sandbox.
pub const SIGN_SECRET: &str = "sandbox-sign-secret";
/// The corp id the WeCom sandbox accepts by default.
pub const WECOM_CORP_ID: &str = "wwsandbox0001";
/// The secret the WeCom sandbox accepts by default.
pub const WECOM_SECRET: &str = "sandbox-wecom-secret";

/// One shop a sandbox serves, with the tokens an authorization gave it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnnouncedShop {
    /// Shop id.
    pub id: String,
    /// Access token (Taobao: session key).
    pub access_token: String,
    /// Refresh token, where the platform has one.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// What `quanyu sandbox <platform>` prints as its first stdout line: every
/// credential the sandbox accepts (sandbox values only, never real ones).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxAnnouncement {
    /// The channel (`taobao`, `kuaishou`, ...).
    pub platform: Channel,
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    /// The app key.
    pub app_key: String,
    /// The app secret.
    pub app_secret: String,
    /// A separate signing secret (Kuaishou).
    #[serde(default)]
    pub sign_secret: Option<String>,
    /// The shops.
    pub shops: Vec<AnnouncedShop>,
    /// Orders it serves now.
    pub orders: usize,
}

/// A marketplace sandbox of any platform.
#[derive(Clone)]
pub enum Marketplace {
    /// TOP.
    Taobao(TopSandbox),
    /// JD.
    Jd(quanyu_jd::sandbox::JdSandbox),
    /// Pinduoduo.
    Pdd(quanyu_pdd::sandbox::PddSandbox),
    /// Douyin shop.
    Douyin(quanyu_douyin::sandbox::DouyinSandbox),
    /// Kuaishou.
    Kuaishou(quanyu_kuaishou::sandbox::KuaishouSandbox),
    /// Jushuitan ERP.
    Jushuitan(quanyu_jushuitan::sandbox::JushuitanSandbox),
}

impl Marketplace {
    /// A sandbox of `channel` over `world` at `as_of`, accepting the default
    /// credentials.
    pub fn new(
        channel: Channel,
        world: WorldConfig,
        as_of: DateTime<Utc>,
        faults: FaultConfig,
    ) -> Result<Self> {
        let faults = faults_for(channel, faults);
        Ok(match channel {
            Channel::Taobao => Marketplace::Taobao(TopSandbox::new(TopSandboxConfig {
                app_key: APP_KEY.into(),
                app_secret: APP_SECRET.into(),
                world,
                faults,
                as_of: Some(as_of),
            })),
            Channel::Jd => Marketplace::Jd(quanyu_jd::sandbox::JdSandbox::new(
                quanyu_jd::sandbox::JdSandboxConfig {
                    app_key: APP_KEY.into(),
                    app_secret: APP_SECRET.into(),
                    world,
                    faults,
                    as_of: Some(as_of),
                    token_ttl_secs: 30 * 86_400,
                },
            )),
            Channel::Douyin => Marketplace::Douyin(quanyu_douyin::sandbox::DouyinSandbox::new(
                quanyu_douyin::sandbox::DouyinSandboxConfig {
                    app_key: APP_KEY.into(),
                    app_secret: APP_SECRET.into(),
                    world,
                    faults,
                    as_of: Some(as_of),
                    token_ttl_secs: 7 * 86_400,
                },
            )),
            Channel::Pdd => Marketplace::Pdd(quanyu_pdd::sandbox::PddSandbox::new(
                quanyu_pdd::sandbox::PddSandboxConfig {
                    client_id: APP_KEY.into(),
                    client_secret: APP_SECRET.into(),
                    world,
                    faults,
                    as_of: Some(as_of),
                    token_ttl_secs: 86_400,
                },
            )),
            Channel::Kuaishou => {
                Marketplace::Kuaishou(quanyu_kuaishou::sandbox::KuaishouSandbox::new(
                    quanyu_kuaishou::sandbox::KuaishouSandboxConfig {
                        app_key: APP_KEY.into(),
                        app_secret: APP_SECRET.into(),
                        sign_secret: SIGN_SECRET.into(),
                        world,
                        faults,
                        as_of: Some(as_of),
                        token_ttl_secs: 7 * 86_400,
                    },
                ))
            }
            Channel::Jushuitan => {
                Marketplace::Jushuitan(quanyu_jushuitan::sandbox::JushuitanSandbox::new(
                    quanyu_jushuitan::sandbox::JushuitanSandboxConfig {
                        app_key: APP_KEY.into(),
                        app_secret: APP_SECRET.into(),
                        world,
                        faults,
                        as_of: Some(as_of),
                        token_ttl_secs: 30 * 86_400,
                    },
                ))
            }
            other => anyhow::bail!("no sandbox for {other}"),
        })
    }

    /// The channel.
    pub fn channel(&self) -> Channel {
        match self {
            Marketplace::Taobao(_) => Channel::Taobao,
            Marketplace::Jd(_) => Channel::Jd,
            Marketplace::Pdd(_) => Channel::Pdd,
            Marketplace::Douyin(_) => Channel::Douyin,
            Marketplace::Kuaishou(_) => Channel::Kuaishou,
            Marketplace::Jushuitan(_) => Channel::Jushuitan,
        }
    }

    /// Serve on `addr`.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<SandboxHandle> {
        let router = match self {
            Marketplace::Taobao(s) => s.router(),
            Marketplace::Jd(s) => s.router(),
            Marketplace::Pdd(s) => s.router(),
            Marketplace::Douyin(s) => s.router(),
            Marketplace::Kuaishou(s) => s.router(),
            Marketplace::Jushuitan(s) => s.router(),
        };
        serve(router, addr).await
    }

    /// Orders it serves now.
    pub fn visible_orders(&self) -> usize {
        match self {
            Marketplace::Taobao(s) => s.visible_trades().len(),
            Marketplace::Jd(s) => s.visible_orders().len(),
            Marketplace::Pdd(s) => s.visible_orders().len(),
            Marketplace::Douyin(s) => s.visible_orders().len(),
            Marketplace::Kuaishou(s) => s.visible_orders().len(),
            Marketplace::Jushuitan(s) => s.visible_orders().len(),
        }
    }

    /// Its announcement when served at `base_url`.
    pub fn announce(&self, base_url: &str) -> SandboxAnnouncement {
        let (shops, sign_secret): (Vec<AnnouncedShop>, Option<String>) = match self {
            Marketplace::Taobao(s) => (
                s.shops()
                    .into_iter()
                    .enumerate()
                    .map(|(i, id)| AnnouncedShop {
                        id,
                        access_token: s.session_for(i),
                        refresh_token: None,
                    })
                    .collect(),
                None,
            ),
            Marketplace::Jd(s) => (refreshable_shops(s.shops(), |i| s.tokens_for(i)), None),
            Marketplace::Douyin(s) => (refreshable_shops(s.shops(), |i| s.tokens_for(i)), None),
            Marketplace::Pdd(s) => (refreshable_shops(s.shops(), |i| s.tokens_for(i)), None),
            Marketplace::Kuaishou(s) => (
                refreshable_shops(s.shops(), |i| s.tokens_for(i)),
                Some(s.config().sign_secret.clone()),
            ),
            // One company token for all ERP shops; the shop's ERP shop_id
            // rides in its id as `<id>#<shop_id>`.
            Marketplace::Jushuitan(s) => {
                let (at, rt) = s.tokens();
                (
                    s.shops()
                        .into_iter()
                        .map(|(id, shop_id)| AnnouncedShop {
                            id: format!("{id}#{shop_id}"),
                            access_token: at.clone(),
                            refresh_token: Some(rt.clone()),
                        })
                        .collect(),
                    None,
                )
            }
        };
        SandboxAnnouncement {
            platform: self.channel(),
            base_url: base_url.into(),
            app_key: APP_KEY.into(),
            app_secret: APP_SECRET.into(),
            sign_secret,
            shops,
            orders: self.visible_orders(),
        }
    }

    /// The paths a user points a client at, for the terminal.
    pub fn describe(&self, base_url: &str) -> String {
        match self {
            Marketplace::Taobao(_) => format!("TOP gateway sandbox at {base_url}/router/rest"),
            Marketplace::Jd(_) => format!("JD (JOS) gateway sandbox at {base_url}/routerjson"),
            Marketplace::Pdd(_) => format!("Pinduoduo router sandbox at {base_url}/api/router"),
            Marketplace::Douyin(_) => {
                format!("Douyin shop (抖店) open platform sandbox at {base_url}/order/searchList")
            }
            Marketplace::Kuaishou(_) => {
                format!("Kuaishou open platform sandbox at {base_url}/open/order/cursor/list")
            }
            Marketplace::Jushuitan(_) => {
                format!("Jushuitan open API sandbox at {base_url}/open/orders/single/query")
            }
        }
    }
}

/// Announced shops with the (access, refresh) pair each authorization gave.
fn refreshable_shops(
    ids: Vec<String>,
    tokens: impl Fn(usize) -> (String, String),
) -> Vec<AnnouncedShop> {
    ids.into_iter()
        .enumerate()
        .map(|(i, id)| {
            let (at, rt) = tokens(i);
            AnnouncedShop {
                id,
                access_token: at,
                refresh_token: Some(rt),
            }
        })
        .collect()
}

/// Add a config section pulling everything an announced sandbox serves.
/// `decrypt` turns on the platform's decrypt API where it has one.
pub fn add_section(cfg: &mut Config, ann: &SandboxAnnouncement, initial_days: i64, decrypt: bool) {
    let inline = |s: &str| SecretRef::inline(s.to_string());
    match ann.platform {
        Channel::Taobao => cfg.taobao.push(quanyu_taobao::TaobaoConfig {
            gateway: format!("{}/router/rest", ann.base_url),
            app_key: ann.app_key.clone(),
            app_secret: inline(&ann.app_secret),
            sign_method: quanyu_taobao::SignMethod::HmacSha256,
            qps: 0,
            page_size: 100,
            concurrency: 4,
            window_minutes: 24 * 60,
            lookback_minutes: 60,
            initial_days,
            decrypt,
            decrypt_qps: 0,
            decrypt_scene: "2002".into(),
            shops: ann
                .shops
                .iter()
                .map(|s| quanyu_taobao::TaobaoShop {
                    id: s.id.clone(),
                    session: inline(&s.access_token),
                })
                .collect(),
        }),
        Channel::Jd => cfg.jd.push(quanyu_jd::JdConfig {
            gateway: format!("{}/routerjson", ann.base_url),
            oauth_base: ann.base_url.clone(),
            app_key: ann.app_key.clone(),
            app_secret: inline(&ann.app_secret),
            qps: 0,
            shop_qps: 0,
            page_size: 100,
            window_minutes: 7 * 24 * 60,
            lookback_minutes: 60,
            initial_days,
            shops: ann
                .shops
                .iter()
                .map(|s| quanyu_jd::JdShop {
                    id: s.id.clone(),
                    access_token: inline(&s.access_token),
                    refresh_token: s.refresh_token.as_deref().map(inline),
                })
                .collect(),
        }),
        Channel::Douyin => cfg.douyin.push(quanyu_douyin::DouyinConfig {
            gateway: ann.base_url.clone(),
            app_key: ann.app_key.clone(),
            app_secret: inline(&ann.app_secret),
            sign_method: quanyu_douyin::SignMethod::HmacSha256,
            qps: 0,
            shop_qps: 0,
            page_size: 100,
            window_minutes: 24 * 60,
            lookback_minutes: 60,
            initial_days,
            decrypt,
            decrypt_qps: 0,
            shops: ann
                .shops
                .iter()
                .map(|s| quanyu_douyin::DouyinShop {
                    id: s.id.clone(),
                    shop_id: None,
                    self_authorize: true,
                    access_token: Some(inline(&s.access_token)),
                    refresh_token: s.refresh_token.as_deref().map(inline),
                })
                .collect(),
        }),
        Channel::Pdd => cfg.pdd.push(quanyu_pdd::PddConfig {
            router: format!("{}/api/router", ann.base_url),
            client_id: ann.app_key.clone(),
            client_secret: inline(&ann.app_secret),
            qps: 0,
            shop_qps: 0,
            page_size: 100,
            window_minutes: quanyu_pdd::MAX_WINDOW_MINUTES,
            lookback_minutes: 30,
            initial_days,
            decrypt,
            // The sandbox keeps no decrypt quota; against the real router
            // leave the default (one call per 10 s outside 多多云).
            decrypt_interval_secs: 0,
            shops: ann
                .shops
                .iter()
                .map(|s| quanyu_pdd::PddShop {
                    id: s.id.clone(),
                    access_token: inline(&s.access_token),
                    refresh_token: s.refresh_token.as_deref().map(inline),
                })
                .collect(),
        }),
        Channel::Kuaishou => cfg.kuaishou.push(quanyu_kuaishou::KuaishouConfig {
            gateway: ann.base_url.clone(),
            oauth_base: None,
            app_key: ann.app_key.clone(),
            app_secret: inline(&ann.app_secret),
            sign_secret: inline(ann.sign_secret.as_deref().unwrap_or_default()),
            sign_method: quanyu_kuaishou::SignMethod::HmacSha256,
            qps: 0,
            shop_qps: 0,
            page_size: 50,
            window_minutes: 7 * 24 * 60,
            lookback_minutes: 60,
            initial_days,
            decrypt,
            decrypt_qps: 0,
            shops: ann
                .shops
                .iter()
                .map(|s| quanyu_kuaishou::KuaishouShop {
                    id: s.id.clone(),
                    access_token: inline(&s.access_token),
                    refresh_token: s.refresh_token.as_deref().map(inline),
                })
                .collect(),
        }),
        Channel::Jushuitan => {
            let first = ann.shops.first();
            cfg.jushuitan.push(quanyu_jushuitan::JushuitanConfig {
                gateway: ann.base_url.clone(),
                app_key: ann.app_key.clone(),
                app_secret: inline(&ann.app_secret),
                access_token: inline(first.map(|s| s.access_token.as_str()).unwrap_or_default()),
                refresh_token: first.and_then(|s| s.refresh_token.as_deref()).map(inline),
                qps: 0,
                page_size: 100,
                window_minutes: 24 * 60,
                lookback_minutes: 60,
                initial_days,
                shops: ann
                    .shops
                    .iter()
                    .filter_map(|s| {
                        let (id, shop_id) = s.id.split_once('#')?;
                        Some(quanyu_jushuitan::JushuitanShop {
                            id: id.to_string(),
                            shop_id: shop_id.parse().ok()?,
                        })
                    })
                    .collect(),
            })
        }
        _ => {}
    }
}

/// The demo's sandboxes over one world, running.
pub struct Sandboxes {
    /// Marketplace sandboxes with their servers.
    pub marketplaces: Vec<(Marketplace, SandboxHandle)>,
    /// WeCom emulator.
    pub wecom: WecomSandbox,
    /// WeCom server.
    pub wecom_handle: SandboxHandle,
}

impl Sandboxes {
    /// Start a sandbox for every channel among `world`'s shops, and WeCom,
    /// on loopback, any port, as the world stands at `as_of`.
    pub async fn start(
        world: WorldConfig,
        as_of: DateTime<Utc>,
        faults: FaultConfig,
    ) -> Result<Self> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut channels: Vec<Channel> = world.shops.iter().map(|s| s.channel).collect();
        channels.sort();
        channels.dedup();
        let mut marketplaces = Vec::new();
        for ch in channels {
            let m = Marketplace::new(ch, world.clone(), as_of, faults)?;
            let h = m.serve(any).await.context("cannot bind a sandbox")?;
            marketplaces.push((m, h));
        }
        let wecom = WecomSandbox::new(WecomSandboxConfig {
            corp_id: WECOM_CORP_ID.into(),
            secret: WECOM_SECRET.into(),
            world,
            faults,
            as_of: Some(as_of),
            token_ttl_secs: 7200,
        });
        let wecom_handle = wecom.serve(any).await?;
        Ok(Sandboxes {
            marketplaces,
            wecom,
            wecom_handle,
        })
    }

    /// The sandbox of `channel`, if started.
    pub fn marketplace(&self, channel: Channel) -> Option<&Marketplace> {
        self.marketplaces
            .iter()
            .map(|(m, _)| m)
            .find(|m| m.channel() == channel)
    }

    /// The TOP sandbox, if started.
    pub fn taobao(&self) -> Option<&TopSandbox> {
        match self.marketplace(Channel::Taobao)? {
            Marketplace::Taobao(t) => Some(t),
            _ => None,
        }
    }

    /// A config pulling every sandbox.
    pub fn config(&self, initial_days: i64, decrypt: bool) -> Config {
        let mut cfg = Config::default();
        for (m, h) in &self.marketplaces {
            add_section(&mut cfg, &m.announce(&h.base_url()), initial_days, decrypt);
        }
        cfg.wecom.push(self.wecom_config());
        cfg
    }

    /// Orders all marketplace sandboxes serve.
    pub fn visible_orders(&self) -> usize {
        self.marketplaces
            .iter()
            .map(|(m, _)| m.visible_orders())
            .sum()
    }

    /// A config section pulling the WeCom sandbox.
    pub fn wecom_config(&self) -> quanyu_wecom::WecomConfig {
        quanyu_wecom::WecomConfig {
            base_url: self.wecom_handle.base_url(),
            corp_id: WECOM_CORP_ID.into(),
            secret: SecretRef::inline(WECOM_SECRET),
            qps: 0,
            page_size: 100,
        }
    }

    /// Stop every server.
    pub async fn stop(self) {
        for (_, h) in self.marketplaces {
            h.stop().await;
        }
        self.wecom_handle.stop().await;
    }
}

/// `faults` with a seed of its own for `channel`'s sandbox: with one seed
/// for all, every platform drew the same fault sequence, and long pulls
/// hit their retry limits in lockstep.
pub fn faults_for(channel: Channel, faults: FaultConfig) -> FaultConfig {
    let salt = channel
        .as_str()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    FaultConfig {
        seed: faults.seed ^ salt,
        ..faults
    }
}

#[cfg(test)]
mod fault_seed_tests {
    use super::*;

    #[test]
    fn every_marketplace_draws_its_own_fault_sequence() {
        let base = FaultConfig::chaos(0.2, 7);
        let seeds: std::collections::HashSet<u64> = DEMO_CHANNELS
            .iter()
            .map(|c| faults_for(*c, base).seed)
            .collect();
        assert_eq!(seeds.len(), DEMO_CHANNELS.len());
        assert_eq!(faults_for(Channel::Jd, base), faults_for(Channel::Jd, base));
        assert_eq!(faults_for(Channel::Jd, base).throttle, 0.2);
    }
}
