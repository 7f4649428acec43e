//! From graph to customers: the blocklist, person-aware limits, connected
//! components (clusters), and the cap that cuts a cluster grown too big at
//! its least trusted shared identifiers.
//!
//! People behind an identifier are counted per *scope*: the distinct buyer
//! ids of one shop, contacts of WeCom, members of a CRM, receivers (keyed
//! hash of name and address) of one marketplace's orders. The estimate is
//! the largest count in any one scope: a loyal buyer's phone seen on 60
//! Pinduoduo orders with one receiver is one person, and the same phone
//! behind one buyer id in each of six shops is still one; a store phone on
//! 45 CRM members is 45.

use std::collections::HashMap;

use super::blocklist::{BlockReason, Blocklist};
use super::config::IdentityConfig;
use super::graph::{other, Adjacency, EdgeList, NodeDict, NodeId, UnionFind, NONE};

/// What became of an identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Linked into a customer.
    Linked,
    /// On the blocklist.
    Blocked(BlockReason),
    /// Stands for more people than its type's limit.
    PeopleLimit,
    /// Cut from a cluster that exceeded the component cap.
    ComponentCap,
    /// Seen only as a neighbour of recomputed identifiers (incremental
    /// builds): its own row is not rewritten.
    Context,
}

impl Decision {
    /// The rule name written to `identity_map` and `identity_audit`.
    pub fn rule(self) -> Option<&'static str> {
        match self {
            Decision::Linked | Decision::Context => None,
            Decision::Blocked(_) => Some("blocklist"),
            Decision::PeopleLimit => Some("people_limit"),
            Decision::ComponentCap => Some("component_cap"),
        }
    }

    /// True for identifiers kept out of stitching by the blocklist or the
    /// people limit (they belong to no cluster).
    pub fn is_guarded(self) -> bool {
        matches!(self, Decision::Blocked(_) | Decision::PeopleLimit)
    }
}

/// The graph to resolve: identifiers, edges, and which identifiers this
/// build recomputes (all of them in a full build).
pub struct Graph {
    /// Identifiers.
    pub dict: NodeDict,
    /// Edges.
    pub edges: EdgeList,
    /// Identifiers recomputed by this build; the others are context.
    pub in_scope: Vec<bool>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Self {
        Graph {
            dict: NodeDict::default(),
            edges: EdgeList::default(),
            in_scope: Vec::new(),
        }
    }

    /// Intern an identifier; `scope` marks it recomputed.
    pub fn node(&mut self, ty: &str, value: &str, scope: bool) -> NodeId {
        let (i, new) = self.dict.intern(ty, value);
        if new {
            self.in_scope.push(scope);
        } else if scope {
            self.in_scope[i as usize] = true;
        }
        i
    }
}

impl Default for Graph {
    fn default() -> Self {
        Self::new()
    }
}

/// The resolution of a graph.
pub struct Resolved {
    /// Per identifier: what became of it.
    pub decision: Vec<Decision>,
    /// Per identifier: estimated distinct people behind it.
    pub people: Vec<u32>,
    /// Per identifier: distinct neighbouring identifiers (blocklisted ones
    /// not counted).
    pub partners: Vec<u32>,
    /// Per identifier: evidence rows (edges) that name it.
    pub evidence: Vec<u32>,
    /// Why an identifier was excluded or cut, in words.
    pub reasons: HashMap<NodeId, String>,
    /// Per identifier: its cluster (before cuts), or [`NONE`].
    pub cluster_of: Vec<u32>,
    /// Per cluster: its smallest member by key (names the cluster).
    pub cluster_min: Vec<NodeId>,
    /// Per identifier: its customer (piece after cuts), or [`NONE`].
    pub piece_of: Vec<u32>,
    /// Per piece: its members, flat (`piece_offsets` delimits).
    pub piece_members: Vec<NodeId>,
    /// Offsets into `piece_members`, one more than pieces.
    pub piece_offsets: Vec<u32>,
    /// Clusters that were cut.
    pub clusters_cut: usize,
    /// Incident edges per identifier.
    pub adjacency: Adjacency,
}

impl Resolved {
    /// Number of customers.
    pub fn pieces(&self) -> usize {
        self.piece_offsets.len() - 1
    }

    /// The members of piece `p`.
    pub fn members(&self, p: u32) -> &[NodeId] {
        &self.piece_members
            [self.piece_offsets[p as usize] as usize..self.piece_offsets[p as usize + 1] as usize]
    }
}

/// Key order of identifiers: type name, then value; cheap on packed values.
pub struct KeyOrder {
    type_rank: Vec<u32>,
}

impl KeyOrder {
    /// The order for `dict`'s types.
    pub fn new(dict: &NodeDict) -> Self {
        let types = dict.types();
        let mut names: Vec<(String, u32)> = (0..types.len() as u32)
            .map(|i| (types.name(i).to_string(), i))
            .collect();
        names.sort();
        let mut type_rank = vec![0; names.len()];
        for (rank, (_, i)) in names.iter().enumerate() {
            type_rank[*i as usize] = rank as u32;
        }
        KeyOrder { type_rank }
    }

    /// Compare two identifiers.
    pub fn cmp(&self, dict: &NodeDict, a: NodeId, b: NodeId) -> std::cmp::Ordering {
        let (ta, tb) = (dict.type_id(a), dict.type_id(b));
        self.type_rank[ta as usize]
            .cmp(&self.type_rank[tb as usize])
            .then_with(|| {
                // Packed hashes compare as their hex text would; so does UTF-8.
                if dict.packed(a) == dict.packed(b) {
                    dict.raw(a).cmp(dict.raw(b))
                } else {
                    dict.value(a).cmp(&dict.value(b))
                }
            })
    }
}

const ORDER_SCOPE_UNKNOWN: u64 = 0x0D0E_0000_0000_0001;

/// Resolve `g` under `cfg`: guardrails, clusters, caps.
pub fn resolve(g: &Graph, cfg: &IdentityConfig, blocklist: &Blocklist) -> Resolved {
    let n = g.dict.len();
    let dict = &g.dict;
    let list = &g.edges;
    let adj = Adjacency::new(n, list);
    let order_t = dict.types().get("order");
    let phone_t = dict.types().get("phone_hash");
    let is_order = |x: NodeId| Some(dict.type_id(x)) == order_t;

    // Blocklist, evidence.
    let mut decision: Vec<Decision> = (0..n as u32)
        .map(|i| {
            let reason = if dict.packed(i) && Some(dict.type_id(i)) == phone_t {
                blocklist.placeholder_packed(dict.raw(i))
            } else {
                blocklist.reason(dict.type_name(i), &dict.value(i))
            };
            match reason {
                Some(r) => Decision::Blocked(r),
                None => Decision::Linked,
            }
        })
        .collect();
    let mut evidence = vec![0u32; n];
    for (&a, &b) in list.a.iter().zip(&list.b) {
        evidence[a as usize] = evidence[a as usize].saturating_add(1);
        if a != b {
            evidence[b as usize] = evidence[b as usize].saturating_add(1);
        }
    }

    // People per scope: (scope, who) pairs, sorted and counted.
    let scopes = Scopes::new(dict);
    let scope_of = |y: NodeId| scopes.of(dict, y);
    let receiver_scope = |order: NodeId| scopes.receiver(dict, order);
    let mut people = vec![0u32; n];
    let mut partners = vec![0u32; n];
    let mut reasons = HashMap::new();
    let mut pairs: Vec<(u64, u64, NodeId)> = Vec::new();
    let mut ys: Vec<NodeId> = Vec::new();
    for x in 0..n as u32 {
        if !g.in_scope[x as usize] {
            continue;
        }
        let edges = adj.of(x);
        if edges.is_empty() {
            people[x as usize] = u32::from(!is_order(x));
            continue;
        }
        pairs.clear();
        ys.clear();
        for &e in edges {
            let y = other(list, e, x);
            if matches!(decision[y as usize], Decision::Blocked(_)) {
                continue;
            }
            ys.push(y);
            if is_order(y) {
                if is_order(x) {
                    continue;
                }
                let s = list.signal[e as usize];
                if s != 0 {
                    pairs.push((receiver_scope(y), s, y));
                } else if Some(dict.type_id(x)) == phone_t {
                    pairs.push((ORDER_SCOPE_UNKNOWN, u64::from(y), y));
                }
            } else {
                pairs.push((scope_of(y), u64::from(y), y));
            }
        }
        ys.sort_unstable();
        ys.dedup();
        partners[x as usize] = ys.len() as u32;
        pairs.sort_unstable_by_key(|&(s, w, _)| (s, w));
        pairs.dedup_by_key(|&mut (s, w, _)| (s, w));
        let (mut best, mut best_at) = (0u32, 0usize);
        let mut i = 0;
        while i < pairs.len() {
            let mut j = i;
            while j < pairs.len() && pairs[j].0 == pairs[i].0 {
                j += 1;
            }
            if (j - i) as u32 > best {
                best = (j - i) as u32;
                best_at = i;
            }
            i = j;
        }
        people[x as usize] = best.max(u32::from(!is_order(x)));
        if decision[x as usize] != Decision::Linked {
            continue;
        }
        let ty = dict.type_name(x);
        if let Some(limit) = cfg.people_limit(ty) {
            if best > limit {
                decision[x as usize] = Decision::PeopleLimit;
                let (scope, _, y) = pairs[best_at];
                let what = if scope == ORDER_SCOPE_UNKNOWN {
                    "orders with neither buyer id nor receiver".to_string()
                } else if is_order(y) {
                    let v = dict.value(y);
                    format!(
                        "receivers of {} orders",
                        v.split_once(':').map_or("", |(c, _)| c)
                    )
                } else {
                    let t = dict.type_name(y);
                    match dict.value(y).rsplit_once('@') {
                        Some((_, shop)) if t.ends_with("_buyer") => {
                            format!("{t} ids of shop {shop}")
                        }
                        _ => format!("{t} ids"),
                    }
                };
                reasons.insert(
                    x,
                    format!("stands for {best} people, more than the {limit} allowed for {ty}: {best} distinct {what}"),
                );
            }
        }
    }
    for (x, d) in decision.iter_mut().enumerate() {
        match (*d, g.in_scope[x]) {
            (Decision::Blocked(r), true) => {
                reasons.insert(x as u32, r.text().to_string());
            }
            (Decision::Linked, false) => *d = Decision::Context,
            _ => {}
        }
    }

    // Clusters: union over edges between linkable, recomputed identifiers.
    let linkable = |x: NodeId| decision[x as usize] == Decision::Linked;
    let mut uf = UnionFind::new(n);
    for (&a, &b) in list.a.iter().zip(&list.b) {
        if a != b && linkable(a) && linkable(b) {
            uf.union(a, b);
        }
    }
    let keys = KeyOrder::new(dict);
    let mut cluster_of = vec![NONE; n];
    let mut cluster_min: Vec<NodeId> = Vec::new();
    let mut root_cluster: HashMap<u32, u32> = HashMap::new();
    for x in 0..n as u32 {
        if !linkable(x) {
            continue;
        }
        let r = uf.find(x);
        let c = *root_cluster.entry(r).or_insert_with(|| {
            cluster_min.push(x);
            (cluster_min.len() - 1) as u32
        });
        cluster_of[x as usize] = c;
        if keys.cmp(dict, x, cluster_min[c as usize]).is_lt() {
            cluster_min[c as usize] = x;
        }
    }
    drop(root_cluster);
    drop(uf);
    let clusters = cluster_min.len();
    let (c_off, c_mem) = group(&cluster_of, clusters);

    // Caps: person-level identifiers, evidence and people per cluster.
    let sizer = Sizer {
        g,
        adj: &adj,
        scopes: &scopes,
        evidence: &evidence,
        order_t,
    };
    let over = |size: Size| {
        size.ids > cfg.max_component_identifiers
            || size.evidence > u64::from(cfg.max_component_evidence)
            || size.people > cfg.max_component_people
    };
    let mut piece_of = cluster_of.clone();
    let mut next_piece = clusters as u32;
    let mut clusters_cut = 0;
    let mut local = vec![NONE; n];
    let mut scratch = Vec::new();
    for c in 0..clusters {
        let members = &c_mem[c_off[c] as usize..c_off[c + 1] as usize];
        if members.len() < 2 {
            continue;
        }
        for (i, &m) in members.iter().enumerate() {
            local[m as usize] = i as u32;
        }
        let size = sizer.size(members, &|_| true, &local, &mut scratch);
        if !over(size) {
            for &m in members {
                local[m as usize] = NONE;
            }
            continue;
        }
        clusters_cut += 1;
        let cut = cut_cluster(
            members,
            &sizer,
            &people,
            cfg,
            &keys,
            &local,
            &over,
            &mut scratch,
        );
        let note = format!(
            "cut from a customer of {} person-level identifiers, {} evidence rows and about {} people (caps {}, {} and {}): its least trusted identifier bridging the most parts goes first",
            size.ids,
            size.evidence,
            size.people,
            cfg.max_component_identifiers,
            cfg.max_component_evidence,
            cfg.max_component_people,
        );
        for &x in &cut {
            decision[x as usize] = Decision::ComponentCap;
            piece_of[x as usize] = NONE;
            reasons.insert(x, note.clone());
        }
        // The pieces left: each a customer of its own.
        let mut luf = UnionFind::new(members.len());
        for &m in members {
            if decision[m as usize] != Decision::Linked {
                continue;
            }
            for &e in adj.of(m) {
                let y = other(list, e, m);
                if local[y as usize] != NONE && decision[y as usize] == Decision::Linked {
                    luf.union(local[m as usize], local[y as usize]);
                }
            }
        }
        let mut root_piece: HashMap<u32, u32> = HashMap::new();
        let mut first = true;
        for (i, &m) in members.iter().enumerate() {
            if decision[m as usize] != Decision::Linked {
                continue;
            }
            let r = luf.find(i as u32);
            let p = *root_piece.entry(r).or_insert_with(|| {
                if first {
                    first = false;
                    c as u32
                } else {
                    next_piece += 1;
                    next_piece - 1
                }
            });
            piece_of[m as usize] = p;
        }
        for &m in members {
            local[m as usize] = NONE;
        }
    }
    // Renumber pieces densely (a cluster cut to nothing leaves a gap).
    let mut dense = vec![NONE; next_piece as usize];
    let mut count = 0u32;
    for p in piece_of.iter_mut() {
        if *p == NONE {
            continue;
        }
        if dense[*p as usize] == NONE {
            dense[*p as usize] = count;
            count += 1;
        }
        *p = dense[*p as usize];
    }
    let (piece_offsets, piece_members) = group(&piece_of, count as usize);
    Resolved {
        decision,
        people,
        partners,
        evidence,
        reasons,
        cluster_of,
        cluster_min,
        piece_of,
        piece_members,
        piece_offsets,
        clusters_cut,
        adjacency: adj,
    }
}

/// Members grouped by label (labels `< groups`, [`NONE`] skipped), flat.
fn group(label: &[u32], groups: usize) -> (Vec<u32>, Vec<NodeId>) {
    let mut off = vec![0u32; groups + 1];
    for &l in label {
        if l != NONE {
            off[l as usize + 1] += 1;
        }
    }
    for i in 0..groups {
        off[i + 1] += off[i];
    }
    let mut fill = off.clone();
    let mut mem = vec![0u32; off[groups] as usize];
    for (x, &l) in label.iter().enumerate() {
        if l != NONE {
            mem[fill[l as usize] as usize] = x as u32;
            fill[l as usize] += 1;
        }
    }
    (off, mem)
}

/// How to tell scopes apart: one buyer id per shop, one contact per corp,
/// one unionid per person, one receiver per name and address on a
/// marketplace's orders.
struct Scopes {
    by_type: Vec<u64>,
}

impl Scopes {
    fn new(dict: &NodeDict) -> Self {
        Scopes {
            by_type: (0..dict.types().len() as u32)
                .map(|t| dict.fingerprint(dict.types().name(t).as_bytes()))
                .collect(),
        }
    }

    /// The scope of a person-level identifier.
    fn of(&self, dict: &NodeDict, y: NodeId) -> u64 {
        let t = dict.type_name(y);
        if t.ends_with("_buyer") {
            let v = dict.value(y);
            if let Some((_, shop)) = v.rsplit_once('@') {
                return dict.fingerprint(format!("{t}@{shop}").as_bytes());
            }
        }
        self.by_type[dict.type_id(y) as usize]
    }

    /// The receiver scope of an order's marketplace.
    fn receiver(&self, dict: &NodeDict, order: NodeId) -> u64 {
        let v = dict.value(order);
        let ch = v.split_once(':').map_or("", |(c, _)| c);
        dict.fingerprint(format!("receiver@{ch}").as_bytes())
    }
}

/// The size of a group of identifiers.
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    /// Person-level identifiers (all but orders).
    ids: u32,
    /// Edges inside, self-loops included.
    evidence: u64,
    /// People: the most distinct person-level identifiers of one scope
    /// (buyer ids of one shop, phones, contacts, receivers of one
    /// marketplace...).
    people: u32,
}

struct Sizer<'a> {
    g: &'a Graph,
    adj: &'a Adjacency,
    scopes: &'a Scopes,
    evidence: &'a [u32],
    order_t: Option<u32>,
}

impl Sizer<'_> {
    /// The size of the members for which `keep(local index)` holds; `local`
    /// maps a member to its local index (others: [`NONE`]).
    fn size(
        &self,
        members: &[NodeId],
        keep: &dyn Fn(u32) -> bool,
        local: &[u32],
        pairs: &mut Vec<(u64, u64)>,
    ) -> Size {
        let (dict, list) = (&self.g.dict, &self.g.edges);
        let mut s = Size::default();
        pairs.clear();
        for (i, &m) in members.iter().enumerate() {
            if !keep(i as u32) {
                continue;
            }
            let is_order = Some(dict.type_id(m)) == self.order_t;
            if is_order {
                for &e in self.adj.of(m) {
                    let sig = list.signal[e as usize];
                    if sig != 0 {
                        pairs.push((self.scopes.receiver(dict, m), sig));
                    }
                }
            } else {
                s.ids += 1;
                pairs.push((self.scopes.of(dict, m), u64::from(m)));
            }
            s.evidence += u64::from(self.evidence[m as usize] - self.adj.degree(m) as u32);
            for &e in self.adj.of(m) {
                let y = other(list, e, m);
                let j = local[y as usize];
                if j != NONE && keep(j) && list.a[e as usize] == m {
                    s.evidence += 1;
                }
            }
        }
        pairs.sort_unstable();
        pairs.dedup();
        let mut i = 0;
        while i < pairs.len() {
            let mut j = i;
            while j < pairs.len() && pairs[j].0 == pairs[i].0 {
                j += 1;
            }
            s.people = s.people.max((j - i) as u32);
            i = j;
        }
        s
    }
}

/// Cut shared identifiers out of an oversize cluster until every piece is
/// within the caps: least trusted type first; within a type, the one whose
/// removal leaves the most separate parts (a parcel station's phone, not a
/// household's), then most people, then key. One at a time (a whole trust
/// rank at once in huge clusters).
#[allow(clippy::too_many_arguments)]
fn cut_cluster(
    members: &[NodeId],
    sizer: &Sizer,
    people: &[u32],
    cfg: &IdentityConfig,
    keys: &KeyOrder,
    local: &[u32],
    over: &dyn Fn(Size) -> bool,
    scratch: &mut Vec<(u64, u64)>,
) -> Vec<NodeId> {
    let g = sizer.g;
    let (dict, list, adj) = (&g.dict, &g.edges, sizer.adj);
    let m = members.len();
    // Distinct neighbours inside the cluster, per member.
    let mut nb: Vec<u32> = Vec::new();
    let inner: Vec<Vec<u32>> = members
        .iter()
        .map(|&x| {
            nb.clear();
            for &e in adj.of(x) {
                let j = local[other(list, e, x) as usize];
                if j != NONE {
                    nb.push(j);
                }
            }
            nb.sort_unstable();
            nb.dedup();
            nb.clone()
        })
        .collect();
    let parts = |cut: &[bool]| -> UnionFind {
        let mut uf = UnionFind::new(m);
        for i in 0..m {
            if cut[i] {
                continue;
            }
            for &j in &inner[i] {
                if !cut[j as usize] {
                    uf.union(i as u32, j);
                }
            }
        }
        uf
    };
    let batch = m > 20_000;
    let mut cand: Vec<u32> = (0..m as u32)
        .filter(|&i| inner[i as usize].len() >= 2)
        .collect();
    // How many parts each candidate alone would leave around it.
    let mut bridging = vec![0u32; m];
    if !batch {
        let mut cut = vec![false; m];
        for &c in &cand {
            cut[c as usize] = true;
            let mut uf = parts(&cut);
            let mut roots: Vec<u32> = inner[c as usize].iter().map(|&j| uf.find(j)).collect();
            roots.sort_unstable();
            roots.dedup();
            bridging[c as usize] = roots.len() as u32;
            cut[c as usize] = false;
        }
    }
    let rank = |i: u32| cfg.priority_rank(dict.type_name(members[i as usize]));
    cand.sort_by(|&i, &j| {
        let (x, y) = (members[i as usize], members[j as usize]);
        rank(j)
            .cmp(&rank(i))
            .then(bridging[j as usize].cmp(&bridging[i as usize]))
            .then(people[y as usize].cmp(&people[x as usize]))
            .then(inner[j as usize].len().cmp(&inner[i as usize].len()))
            .then_with(|| keys.cmp(dict, x, y))
    });
    let mut is_cut = vec![false; m];
    let mut cut = Vec::new();
    let mut next = 0;
    loop {
        // Pieces without the cut identifiers, and which are too big.
        let mut uf = parts(&is_cut);
        let mut by_root: HashMap<u32, Vec<u32>> = HashMap::new();
        for i in 0..m as u32 {
            if !is_cut[i as usize] {
                by_root.entry(uf.find(i)).or_default().push(i);
            }
        }
        let mut oversize: std::collections::HashSet<u32> = std::collections::HashSet::new();
        for (&r, piece) in &by_root {
            let in_piece: std::collections::HashSet<u32> = piece.iter().copied().collect();
            let size = sizer.size(members, &|i| in_piece.contains(&i), local, scratch);
            if over(size) {
                oversize.insert(r);
            }
        }
        if oversize.is_empty() {
            break;
        }
        // The next candidate inside an oversize piece.
        while next < cand.len()
            && (is_cut[cand[next] as usize] || !oversize.contains(&uf.find(cand[next])))
        {
            next += 1;
        }
        if next >= cand.len() {
            break;
        }
        let first = cand[next];
        let r0 = rank(first);
        is_cut[first as usize] = true;
        cut.push(members[first as usize]);
        next += 1;
        if batch {
            while next < cand.len() && rank(cand[next]) == r0 {
                let i = cand[next];
                if !is_cut[i as usize] && oversize.contains(&uf.find(i)) {
                    is_cut[i as usize] = true;
                    cut.push(members[i as usize]);
                }
                next += 1;
            }
        }
    }
    cut
}
