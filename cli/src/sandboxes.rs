//! Starting the embedded sandboxes for `quanyu demo`, `quanyu sandbox` and
//! `quanyu bench`. Every marketplace sandbox announces itself the same way
//! (URL, app credentials, shops with their tokens, orders served), and the
//! connector's own sandbox kit builds the streams from an announcement, so
//! the demo, the bench's child-process sandbox and a user's `quanyu
//! sandbox` all connect alike. Which sandboxes exist is the registry's.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use quanyu_connector_sdk::connector::{RunningSandbox, SandboxPull};
use quanyu_connector_sdk::sandbox::world::WorldConfig;
use quanyu_connector_sdk::sandbox::{FaultConfig, SandboxHandle};
use quanyu_connector_sdk::{Connector, ConnectorSetup, SecretRef, Stream};
use quanyu_schemas::Channel;
use quanyu_taobao::sandbox::TopSandbox;
use quanyu_wecom::sandbox::{WecomSandbox, WecomSandboxConfig};

pub use quanyu_connector_sdk::connector::sandbox_credentials::{APP_KEY, APP_SECRET, SIGN_SECRET};
pub use quanyu_connector_sdk::connector::{AnnouncedShop, SandboxAnnouncement};

/// The corp id the WeCom sandbox accepts by default.
pub const WECOM_CORP_ID: &str = "wwsandbox0001";
/// The secret the WeCom sandbox accepts by default.
pub const WECOM_SECRET: &str = "sandbox-wecom-secret";

/// The marketplaces the demo serves from sandboxes: every registered
/// connector that has one.
pub fn demo_channels() -> Vec<Channel> {
    crate::registry::with_sandbox()
        .map(|c| c.channel())
        .collect()
}

/// The registered connector whose sandbox serves `channel`.
fn connector_of(channel: Channel) -> Result<&'static dyn Connector> {
    crate::registry::with_sandbox()
        .find(|c| c.channel() == channel)
        .with_context(|| format!("no sandbox for {channel}"))
}

/// Streams pulling an announced sandbox (a `quanyu sandbox` process), as
/// `pull` asks.
pub fn streams_for(
    ann: &SandboxAnnouncement,
    pull: SandboxPull,
    setup: &ConnectorSetup,
) -> Result<Vec<Arc<dyn Stream>>> {
    let kit = connector_of(ann.platform)?
        .sandbox()
        .context("a connector with a sandbox")?;
    Ok(kit.streams(ann, pull, setup)?)
}

/// A marketplace sandbox of any registered connector.
pub struct Marketplace {
    /// The connector it emulates the platform of.
    pub connector: &'static dyn Connector,
    /// The emulator.
    pub sandbox: Box<dyn RunningSandbox>,
}

impl Marketplace {
    /// A sandbox of `channel` over `world` at `as_of`, accepting the default
    /// credentials, drawing faults with a seed of its own.
    pub fn new(
        channel: Channel,
        world: WorldConfig,
        as_of: DateTime<Utc>,
        faults: FaultConfig,
    ) -> Result<Self> {
        let connector = connector_of(channel)?;
        let kit = connector.sandbox().context("a connector with a sandbox")?;
        Ok(Marketplace {
            connector,
            sandbox: kit.create(world, as_of, faults_for(channel, faults)),
        })
    }

    /// Its channel.
    pub fn channel(&self) -> Channel {
        self.connector.channel()
    }

    /// Serve it on `addr`.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<SandboxHandle> {
        self.sandbox.serve_on(addr).await
    }

    /// Orders it shows now.
    pub fn visible_orders(&self) -> usize {
        self.sandbox.orders_shown()
    }

    /// Order lines its visible orders hold.
    pub fn visible_lines(&self) -> usize {
        let one = self
            .connector
            .sandbox()
            .is_some_and(|k| k.facts().one_line_per_order);
        self.sandbox.market().map_or(0, |m| m.visible_lines(one))
    }

    /// Refund requests it shows now.
    pub fn visible_refunds(&self) -> usize {
        self.sandbox
            .market()
            .map_or(0, |m| m.visible_refunds().len())
    }

    /// What it accepts, served at `base_url`.
    pub fn announce(&self, base_url: &str) -> SandboxAnnouncement {
        self.sandbox.announce(base_url)
    }

    /// One line saying what it emulates and where.
    pub fn describe(&self, base_url: &str) -> String {
        self.sandbox.describe(base_url)
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
        self.marketplace(Channel::Taobao)?
            .sandbox
            .as_any()
            .downcast_ref()
    }

    /// The streams pulling the sandbox of `channel`, as `pull` asks.
    pub fn streams_of(
        &self,
        channel: Channel,
        pull: SandboxPull,
        setup: &ConnectorSetup,
    ) -> Result<Vec<Arc<dyn Stream>>> {
        let (m, h) = self
            .marketplaces
            .iter()
            .find(|(m, _)| m.channel() == channel)
            .with_context(|| format!("no {channel} sandbox started"))?;
        streams_for(&m.announce(&h.base_url()), pull, setup)
    }

    /// The streams pulling every sandbox (WeCom's too), as `pull` asks.
    pub fn streams(
        &self,
        pull: SandboxPull,
        setup: &ConnectorSetup,
    ) -> Result<Vec<Arc<dyn Stream>>> {
        let mut out = Vec::new();
        for (m, _) in &self.marketplaces {
            out.extend(self.streams_of(m.channel(), pull, setup)?);
        }
        out.extend(quanyu_wecom::build_streams(&self.wecom_config(), setup)?);
        Ok(out)
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
        let channels = demo_channels();
        let seeds: std::collections::HashSet<u64> =
            channels.iter().map(|c| faults_for(*c, base).seed).collect();
        assert_eq!(seeds.len(), channels.len());
        assert_eq!(faults_for(Channel::Jd, base), faults_for(Channel::Jd, base));
        assert_eq!(faults_for(Channel::Jd, base).throttle, 0.2);
    }
}
