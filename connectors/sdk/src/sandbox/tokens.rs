//! OAuth-style shop tokens as a platform issues them: an access token with a
//! lifetime and a refresh token that is used once (refreshing invalidates
//! the old pair, as Pinduoduo, Douyin and Kuaishou do).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// Why a presented access token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    /// Never issued, or replaced by a refresh.
    Unknown,
    /// Issued but past its lifetime.
    Expired,
}

/// A freshly issued pair.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The access token.
    pub access_token: String,
    /// The refresh token.
    pub refresh_token: String,
    /// Access lifetime in seconds.
    pub expires_in: i64,
    /// Refresh lifetime in seconds.
    pub refresh_expires_in: i64,
    /// Local shop index it belongs to.
    pub shop: usize,
}

struct State {
    /// access token → (shop, expires at)
    access: HashMap<String, (usize, DateTime<Utc>)>,
    /// refresh token → shop
    refresh: HashMap<String, usize>,
    /// shop → the token an app-level grant hands out now
    held: HashMap<usize, String>,
}

/// Issues and checks tokens for the shops of one sandbox.
pub struct TokenIssuer {
    prefix: String,
    ttl: Duration,
    state: Mutex<State>,
    counter: AtomicU64,
}

impl TokenIssuer {
    /// An issuer whose tokens start with `prefix` and live `ttl_secs`; each
    /// of `shops` (local index) gets an initial pair,
    /// [`TokenIssuer::initial`].
    pub fn new(prefix: &str, shops: usize, ttl_secs: i64) -> Self {
        let issuer = TokenIssuer {
            prefix: prefix.into(),
            ttl: Duration::seconds(ttl_secs.max(1)),
            state: Mutex::new(State {
                access: HashMap::new(),
                refresh: HashMap::new(),
                held: HashMap::new(),
            }),
            counter: AtomicU64::new(0),
        };
        {
            let mut st = issuer.lock();
            for shop in 0..shops {
                let (at, rt) = issuer.initial(shop);
                st.access
                    .insert(at, (shop, Utc::now() + Duration::days(3650)));
                st.refresh.insert(rt, shop);
            }
        }
        issuer
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The initial (access, refresh) pair of shop `i`, as an authorization
    /// would have handed it out. The initial access token does not expire
    /// until [`TokenIssuer::expire_all`].
    pub fn initial(&self, shop: usize) -> (String, String) {
        (
            format!("{}-at-{shop}-0", self.prefix),
            format!("{}-rt-{shop}-0", self.prefix),
        )
    }

    /// The shop an access token belongs to.
    pub fn check(&self, access_token: &str) -> Result<usize, TokenProblem> {
        match self.lock().access.get(access_token) {
            None => Err(TokenProblem::Unknown),
            Some(&(_, exp)) if exp <= Utc::now() => Err(TokenProblem::Expired),
            Some(&(shop, _)) => Ok(shop),
        }
    }

    /// Issue a new pair for `shop` (token create).
    pub fn issue(&self, shop: usize) -> Issued {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let nonce = super::world::mix(n ^ (shop as u64) << 32);
        let issued = Issued {
            access_token: format!("{}-at-{shop}-{nonce:x}", self.prefix),
            refresh_token: format!("{}-rt-{shop}-{nonce:x}", self.prefix),
            expires_in: self.ttl.num_seconds(),
            refresh_expires_in: 30 * 86_400,
            shop,
        };
        let mut st = self.lock();
        st.access
            .insert(issued.access_token.clone(), (shop, Utc::now() + self.ttl));
        st.refresh.insert(issued.refresh_token.clone(), shop);
        issued
    }

    /// Exchange a refresh token for a new pair; the old refresh token and
    /// the shop's older access tokens stop working. `None` if unknown.
    pub fn refresh(&self, refresh_token: &str) -> Option<Issued> {
        let shop = self.lock().refresh.remove(refresh_token)?;
        self.lock().access.retain(|_, (s, _)| *s != shop);
        Some(self.issue(shop))
    }

    /// The token an app-level grant hands `shop` (Youzan's silent
    /// authorization, WeChat's `stable_token`), with the seconds it has
    /// left: the shop's current one (at first its initial one) while it is
    /// valid with more than `min_left` seconds to go, else a new one;
    /// `renew` asks for a new one anyway, and `end_old` ends the older
    /// ones (a forced refresh) instead of letting them live out their time.
    pub fn grant(&self, shop: usize, renew: bool, end_old: bool, min_left: i64) -> (String, i64) {
        if !renew {
            let st = self.lock();
            let held = st
                .held
                .get(&shop)
                .cloned()
                .unwrap_or_else(|| self.initial(shop).0);
            if let Some(&(s, exp)) = st.access.get(&held) {
                let left = (exp - Utc::now()).num_seconds().min(self.ttl.num_seconds());
                if s == shop && left > min_left {
                    return (held, left);
                }
            }
        }
        let issued = if end_old {
            self.replace(shop)
        } else {
            self.issue(shop)
        };
        self.lock().held.insert(shop, issued.access_token.clone());
        (issued.access_token, issued.expires_in)
    }

    /// Issue a new token for `shop` and end its older ones (a forced
    /// refresh of an account token).
    pub fn replace(&self, shop: usize) -> Issued {
        self.lock().access.retain(|_, (s, _)| *s != shop);
        self.issue(shop)
    }

    /// Make every access token expired (tests: "a week later").
    pub fn expire_all(&self) {
        let past = Utc::now() - Duration::seconds(1);
        for (_, exp) in self.lock().access.values_mut() {
            *exp = past;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_rotates_and_expiry_is_reported() {
        let t = TokenIssuer::new("pdd", 2, 3600);
        let (at, rt) = t.initial(1);
        assert_eq!(t.check(&at), Ok(1));
        assert_eq!(t.check("nope"), Err(TokenProblem::Unknown));
        t.expire_all();
        assert_eq!(t.check(&at), Err(TokenProblem::Expired));
        let new = t.refresh(&rt).unwrap();
        assert_eq!(t.check(&new.access_token), Ok(1));
        assert_eq!(t.check(&at), Err(TokenProblem::Unknown));
        assert!(t.refresh(&rt).is_none(), "a refresh token works once");
        assert!(t.refresh(&new.refresh_token).is_some());
    }

    #[test]
    fn a_grant_hands_out_the_held_token_until_it_is_due() {
        let t = TokenIssuer::new("yz", 2, 3600);
        let (first, left) = t.grant(0, false, false, 300);
        assert_eq!(first, t.initial(0).0, "the initial token while it lives");
        assert_eq!(left, 3600, "capped to the lifetime");
        assert_eq!(t.grant(0, false, false, 300).0, first, "the same again");
        let (renewed, _) = t.grant(0, true, false, 300);
        assert_ne!(renewed, first, "asked to renew: a new one");
        assert_eq!(t.check(&first), Ok(0), "the old one lives out its time");
        assert_eq!(
            t.grant(0, false, false, 300).0,
            renewed,
            "the new one is held"
        );
        assert_ne!(t.grant(0, false, false, 3600).0, renewed, "too little left");
        let (forced, _) = t.grant(1, false, true, 4000);
        assert_eq!(
            t.check(&t.initial(1).0),
            Err(TokenProblem::Unknown),
            "forced: old ended"
        );
        assert_eq!(t.check(&forced), Ok(1));
        t.expire_all();
        assert_ne!(t.grant(1, false, false, 0).0, forced, "expired: a new one");
    }
}
