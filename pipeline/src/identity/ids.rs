//! Stable unified ids: survive, mint, retire.
//!
//! Every previous id has a *home*: the new customer holding most of the
//! evidence its members carry (ties: the customer with the smaller key).
//! A customer keeps, of the ids homed in it, the one whose members carry
//! the most evidence (ties: the older id, then the smaller); the others are
//! retired as merged into it. A customer homing no id mints a new one: a
//! hash of its smallest identifier, salted until it differs from every id
//! ever issued, so one id never names two customers, now or later. An id
//! none of whose members is linked any more is retired as dissolved.

use std::collections::{HashMap, HashSet};

use sha2::{Digest, Sha256};

use super::graph::{other, Names, NONE};
use super::resolve::{Decision, Graph, KeyOrder, Resolved};

/// The previous build's view of the identifiers this build recomputes.
#[derive(Default)]
pub struct OldIds {
    /// Per graph identifier: index into `uids` of its previous unified id.
    pub old_uid: Vec<u32>,
    /// The previous unified ids of the recomputed identifiers.
    pub uids: Names,
    /// Per previous id: the build that minted it.
    pub since: Vec<i64>,
    /// Fingerprints of every id ever issued (current and retired).
    pub issued: HashSet<u64>,
}

impl OldIds {
    /// Record that `uid`, minted in `since`, was held by an identifier this
    /// build recomputes (one that may be gone now).
    pub fn seen(&mut self, uid: &str, since: i64) -> u32 {
        let u = self.uids.intern(uid);
        if u as usize == self.since.len() {
            self.since.push(since);
            self.issued.insert(uid_fingerprint(uid));
        } else {
            self.since[u as usize] = self.since[u as usize].min(since);
        }
        u
    }

    /// Record that graph identifier `node` held `uid`, minted in `since`.
    pub fn set(&mut self, node: u32, uid: &str, since: i64) {
        let u = self.seen(uid, since);
        if self.old_uid.len() <= node as usize {
            self.old_uid.resize(node as usize + 1, NONE);
        }
        self.old_uid[node as usize] = u;
    }

    fn of(&self, node: u32) -> u32 {
        self.old_uid.get(node as usize).copied().unwrap_or(NONE)
    }
}

/// A 64-bit fingerprint of an id (the issued set). Equal ids always agree;
/// a rare collision only salts a new id once more.
pub fn uid_fingerprint(uid: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = foldhash::fast::FixedState::with_seed(0x1d5).build_hasher();
    h.write(uid.as_bytes());
    h.finish()
}

/// What caused a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// An edge of the graph (index).
    Edge(u32),
    /// An identifier (the one excluded or cut, or the new customer's
    /// smallest).
    Node(u32),
    /// Not found in this build's graph (a record that linked them changed).
    Unknown,
}

/// One logged change.
#[derive(Debug, Clone)]
pub struct Change {
    /// `mint`, `merge`, `split` or `retire`.
    pub kind: &'static str,
    /// The id concerned (the survivor of a merge, the new id of a split).
    pub unified_id: String,
    /// The other id (retired in a merge, the one split from, ...).
    pub other_id: Option<String>,
    /// Identifiers of the customer after the change.
    pub members: u64,
    /// What caused it.
    pub cause: Cause,
}

/// A retired id and where it points now.
#[derive(Debug, Clone, PartialEq)]
pub struct Retired {
    /// The retired id.
    pub retired_id: String,
    /// The id it resolves to now (`None`: dissolved).
    pub current_id: Option<String>,
    /// `merged` or `dissolved`.
    pub reason: &'static str,
}

/// The ids of one build.
pub struct Assigned {
    /// Per customer: its unified id (index into `names`).
    pub uid: Vec<u32>,
    /// The ids given out.
    pub names: Names,
    /// Per customer: the build that minted its id.
    pub since: Vec<i64>,
    /// Changes, in a deterministic order.
    pub changes: Vec<Change>,
    /// Newly retired ids.
    pub retired: Vec<Retired>,
    /// Customers that kept a previous id.
    pub carried: usize,
    /// Customers given a new id.
    pub minted: usize,
}

impl Assigned {
    /// The unified id of customer `p`.
    pub fn id(&self, p: u32) -> std::borrow::Cow<'_, str> {
        self.names.name(self.uid[p as usize])
    }
}

/// The id minted for a customer whose smallest identifier is `(ty, value)`,
/// salted with `salt` after a collision.
pub fn mint_id(ty: &str, value: &str, salt: u32) -> String {
    let mut h = Sha256::new();
    h.update(ty.as_bytes());
    h.update([0x1f]);
    h.update(value.as_bytes());
    if salt > 0 {
        h.update([0x1f]);
        h.update(salt.to_string().as_bytes());
    }
    format!("C{}", &hex::encode(h.finalize())[..20])
}

/// Assign ids to the customers of `res`, carrying `old` forward.
pub fn assign(g: &Graph, res: &Resolved, old: &mut OldIds, build: i64) -> Assigned {
    let dict = &g.dict;
    let keys = KeyOrder::new(dict);
    let pieces = res.pieces();
    // The smallest identifier of each customer (names it; breaks ties).
    let piece_min: Vec<u32> = (0..pieces as u32)
        .map(|p| {
            let m = res.members(p);
            let mut best = m[0];
            for &x in &m[1..] {
                if keys.cmp(dict, x, best).is_lt() {
                    best = x;
                }
            }
            best
        })
        .collect();
    let weight = |x: u32| u64::from(res.evidence[x as usize].max(1));
    // Overlap of each customer with each previous id.
    let mut votes: Vec<(u32, u32, u64)> = Vec::new();
    let mut local: Vec<(u32, u64)> = Vec::new();
    for p in 0..pieces as u32 {
        local.clear();
        for &x in res.members(p) {
            let u = old.of(x);
            if u != NONE {
                local.push((u, weight(x)));
            }
        }
        local.sort_unstable_by_key(|&(u, _)| u);
        let mut i = 0;
        while i < local.len() {
            let u = local[i].0;
            let mut w = 0;
            while i < local.len() && local[i].0 == u {
                w += local[i].1;
                i += 1;
            }
            votes.push((u, p, w));
        }
    }
    // Home of each previous id: most evidence, then the smaller customer key.
    let nu = old.uids.len();
    let mut home: Vec<(u32, u64)> = vec![(NONE, 0); nu];
    for &(u, p, w) in &votes {
        let h = &mut home[u as usize];
        if h.0 == NONE
            || w > h.1
            || (w == h.1
                && keys
                    .cmp(dict, piece_min[p as usize], piece_min[h.0 as usize])
                    .is_lt())
        {
            *h = (p, w);
        }
    }
    // Survivor per customer.
    let mut homed: HashMap<u32, Vec<u32>> = HashMap::new();
    for (u, &(p, _)) in home.iter().enumerate() {
        if p != NONE {
            homed.entry(p).or_default().push(u as u32);
        }
    }
    let mut names = Names::default();
    let mut uid: Vec<u32> = vec![NONE; pieces];
    let mut since = vec![build; pieces];
    let mut changes = Vec::new();
    let mut retired = Vec::new();
    let (mut carried, mut minted) = (0, 0);
    let mut minted_now: HashSet<u64> = HashSet::new();
    // Every choice below depends on keys, not on the graph's numbering:
    // full and incremental builds agree.
    let adj = &res.adjacency;
    for p in 0..pieces as u32 {
        let members = res.members(p);
        if let Some(us) = homed.get_mut(&p) {
            us.sort_by(|&a, &b| {
                home[b as usize]
                    .1
                    .cmp(&home[a as usize].1)
                    .then(old.since[a as usize].cmp(&old.since[b as usize]))
                    .then_with(|| old.uids.name(a).cmp(&old.uids.name(b)))
            });
            let keep = us[0];
            let kept = old.uids.name(keep).into_owned();
            uid[p as usize] = names.intern(&kept);
            since[p as usize] = old.since[keep as usize];
            carried += 1;
            for &gone in &us[1..] {
                let cause = members
                    .iter()
                    .filter(|&&x| old.of(x) == gone)
                    .flat_map(|&x| adj.of(x).iter().map(move |&e| (x, e)))
                    .find(|&(x, e)| {
                        let y = other(&g.edges, e, x);
                        res.piece_of[y as usize] == p && old.of(y) != gone
                    })
                    .map_or(Cause::Unknown, |(_, e)| Cause::Edge(e));
                changes.push(Change {
                    kind: "merge",
                    unified_id: kept.clone(),
                    other_id: Some(old.uids.name(gone).to_string()),
                    members: members.len() as u64,
                    cause,
                });
                retired.push(Retired {
                    retired_id: old.uids.name(gone).to_string(),
                    current_id: Some(kept.clone()),
                    reason: "merged",
                });
            }
            continue;
        }
        // A new id: salted until it was never issued.
        let first = piece_min[p as usize];
        let (ty, value) = (dict.type_name(first), dict.value(first));
        let mut salt = 0;
        let id = loop {
            let id = mint_id(ty, &value, salt);
            let f = uid_fingerprint(&id);
            if !old.issued.contains(&f) && minted_now.insert(f) {
                break id;
            }
            salt += 1;
        };
        uid[p as usize] = names.intern(&id);
        minted += 1;
        // Split from the previous id holding most of it, if any.
        let from = votes
            .iter()
            .filter(|v| v.1 == p)
            .max_by(|a, b| {
                a.2.cmp(&b.2)
                    .then_with(|| old.uids.name(b.0).cmp(&old.uids.name(a.0)))
            })
            .map(|v| v.0);
        match from {
            Some(u) => {
                let cause = members
                    .iter()
                    .flat_map(|&x| adj.of(x).iter().map(move |&e| (x, e)))
                    .find(|&(x, e)| {
                        let y = other(&g.edges, e, x);
                        res.piece_of[y as usize] != p && old.of(y) == u
                            || !res.decision[y as usize].links()
                                && res.decision[y as usize] != Decision::Context
                    })
                    .map_or(Cause::Unknown, |(_, e)| Cause::Edge(e));
                changes.push(Change {
                    kind: "split",
                    unified_id: id.clone(),
                    other_id: Some(old.uids.name(u).to_string()),
                    members: members.len() as u64,
                    cause,
                });
            }
            None => changes.push(Change {
                kind: "mint",
                unified_id: id,
                other_id: None,
                members: members.len() as u64,
                // New identifiers: the customer's smallest one names it (its
                // records: `quanyu explain`).
                cause: Cause::Node(first),
            }),
        }
    }
    // Previous ids homed nowhere: none of their identifiers is linked now.
    let mut dissolved: Vec<u32> = (0..nu as u32)
        .filter(|&u| home[u as usize].0 == NONE)
        .collect();
    dissolved.sort_by(|&a, &b| old.uids.name(a).cmp(&old.uids.name(b)));
    // An identifier that held it and is still here (excluded or cut now).
    let mut holder = vec![NONE; nu];
    for x in 0..g.dict.len() as u32 {
        let u = old.of(x);
        if u != NONE && holder[u as usize] == NONE {
            holder[u as usize] = x;
        }
    }
    for u in dissolved {
        let cause = match holder[u as usize] {
            NONE => Cause::Unknown,
            x => Cause::Node(x),
        };
        changes.push(Change {
            kind: "retire",
            unified_id: old.uids.name(u).to_string(),
            other_id: None,
            members: 0,
            cause,
        });
        retired.push(Retired {
            retired_id: old.uids.name(u).to_string(),
            current_id: None,
            reason: "dissolved",
        });
    }
    Assigned {
        uid,
        names,
        since,
        changes,
        retired,
        carried,
        minted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::blocklist::Blocklist;
    use crate::identity::config::IdentityConfig;
    use crate::identity::resolve::resolve;
    use quanyu_schemas::{LakeKey, PiiHasher};

    /// A graph of `edges` between named identifiers (`t:v`).
    fn graph(edges: &[(&str, &str)]) -> Graph {
        let mut g = Graph::new();
        for (a, b) in edges {
            let (at, av) = a.split_once(':').unwrap();
            let (bt, bv) = b.split_once(':').unwrap();
            let x = g.node(at, av, true);
            let y = g.node(bt, bv, true);
            g.edges.push(x, y, "r", 0);
        }
        g
    }

    fn run(g: &Graph, old: &[(&str, &str, i64)]) -> (Assigned, Resolved, OldIds) {
        let h = PiiHasher::new(&LakeKey::from_bytes([1; 32]));
        let cfg = IdentityConfig::default();
        let res = resolve(g, &cfg, &Blocklist::new(&h, &cfg).unwrap());
        let mut ids = OldIds::default();
        for (node, uid, since) in old {
            let (t, v) = node.split_once(':').unwrap();
            match g.dict.get(t, v) {
                Some(x) => ids.set(x, uid, *since),
                None => {
                    ids.seen(uid, *since);
                }
            }
        }
        let a = assign(g, &res, &mut ids, 9);
        (a, res, ids)
    }

    fn uid_of(g: &Graph, res: &Resolved, a: &Assigned, node: &str) -> Option<String> {
        let (t, v) = node.split_once(':').unwrap();
        let p = res.piece_of[g.dict.get(t, v).unwrap() as usize];
        (p != NONE).then(|| a.id(p).into_owned())
    }

    #[test]
    fn a_merge_keeps_the_id_carrying_more_evidence_and_retires_the_other() {
        let g = graph(&[
            ("order:tb:1", "taobao_buyer:b1@s"),
            ("order:tb:2", "taobao_buyer:b1@s"),
            ("taobao_buyer:b1@s", "phone_hash:p1"),
            ("wecom_external_userid:w1", "phone_hash:p1"),
        ]);
        let (a, res, _) = run(
            &g,
            &[
                ("order:tb:1", "CBIG", 1),
                ("order:tb:2", "CBIG", 1),
                ("taobao_buyer:b1@s", "CBIG", 1),
                ("wecom_external_userid:w1", "CSMALL", 1),
            ],
        );
        assert_eq!(
            uid_of(&g, &res, &a, "wecom_external_userid:w1").as_deref(),
            Some("CBIG")
        );
        assert_eq!(
            a.retired,
            vec![Retired {
                retired_id: "CSMALL".into(),
                current_id: Some("CBIG".into()),
                reason: "merged"
            }]
        );
        let merge = a.changes.iter().find(|c| c.kind == "merge").unwrap();
        assert_eq!(merge.other_id.as_deref(), Some("CSMALL"));
        // The cause: the edge joining the retired part to the rest.
        let Cause::Edge(e) = merge.cause else {
            panic!("{merge:?}")
        };
        let ends =
            [g.edges.a[e as usize], g.edges.b[e as usize]].map(|x| g.dict.value(x).into_owned());
        assert!(ends.contains(&"w1".to_string()), "{ends:?}");
    }

    #[test]
    fn ties_go_to_the_older_id() {
        let g = graph(&[("unionid:u1", "phone_hash:p1")]);
        let (a, _, _) = run(
            &g,
            &[("unionid:u1", "CNEW", 5), ("phone_hash:p1", "COLD", 2)],
        );
        assert_eq!(a.id(0), "COLD");
        assert_eq!(a.retired[0].retired_id, "CNEW");
    }

    #[test]
    fn a_split_keeps_the_id_where_most_evidence_stays_and_never_mints_a_taken_id() {
        // Before: one customer {a, b, c, d} whose id was minted from `a`.
        let minted = mint_id("crm_member", "a", 0);
        // Now `a` stands alone; b, c, d still link.
        let g = graph(&[
            ("crm_member:a", "crm_member:a"),
            ("crm_member:b", "phone_hash:p"),
            ("crm_member:c", "phone_hash:p"),
            ("unionid:d", "crm_member:c"),
        ]);
        let old: Vec<(&str, &str, i64)> = [
            "crm_member:a",
            "crm_member:b",
            "crm_member:c",
            "unionid:d",
            "phone_hash:p",
        ]
        .into_iter()
        .map(|n| (n, minted.as_str(), 1))
        .collect();
        let (a, res, _) = run(&g, &old);
        let big = uid_of(&g, &res, &a, "crm_member:b").unwrap();
        let alone = uid_of(&g, &res, &a, "crm_member:a").unwrap();
        assert_eq!(big, minted, "the part holding most of it keeps the id");
        assert_ne!(alone, minted, "a split-off part never gets an id in use");
        assert_eq!(
            alone,
            mint_id("crm_member", "a", 1),
            "salted after the collision"
        );
        let split = a.changes.iter().find(|c| c.kind == "split").unwrap();
        assert_eq!(split.other_id.as_deref(), Some(minted.as_str()));
        assert!(a.retired.is_empty());
    }

    #[test]
    fn an_id_whose_identifiers_are_all_gone_or_excluded_is_dissolved() {
        // `z` was a customer's only identifier; it is now gone.
        let g = graph(&[("unionid:u1", "phone_hash:p1")]);
        let (a, _, _) = run(
            &g,
            &[("unionid:u1", "CKEEP", 1), ("crm_member:z", "CGONE", 1)],
        );
        assert_eq!(a.id(0), "CKEEP");
        assert_eq!(
            a.retired,
            vec![Retired {
                retired_id: "CGONE".into(),
                current_id: None,
                reason: "dissolved"
            }]
        );
        assert!(a
            .changes
            .iter()
            .any(|c| c.kind == "retire" && c.unified_id == "CGONE"));
    }

    #[test]
    fn new_customers_mint_ids_from_their_smallest_identifier() {
        let g = graph(&[("phone_hash:p9", "crm_member:m9")]);
        let (a, _, _) = run(&g, &[]);
        assert_eq!(a.id(0), mint_id("crm_member", "m9", 0));
        assert_eq!(a.minted, 1);
        assert_eq!(a.changes[0].kind, "mint");
    }
}
