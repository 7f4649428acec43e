//! An emulator of the WeCom customer-contact API.
//!
//! `GET /cgi-bin/gettoken` (40013 bad corpid, 40001 bad secret; tokens last
//! `expires_in` seconds), `GET /cgi-bin/externalcontact/get_follow_user_list`,
//! `POST /cgi-bin/externalcontact/batch/get_by_user` (≤100 userids, limit
//! ≤100, opaque `next_cursor`), with WeCom's errcode envelopes: 41001 missing
//! token, 40014 invalid token, 42001 expired token, 45009 frequency limit,
//! -1 system busy, 40058 bad parameter. Contacts come from the shared seeded
//! world: a share of them are the marketplace buyers (same phone in
//! `remark_mobiles`, or a card `state` naming their order).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use quanyu_connector_sdk::sandbox::world::{
    mix, store_phone, ContactOrigin, CrmPhone, World, WorldConfig,
};
use quanyu_connector_sdk::sandbox::{serve, Fault, FaultConfig, FaultInjector, SandboxHandle};
use serde::Deserialize;
use serde_json::{json, Value};

/// What the sandbox accepts and serves.
#[derive(Debug, Clone)]
pub struct WecomSandboxConfig {
    /// The corp id it accepts.
    pub corp_id: String,
    /// The secret it accepts.
    pub secret: String,
    /// The seeded world (the same one the marketplace sandboxes use).
    pub world: WorldConfig,
    /// Faults to inject.
    pub faults: FaultConfig,
    /// Contacts added after this time are not visible (`None` = wall clock).
    pub as_of: Option<DateTime<Utc>>,
    /// Token lifetime in seconds (WeCom: 7200).
    pub token_ttl_secs: i64,
}

struct Inner {
    cfg: WecomSandboxConfig,
    world: Arc<World>,
    tokens: Mutex<HashMap<String, DateTime<Utc>>>,
    as_of: RwLock<Option<DateTime<Utc>>>,
    faults: FaultInjector,
    requests: AtomicU64,
}

/// The WeCom emulator. Cheap to clone.
#[derive(Clone)]
pub struct WecomSandbox {
    inner: Arc<Inner>,
}

/// The external_userid the sandbox gives a person.
pub use quanyu_connector_sdk::sandbox::world::external_userid;

impl WecomSandbox {
    /// A sandbox over the seeded world of `cfg` (shared with the other
    /// sandboxes of the process that use the same world).
    pub fn new(cfg: WecomSandboxConfig) -> Self {
        let world = World::shared(&cfg.world);
        let faults = FaultInjector::new(cfg.faults);
        let as_of = cfg.as_of;
        WecomSandbox {
            inner: Arc::new(Inner {
                cfg,
                world,
                tokens: Mutex::new(HashMap::new()),
                as_of: RwLock::new(as_of),
                faults,
                requests: AtomicU64::new(0),
            }),
        }
    }

    /// The world the contacts come from.
    pub fn world(&self) -> &World {
        &self.inner.world
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// Move the sandbox clock.
    pub fn set_as_of(&self, t: DateTime<Utc>) {
        *self.inner.as_of.write().unwrap_or_else(|p| p.into_inner()) = Some(t);
    }

    /// The sandbox clock now.
    pub fn as_of(&self) -> DateTime<Utc> {
        self.inner
            .as_of
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_else(Utc::now)
    }

    /// Expire every issued token now (tests of refresh).
    pub fn expire_tokens(&self) {
        let mut t = self.inner.tokens.lock().unwrap_or_else(|p| p.into_inner());
        for v in t.values_mut() {
            *v = Utc::now() - chrono::Duration::seconds(1);
        }
    }

    /// (external_userid, owner userid) of every visible contact: ground truth.
    pub fn visible_contacts(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .visible()
            .iter()
            .map(|&i| {
                let c = &self.inner.world.contacts[i];
                (
                    external_userid(c.person, self.inner.cfg.world.seed),
                    self.inner.cfg.world.reps[c.rep].clone(),
                )
            })
            .collect();
        v.sort();
        v
    }

    fn visible(&self) -> Vec<usize> {
        let as_of = self.as_of();
        (0..self.inner.world.contacts.len())
            .filter(|&i| self.inner.world.contacts[i].added <= as_of)
            .collect()
    }

    fn render(&self, i: usize, corrupt: bool) -> Value {
        let w = &self.inner.world;
        let c = &w.contacts[i];
        let p = &w.persons[c.person as usize];
        let seed = self.inner.cfg.world.seed;
        let (add_way, state, mobiles) = match &c.origin {
            ContactOrigin::Card(_) => (1, w.contact_state(c), vec![]),
            ContactOrigin::CardAndPhone(_) => (1, w.contact_state(c), vec![p.phone.clone()]),
            ContactOrigin::Phone => (2, None, vec![format!("+86 {}", p.phone)]),
            // Signed up in store: the rep saved the phone the CRM holds (a
            // walk-in's is the store's).
            ContactOrigin::PrivateOnly => {
                let phone = match c.crm_phone {
                    CrmPhone::Store(i) => store_phone(i),
                    _ => p.phone.clone(),
                };
                (1, Some("store_sh01".to_string()), vec![phone])
            }
        };
        let mut ext = json!({
            "external_userid": external_userid(c.person, seed),
            "name": "客户",
            "type": 1,
            "gender": (mix(seed ^ u64::from(c.person)) % 3),
        });
        if let Some(u) = &p.unionid {
            ext["unionid"] = json!(u);
        }
        if corrupt {
            ext.as_object_mut()
                .expect("object")
                .remove("external_userid");
        }
        let userid = &self.inner.cfg.world.reps[c.rep];
        let mut follow = json!({
            "userid": userid,
            "remark": "",
            "description": "",
            "createtime": c.added.timestamp(),
            "tag_id": [format!("etSbxTag{}", c.person % 4)],
            "remark_corp_name": "",
            "remark_mobiles": mobiles,
            "oper_userid": userid,
            "add_way": add_way,
        });
        if let Some(s) = state {
            follow["state"] = json!(s);
        }
        json!({"external_contact": ext, "follow_info": follow})
    }

    /// The axum router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/cgi-bin/gettoken", get(gettoken))
            .route(
                "/cgi-bin/externalcontact/get_follow_user_list",
                get(follow_users),
            )
            .route(
                "/cgi-bin/externalcontact/batch/get_by_user",
                post(batch_get_by_user),
            )
            .with_state(self.clone())
    }

    /// Serve on `addr` in the background.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<SandboxHandle> {
        serve(self.router(), addr).await
    }

    /// Check the token and draw a fault; `Err` is the answer to send.
    async fn admit(&self, token: Option<&str>) -> Result<(), Response> {
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(errcode(41001, "access_token missing"));
        };
        let expiry = self
            .inner
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .copied();
        match expiry {
            None => return Err(errcode(40014, "invalid access_token")),
            Some(t) if t <= Utc::now() => return Err(errcode(42001, "access_token expired")),
            Some(_) => {}
        }
        match self.inner.faults.draw(true) {
            Some(Fault::Throttle) => Err(errcode(45009, "api freq out of limit")),
            Some(Fault::ServiceError) => Err(errcode(-1, "system busy")),
            Some(Fault::Http5xx(c)) => Err((
                StatusCode::from_u16(c).unwrap_or(StatusCode::BAD_GATEWAY),
                "Bad Gateway",
            )
                .into_response()),
            Some(Fault::Slow(d)) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            Some(Fault::TokenExpired) => {
                if let Some(t) = self
                    .inner
                    .tokens
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_mut(token)
                {
                    *t = Utc::now() - chrono::Duration::seconds(1);
                }
                Err(errcode(42001, "access_token expired"))
            }
            None => Ok(()),
        }
    }
}

fn errcode(code: i64, msg: &str) -> Response {
    Json(json!({"errcode": code, "errmsg": format!("{msg}, hint: [sandbox], from ip: 127.0.0.1, more info at https://open.work.weixin.qq.com/devtool/query?e={code}")})).into_response()
}

#[derive(Deserialize)]
struct TokenQuery {
    corpid: Option<String>,
    corpsecret: Option<String>,
}

async fn gettoken(State(sb): State<WecomSandbox>, Query(q): Query<TokenQuery>) -> Response {
    sb.inner.requests.fetch_add(1, Ordering::Relaxed);
    if q.corpid.as_deref() != Some(sb.inner.cfg.corp_id.as_str()) {
        return errcode(40013, "invalid corpid");
    }
    if q.corpsecret.as_deref() != Some(sb.inner.cfg.secret.as_str()) {
        return errcode(40001, "invalid credential");
    }
    let n = sb.inner.requests.load(Ordering::Relaxed);
    let token = format!("sbxtok{:016x}", mix(n ^ sb.inner.cfg.world.seed));
    let ttl = sb.inner.cfg.token_ttl_secs;
    sb.inner
        .tokens
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(token.clone(), Utc::now() + chrono::Duration::seconds(ttl));
    Json(json!({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": ttl}))
        .into_response()
}

#[derive(Deserialize)]
struct TokenOnly {
    access_token: Option<String>,
}

async fn follow_users(State(sb): State<WecomSandbox>, Query(q): Query<TokenOnly>) -> Response {
    if let Err(r) = sb.admit(q.access_token.as_deref()).await {
        return r;
    }
    Json(json!({"errcode": 0, "errmsg": "ok", "follow_user": sb.inner.cfg.world.reps}))
        .into_response()
}

#[derive(Deserialize)]
struct BatchBody {
    userid_list: Option<Vec<String>>,
    #[serde(default)]
    cursor: String,
    limit: Option<i64>,
}

async fn batch_get_by_user(
    State(sb): State<WecomSandbox>,
    Query(q): Query<TokenOnly>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = sb.admit(q.access_token.as_deref()).await {
        return r;
    }
    let Ok(b) = serde_json::from_slice::<BatchBody>(&body) else {
        return errcode(47001, "data format error");
    };
    let users = b.userid_list.unwrap_or_default();
    if users.is_empty() || users.len() > 100 {
        return errcode(
            40058,
            "invalid Request Parameter: userid_list size must be 1..100",
        );
    }
    let limit = b.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return errcode(40058, "invalid Request Parameter: limit must be 1..100");
    }
    let offset = if b.cursor.is_empty() {
        0
    } else {
        match b
            .cursor
            .strip_prefix("SBXC")
            .and_then(|s| usize::from_str_radix(s, 16).ok())
        {
            Some(o) => o,
            None => return errcode(40058, "invalid Request Parameter: cursor"),
        }
    };
    // Contacts of the listed users, user by user, in a stable order.
    let reps = &sb.inner.cfg.world.reps;
    let mut all: Vec<usize> = Vec::new();
    let visible = sb.visible();
    for u in &users {
        if let Some(r) = reps.iter().position(|x| x == u) {
            all.extend(
                visible
                    .iter()
                    .copied()
                    .filter(|&i| sb.inner.world.contacts[i].rep == r),
            );
        }
    }
    let end = (offset + limit as usize).min(all.len());
    let page = &all[offset.min(end)..end];
    let corrupt = (!page.is_empty() && sb.inner.faults.draw_malformed()).then_some(0);
    let list: Vec<Value> = page
        .iter()
        .enumerate()
        .map(|(k, &i)| sb.render(i, corrupt == Some(k)))
        .collect();
    let next = if end < all.len() {
        format!("SBXC{end:x}")
    } else {
        String::new()
    };
    Json(json!({"errcode": 0, "errmsg": "ok", "external_contact_list": list, "next_cursor": next}))
        .into_response()
}
