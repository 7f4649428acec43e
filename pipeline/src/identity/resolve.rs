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
    /// A buyer id shipping to more people than the limit (an agent, a
    /// staff account): still linked to its orders, but its links to
    /// receiver phones are not used.
    LinksCut,
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
            Decision::PeopleLimit | Decision::LinksCut => Some("people_limit"),
            Decision::ComponentCap => Some("component_cap"),
        }
    }

    /// True for identifiers that link (possibly with some links cut).
    pub fn links(self) -> bool {
        matches!(self, Decision::Linked | Decision::LinksCut)
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
    /// Seconds spent in union-find and grouping (the components step).
    pub components_secs: f64,
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

/// Resolve `g` under `cfg`: guardrails, clusters, caps.
pub fn resolve(g: &Graph, cfg: &IdentityConfig, blocklist: &Blocklist) -> Resolved {
    let n = g.dict.len();
    let dict = &g.dict;
    let list = &g.edges;
    let adj = Adjacency::new(n, list);
    let order_t = dict.types().get("order");
    let phone_t = dict.types().get("phone_hash");
    let is_order = |x: NodeId| Some(dict.type_id(x)) == order_t;
    let is_phone = |x: NodeId| Some(dict.type_id(x)) == phone_t;

    // Blocklist, evidence.
    let mut decision: Vec<Decision> = (0..n as u32)
        .map(|i| {
            let reason = if dict.packed(i) && is_phone(i) {
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
    let blocked_now: Vec<bool> = decision
        .iter()
        .map(|d| matches!(d, Decision::Blocked(_)))
        .collect();
    let blocked = |y: NodeId| blocked_now[y as usize];
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
            if blocked(y) {
                continue;
            }
            ys.push(y);
            if is_order(y) {
                if is_order(x) {
                    continue;
                }
                // An order counts through its receiver. Without one (a call
                // log naming an order) it says nothing of who: its buyer is
                // counted where it links, and the customer's cap catches a
                // phone joining different buyers' orders.
                let s = list.signal[e as usize];
                if s != 0 {
                    pairs.push((receiver_scope(y), s, y));
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
                let (_, _, y) = pairs[best_at];
                let what = if is_order(y) {
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
                let why = format!("stands for {best} people, more than the {limit} allowed for {ty}: {best} distinct {what}");
                // A buyer account shipping to many people keeps its orders;
                // only its links to their phones go.
                if ty.ends_with("_buyer") {
                    decision[x as usize] = Decision::LinksCut;
                    reasons.insert(
                        x,
                        format!("{why}; its links to receiver phones are not used"),
                    );
                } else {
                    decision[x as usize] = Decision::PeopleLimit;
                    reasons.insert(x, why);
                }
            }
        }
    }
    for (x, d) in decision.iter_mut().enumerate() {
        match (*d, g.in_scope[x]) {
            (Decision::Blocked(r), true) => {
                reasons.insert(x as u32, r.text().to_string());
            }
            (Decision::Linked | Decision::LinksCut, false) => *d = Decision::Context,
            _ => {}
        }
    }

    let gifts = Gifts::new(g, &adj, &decision);

    // Clusters: union over the edges that link recomputed identifiers.
    let components_started = std::time::Instant::now();
    let links = Links {
        decision: &decision,
        list,
        phone_t,
        dict,
        gifts: &gifts,
    };
    let mut uf = UnionFind::new(n);
    for e in 0..list.len() as u32 {
        if links.usable(e) {
            uf.union(list.a[e as usize], list.b[e as usize]);
        }
    }
    let keys = KeyOrder::new(dict);
    let mut cluster_of = vec![NONE; n];
    let mut cluster_min: Vec<NodeId> = Vec::new();
    let mut root_cluster = vec![NONE; n];
    for x in 0..n as u32 {
        if !decision[x as usize].links() {
            continue;
        }
        let r = uf.find(x) as usize;
        if root_cluster[r] == NONE {
            root_cluster[r] = cluster_min.len() as u32;
            cluster_min.push(x);
        }
        let c = root_cluster[r];
        cluster_of[x as usize] = c;
        if keys.cmp(dict, x, cluster_min[c as usize]).is_lt() {
            cluster_min[c as usize] = x;
        }
    }
    drop(root_cluster);
    drop(uf);
    let clusters = cluster_min.len();
    let (c_off, c_mem) = group(&cluster_of, clusters);
    let components_secs = components_started.elapsed().as_secs_f64();

    // Caps: person-level identifiers, evidence and people per cluster.
    let sizer = Sizer {
        g,
        adj: &adj,
        scopes: &scopes,
        evidence: &evidence,
        order_t,
    };
    let mut piece_of = cluster_of.clone();
    let mut next_piece = clusters as u32;
    let mut clusters_cut = 0;
    let mut local = vec![NONE; n];
    let mut scratch = Vec::new();
    let mut cuts: Vec<(u32, Vec<NodeId>, Size)> = Vec::new();
    for c in 0..clusters {
        let members = &c_mem[c_off[c] as usize..c_off[c + 1] as usize];
        if members.len() < 2 {
            continue;
        }
        for (i, &m) in members.iter().enumerate() {
            local[m as usize] = i as u32;
        }
        let all: Vec<u32> = (0..members.len() as u32).collect();
        let size = sizer.size(members, &all, &|_| true, &local, &mut scratch);
        if over(cfg, size) {
            let cut = cut_cluster(
                members,
                &sizer,
                &links,
                &people,
                cfg,
                &keys,
                &local,
                &mut scratch,
            );
            cuts.push((c as u32, cut, size));
        }
        for &m in members {
            local[m as usize] = NONE;
        }
    }
    for (c, cut, size) in cuts {
        clusters_cut += 1;
        let members = &c_mem[c_off[c as usize] as usize..c_off[c as usize + 1] as usize];
        let note = format!(
            "cut from a customer of {} person-level identifiers, {} evidence rows and about {} people (caps {}, {} and {}): the least trusted identifiers that separate the most people for the least evidence go first",
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
        let links = Links {
            decision: &decision,
            list,
            phone_t,
            dict,
            gifts: &gifts,
        };
        for (i, &m) in members.iter().enumerate() {
            local[m as usize] = i as u32;
        }
        let mut luf = UnionFind::new(members.len());
        for &m in members {
            for &e in adj.of(m) {
                let y = other(list, e, m);
                if local[y as usize] != NONE && links.usable(e) {
                    luf.union(local[m as usize], local[y as usize]);
                }
            }
        }
        let mut root_piece: HashMap<u32, u32> = HashMap::new();
        let mut first = true;
        for (i, &m) in members.iter().enumerate() {
            if !decision[m as usize].links() {
                continue;
            }
            let r = luf.find(i as u32);
            let p = *root_piece.entry(r).or_insert_with(|| {
                if first {
                    first = false;
                    c
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
        components_secs,
    }
}

/// Which edges link: both ends linkable, not a self-loop, and not a
/// receiver-phone link of a buyer id whose phone links are cut.
pub struct Links<'a> {
    decision: &'a [Decision],
    list: &'a EdgeList,
    phone_t: Option<u32>,
    dict: &'a NodeDict,
    gifts: &'a Gifts,
}

impl Links<'_> {
    /// Whether edge `e` links its ends.
    pub fn usable(&self, e: u32) -> bool {
        let (a, b) = (self.list.a[e as usize], self.list.b[e as usize]);
        let (da, db) = (self.decision[a as usize], self.decision[b as usize]);
        if a == b || !da.links() || !db.links() {
            return false;
        }
        let phone = |x: NodeId| Some(self.dict.type_id(x)) == self.phone_t;
        if da == Decision::LinksCut && phone(b) || db == Decision::LinksCut && phone(a) {
            return false;
        }
        !self.gifts.is_gift_link(self.list, e)
    }
}

/// Gifts, told by the receiver: a buyer id ships mostly to its owner (its
/// dominant receiver: the most frequent receiver hash of its orders, on two
/// orders at least and more than any other). An order shipped to another
/// receiver is a gift: its phone does not link the buyer, and a contact who
/// scanned its card is the receiver, not the buyer. Without receiver hashes
/// (platforms that show none) nothing is told apart.
pub struct Gifts {
    /// Per buyer id: its dominant receiver (fingerprint).
    dominant: HashMap<NodeId, u64>,
    /// Orders shipped to someone other than their buyer's dominant receiver.
    gift_orders: std::collections::HashSet<NodeId>,
    rule_buyer_phone: Option<u8>,
    rule_order_buyer: Option<u8>,
    rule_card: [Option<u8>; 2],
}

impl Gifts {
    fn new(g: &Graph, adj: &Adjacency, decision: &[Decision]) -> Self {
        let (dict, list) = (&g.dict, &g.edges);
        let rule = |name: &str| list.rules.get(name).map(|r| r as u8);
        let mut gifts = Gifts {
            dominant: HashMap::new(),
            gift_orders: Default::default(),
            rule_buyer_phone: rule("buyer_phone"),
            rule_order_buyer: rule("order_buyer"),
            rule_card: [rule("contact_state_order"), rule("touch_contact_order")],
        };
        if gifts.rule_order_buyer.is_none() {
            return gifts;
        }
        let mut counts: Vec<(u64, u32)> = Vec::new();
        for b in 0..dict.len() as u32 {
            if !g.in_scope[b as usize] || !dict.type_name(b).ends_with("_buyer") {
                continue;
            }
            // A buyer id shipping to many people (an agent): every order is
            // for someone else, and so is every card in its parcels.
            if decision[b as usize] == Decision::LinksCut {
                for &e in adj.of(b) {
                    if Some(list.rule[e as usize]) == gifts.rule_order_buyer {
                        gifts.gift_orders.insert(other(list, e, b));
                    }
                }
                continue;
            }
            if decision[b as usize] != Decision::Linked {
                continue;
            }
            counts.clear();
            for &e in adj.of(b) {
                let s = list.signal[e as usize];
                if s != 0 && Some(list.rule[e as usize]) == gifts.rule_order_buyer {
                    match counts.iter_mut().find(|(x, _)| *x == s) {
                        Some(c) => c.1 += 1,
                        None => counts.push((s, 1)),
                    }
                }
            }
            counts.sort_unstable_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
            let dominant = match counts.as_slice() {
                [(s, n)] if *n >= 2 => *s,
                [(s, n), (_, m), ..] if *n >= 2 && n > m => *s,
                _ => continue,
            };
            gifts.dominant.insert(b, dominant);
            for &e in adj.of(b) {
                let s = list.signal[e as usize];
                if s != 0 && s != dominant && Some(list.rule[e as usize]) == gifts.rule_order_buyer
                {
                    gifts.gift_orders.insert(other(list, e, b));
                }
            }
        }
        gifts
    }

    /// Whether edge `e` is a gift's link (not to be used).
    fn is_gift_link(&self, list: &EdgeList, e: u32) -> bool {
        if self.dominant.is_empty() && self.gift_orders.is_empty() {
            return false;
        }
        let r = Some(list.rule[e as usize]);
        let (a, b) = (list.a[e as usize], list.b[e as usize]);
        if r == self.rule_buyer_phone {
            let s = list.signal[e as usize];
            return s != 0
                && [a, b]
                    .iter()
                    .any(|x| self.dominant.get(x).is_some_and(|&d| d != s));
        }
        if self.rule_card.contains(&r) {
            return self.gift_orders.contains(&a) || self.gift_orders.contains(&b);
        }
        false
    }
}

fn over(cfg: &IdentityConfig, size: Size) -> bool {
    size.ids > cfg.max_component_identifiers
        || size.evidence > u64::from(cfg.max_component_evidence)
        || size.people > cfg.max_component_people
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
    /// The size of the members at local indices `part` (`inside` tells the
    /// same for any local index); `local` maps a member to its local index
    /// (others: [`NONE`]).
    fn size(
        &self,
        members: &[NodeId],
        part: &[u32],
        inside: &dyn Fn(u32) -> bool,
        local: &[u32],
        pairs: &mut Vec<(u64, u64)>,
    ) -> Size {
        let (dict, list) = (&self.g.dict, &self.g.edges);
        let mut s = Size::default();
        pairs.clear();
        for &i in part {
            let m = members[i as usize];
            let is_order = Some(dict.type_id(m)) == self.order_t;
            if is_order {
                // An order with a buyer id is that buyer's (counted through
                // it: an agent's or a gift-giver's receivers are not its
                // people); without one (Pinduoduo), its receiver stands for
                // the person.
                let has_buyer = self
                    .adj
                    .of(m)
                    .iter()
                    .any(|&e| dict.type_name(other(list, e, m)).ends_with("_buyer"));
                if !has_buyer {
                    for &e in self.adj.of(m) {
                        let sig = list.signal[e as usize];
                        if sig != 0 {
                            pairs.push((self.scopes.receiver(dict, m), sig));
                        }
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
                if j != NONE && inside(j) && list.a[e as usize] == m {
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
/// within the caps. In each oversize piece, the least trusted type with a
/// useful candidate goes first; among its identifiers, the one whose
/// removal lowers the piece's excess the most per evidence row split off
/// the main part (a gift's receiver phone before the buyer's own phone, a
/// parcel station's phone before a household's). Huge clusters cut a whole
/// trust rank at a time.
#[allow(clippy::too_many_arguments)]
fn cut_cluster(
    members: &[NodeId],
    sizer: &Sizer,
    links: &Links,
    people: &[u32],
    cfg: &IdentityConfig,
    keys: &KeyOrder,
    local: &[u32],
    scratch: &mut Vec<(u64, u64)>,
) -> Vec<NodeId> {
    let g = sizer.g;
    let (dict, list, adj) = (&g.dict, &g.edges, sizer.adj);
    let m = members.len();
    // Neighbours inside the cluster through linking edges, per member.
    let mut nb: Vec<u32> = Vec::new();
    let inner: Vec<Vec<u32>> = members
        .iter()
        .map(|&x| {
            nb.clear();
            for &e in adj.of(x) {
                let j = local[other(list, e, x) as usize];
                if j != NONE && links.usable(e) {
                    nb.push(j);
                }
            }
            nb.sort_unstable();
            nb.dedup();
            nb.clone()
        })
        .collect();
    // Pieces of the members in `part` without the `cut` ones.
    let pieces = |part: &[u32], cut: &[bool]| -> Vec<Vec<u32>> {
        let mut uf = UnionFind::new(m);
        for &i in part {
            if cut[i as usize] {
                continue;
            }
            for &j in &inner[i as usize] {
                if !cut[j as usize] {
                    uf.union(i, j);
                }
            }
        }
        let mut by_root: HashMap<u32, Vec<u32>> = HashMap::new();
        for &i in part {
            if !cut[i as usize] {
                by_root.entry(uf.find(i)).or_default().push(i);
            }
        }
        let mut out: Vec<Vec<u32>> = by_root.into_values().collect();
        out.sort_by_key(|p| p[0]);
        out
    };
    let rank = |i: u32| cfg.priority_rank(dict.type_name(members[i as usize]));
    let mut cand: Vec<u32> = (0..m as u32)
        .filter(|&i| inner[i as usize].len() >= 2)
        .collect();
    cand.sort_by(|&i, &j| {
        let (x, y) = (members[i as usize], members[j as usize]);
        rank(j)
            .cmp(&rank(i))
            .then(inner[j as usize].len().cmp(&inner[i as usize].len()))
            .then(people[y as usize].cmp(&people[x as usize]))
            .then_with(|| keys.cmp(dict, x, y))
    });
    let mut is_cut = vec![false; m];
    let mut cut = Vec::new();
    let all: Vec<u32> = (0..m as u32).collect();
    let mut label = vec![NONE; m];
    let batch = m > 20_000;
    loop {
        let mut progressed = false;
        for part in pieces(&all, &is_cut) {
            let mut in_part = vec![false; m];
            part.iter().for_each(|&i| in_part[i as usize] = true);
            let size = sizer.size(members, &part, &|i| in_part[i as usize], local, scratch);
            if !over(cfg, size) {
                continue;
            }
            // The measure the piece exceeds: people, identifiers or evidence.
            let measure = |s: Size| -> u64 {
                if size.people > cfg.max_component_people {
                    u64::from(s.people)
                } else if size.ids > cfg.max_component_identifiers {
                    u64::from(s.ids)
                } else {
                    s.evidence
                }
            };
            let here: Vec<u32> = cand
                .iter()
                .copied()
                .filter(|&i| in_part[i as usize] && !is_cut[i as usize])
                .collect();
            let Some(&fallback) = here.first() else {
                continue;
            };
            let mut chosen = None;
            if batch {
                let r0 = rank(fallback);
                for &i in here.iter().take_while(|&&i| rank(i) == r0) {
                    is_cut[i as usize] = true;
                    cut.push(members[i as usize]);
                }
                progressed = true;
                continue;
            }
            let mut start = 0;
            while start < here.len() && chosen.is_none() {
                let r = rank(here[start]);
                let end = start + here[start..].iter().take_while(|&&i| rank(i) == r).count();
                // Score the first 64 of this rank: (excess removed) per
                // (evidence split off the largest remaining part).
                let mut best: Option<(f64, u32)> = None;
                for &c in here[start..end].iter().take(64) {
                    is_cut[c as usize] = true;
                    let subs = pieces(&part, &is_cut);
                    is_cut[c as usize] = false;
                    let mut worst = 0;
                    let mut largest = 0;
                    let mut total = 0;
                    for (k, sub) in subs.iter().enumerate() {
                        sub.iter().for_each(|&i| label[i as usize] = k as u32);
                        let s = sizer.size(
                            members,
                            sub,
                            &|i| label[i as usize] == k as u32,
                            local,
                            scratch,
                        );
                        worst = worst.max(measure(s));
                        largest = largest.max(s.evidence);
                        total += s.evidence;
                    }
                    subs.iter()
                        .flatten()
                        .for_each(|&i| label[i as usize] = NONE);
                    let reduction = measure(size).saturating_sub(worst);
                    if reduction == 0 {
                        continue;
                    }
                    let score = reduction as f64 / (1 + total - largest) as f64;
                    if best.is_none_or(|(b, _)| score > b) {
                        best = Some((score, c));
                    }
                }
                chosen = best.map(|(_, c)| c);
                start = end;
            }
            let c = chosen.unwrap_or(fallback);
            is_cut[c as usize] = true;
            cut.push(members[c as usize]);
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use quanyu_schemas::{LakeKey, PiiHasher};

    /// A graph of (a, b, rule, receiver) edges between `type:value` names.
    fn graph(edges: &[(String, String, &str, u64)]) -> Graph {
        let mut g = Graph::new();
        for (a, b, rule, signal) in edges {
            let (at, av) = a.split_once(':').unwrap();
            let (bt, bv) = b.split_once(':').unwrap();
            let x = g.node(at, av, true);
            let y = g.node(bt, bv, true);
            g.edges.push(x, y, rule, *signal);
        }
        g
    }

    fn e(a: &str, b: &str, rule: &'static str, signal: u64) -> (String, String, &'static str, u64) {
        (a.to_string(), b.to_string(), rule, signal)
    }

    /// Order `o` of buyer `b` whose phone is `p`: the order–buyer and
    /// buyer–phone edges.
    fn bought(
        edges: &mut Vec<(String, String, &'static str, u64)>,
        o: &str,
        b: &str,
        p: &str,
        signal: u64,
    ) {
        edges.push(e(o, b, "order_buyer", signal));
        edges.push(e(b, p, "buyer_phone", signal));
    }

    fn run(g: &Graph) -> Resolved {
        let h = PiiHasher::new(&LakeKey::from_bytes([2; 32]));
        let cfg = IdentityConfig::default();
        resolve(g, &cfg, &Blocklist::new(&h, &cfg).unwrap())
    }

    fn id(g: &Graph, name: &str) -> NodeId {
        let (t, v) = name.split_once(':').unwrap();
        g.dict.get(t, v).unwrap()
    }

    fn decision(g: &Graph, r: &Resolved, name: &str) -> Decision {
        r.decision[id(g, name) as usize]
    }

    fn together(g: &Graph, r: &Resolved, a: &str, b: &str) -> bool {
        let (x, y) = (r.piece_of[id(g, a) as usize], r.piece_of[id(g, b) as usize]);
        x != NONE && x == y
    }

    #[test]
    fn a_loyal_pinduoduo_buyers_phone_is_one_person() {
        let edges: Vec<_> = (0..60)
            .map(|i| {
                e(
                    &format!("order:pdd:240601-{i:015}"),
                    "phone_hash:p",
                    "order_phone",
                    7,
                )
            })
            .collect();
        let g = graph(&edges);
        let r = run(&g);
        assert_eq!(r.people[id(&g, "phone_hash:p") as usize], 1);
        assert_eq!(decision(&g, &r, "phone_hash:p"), Decision::Linked);
        assert!(together(
            &g,
            &r,
            "order:pdd:240601-000000000000000",
            "order:pdd:240601-000000000000059"
        ));
        assert_eq!(r.pieces(), 1);
    }

    #[test]
    fn a_store_phone_on_many_members_is_kept_out() {
        let mut edges: Vec<_> = (0..45)
            .map(|i| {
                e(
                    &format!("crm_member:m{i}"),
                    "phone_hash:store",
                    "contact_phone",
                    0,
                )
            })
            .collect();
        edges.push(e("crm_member:m0", "unionid:u0", "contact_unionid", 0));
        let g = graph(&edges);
        let r = run(&g);
        assert_eq!(decision(&g, &r, "phone_hash:store"), Decision::PeopleLimit);
        assert_eq!(r.people[id(&g, "phone_hash:store") as usize], 45);
        assert!(r.reasons[&id(&g, "phone_hash:store")].contains("45 distinct crm_member"));
        assert!(!together(&g, &r, "crm_member:m0", "crm_member:m1"));
        assert!(
            together(&g, &r, "crm_member:m0", "unionid:u0"),
            "its other links stay"
        );
    }

    #[test]
    fn orders_seen_without_a_receiver_count_as_their_buyer() {
        // A buyer's phone, and AI-call records naming ten of its orders and
        // the phone: one person, not eleven.
        let mut edges = Vec::new();
        for i in 0..10 {
            let o = format!("order:taobao:31000000{i:08}");
            bought(&mut edges, &o, "taobao_buyer:b@s", "phone_hash:p", 0);
            edges.push(e(&o, "phone_hash:p", "touch_order_phone", 0));
        }
        let g = graph(&edges);
        let r = run(&g);
        assert_eq!(r.people[id(&g, "phone_hash:p") as usize], 1);
        assert_eq!(r.pieces(), 1);
    }

    #[test]
    fn a_buyer_shipping_to_many_people_keeps_its_orders() {
        let mut edges = Vec::new();
        for i in 0..25u64 {
            let o = format!("order:taobao:31000000{i:08}");
            let p = format!("phone_hash:p{i}");
            bought(&mut edges, &o, "taobao_buyer:agent@s", &p, 100 + i);
            edges.push(e(
                &format!("wecom_external_userid:w{i}"),
                &p,
                "contact_phone",
                0,
            ));
        }
        let g = graph(&edges);
        let r = run(&g);
        assert_eq!(decision(&g, &r, "taobao_buyer:agent@s"), Decision::LinksCut);
        // Recipients who scanned the cards in the agent's parcels stay
        // themselves.
        let mut edges2 = edges.clone();
        for i in 0..10u64 {
            edges2.push(e(
                &format!("wecom_external_userid:w{i}"),
                &format!("order:taobao:31000000{i:08}"),
                "contact_state_order",
                0,
            ));
        }
        let g2 = graph(&edges2);
        let r2 = run(&g2);
        assert!(together(
            &g2,
            &r2,
            "order:taobao:3100000000000000",
            "order:taobao:3100000000000024"
        ));
        assert!(!together(
            &g2,
            &r2,
            "order:taobao:3100000000000003",
            "wecom_external_userid:w3"
        ));
        assert_eq!(r2.clusters_cut, 0, "nothing to cut");
        assert!(together(
            &g,
            &r,
            "order:taobao:3100000000000000",
            "order:taobao:3100000000000024"
        ));
        assert!(!together(
            &g,
            &r,
            "order:taobao:3100000000000000",
            "wecom_external_userid:w0"
        ));
        assert!(together(
            &g,
            &r,
            "phone_hash:p3",
            "wecom_external_userid:w3"
        ));
    }

    #[test]
    fn gifts_are_told_by_the_receiver() {
        let (g_self, f_self) = (11, 22);
        let mut edges = Vec::new();
        // G: three orders to itself, one gift to F's phone in F's name.
        for i in 0..3 {
            let o = format!("order:jushuitan:g{i}");
            edges.push(e(&o, "jushuitan_buyer:g@s", "order_buyer", g_self));
            edges.push(e(
                "jushuitan_buyer:g@s",
                "phone_hash:pg",
                "buyer_phone",
                g_self,
            ));
        }
        edges.push(e(
            "order:jushuitan:gift",
            "jushuitan_buyer:g@s",
            "order_buyer",
            f_self,
        ));
        edges.push(e(
            "jushuitan_buyer:g@s",
            "phone_hash:pf",
            "buyer_phone",
            f_self,
        ));
        // F: its own order, and the card in the gift parcel it scanned.
        edges.push(e(
            "order:jushuitan:f0",
            "jushuitan_buyer:f@s",
            "order_buyer",
            f_self,
        ));
        edges.push(e(
            "jushuitan_buyer:f@s",
            "phone_hash:pf",
            "buyer_phone",
            f_self,
        ));
        edges.push(e(
            "wecom_external_userid:wf",
            "order:jushuitan:gift",
            "contact_state_order",
            0,
        ));
        edges.push(e(
            "wecom_external_userid:wf",
            "phone_hash:pf",
            "contact_phone",
            0,
        ));
        let g = graph(&edges);
        let r = run(&g);
        assert!(
            together(&g, &r, "order:jushuitan:gift", "jushuitan_buyer:g@s"),
            "the gift is G's order"
        );
        assert!(!together(
            &g,
            &r,
            "jushuitan_buyer:g@s",
            "jushuitan_buyer:f@s"
        ));
        assert!(together(
            &g,
            &r,
            "wecom_external_userid:wf",
            "order:jushuitan:f0"
        ));
        assert!(!together(
            &g,
            &r,
            "wecom_external_userid:wf",
            "order:jushuitan:gift"
        ));
    }

    #[test]
    fn the_cap_cuts_a_gift_receivers_phone_before_the_buyers_own() {
        // A heavy buyer (no receiver names: gifts cannot be told) sent one
        // gift each to five friends; each friend has their own orders.
        let mut edges = Vec::new();
        for i in 0..40 {
            let o = format!("order:taobao:h{i}");
            bought(&mut edges, &o, "taobao_buyer:h@s", "phone_hash:ph", 0);
            edges.push(e(
                &format!("order:jd:h{i}"),
                "jd_buyer:h@j",
                "order_buyer",
                0,
            ));
            edges.push(e("jd_buyer:h@j", "phone_hash:ph", "buyer_phone", 0));
        }
        for f in 0..5 {
            let phone = format!("phone_hash:pf{f}");
            edges.push(e("taobao_buyer:h@s", &phone, "buyer_phone", 0));
            for k in 0..3 {
                let o = format!("order:taobao:f{f}k{k}");
                let b = format!("taobao_buyer:f{f}@s");
                bought(&mut edges, &o, &b, &phone, 0);
            }
        }
        let g = graph(&edges);
        let r = run(&g);
        assert!(r.clusters_cut >= 1);
        assert_eq!(
            decision(&g, &r, "phone_hash:ph"),
            Decision::Linked,
            "the buyer's own phone stays"
        );
        assert!(
            together(&g, &r, "order:taobao:h0", "order:jd:h39"),
            "the buyer's orders stay together"
        );
        // Friends are cut off until the customer fits (4 people: the buyer
        // and three); each friend keeps their own orders.
        let still: Vec<_> = (0..5)
            .filter(|f| together(&g, &r, "order:taobao:h0", &format!("order:taobao:f{f}k0")))
            .collect();
        assert!(still.len() <= 3, "{still:?}");
        for f in 0..5 {
            assert!(together(
                &g,
                &r,
                &format!("order:taobao:f{f}k0"),
                &format!("order:taobao:f{f}k2")
            ));
        }
    }

    #[test]
    fn a_batch_card_scanned_by_many_names_no_one() {
        let mut edges: Vec<_> = (0..6)
            .map(|i| {
                e(
                    &format!("wecom_external_userid:w{i}"),
                    "order:douyin:batch07",
                    "contact_state_order",
                    0,
                )
            })
            .collect();
        edges.push(e(
            "order:douyin:batch07",
            "douyin_buyer:d@s",
            "order_buyer",
            0,
        ));
        let g = graph(&edges);
        let r = run(&g);
        assert_eq!(
            decision(&g, &r, "order:douyin:batch07"),
            Decision::PeopleLimit
        );
        assert!(!together(
            &g,
            &r,
            "wecom_external_userid:w0",
            "wecom_external_userid:w1"
        ));
    }
}
