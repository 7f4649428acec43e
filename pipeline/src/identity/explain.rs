//! Why two identifiers share a unified id (the path of edges between them,
//! each with its rule, record and time), and how one customer was built
//! (members, evidence, what was excluded or cut around it, its history).
//! Excluded identifiers are never walked. Engine API: the CLI and any
//! server answer from here.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::{bail, Result};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use quanyu_schemas::PiiHasher;
use serde::Serialize;

use crate::lake::{strings, Lake};

/// An identifier: type and value (phones as their keyed hash).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Ident {
    /// Identifier type (`phone_hash`, `order`, `taobao_buyer`, ...).
    pub id_type: String,
    /// Value as stored in the lake.
    pub id_value: String,
}

impl std::fmt::Display for Ident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.id_type, self.id_value)
    }
}

/// Parse `type:value`. `phone:<number>` is normalized and hashed with the
/// lake key, so a raw phone is never looked up, stored or echoed.
pub fn parse_ident(text: &str, hasher: &PiiHasher) -> Result<Ident> {
    let Some((t, v)) = text.split_once(':') else {
        bail!(
            "an identifier is TYPE:VALUE (e.g. phone:<mobile>, order:taobao:<tid>, unionid:<id>)"
        );
    };
    let (t, v) = (t.trim(), v.trim());
    if t == "phone" {
        let Some(h) = hasher.phone_text(v) else {
            bail!("phone: not a mainland mobile number");
        };
        return Ok(Ident {
            id_type: "phone_hash".into(),
            id_value: h,
        });
    }
    if t.is_empty() || v.is_empty() {
        bail!("an identifier is TYPE:VALUE with both parts non-empty");
    }
    Ok(Ident {
        id_type: t.into(),
        id_value: v.into(),
    })
}

/// One edge of evidence.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Step {
    /// One end.
    pub from: Ident,
    /// The other end.
    pub to: Ident,
    /// The rule that made the edge.
    pub rule: String,
    /// The source table of the record.
    pub source_table: String,
    /// The record's key.
    pub record_key: String,
    /// When the record was observed (UTC, RFC 3339).
    pub observed_at: Option<String>,
}

/// Where an identifier stands.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Standing {
    /// The identifier.
    pub ident: Ident,
    /// Its unified id, if linked.
    pub unified_id: Option<String>,
    /// Why it is not linked (excluded, cut), if so.
    pub excluded_reason: Option<String>,
    /// Distinct people estimated behind it.
    pub people: Option<i32>,
    /// Whether the lake knows it at all.
    pub known: bool,
}

/// Why (or whether) two identifiers share a unified id.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LinkExplanation {
    /// The first identifier.
    pub a: Standing,
    /// The second.
    pub b: Standing,
    /// The shortest path of edges between them within their customer, when
    /// they share one.
    pub path: Option<Vec<Step>>,
}

/// How one customer was built.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CustomerExplanation {
    /// The id asked about.
    pub asked: String,
    /// The current id it resolves to (itself when current; `None` when
    /// dissolved or unknown).
    pub unified_id: Option<String>,
    /// The alias row, when `asked` was retired: (reason, build).
    pub retired: Option<(String, i64)>,
    /// Member identifiers per type.
    pub members_by_type: BTreeMap<String, usize>,
    /// Up to 50 members (smallest keys).
    pub members: Vec<Ident>,
    /// Evidence edges per rule.
    pub evidence_by_rule: BTreeMap<String, usize>,
    /// Identifiers next to members that were kept out or cut, with why.
    pub kept_out: Vec<Standing>,
    /// Ids retired into this one.
    pub merged_from: Vec<String>,
    /// Its history: (build, change, other id).
    pub history: Vec<(i64, String, Option<String>)>,
}

fn q(s: &str) -> String {
    s.replace('\'', "''")
}

async fn session(lake: &Lake) -> Result<SessionContext> {
    let ctx = crate::lake::new_context();
    for t in [
        "identity_map",
        "identity_edges",
        "identity_aliases",
        "identity_changes",
    ] {
        lake.register(&ctx, t).await?;
    }
    if ctx.table_exist("identity_map")? {
        Ok(ctx)
    } else {
        bail!("this lake has no identity yet (run `quanyu run` or `quanyu demo`)")
    }
}

async fn standing(ctx: &SessionContext, ident: &Ident) -> Result<Standing> {
    let sql = format!(
        "SELECT unified_id, excluded_reason, people FROM identity_map WHERE id_type = '{}' AND id_value = '{}'",
        q(&ident.id_type),
        q(&ident.id_value)
    );
    let rows = ctx.sql(&sql).await?.collect().await?;
    let mut s = Standing {
        ident: ident.clone(),
        unified_id: None,
        excluded_reason: None,
        people: None,
        known: false,
    };
    if let Some(b) = rows.iter().find(|b| b.num_rows() > 0) {
        let (u, r) = (strings(b.column(0))?, strings(b.column(1))?);
        let p = arrow::compute::cast(b.column(2), &DataType::Int32)?;
        let p = p.as_primitive::<arrow::datatypes::Int32Type>();
        s.known = true;
        s.unified_id = (!u.is_null(0)).then(|| u.value(0).to_string());
        s.excluded_reason = (!r.is_null(0)).then(|| r.value(0).to_string());
        s.people = (!p.is_null(0)).then(|| p.value(0));
    }
    Ok(s)
}

/// Members of a unified id.
async fn members(ctx: &SessionContext, uid: &str) -> Result<Vec<Ident>> {
    let sql = format!(
        "SELECT id_type, id_value FROM identity_map WHERE unified_id = '{}' ORDER BY id_type, id_value",
        q(uid)
    );
    let mut out = Vec::new();
    for b in ctx.sql(&sql).await?.collect().await? {
        let (t, v) = (strings(b.column(0))?, strings(b.column(1))?);
        for i in 0..b.num_rows() {
            out.push(Ident {
                id_type: t.value(i).into(),
                id_value: v.value(i).into(),
            });
        }
    }
    Ok(out)
}

/// Every edge touching one of `nodes` (either end).
async fn edges_touching(ctx: &SessionContext, nodes: &[Ident]) -> Result<Vec<Step>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("t", DataType::Utf8, true),
        Field::new("v", DataType::Utf8, true),
    ]));
    let t: arrow::array::StringArray = nodes.iter().map(|n| Some(n.id_type.as_str())).collect();
    let v: arrow::array::StringArray = nodes.iter().map(|n| Some(n.id_value.as_str())).collect();
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(t), Arc::new(v)])?;
    let _ = ctx.deregister_table("nodes");
    ctx.register_table(
        "nodes",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;
    let sql = "SELECT a_type, a_value, b_type, b_value, rule, source_table, record_key, CAST(observed_at AS VARCHAR) FROM identity_edges e
               WHERE EXISTS (SELECT 1 FROM nodes n WHERE n.t = e.a_type AND n.v = e.a_value)
                  OR EXISTS (SELECT 1 FROM nodes n WHERE n.t = e.b_type AND n.v = e.b_value)
               ORDER BY source_table, record_key, rule";
    let mut out = Vec::new();
    for b in ctx.sql(sql).await?.collect().await? {
        let c: Vec<arrow::array::StringArray> = (0..8)
            .map(|i| strings(b.column(i)))
            .collect::<Result<_>>()?;
        for r in 0..b.num_rows() {
            let s = |i: usize| c[i].value(r).to_string();
            out.push(Step {
                from: Ident {
                    id_type: s(0),
                    id_value: s(1),
                },
                to: Ident {
                    id_type: s(2),
                    id_value: s(3),
                },
                rule: s(4),
                source_table: s(5),
                record_key: s(6),
                observed_at: (!c[7].is_null(r)).then(|| s(7)),
            });
        }
    }
    Ok(out)
}

/// Why `a` and `b` share a unified id: the shortest path of edges within
/// their customer (never through an excluded identifier), or where each
/// stands when they do not.
pub async fn explain_link(lake: &Lake, a: &Ident, b: &Ident) -> Result<LinkExplanation> {
    let ctx = session(lake).await?;
    let (sa, sb) = (standing(&ctx, a).await?, standing(&ctx, b).await?);
    let path = match (&sa.unified_id, &sb.unified_id) {
        (Some(x), Some(y)) if x == y => {
            let members = members(&ctx, x).await?;
            let edges = edges_touching(&ctx, &members).await?;
            shortest_path(&members, &edges, a, b)
        }
        _ => None,
    };
    Ok(LinkExplanation { a: sa, b: sb, path })
}

/// Breadth-first search over `edges` restricted to `members`.
fn shortest_path(members: &[Ident], edges: &[Step], a: &Ident, b: &Ident) -> Option<Vec<Step>> {
    let index: HashMap<&Ident, usize> = members.iter().enumerate().map(|(i, m)| (m, i)).collect();
    let (&start, &goal) = (index.get(a)?, index.get(b)?);
    let mut adj: Vec<Vec<usize>> = vec![Vec::new(); members.len()];
    for (e, s) in edges.iter().enumerate() {
        if let (Some(&x), Some(&y)) = (index.get(&s.from), index.get(&s.to)) {
            if x != y {
                adj[x].push(e);
                adj[y].push(e);
            }
        }
    }
    let mut came: Vec<Option<usize>> = vec![None; members.len()];
    let mut seen = vec![false; members.len()];
    seen[start] = true;
    let mut queue = VecDeque::from([start]);
    while let Some(x) = queue.pop_front() {
        if x == goal {
            break;
        }
        for &e in &adj[x] {
            let s = &edges[e];
            let y = if index[&s.from] == x {
                index[&s.to]
            } else {
                index[&s.from]
            };
            if !seen[y] {
                seen[y] = true;
                came[y] = Some(e);
                queue.push_back(y);
            }
        }
    }
    if !seen[goal] {
        return None;
    }
    let mut path = Vec::new();
    let mut x = goal;
    while x != start {
        let e = came[x].expect("on the path");
        let mut s = edges[e].clone();
        // Orient each step from a towards b.
        if index[&s.to] != x {
            std::mem::swap(&mut s.from, &mut s.to);
        }
        x = index[&s.from];
        path.push(s);
    }
    path.reverse();
    Some(path)
}

/// How customer `uid` (or the customer a retired `uid` resolves to) was
/// built.
pub async fn explain_customer(lake: &Lake, uid: &str) -> Result<CustomerExplanation> {
    let ctx = session(lake).await?;
    let mut ex = CustomerExplanation {
        asked: uid.to_string(),
        unified_id: None,
        retired: None,
        members_by_type: BTreeMap::new(),
        members: vec![],
        evidence_by_rule: BTreeMap::new(),
        kept_out: vec![],
        merged_from: vec![],
        history: vec![],
    };
    let mut current = Some(uid.to_string());
    if ctx.table_exist("identity_aliases")? {
        let rows = ctx
            .sql(&format!(
                "SELECT current_id, reason, build FROM identity_aliases WHERE retired_id = '{}'",
                q(uid)
            ))
            .await?
            .collect()
            .await?;
        if let Some(b) = rows.iter().find(|b| b.num_rows() > 0) {
            let (c, r) = (strings(b.column(0))?, strings(b.column(1))?);
            let n = b.column(2).as_primitive::<arrow::datatypes::Int64Type>();
            current = (!c.is_null(0)).then(|| c.value(0).to_string());
            ex.retired = Some((r.value(0).to_string(), n.value(0)));
        }
        if let Some(cur) = &current {
            for b in ctx
                .sql(&format!(
                    "SELECT retired_id FROM identity_aliases WHERE current_id = '{}' ORDER BY retired_id",
                    q(cur)
                ))
                .await?
                .collect()
                .await?
            {
                let r = strings(b.column(0))?;
                ex.merged_from.extend((0..r.len()).map(|i| r.value(i).to_string()));
            }
        }
    }
    let Some(cur) = current else {
        return Ok(ex);
    };
    let members = members(&ctx, &cur).await?;
    if members.is_empty() && ex.retired.is_none() {
        bail!("no customer has the unified id {uid}");
    }
    ex.unified_id = Some(cur.clone());
    for m in &members {
        *ex.members_by_type.entry(m.id_type.clone()).or_default() += 1;
    }
    let edges = edges_touching(&ctx, &members).await?;
    let inside: std::collections::HashSet<&Ident> = members.iter().collect();
    let mut outside: Vec<Ident> = Vec::new();
    for e in &edges {
        if inside.contains(&e.from) && inside.contains(&e.to) {
            *ex.evidence_by_rule.entry(e.rule.clone()).or_default() += 1;
        } else {
            for n in [&e.from, &e.to] {
                if !inside.contains(n) {
                    outside.push(n.clone());
                }
            }
        }
    }
    outside.sort();
    outside.dedup();
    for n in outside.iter().take(50) {
        ex.kept_out.push(standing(&ctx, n).await?);
    }
    ex.members = members.into_iter().take(50).collect();
    if ctx.table_exist("identity_changes")? {
        for b in ctx
            .sql(&format!(
                "SELECT build, change, other_id FROM identity_changes WHERE unified_id = '{0}' OR other_id = '{0}' ORDER BY build, change",
                q(&cur)
            ))
            .await?
            .collect()
            .await?
        {
            let n = b.column(0).as_primitive::<arrow::datatypes::Int64Type>();
            let (c, o) = (strings(b.column(1))?, strings(b.column(2))?);
            for i in 0..b.num_rows() {
                ex.history.push((
                    n.value(i),
                    c.value(i).to_string(),
                    (!o.is_null(i)).then(|| o.value(i).to_string()),
                ));
            }
        }
    }
    Ok(ex)
}

fn standing_line(s: &Standing) -> String {
    match (&s.unified_id, &s.excluded_reason, s.known) {
        (_, _, false) => format!("{}: not in the lake", s.ident),
        (Some(u), _, _) => format!("{}: {u}", s.ident),
        (None, Some(r), _) => format!("{}: not linked: {r}", s.ident),
        (None, None, _) => format!("{}: not linked", s.ident),
    }
}

/// A link explanation as text.
pub fn render_link(ex: &LinkExplanation) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", standing_line(&ex.a));
    let _ = writeln!(out, "{}", standing_line(&ex.b));
    match &ex.path {
        Some(path) if path.is_empty() => {
            let _ = writeln!(out, "the same identifier");
        }
        Some(path) => {
            let _ = writeln!(out, "linked in {} step(s):", path.len());
            for (i, s) in path.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "  {}. {} -> {}\n     rule {}, record {}:{}{}",
                    i + 1,
                    s.from,
                    s.to,
                    s.rule,
                    s.source_table,
                    s.record_key,
                    s.observed_at
                        .as_deref()
                        .map(|t| format!(", {t}"))
                        .unwrap_or_default()
                );
            }
        }
        None => {
            let _ = writeln!(out, "not linked: they do not share a unified id");
        }
    }
    out
}

/// A customer explanation as text.
pub fn render_customer(ex: &CustomerExplanation) -> String {
    let mut out = String::new();
    match (&ex.retired, &ex.unified_id) {
        (Some((why, build)), Some(cur)) => {
            let _ = writeln!(
                out,
                "{} was retired in build {build} ({why}); it resolves to {cur}",
                ex.asked
            );
        }
        (Some((why, build)), None) => {
            let _ = writeln!(
                out,
                "{} was retired in build {build} ({why}); it resolves to no customer",
                ex.asked
            );
            return out;
        }
        _ => {}
    }
    let Some(cur) = &ex.unified_id else {
        return out;
    };
    let total: usize = ex.members_by_type.values().sum();
    let _ = writeln!(out, "customer {cur}: {total} identifiers");
    for (t, n) in &ex.members_by_type {
        let _ = writeln!(out, "  {t:<24} {n}");
    }
    let _ = writeln!(out, "evidence (edges inside):");
    for (r, n) in &ex.evidence_by_rule {
        let _ = writeln!(out, "  {r:<24} {n}");
    }
    if !ex.kept_out.is_empty() {
        let _ = writeln!(out, "next to it but not linked:");
        for s in &ex.kept_out {
            let _ = writeln!(out, "  {}", standing_line(s));
        }
    }
    if !ex.merged_from.is_empty() {
        let _ = writeln!(out, "ids merged into it: {}", ex.merged_from.join(", "));
    }
    if !ex.history.is_empty() {
        let _ = writeln!(out, "history:");
        for (b, c, o) in &ex.history {
            let _ = writeln!(
                out,
                "  build {b}: {c}{}",
                o.as_deref().map(|o| format!(" ({o})")).unwrap_or_default()
            );
        }
    }
    let _ = writeln!(out, "members (first {}):", ex.members.len());
    for m in &ex.members {
        let _ = writeln!(out, "  {m}");
    }
    out
}

/// The most connected identifiers: (ident, people, partners, evidence,
/// unified id, rule, reason), most people first.
pub async fn audit_top(lake: &Lake, limit: usize) -> Result<Vec<RecordBatch>> {
    let ctx = session(lake).await?;
    let sql = format!(
        "SELECT id_type, id_value, people, partners, evidence, COALESCE(rule, 'linked') AS decision, unified_id, excluded_reason
         FROM identity_map ORDER BY people DESC, partners DESC, evidence DESC, id_type, id_value LIMIT {limit}"
    );
    Ok(ctx.sql(&sql).await?.collect().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(t: &str, v: &str) -> Ident {
        Ident {
            id_type: t.into(),
            id_value: v.into(),
        }
    }

    fn step(a: &Ident, b: &Ident, rule: &str) -> Step {
        Step {
            from: a.clone(),
            to: b.clone(),
            rule: rule.into(),
            source_table: "orders".into(),
            record_key: format!("{a}-{b}"),
            observed_at: None,
        }
    }

    #[test]
    fn shortest_path_walks_members_only_and_orients_steps() {
        let (o, buyer, phone, contact, store) = (
            id("order", "taobao:1"),
            id("taobao_buyer", "u@s"),
            id("phone_hash", "p"),
            id("wecom_external_userid", "wm1"),
            id("phone_hash", "store"),
        );
        let members = vec![o.clone(), buyer.clone(), phone.clone(), contact.clone()];
        let edges = vec![
            step(&o, &buyer, "order_buyer"),
            step(&buyer, &phone, "buyer_phone"),
            step(&contact, &phone, "contact_phone"),
            // A shortcut through an excluded identifier is never walked.
            step(&o, &store, "order_phone"),
            step(&contact, &store, "contact_phone"),
        ];
        let path = shortest_path(&members, &edges, &o, &contact).unwrap();
        let hops: Vec<(&str, &str)> = path
            .iter()
            .map(|s| (s.from.id_value.as_str(), s.to.id_value.as_str()))
            .collect();
        assert_eq!(hops, vec![("taobao:1", "u@s"), ("u@s", "p"), ("p", "wm1")]);
        assert!(shortest_path(&members, &edges[..2], &o, &contact).is_none());
        assert_eq!(shortest_path(&members, &edges, &o, &o), Some(vec![]));
    }

    #[test]
    fn phones_are_hashed_before_lookup() {
        let h = PiiHasher::new(&quanyu_schemas::LakeKey::from_bytes([3; 32]));
        let i = parse_ident("phone:+86 139-1234-5679", &h).unwrap();
        assert_eq!(i.id_type, "phone_hash");
        assert_eq!(Some(i.id_value), h.phone_text("13912345679"));
        let err = parse_ident("phone:12345", &h).unwrap_err().to_string();
        assert!(!err.contains("12345"), "{err}");
        assert_eq!(
            parse_ident("order:taobao:31", &h).unwrap().id_value,
            "taobao:31"
        );
        assert!(parse_ident("nocolon", &h).is_err());
    }
}
