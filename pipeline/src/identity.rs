//! Identity v1: typed identifiers, edges with evidence, guardrails, native
//! connected components, stable unified ids, and the `customers` profile.
//!
//! DataFusion extracts edges from the canonical tables; a union-find over
//! interned identifiers finds the components; previous ids are carried
//! forward by overlap so a growing customer keeps its id.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use anyhow::Result;
use arrow::array::{AsArray, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use quanyu_schemas::{normalize_phone, PiiHasher};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::lake::{strings, Lake};

/// A `state` prefix that names an order: `tb_3100...` → taobao order `3100...`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateRule {
    /// The prefix of the `state` value.
    pub prefix: String,
    /// The channel whose order id follows the prefix.
    pub channel: String,
}

/// Identity settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// How card / contact-way `state` values name orders.
    pub state_rules: Vec<StateRule>,
    /// Identifiers linked to more distinct partners than this (per type) are
    /// kept out of stitching: a store's shared phone, a test account.
    pub max_partners: BTreeMap<String, usize>,
    /// Extra junk values (phones are normalized and hashed before matching).
    pub blocklist: Vec<String>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            state_rules: vec![
                StateRule {
                    prefix: "tb_".into(),
                    channel: "taobao".into(),
                },
                StateRule {
                    prefix: "jd_".into(),
                    channel: "jd".into(),
                },
                StateRule {
                    prefix: "pdd_".into(),
                    channel: "pdd".into(),
                },
                StateRule {
                    prefix: "dy_".into(),
                    channel: "douyin".into(),
                },
                StateRule {
                    prefix: "ks_".into(),
                    channel: "kuaishou".into(),
                },
                StateRule {
                    prefix: "jst_".into(),
                    channel: "jushuitan".into(),
                },
            ],
            max_partners: [("phone_hash".to_string(), 50), ("unionid".to_string(), 50)]
                .into_iter()
                .collect(),
            blocklist: vec![],
        }
    }
}

/// Junk values never used to stitch: empty, 0, null, undefined, none, and the
/// hashes of placeholder phones (all-same digits, trailing zeros, 13800138000).
pub struct Blocklist {
    values: HashSet<String>,
    phone_hashes: HashSet<String>,
}

impl Blocklist {
    /// The default list plus `extra`, with phones hashed by `hasher`.
    pub fn new(hasher: &PiiHasher, extra: &[String]) -> Self {
        let mut values: HashSet<String> = ["", "0", "null", "undefined", "none", "nil", "n/a", "-"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut phone_hashes = HashSet::new();
        for second in b'3'..=b'9' {
            for d in b'0'..=b'9' {
                let same: String = std::iter::once('1')
                    .chain(std::iter::once(second as char))
                    .chain(std::iter::repeat_n(d as char, 9))
                    .collect();
                phone_hashes.insert(hasher.phone_text(&same).expect("valid form"));
                let third: String = format!("1{}{}", second as char, d as char) + "00000000";
                phone_hashes.insert(hasher.phone_text(&third).expect("valid form"));
            }
            let all_same: String = std::iter::repeat_n(second as char, 10).collect();
            phone_hashes.insert(
                hasher
                    .phone_text(&format!("1{all_same}"))
                    .expect("valid form"),
            );
        }
        phone_hashes.insert(hasher.phone_text("13800138000").expect("valid"));
        for e in extra {
            match normalize_phone(e) {
                Ok(p) => {
                    phone_hashes.insert(hasher.phone(&p));
                }
                Err(_) => {
                    values.insert(e.trim().to_lowercase());
                }
            }
        }
        Blocklist {
            values,
            phone_hashes,
        }
    }

    /// Why `value` of `id_type` is blocked, if it is.
    pub fn reason(&self, id_type: &str, value: &str) -> Option<&'static str> {
        if self.values.contains(&value.trim().to_lowercase()) {
            return Some("blocklisted junk value");
        }
        if id_type == "phone_hash" && self.phone_hashes.contains(value) {
            return Some("placeholder phone number");
        }
        None
    }
}

/// Union-find with path halving and union by size.
pub struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    /// `n` singletons.
    pub fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }

    /// Add a singleton; returns its index.
    pub fn push(&mut self) -> u32 {
        let i = self.parent.len() as u32;
        self.parent.push(i);
        self.size.push(1);
        i
    }

    /// The root of `x`.
    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize];
            x = p;
        }
        x
    }

    /// Join the sets of `a` and `b`.
    pub fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return;
        }
        let (big, small) = if self.size[ra as usize] >= self.size[rb as usize] {
            (ra, rb)
        } else {
            (rb, ra)
        };
        self.parent[small as usize] = big;
        self.size[big as usize] += self.size[small as usize];
    }
}

/// Interned identifiers: `(type, value)` ↔ dense index.
#[derive(Default)]
struct Interner {
    ids: HashMap<(Arc<str>, Box<str>), u32>,
    keys: Vec<(Arc<str>, Box<str>)>,
    types: HashMap<String, Arc<str>>,
}

impl Interner {
    fn intern(&mut self, t: &str, v: &str) -> (u32, bool) {
        let ty = self
            .types
            .entry(t.to_string())
            .or_insert_with(|| Arc::from(t))
            .clone();
        let key = (ty, Box::from(v));
        if let Some(&i) = self.ids.get(&key) {
            return (i, false);
        }
        let i = self.keys.len() as u32;
        self.ids.insert(key.clone(), i);
        self.keys.push(key);
        (i, true)
    }
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Schema of `identity_map`.
pub fn identity_map_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            Field::new("id_type", DataType::Utf8, false),
            Field::new("id_value", DataType::Utf8, false),
            Field::new("unified_id", DataType::Utf8, true),
            Field::new("excluded_reason", DataType::Utf8, true),
        ]))
    })
    .clone()
}

/// Schema of `identity_edges`.
pub fn identity_edges_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            Field::new("a_type", DataType::Utf8, false),
            Field::new("a_value", DataType::Utf8, false),
            Field::new("b_type", DataType::Utf8, false),
            Field::new("b_value", DataType::Utf8, false),
            Field::new("source_table", DataType::Utf8, false),
            Field::new("record_key", DataType::Utf8, false),
            Field::new("observed_at", ts_type(), true),
        ]))
    })
    .clone()
}

/// What one identity build found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IdentitySummary {
    /// Identifiers seen.
    pub identifiers: usize,
    /// Edges seen.
    pub edges: usize,
    /// Identifiers kept out of stitching.
    pub excluded: usize,
    /// Unified customers.
    pub customers: usize,
    /// Customers that kept an id from the previous build.
    pub carried_forward: usize,
}

fn contact_type_sql() -> &'static str {
    "CASE WHEN channel = 'wecom' THEN 'wecom_external_userid' ELSE channel || '_member' END"
}

/// `CASE` arms turning a `state` column into the order node it names.
fn state_order_cases(cfg: &IdentityConfig, column: &str) -> Option<String> {
    if cfg.state_rules.is_empty() {
        return None;
    }
    let arms: Vec<String> = cfg
        .state_rules
        .iter()
        .map(|r| {
            let p = r.prefix.replace('\'', "''");
            format!(
                "WHEN starts_with({column}, '{p}') AND length({column}) > {len} THEN '{ch}:' || substr({column}, {from})",
                len = p.chars().count(),
                ch = r.channel.replace('\'', "''"),
                from = p.chars().count() + 1
            )
        })
        .collect();
    Some(format!("CASE {} END", arms.join(" ")))
}

fn edges_sql(
    cfg: &IdentityConfig,
    has_orders: bool,
    has_contacts: bool,
    has_touchpoints: bool,
) -> (String, String) {
    let mut edges = Vec::new();
    let mut nodes = Vec::new();
    if has_orders {
        let order = "channel || ':' || order_id";
        let key = "channel || ':' || shop_id || ':' || order_id";
        edges.push(format!("SELECT 'order' a_type, {order} a_value, channel || '_buyer' b_type, buyer_id b_value, 'orders' source_table, {key} record_key, updated_at observed_at FROM orders WHERE buyer_id IS NOT NULL"));
        edges.push(format!("SELECT channel || '_buyer', buyer_id, 'phone_hash', phone_hash, 'orders', {key}, updated_at FROM orders WHERE buyer_id IS NOT NULL AND phone_hash IS NOT NULL"));
        edges.push(format!("SELECT 'order', {order}, 'phone_hash', phone_hash, 'orders', {key}, updated_at FROM orders WHERE buyer_id IS NULL AND phone_hash IS NOT NULL"));
        nodes.push(format!("SELECT 'order' t, {order} v FROM orders"));
    }
    if has_contacts {
        let ct = contact_type_sql();
        let key = "channel || ':' || contact_id || ':' || owner_userid";
        edges.push(format!("SELECT {ct}, contact_id, 'unionid', unionid, 'contacts', {key}, updated_at FROM contacts WHERE unionid IS NOT NULL"));
        edges.push(format!("SELECT {ct}, contact_id, 'phone_hash', phone_hash, 'contacts', {key}, updated_at FROM contacts WHERE phone_hash IS NOT NULL"));
        if let Some(cases) = state_order_cases(cfg, "state") {
            edges.push(format!(
                "SELECT * FROM (SELECT {ct} a_type, contact_id a_value, 'order' b_type, {cases} b_value, 'contacts' source_table, {key} record_key, updated_at observed_at FROM contacts WHERE state IS NOT NULL) WHERE b_value IS NOT NULL"
            ));
        }
        nodes.push(format!("SELECT {ct} t, contact_id v FROM contacts"));
    }
    if has_touchpoints {
        // A bridge event links what it knows: the contact it added to the
        // order its card names (or its state names), to the phone it
        // called, to a unionid. Single-identifier events (a call to a phone
        // only) add no node: they are counted through the phone.
        let state_order = state_order_cases(cfg, "state").unwrap_or_else(|| "NULL".into());
        let order = format!(
            "CASE WHEN order_id IS NOT NULL AND order_channel IS NOT NULL THEN order_channel || ':' || order_id ELSE {state_order} END"
        );
        let t = format!(
            "SELECT {order} AS order_node, external_userid, phone_hash, unionid, channel || ':' || event_id AS record_key, occurred_at FROM touchpoints"
        );
        edges.push(format!("SELECT 'wecom_external_userid', external_userid, 'order', order_node, 'touchpoints', record_key, occurred_at FROM ({t}) WHERE external_userid IS NOT NULL AND order_node IS NOT NULL"));
        edges.push(format!("SELECT 'wecom_external_userid', external_userid, 'phone_hash', phone_hash, 'touchpoints', record_key, occurred_at FROM ({t}) WHERE external_userid IS NOT NULL AND phone_hash IS NOT NULL"));
        edges.push(format!("SELECT 'wecom_external_userid', external_userid, 'unionid', unionid, 'touchpoints', record_key, occurred_at FROM ({t}) WHERE external_userid IS NOT NULL AND unionid IS NOT NULL"));
        edges.push(format!("SELECT 'order', order_node, 'phone_hash', phone_hash, 'touchpoints', record_key, occurred_at FROM ({t}) WHERE external_userid IS NULL AND order_node IS NOT NULL AND phone_hash IS NOT NULL"));
    }
    if nodes.is_empty() {
        nodes.push("SELECT CAST(NULL AS VARCHAR) t, CAST(NULL AS VARCHAR) v WHERE false".into());
    }
    (edges.join(" UNION ALL "), nodes.join(" UNION ALL "))
}

fn new_unified_id(members: &[u32], interner: &Interner) -> String {
    let min = members
        .iter()
        .map(|&m| &interner.keys[m as usize])
        .min()
        .expect("a component has members");
    let mut h = Sha256::new();
    h.update(min.0.as_bytes());
    h.update([0x1f]);
    h.update(min.1.as_bytes());
    format!("C{}", &hex_lower(&h.finalize())[..20])
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Build identity from the lake's `orders` and `contacts` and write
/// `identity_edges`, `identity_map` and `customers`.
pub async fn build_identity(
    lake: &Lake,
    hasher: &PiiHasher,
    cfg: &IdentityConfig,
) -> Result<IdentitySummary> {
    let ctx = crate::lake::new_context();
    let has_orders = lake.register(&ctx, "orders").await?;
    let has_contacts = lake.register(&ctx, "contacts").await?;
    let has_touchpoints = lake.register(&ctx, "touchpoints").await?;
    let mut summary = IdentitySummary::default();
    if !has_orders && !has_contacts && !has_touchpoints {
        return Ok(summary);
    }
    let (edges_q, nodes_q) = edges_sql(cfg, has_orders, has_contacts, has_touchpoints);
    let edge_batches = ctx
        .sql(&edges_q)
        .await?
        .collect()
        .await?
        .iter()
        .map(|b| crate::lake::conform(b, &identity_edges_schema()))
        .collect::<Result<Vec<_>>>()?;
    let node_batches = ctx.sql(&nodes_q).await?.collect().await?;

    let blocklist = Blocklist::new(hasher, &cfg.blocklist);
    let mut interner = Interner::default();
    let mut edges: Vec<(u32, u32)> = Vec::new();
    for b in &edge_batches {
        let col = |i: usize| b.column(i).as_string::<i32>();
        let (at, av, bt, bv) = (col(0), col(1), col(2), col(3));
        for r in 0..b.num_rows() {
            let (x, _) = interner.intern(at.value(r), av.value(r));
            let (y, _) = interner.intern(bt.value(r), bv.value(r));
            edges.push((x, y));
        }
    }
    for b in &node_batches {
        let (t, v) = (strings(b.column(0))?, strings(b.column(1))?);
        for r in 0..b.num_rows() {
            interner.intern(t.value(r), v.value(r));
        }
    }
    let n = interner.keys.len();
    summary.identifiers = n;
    summary.edges = edges.len();

    // Guardrails: blocklist, then the partner limit.
    let mut excluded: Vec<Option<String>> = interner
        .keys
        .iter()
        .map(|(t, v)| blocklist.reason(t, v).map(str::to_string))
        .collect();
    let mut partners: Vec<HashSet<u32>> = vec![HashSet::new(); n];
    for &(a, b) in &edges {
        if a != b && excluded[a as usize].is_none() && excluded[b as usize].is_none() {
            partners[a as usize].insert(b);
            partners[b as usize].insert(a);
        }
    }
    for (i, p) in partners.iter().enumerate() {
        let ty: &str = &interner.keys[i].0;
        if let Some(&limit) = cfg.max_partners.get(ty) {
            if p.len() > limit && excluded[i].is_none() {
                excluded[i] = Some(format!(
                    "linked to {} partners (limit {limit} for {ty})",
                    p.len()
                ));
            }
        }
    }
    drop(partners);
    summary.excluded = excluded.iter().filter(|e| e.is_some()).count();

    let mut uf = UnionFind::new(n);
    for &(a, b) in &edges {
        if excluded[a as usize].is_none() && excluded[b as usize].is_none() {
            uf.union(a, b);
        }
    }
    let mut components: HashMap<u32, Vec<u32>> = HashMap::new();
    for i in 0..n as u32 {
        if excluded[i as usize].is_none() {
            let r = uf.find(i);
            components.entry(r).or_default().push(i);
        }
    }

    // Carry previous ids forward by overlap: biggest components choose first;
    // each takes the old id most of its members held (ties: smaller id).
    let previous = previous_ids(lake, &mut interner).await?;
    let mut comps: Vec<Vec<u32>> = components.into_values().collect();
    comps.sort_by(|a, b| {
        b.len()
            .cmp(&a.len())
            .then_with(|| a.iter().min().cmp(&b.iter().min()))
    });
    let mut taken: HashSet<String> = HashSet::new();
    let mut uid_of = vec![String::new(); n];
    for members in &comps {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in members {
            if let Some(old) = previous.get(m) {
                *votes.entry(old.as_str()).or_default() += 1;
            }
        }
        let mut ranked: Vec<(&str, usize)> = votes.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let uid = match ranked.iter().find(|(id, _)| !taken.contains(*id)) {
            Some((id, _)) => {
                summary.carried_forward += 1;
                id.to_string()
            }
            None => new_unified_id(members, &interner),
        };
        taken.insert(uid.clone());
        for &m in members {
            uid_of[m as usize] = uid.clone();
        }
    }
    summary.customers = comps.len();

    // identity_map: every identifier, excluded ones with their reason.
    let mut ty = StringBuilder::new();
    let mut val = StringBuilder::new();
    let mut uid = StringBuilder::new();
    let mut why = StringBuilder::new();
    for (i, (t, v)) in interner.keys.iter().enumerate() {
        ty.append_value(t.as_ref());
        val.append_value(v.as_ref());
        match &excluded[i] {
            Some(r) => {
                uid.append_null();
                why.append_value(r);
            }
            None => {
                uid.append_value(&uid_of[i]);
                why.append_null();
            }
        }
    }
    let map = RecordBatch::try_new(
        identity_map_schema(),
        vec![
            Arc::new(ty.finish()),
            Arc::new(val.finish()),
            Arc::new(uid.finish()),
            Arc::new(why.finish()),
        ],
    )?;
    lake.overwrite("identity_map", &identity_map_schema(), vec![map], None)
        .await?;
    lake.overwrite(
        "identity_edges",
        &identity_edges_schema(),
        edge_batches,
        None,
    )
    .await?;
    crate::customers::build_customers(lake).await?;
    Ok(summary)
}

/// The previous build's ids, by interned identifier.
async fn previous_ids(lake: &Lake, interner: &mut Interner) -> Result<HashMap<u32, String>> {
    let ctx = crate::lake::new_context();
    let mut out = HashMap::new();
    if !lake.register(&ctx, "identity_map").await? {
        return Ok(out);
    }
    let batches = ctx
        .sql("SELECT id_type, id_value, unified_id FROM identity_map WHERE unified_id IS NOT NULL")
        .await?
        .collect()
        .await?;
    for b in batches {
        let (t, v, u) = (
            strings(b.column(0))?,
            strings(b.column(1))?,
            strings(b.column(2))?,
        );
        for r in 0..b.num_rows() {
            let key = (Arc::<str>::from(t.value(r)), Box::<str>::from(v.value(r)));
            if let Some(&i) = interner.ids.get(&key) {
                out.insert(i, u.value(r).to_string());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quanyu_schemas::LakeKey;

    #[test]
    fn union_find_components() {
        let mut uf = UnionFind::new(6);
        uf.union(0, 1);
        uf.union(2, 3);
        uf.union(1, 3);
        assert_eq!(uf.find(0), uf.find(2));
        assert_ne!(uf.find(0), uf.find(4));
        let x = uf.push();
        uf.union(x, 5);
        assert_eq!(uf.find(6), uf.find(5));
    }

    #[test]
    fn blocklist_catches_junk_and_placeholder_phones() {
        let h = PiiHasher::new(&LakeKey::from_bytes([9; 32]));
        let b = Blocklist::new(&h, &["TEST-ACCOUNT".into(), "13912345678".into()]);
        assert!(b.reason("unionid", "null").is_some());
        assert!(b.reason("unionid", " NULL ").is_some());
        assert!(b.reason("unionid", "").is_some());
        assert!(b.reason("taobao_buyer", "test-account").is_some());
        assert!(b
            .reason("phone_hash", &h.phone_text("13333333333").unwrap())
            .is_some());
        assert!(b
            .reason("phone_hash", &h.phone_text("18800000000").unwrap())
            .is_some());
        assert!(b
            .reason("phone_hash", &h.phone_text("13800138000").unwrap())
            .is_some());
        assert!(b
            .reason("phone_hash", &h.phone_text("13912345678").unwrap())
            .is_some());
        assert!(b
            .reason("phone_hash", &h.phone_text("13912345679").unwrap())
            .is_none());
    }
}
