//! Starting the embedded sandboxes for `quanyu demo`, `quanyu sandbox` and
//! `quanyu bench`.

use chrono::{DateTime, Utc};
use quanyu_connector_sdk::sandbox::world::WorldConfig;
use quanyu_connector_sdk::sandbox::{FaultConfig, SandboxHandle};
use quanyu_connector_sdk::SecretRef;
use quanyu_taobao::sandbox::{TopSandbox, TopSandboxConfig};
use quanyu_wecom::sandbox::{WecomSandbox, WecomSandboxConfig};
use std::net::SocketAddr;

/// The marketplaces the demo serves from sandboxes.
pub const DEMO_CHANNELS: &[quanyu_schemas::Channel] = &[quanyu_schemas::Channel::Taobao];

/// The app key the Taobao sandbox accepts by default.
pub const TAOBAO_APP_KEY: &str = "12345678";
/// The app secret the Taobao sandbox accepts by default.
pub const TAOBAO_APP_SECRET: &str = "sandbox-taobao-secret";
/// The corp id the WeCom sandbox accepts by default.
pub const WECOM_CORP_ID: &str = "wwsandbox0001";
/// The secret the WeCom sandbox accepts by default.
pub const WECOM_SECRET: &str = "sandbox-wecom-secret";

/// Both sandboxes over one world, running.
pub struct Sandboxes {
    /// TOP emulator.
    pub taobao: TopSandbox,
    /// WeCom emulator.
    pub wecom: WecomSandbox,
    /// TOP server.
    pub taobao_handle: SandboxHandle,
    /// WeCom server.
    pub wecom_handle: SandboxHandle,
}

impl Sandboxes {
    /// Start both on loopback, any port, over `world` as it stands at `as_of`.
    pub async fn start(
        world: WorldConfig,
        as_of: DateTime<Utc>,
        faults: FaultConfig,
    ) -> std::io::Result<Self> {
        let taobao = TopSandbox::new(TopSandboxConfig {
            app_key: TAOBAO_APP_KEY.into(),
            app_secret: TAOBAO_APP_SECRET.into(),
            world: world.clone(),
            faults,
            as_of: Some(as_of),
        });
        let wecom = WecomSandbox::new(WecomSandboxConfig {
            corp_id: WECOM_CORP_ID.into(),
            secret: WECOM_SECRET.into(),
            world,
            faults,
            as_of: Some(as_of),
            token_ttl_secs: 7200,
        });
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let taobao_handle = taobao.serve(any).await?;
        let wecom_handle = wecom.serve(any).await?;
        Ok(Sandboxes {
            taobao,
            wecom,
            taobao_handle,
            wecom_handle,
        })
    }

    /// A config section pulling every shop of the Taobao sandbox.
    pub fn taobao_config(&self, initial_days: i64) -> quanyu_taobao::TaobaoConfig {
        taobao_config_for(&self.taobao, &self.taobao_handle.base_url(), initial_days)
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
}

/// A Taobao config section for a sandbox at `base_url`.
pub fn taobao_config_for(
    sb: &TopSandbox,
    base_url: &str,
    initial_days: i64,
) -> quanyu_taobao::TaobaoConfig {
    let cfg = sb.config();
    quanyu_taobao::TaobaoConfig {
        gateway: format!("{base_url}/router/rest"),
        app_key: cfg.app_key.clone(),
        app_secret: SecretRef::inline(cfg.app_secret.clone()),
        sign_method: quanyu_taobao::SignMethod::HmacSha256,
        qps: 0,
        page_size: 100,
        window_minutes: 24 * 60,
        lookback_minutes: 60,
        initial_days,
        decrypt: false,
        decrypt_qps: 0,
        decrypt_scene: "2002".into(),
        shops: sb
            .shops()
            .into_iter()
            .enumerate()
            .map(|(i, id)| quanyu_taobao::TaobaoShop {
                id,
                session: SecretRef::inline(cfg.session_for(i)),
            })
            .collect(),
    }
}
