//! WeCom (企业微信) customer contacts: `gettoken`, then
//! `externalcontact/get_follow_user_list` and `externalcontact/batch/get_by_user`
//! with cursor paging, mapped to `contacts`. The API has no modified-since
//! filter, so each run takes a full snapshot stamped with the run's time.
#![warn(missing_docs)]

pub mod callback;
pub mod client;
pub mod mapping;
pub mod sandbox;

use std::sync::Arc;

use async_trait::async_trait;
use quanyu_connector_sdk::{
    ApiClient, ConfigError, ConnectorError, ConnectorSetup, CursorMode, ErrorKind, NormalizedPage,
    PageSink, PullContext, PullError, PullReport, PullResult, RequestContext, SecretRef, Stream,
    StreamId, Window,
};
use quanyu_schemas::{ContactsBuilder, TableKind};
use serde::Deserialize;
use serde_json::value::RawValue;

pub use client::WecomClient;

/// The production API host.
pub const DEFAULT_BASE_URL: &str = "https://qyapi.weixin.qq.com";

/// One WeCom corp.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecomConfig {
    /// API base URL.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The corp id (`ww...`).
    pub corp_id: String,
    /// The customer-contact secret: `{ env = "..." }` or `{ file = "..." }`.
    pub secret: SecretRef,
    /// Requests per second for this corp; 0 = no limit.
    #[serde(default = "default_qps")]
    pub qps: u32,
    /// Contacts per page (1–100).
    #[serde(default = "default_limit")]
    pub page_size: u32,
}

fn default_base_url() -> String {
    DEFAULT_BASE_URL.into()
}
fn default_qps() -> u32 {
    20
}
fn default_limit() -> u32 {
    100
}

/// Build the contacts stream of one corp. The corp's token lives in the
/// client's cache (`gettoken` needs no authorization to renew).
pub fn build_streams(
    cfg: &WecomConfig,
    setup: &ConnectorSetup,
) -> Result<Vec<Arc<dyn Stream>>, ConfigError> {
    let corp = cfg.corp_id.as_str();
    ConfigError::check_range("wecom", corp, "page_size", cfg.page_size, 1..=100, "")?;
    let secret = ConfigError::secret("wecom", corp, &cfg.secret)?;
    let limiter = setup
        .limiters
        .get(&format!("wecom/{corp}"), (cfg.qps > 0).then_some(cfg.qps));
    let client = WecomClient::new(
        ApiClient::new(limiter.into_iter().collect(), setup.policy),
        &cfg.base_url,
        corp,
        secret,
    );
    Ok(vec![Arc::new(WecomContacts {
        id: StreamId::new("wecom", "contacts", corp),
        client,
        page_size: cfg.page_size,
    })])
}

/// All external contacts of one corp.
pub struct WecomContacts {
    id: StreamId,
    client: WecomClient,
    page_size: u32,
}

#[derive(Deserialize)]
struct FollowUsers {
    #[serde(default)]
    follow_user: Vec<String>,
}

#[derive(Deserialize)]
struct BatchAnswer {
    #[serde(default)]
    external_contact_list: Vec<Box<RawValue>>,
    #[serde(default)]
    next_cursor: String,
}

const FOLLOW_USERS_API: &str = "externalcontact/get_follow_user_list";
const BATCH_API: &str = "externalcontact/batch/get_by_user";
/// WeCom takes at most 100 userids per batch call.
const USERIDS_PER_CALL: usize = 100;

#[async_trait]
impl Stream for WecomContacts {
    fn id(&self) -> &StreamId {
        &self.id
    }

    fn table(&self) -> TableKind {
        TableKind::Contacts
    }

    fn cursor_mode(&self) -> CursorMode {
        CursorMode::Snapshot
    }

    fn request_stats(&self) -> (u64, u64) {
        self.client.api().stats()
    }

    async fn pull(
        &self,
        _window: Window,
        ctx: &PullContext,
        sink: &mut dyn PageSink,
    ) -> PullResult {
        let corp = self.client.corp_id().to_string();
        let users: FollowUsers = self
            .client
            .call(
                &RequestContext::new("wecom", Some(&corp), FOLLOW_USERS_API),
                FOLLOW_USERS_API,
                &[],
                None,
            )
            .await?;
        let rctx = RequestContext::new("wecom", Some(&corp), BATCH_API);
        let mut report = PullReport::default();
        let mut builder = ContactsBuilder::new(&ctx.run_id, ctx.ingested_at);
        for chunk in users.follow_user.chunks(USERIDS_PER_CALL) {
            let mut cursor = String::new();
            let mut seen_cursors = std::collections::HashSet::new();
            loop {
                let body = serde_json::json!({"userid_list": chunk, "cursor": cursor, "limit": self.page_size});
                let answer: BatchAnswer =
                    self.client.call(&rctx, BATCH_API, &[], Some(&body)).await?;
                let mut quarantine = Vec::new();
                for raw in &answer.external_contact_list {
                    match mapping::map_contact(raw.get(), ctx.ingested_at, &ctx.hasher) {
                        Ok(row) => builder.append(&row),
                        Err(rej) => quarantine.push(ctx.reject(
                            &self.id,
                            TableKind::Contacts,
                            rej.key,
                            raw.get(),
                            rej.reason,
                        )),
                    }
                }
                let n = answer.external_contact_list.len();
                report.pages += 1;
                report.records += n as u64;
                let batch = (!builder.is_empty()).then(|| builder.finish());
                sink.page(NormalizedPage {
                    batch,
                    extra: Vec::new(),
                    quarantine,
                    records_in: n,
                })
                .await
                .map_err(PullError::Sink)?;
                if answer.next_cursor.is_empty() {
                    break;
                }
                if !seen_cursors.insert(answer.next_cursor.clone()) {
                    return Err(ConnectorError::new(
                        &rctx,
                        ErrorKind::Protocol,
                        "next_cursor repeats: paging would loop",
                    )
                    .into());
                }
                cursor = answer.next_cursor;
            }
        }
        Ok(report)
    }
}

/// The connector as the engine registers it.
pub static CONNECTOR: quanyu_connector_sdk::connector::ConnectorSpec<WecomConfig> =
    quanyu_connector_sdk::connector::ConnectorSpec {
        name: "wecom",
        about: "WeCom (企业微信) external contacts",
        channel: quanyu_schemas::Channel::Wecom,
        build: build_streams,
        decrypts: false,
        order_ids: None,
        sandbox: None,
    };
