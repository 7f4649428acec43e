//! `quanyu listen`: receives AI-call vendors' call records (Baiying,
//! Yiwise; a shared URL token guards them) and WeCom's customer-contact
//! callbacks, checks
//! `msg_signature`, decrypts the AES payload, answers the URL check, and
//! lands `change_external_contact` events in `raw_touchpoints`. An event is
//! acknowledged (`success`) only after the Delta commit that holds it; events
//! arriving while a commit is under way wait for the next one and share it
//! (group commit), so a burst of a thousand events is a handful of commits
//! and is acknowledged well within WeCom's 5 s. A replayed event has the same
//! `event_id` (a digest of its fields), so it is skipped here and collapses
//! in the `touchpoints` refresh. A WeCom message whose signed timestamp is
//! outside the freshness window (`[listen] max_clock_skew_secs`) is refused,
//! so a captured message cannot be replayed later. The listener needs no lake
//! writer lock: it only appends to `raw_touchpoints`; it refreshes
//! `touchpoints` when no `quanyu run` holds the lake.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use quanyu_connector_sdk::{Secret, SecretRef};
use quanyu_schemas::{
    Bridge, Channel, Outcome, PiiHasher, TouchEvent, TouchpointRow, TouchpointsBuilder,
};
use quanyu_wecom::callback::{parse_envelope, parse_event, CallbackCrypto, Event};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::identity::{StateRule, StateRules};
use crate::lake::Lake;

/// `[[listen.wecom]]`: one corp's callback settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecomListenConfig {
    /// The corp id (the receive id of a self-built app).
    pub corp_id: String,
    /// The callback Token.
    pub token: SecretRef,
    /// The 43-character EncodingAESKey.
    pub encoding_aes_key: SecretRef,
}

/// `[[listen.calls]]`: one AI-call vendor account pushing call records to
/// `POST /calls/<vendor>/<account>?token=<token>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallsListenConfig {
    /// `baiying` or `yiwise`.
    pub vendor: quanyu_aicall::Vendor,
    /// The vendor account (company / tenant id), part of the URL.
    pub account: String,
    /// A shared token the callback URL must carry (the vendors sign nothing).
    pub token: SecretRef,
    /// Cost when the record has none.
    #[serde(default)]
    pub cost: Option<quanyu_connector_sdk::declarative::CostRule>,
    /// The import variable carrying an order id (`订单号`).
    #[serde(default)]
    pub order_property: Option<String>,
    /// The marketplace of those orders.
    #[serde(default)]
    pub order_channel: Option<Channel>,
}

/// `[listen]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    /// WeCom corps whose callbacks this listener receives.
    pub wecom: Vec<WecomListenConfig>,
    /// AI-call vendor accounts whose call records this listener receives.
    pub calls: Vec<CallsListenConfig>,
    /// A WeCom message whose signed timestamp is further than this from the
    /// listener's clock is refused (a replay of a captured message, or a
    /// clock that needs fixing). Default 300 s.
    pub max_clock_skew_secs: u64,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            wecom: Vec::new(),
            calls: Vec::new(),
            max_clock_skew_secs: DEFAULT_MAX_CLOCK_SKEW_SECS,
        }
    }
}

/// The default freshness window of signed WeCom messages.
pub const DEFAULT_MAX_CLOCK_SKEW_SECS: u64 = 300;

/// Most events one group commit takes; the rest wait for the next.
pub const GROUP_COMMIT_MAX_EVENTS: usize = 5_000;

/// Event ids remembered to acknowledge replays without a commit (older
/// replays still collapse in the `touchpoints` refresh).
const SEEN_CAPACITY: usize = 200_000;

/// `[[bridges]]`: which bridge and campaign a contact way's `state` belongs
/// to (the longest matching prefix wins).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeRule {
    /// Prefix of the `state`.
    pub state_prefix: String,
    /// The bridge (`package_card`, `ai_call`, `ai_sms`, `manual_call`, `store`).
    pub bridge: Bridge,
    /// Campaign / card run / task name recorded on the touchpoint.
    #[serde(default)]
    pub campaign: Option<String>,
}

/// Maps a `state` to its bridge, campaign and (through the identity state
/// rules) the order it names.
#[derive(Debug, Clone, Default)]
pub struct StateMapper {
    bridges: Vec<BridgeRule>,
    orders: StateRules,
}

impl StateMapper {
    /// A mapper from the configured bridge rules and identity state rules.
    /// States naming an order are package-insert cards unless a bridge rule
    /// says otherwise; a state whose order id is not in its channel's
    /// format (a batch code) names no order.
    pub fn new(bridges: &[BridgeRule], orders: &[StateRule]) -> anyhow::Result<Self> {
        let mut bridges = bridges.to_vec();
        bridges.sort_by_key(|b| std::cmp::Reverse(b.state_prefix.len()));
        Ok(StateMapper {
            bridges,
            orders: StateRules::new(orders)?,
        })
    }

    /// (bridge, campaign, order channel, order id) for a state.
    pub fn map(
        &self,
        state: Option<&str>,
    ) -> (Bridge, Option<String>, Option<Channel>, Option<String>) {
        let Some(state) = state.filter(|s| !s.is_empty()) else {
            return (Bridge::Wecom, None, None, None);
        };
        let order = self
            .orders
            .order(state)
            .and_then(|(ch, id)| Some((ch.parse::<Channel>().ok()?, id)));
        let rule = self
            .bridges
            .iter()
            .find(|b| state.starts_with(b.state_prefix.as_str()));
        let bridge = match (rule, &order) {
            (Some(r), _) => r.bridge,
            (None, Some(_)) => Bridge::PackageCard,
            (None, None) => Bridge::Wecom,
        };
        let campaign = rule.and_then(|r| r.campaign.clone());
        let (ch, id) = order.map_or((None, None), |(c, i)| (Some(c), Some(i)));
        (bridge, campaign, ch, id)
    }
}

/// A callback event as a touchpoint row; `None` for events quanyu does not
/// record (other event types).
pub fn event_row(corp: &str, ev: &Event, states: &StateMapper) -> Option<TouchpointRow> {
    if ev.event.as_deref() != Some("change_external_contact") {
        return None;
    }
    let event_type = match ev.change_type.as_deref()? {
        "add_external_contact" => TouchEvent::FriendAdded,
        "add_half_external_contact" => TouchEvent::FriendHalfAdded,
        "edit_external_contact" => TouchEvent::FriendEdited,
        "del_external_contact" => TouchEvent::FriendDeleted,
        "del_follow_user" => TouchEvent::DeletedByCustomer,
        "transfer_fail" => TouchEvent::TransferFailed,
        _ => return None,
    };
    let occurred_at = ev
        .create_time
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .unwrap_or_else(Utc::now);
    let (bridge, campaign, order_channel, order_id) = states.map(ev.state.as_deref());
    let mut h = Sha256::new();
    for part in [
        corp,
        ev.change_type.as_deref().unwrap_or(""),
        ev.user_id.as_deref().unwrap_or(""),
        ev.external_user_id.as_deref().unwrap_or(""),
        &occurred_at.timestamp().to_string(),
        ev.state.as_deref().unwrap_or(""),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    Some(TouchpointRow {
        channel: bridge,
        event_id: format!("wecom-{}", hex::encode(&h.finalize()[..16])),
        event_type,
        occurred_at,
        phone_hash: None,
        order_channel,
        order_id,
        unionid: None,
        external_userid: ev.external_user_id.clone().filter(|s| !s.is_empty()),
        owner_userid: ev.user_id.clone().filter(|s| !s.is_empty()),
        state: ev.state.clone().filter(|s| !s.is_empty()),
        campaign,
        outcome: Some(Outcome::Done),
        intent_level: None,
        duration_secs: None,
        cost_fen: None,
        source: format!("wecom_callback@{corp}"),
    })
}

struct CallAccount {
    vendor: quanyu_aicall::Vendor,
    token: Secret,
    mapping: quanyu_aicall::CallMapping,
}

/// Event ids recently landed by this process, the oldest forgotten first.
#[derive(Default)]
struct SeenIds {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl SeenIds {
    fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    fn insert(&mut self, id: String) {
        if self.ids.insert(id.clone()) {
            self.order.push_back(id);
            while self.order.len() > SEEN_CAPACITY {
                if let Some(old) = self.order.pop_front() {
                    self.ids.remove(&old);
                }
            }
        }
    }
}

/// An event waiting for a group commit, and who to tell how it went.
struct Pending {
    row: TouchpointRow,
    landed: oneshot::Sender<std::result::Result<(), String>>,
}

struct Listener {
    hasher: PiiHasher,
    corps: HashMap<String, CallbackCrypto>,
    /// (vendor, account) → settings.
    calls: HashMap<(String, String), CallAccount>,
    states: StateMapper,
    max_skew_secs: i64,
    /// Event ids landed by this process (replays are acknowledged at once).
    seen: Arc<Mutex<SeenIds>>,
    /// The group committer's queue.
    commits: mpsc::Sender<Pending>,
}

/// The callback query string.
#[derive(Debug, Deserialize)]
struct CallbackQuery {
    msg_signature: String,
    timestamp: String,
    nonce: String,
    echostr: Option<String>,
}

/// Build the listener's router: `GET|POST /wecom/{corp_id}` and
/// `POST /calls/{vendor}/{account}`. Starts the group committer, so it must
/// be called within a Tokio runtime.
pub fn router(
    lake: Lake,
    hasher: PiiHasher,
    cfg: &ListenConfig,
    bridges: &[BridgeRule],
    state_rules: &[StateRule],
) -> Result<Router> {
    let mut corps = HashMap::new();
    for c in &cfg.wecom {
        let token = c
            .token
            .resolve()
            .with_context(|| format!("listen.wecom {}: token", c.corp_id))?;
        let key: Secret = c
            .encoding_aes_key
            .resolve()
            .with_context(|| format!("listen.wecom {}: encoding_aes_key", c.corp_id))?;
        let crypto = CallbackCrypto::new(token, &key, &c.corp_id)
            .with_context(|| format!("listen.wecom {}", c.corp_id))?;
        corps.insert(c.corp_id.clone(), crypto);
    }
    let mut calls = HashMap::new();
    for c in &cfg.calls {
        let token = c
            .token
            .resolve()
            .with_context(|| format!("listen.calls {}: token", c.account))?;
        calls.insert(
            (c.vendor.as_str().to_string(), c.account.clone()),
            CallAccount {
                vendor: c.vendor,
                token,
                mapping: quanyu_aicall::CallMapping {
                    cost: c.cost,
                    order_property: c.order_property.clone(),
                    order_channel: c.order_channel,
                },
            },
        );
    }
    if corps.is_empty() && calls.is_empty() {
        anyhow::bail!("nothing to listen for: configure [[listen.wecom]] or [[listen.calls]]");
    }
    let seen = Arc::new(Mutex::new(SeenIds::default()));
    let (commits, queue) = mpsc::channel(GROUP_COMMIT_MAX_EVENTS * 2);
    tokio::spawn(group_commits(lake, queue, seen.clone()));
    let state = Arc::new(Listener {
        hasher,
        corps,
        calls,
        states: StateMapper::new(bridges, state_rules)?,
        max_skew_secs: i64::try_from(cfg.max_clock_skew_secs).unwrap_or(i64::MAX),
        seen,
        commits,
    });
    Ok(Router::new()
        .route("/wecom/{corp}", get(url_check).post(receive))
        .route("/calls/{vendor}/{account}", post(receive_call))
        .with_state(state))
}

fn refuse(status: StatusCode, why: &str) -> Response {
    tracing::warn!(%status, "callback refused: {why}");
    (status, why.to_string()).into_response()
}

/// The URL check: answer the decrypted `echostr`.
async fn url_check(
    State(l): State<Arc<Listener>>,
    Path(corp): Path<String>,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(crypto) = l.corps.get(&corp) else {
        return refuse(StatusCode::NOT_FOUND, "unknown corp");
    };
    let Some(echo) = q.echostr.as_deref() else {
        return refuse(StatusCode::BAD_REQUEST, "missing echostr");
    };
    match crypto.open(&q.msg_signature, &q.timestamp, &q.nonce, echo) {
        Ok(plain) => match l.stale(&q.timestamp) {
            Some(why) => refuse(StatusCode::FORBIDDEN, &why),
            None => plain.into_response(),
        },
        Err(e) => refuse(StatusCode::FORBIDDEN, &e.to_string()),
    }
}

/// An event: verify, decrypt, land, then acknowledge.
async fn receive(
    State(l): State<Arc<Listener>>,
    Path(corp): Path<String>,
    Query(q): Query<CallbackQuery>,
    body: Bytes,
) -> Response {
    let Some(crypto) = l.corps.get(&corp) else {
        return refuse(StatusCode::NOT_FOUND, "unknown corp");
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "body is not UTF-8");
    };
    let envelope = match parse_envelope(text) {
        Ok(e) => e,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let plain = match crypto.open(&q.msg_signature, &q.timestamp, &q.nonce, &envelope.encrypt) {
        Ok(p) => p,
        Err(e) => return refuse(StatusCode::FORBIDDEN, &e.to_string()),
    };
    if let Some(why) = l.stale(&q.timestamp) {
        return refuse(StatusCode::FORBIDDEN, &why);
    }
    let event = match parse_event(&plain) {
        Ok(e) => e,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let Some(row) = event_row(&corp, &event, &l.states) else {
        tracing::debug!(event = ?event.event, change = ?event.change_type, "event not recorded");
        return "success".into_response();
    };
    l.land(row, "success").await
}

impl Listener {
    /// Why a signed message's `timestamp` is refused: not a Unix time, or
    /// further from this listener's clock than the freshness window.
    fn stale(&self, timestamp: &str) -> Option<String> {
        let Ok(at) = timestamp.trim().parse::<i64>() else {
            return Some("timestamp is not a Unix time".into());
        };
        let skew = Utc::now().timestamp().saturating_sub(at);
        (skew.saturating_abs() > self.max_skew_secs).then(|| {
            format!(
                "timestamp is {} s {} this listener's clock (window {} s): a replayed message or a skewed clock",
                skew.saturating_abs(),
                if skew > 0 { "behind" } else { "ahead of" },
                self.max_skew_secs
            )
        })
    }

    /// Queue `row` for the next group commit and acknowledge with `ack`
    /// once it is durable; a replay already landed by this process is
    /// acknowledged at once.
    async fn land(&self, row: TouchpointRow, ack: &'static str) -> Response {
        if self.seen.lock().await.contains(&row.event_id) {
            return ack.into_response();
        }
        let (landed, outcome) = oneshot::channel();
        if self.commits.send(Pending { row, landed }).await.is_err() {
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "the committer has stopped");
        }
        match outcome.await {
            Ok(Ok(())) => ack.into_response(),
            // Not acknowledged: the sender delivers it again.
            Ok(Err(e)) => refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("could not land the event: {e}"),
            ),
            Err(_) => refuse(StatusCode::SERVICE_UNAVAILABLE, "the committer has stopped"),
        }
    }
}

/// The group committer: takes every event queued since its last commit (up
/// to [`GROUP_COMMIT_MAX_EVENTS`]) into one `raw_touchpoints` commit, then
/// tells each sender how it went. Events arriving during a commit wait for
/// the next one, so commits never overlap and a burst costs a few commits.
async fn group_commits(lake: Lake, mut queue: mpsc::Receiver<Pending>, seen: Arc<Mutex<SeenIds>>) {
    let schema = quanyu_schemas::TableKind::Touchpoints.schema();
    while let Some(first) = queue.recv().await {
        let mut group = vec![first];
        while group.len() < GROUP_COMMIT_MAX_EVENTS {
            match queue.try_recv() {
                Ok(p) => group.push(p),
                Err(_) => break,
            }
        }
        let now = Utc::now();
        let mut b = TouchpointsBuilder::new(&format!("listen-{}", now.format("%Y%m%d")), now);
        let mut fresh = HashSet::new();
        {
            let seen = seen.lock().await;
            for p in &group {
                if !seen.contains(&p.row.event_id) && fresh.insert(p.row.event_id.clone()) {
                    b.append(&p.row);
                }
            }
        }
        let outcome = if fresh.is_empty() {
            Ok(())
        } else {
            lake.append("raw_touchpoints", &schema, vec![b.finish()], None)
                .await
                .map_err(|e| format!("{e:#}"))
        };
        match &outcome {
            Ok(()) => {
                let mut seen = seen.lock().await;
                for id in fresh {
                    seen.insert(id);
                }
                tracing::info!(events = group.len(), "callbacks landed");
            }
            Err(e) => tracing::warn!(events = group.len(), "callbacks not landed: {e}"),
        }
        for p in group {
            let _ = p.landed.send(outcome.clone());
        }
    }
}

/// The URL token of an AI-call callback.
#[derive(Debug, Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// An AI-call vendor's call record: check the token, map, land, acknowledge.
async fn receive_call(
    State(l): State<Arc<Listener>>,
    Path((vendor, account)): Path<(String, String)>,
    Query(q): Query<TokenQuery>,
    body: Bytes,
) -> Response {
    let Some(acct) = l.calls.get(&(vendor.clone(), account.clone())) else {
        return refuse(StatusCode::NOT_FOUND, "unknown vendor account");
    };
    let given = q.token.as_bytes();
    let want = acct.token.expose().as_bytes();
    let same =
        given.len() == want.len() && given.iter().zip(want).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0;
    if !same {
        return refuse(StatusCode::FORBIDDEN, "bad token");
    }
    match quanyu_aicall::map_callback(acct.vendor, &body, &account, &acct.mapping, &l.hasher) {
        Ok(Some(row)) => l.land(row, acct.vendor.ack()).await,
        Ok(None) => acct.vendor.ack().into_response(),
        Err(e) => refuse(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// Serve on `addr` until the process ends; every `refresh_every`, when no
/// other process holds the lake's writer lock, a sync refreshes
/// `touchpoints` with what the callbacks landed.
pub async fn serve(
    lake: Lake,
    hasher: PiiHasher,
    router: Router,
    addr: SocketAddr,
    refresh_every: std::time::Duration,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    eprintln!(
        "listening on http://{}/wecom/<corp_id> (WeCom callback URL)",
        listener.local_addr()?
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(refresh_every);
        loop {
            tick.tick().await;
            if let Ok(_lock) = lake.lock_writer() {
                let sync = crate::sync::Sync::new(&lake, &hasher)
                    .refresh(quanyu_schemas::TableKind::Touchpoints)
                    .without_identity();
                if let Err(e) = sync.run().await {
                    tracing::warn!("touchpoints refresh failed: {e:#}");
                }
            }
        }
    });
    axum::serve(listener, router).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_ids_are_bounded_and_forget_the_oldest() {
        let mut seen = SeenIds::default();
        for i in 0..SEEN_CAPACITY + 10 {
            seen.insert(format!("e{i}"));
        }
        seen.insert("e20".into());
        assert_eq!(seen.ids.len(), SEEN_CAPACITY);
        assert_eq!(seen.order.len(), SEEN_CAPACITY);
        assert!(!seen.contains("e0") && !seen.contains("e9"));
        assert!(seen.contains("e10") && seen.contains(&format!("e{}", SEEN_CAPACITY + 9)));
    }

    #[test]
    fn states_map_to_bridges_campaigns_and_orders() {
        let rules = crate::identity::IdentityConfig::default().state_rules;
        let m = StateMapper::new(
            &[BridgeRule {
                state_prefix: "ai_".into(),
                bridge: Bridge::AiCall,
                campaign: Some("618 call task".into()),
            }],
            &rules,
        )
        .unwrap();
        let (b, c, ch, id) = m.map(Some("tb_3100000000000123"));
        assert_eq!(b, Bridge::PackageCard);
        assert_eq!(
            (ch, id.as_deref()),
            (Some(Channel::Taobao), Some("3100000000000123"))
        );
        assert!(c.is_none());
        let (b, c, ch, _) = m.map(Some("ai_0618"));
        assert_eq!(
            (b, c.as_deref(), ch),
            (Bridge::AiCall, Some("618 call task"), None)
        );
        assert_eq!(m.map(None).0, Bridge::Wecom);
        assert_eq!(
            m.map(Some("tb_")).2,
            None,
            "an empty order id names nothing"
        );
        let (b, _, ch, id) = m.map(Some("dy_batch07"));
        assert_eq!((ch, id), (None, None), "a batch code names no order");
        assert_eq!(b, Bridge::Wecom);
    }
}
