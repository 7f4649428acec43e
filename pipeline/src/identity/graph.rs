//! The identity graph in memory: identifiers dictionary-encoded into one
//! byte arena (keyed phone hashes packed to 32 bytes), edges as index pairs,
//! adjacency as flat arrays. No heap string or hash set per node: ten
//! million identifiers fit in about a gigabyte.

use std::borrow::Cow;
use std::hash::{BuildHasher, Hasher};

use hashbrown::HashTable;

/// A node index.
pub type NodeId = u32;

/// "No such node / value".
pub const NONE: u32 = u32::MAX;

/// Types whose values are lower-case 64-hex keyed hashes and are packed to
/// 32 bytes in the arena.
const PACKED: u16 = 0x8000;

fn hash_seed() -> foldhash::fast::FixedState {
    foldhash::fast::FixedState::with_seed(0x5175_616e_7975)
}

/// Interned strings of one small vocabulary (identifier types, edge
/// rules): a linear scan beats hashing for a dozen names.
#[derive(Default, Debug, Clone)]
pub struct Vocab {
    names: Vec<String>,
}

impl Vocab {
    /// The index of `name`, adding it when new.
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(i) = self.get(name) {
            return i;
        }
        self.names.push(name.to_string());
        (self.names.len() - 1) as u32
    }

    /// The index of `name`, if known.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.names.iter().position(|n| n == name).map(|i| i as u32)
    }

    /// The name at `i`.
    pub fn name(&self, i: u32) -> &str {
        &self.names[i as usize]
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// `value` as 32 packed bytes when it is 64 lower-case hex digits.
fn pack_hex(value: &str) -> Option<[u8; 32]> {
    let b = value.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for i in 0..32 {
        out[i] = (hex_val(b[2 * i])? << 4) | hex_val(b[2 * i + 1])?;
    }
    Some(out)
}

/// Identifiers `(type, value)` ↔ dense indices.
pub struct NodeDict {
    types: Vocab,
    /// Type index per node; the high bit marks a packed value.
    node_type: Vec<u16>,
    offsets: Vec<u64>,
    bytes: Vec<u8>,
    table: HashTable<u32>,
    state: foldhash::fast::FixedState,
}

impl Default for NodeDict {
    fn default() -> Self {
        NodeDict {
            types: Vocab::default(),
            node_type: Vec::new(),
            offsets: vec![0],
            bytes: Vec::new(),
            table: HashTable::new(),
            state: hash_seed(),
        }
    }
}

/// The hash of node `j` of an arena, for the table's rehashing.
fn rehash(
    state: &foldhash::fast::FixedState,
    node_type: &[u16],
    offsets: &[u64],
    bytes: &[u8],
    j: u32,
) -> u64 {
    let (s, e) = (offsets[j as usize], offsets[j as usize + 1]);
    key_hash(state, node_type[j as usize], &bytes[s as usize..e as usize])
}

fn key_hash(state: &foldhash::fast::FixedState, ty: u16, bytes: &[u8]) -> u64 {
    let mut h = state.build_hasher();
    h.write_u16(ty);
    h.write(bytes);
    h.finish()
}

impl NodeDict {
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.node_type.len()
    }

    /// Room for `nodes` more identifiers of about `bytes_each` bytes: one
    /// allocation instead of many doublings (each a copy of the arena).
    pub fn reserve(&mut self, nodes: usize, bytes_each: usize) {
        self.node_type.reserve(nodes);
        self.offsets.reserve(nodes);
        self.bytes.reserve(nodes * bytes_each);
        let (node_type, offsets, bytes) = (&self.node_type, &self.offsets, &self.bytes);
        let state = &self.state;
        self.table
            .reserve(nodes, |&j| rehash(state, node_type, offsets, bytes, j));
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.node_type.is_empty()
    }

    /// The type vocabulary.
    pub fn types(&self) -> &Vocab {
        &self.types
    }

    fn encode<'a>(
        &mut self,
        ty: &str,
        value: &'a str,
        packed: &'a mut [u8; 32],
    ) -> (u16, &'a [u8]) {
        let t = self.types.intern(ty) as u16;
        self.encode_known(t, value, packed)
    }

    fn encode_known<'a>(
        &self,
        t: u16,
        value: &'a str,
        packed: &'a mut [u8; 32],
    ) -> (u16, &'a [u8]) {
        match pack_hex(value) {
            Some(p) => {
                *packed = p;
                (t | PACKED, &packed[..])
            }
            None => (t, value.as_bytes()),
        }
    }

    fn bytes_of(&self, i: u32) -> &[u8] {
        let (s, e) = (self.offsets[i as usize], self.offsets[i as usize + 1]);
        &self.bytes[s as usize..e as usize]
    }

    /// The index of `(ty, value)`, adding it when new; `true` when added.
    pub fn intern(&mut self, ty: &str, value: &str) -> (NodeId, bool) {
        let mut buf = [0u8; 32];
        let (t, key) = self.encode(ty, value, &mut buf);
        let h = key_hash(&self.state, t, key);
        let NodeDict {
            node_type,
            offsets,
            bytes,
            table,
            state,
            ..
        } = self;
        let slice = |i: u32| {
            let (s, e) = (offsets[i as usize], offsets[i as usize + 1]);
            &bytes[s as usize..e as usize]
        };
        if let Some(&i) = table.find(h, |&i| node_type[i as usize] == t && slice(i) == key) {
            return (i, false);
        }
        let i = node_type.len() as u32;
        assert!(i < NONE, "more identifiers than a u32 can index");
        node_type.push(t);
        bytes.extend_from_slice(key);
        offsets.push(bytes.len() as u64);
        let (node_type, offsets, bytes) = (&*node_type, &*offsets, &*bytes);
        table.insert_unique(h, i, |&j| rehash(state, node_type, offsets, bytes, j));
        (i, true)
    }

    /// The index of `(ty, value)`, if present.
    pub fn get(&self, ty: &str, value: &str) -> Option<NodeId> {
        let t = self.types.get(ty)? as u16;
        let mut buf = [0u8; 32];
        let (t, key) = self.encode_known(t, value, &mut buf);
        let h = key_hash(&self.state, t, key);
        self.table
            .find(h, |&i| {
                self.node_type[i as usize] == t && self.bytes_of(i) == key
            })
            .copied()
    }

    /// The type index of node `i`.
    pub fn type_id(&self, i: NodeId) -> u32 {
        u32::from(self.node_type[i as usize] & !PACKED)
    }

    /// The type name of node `i`.
    pub fn type_name(&self, i: NodeId) -> &str {
        self.types.name(self.type_id(i))
    }

    /// The value of node `i`.
    pub fn value(&self, i: NodeId) -> Cow<'_, str> {
        let b = self.bytes_of(i);
        if self.node_type[i as usize] & PACKED != 0 {
            Cow::Owned(hex::encode(b))
        } else {
            // Only valid UTF-8 is ever interned.
            Cow::Borrowed(std::str::from_utf8(b).expect("interned from a str"))
        }
    }

    /// True when node `i`'s value is stored packed (a 64-hex hash).
    pub fn packed(&self, i: NodeId) -> bool {
        self.node_type[i as usize] & PACKED != 0
    }

    /// The raw stored bytes of node `i` (packed for hash values).
    pub fn raw(&self, i: NodeId) -> &[u8] {
        self.bytes_of(i)
    }

    /// Compare the keys of two nodes: by type name, then value.
    pub fn cmp_keys(&self, a: NodeId, b: NodeId) -> std::cmp::Ordering {
        self.type_name(a)
            .cmp(self.type_name(b))
            .then_with(|| self.value(a).cmp(&self.value(b)))
    }

    /// A 64-bit fingerprint of a string (signals, scopes).
    pub fn fingerprint(&self, s: &[u8]) -> u64 {
        let mut h = self.state.build_hasher();
        h.write(s);
        h.finish() | 1
    }
}

/// A set of strings held in one arena (unified ids): index ↔ text.
#[derive(Default)]
pub struct Names {
    dict: NodeDict,
}

impl Names {
    /// The index of `s`, adding it when new.
    pub fn intern(&mut self, s: &str) -> u32 {
        self.dict.intern("", s).0
    }

    /// The text at `i`.
    pub fn name(&self, i: u32) -> Cow<'_, str> {
        self.dict.value(i)
    }

    /// Number of strings.
    pub fn len(&self) -> usize {
        self.dict.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.dict.is_empty()
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

/// Edges as index pairs with their rule and receiver signal.
#[derive(Default)]
pub struct EdgeList {
    /// One end.
    pub a: Vec<NodeId>,
    /// The other end (equal to `a` for a lone identifier's self-loop).
    pub b: Vec<NodeId>,
    /// Rule index into the rule vocabulary.
    pub rule: Vec<u8>,
    /// Fingerprint of the receiver hash (0: none).
    pub signal: Vec<u64>,
    /// Rules.
    pub rules: Vocab,
}

impl EdgeList {
    /// Number of edges.
    pub fn len(&self) -> usize {
        self.a.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.a.is_empty()
    }

    /// Room for `n` more edges.
    pub fn reserve(&mut self, n: usize) {
        self.a.reserve(n);
        self.b.reserve(n);
        self.rule.reserve(n);
        self.signal.reserve(n);
    }

    /// Add an edge.
    pub fn push(&mut self, a: NodeId, b: NodeId, rule: &str, signal: u64) {
        let r = self.rules.intern(rule);
        assert!(r < 256, "fewer than 256 edge rules");
        self.a.push(a);
        self.b.push(b);
        self.rule.push(r as u8);
        self.signal.push(signal);
    }
}

/// Incident edges per node, as flat arrays.
pub struct Adjacency {
    offsets: Vec<u32>,
    edges: Vec<u32>,
}

impl Adjacency {
    /// Index the edges of `list` over `n` nodes (self-loops are not listed).
    pub fn new(n: usize, list: &EdgeList) -> Self {
        let mut deg = vec![0u32; n + 1];
        for (&a, &b) in list.a.iter().zip(&list.b) {
            if a != b {
                deg[a as usize] += 1;
                deg[b as usize] += 1;
            }
        }
        let mut offsets = Vec::with_capacity(n + 1);
        let mut acc = 0u32;
        for d in &deg[..n] {
            offsets.push(acc);
            acc = acc.checked_add(*d).expect("fewer than 2^32 edge ends");
        }
        offsets.push(acc);
        drop(deg);
        let mut fill = offsets.clone();
        let mut edges = vec![0u32; acc as usize];
        for (e, (&a, &b)) in list.a.iter().zip(&list.b).enumerate() {
            if a != b {
                edges[fill[a as usize] as usize] = e as u32;
                fill[a as usize] += 1;
                edges[fill[b as usize] as usize] = e as u32;
                fill[b as usize] += 1;
            }
        }
        Adjacency { offsets, edges }
    }

    /// The edges incident to `x`.
    pub fn of(&self, x: NodeId) -> &[u32] {
        &self.edges[self.offsets[x as usize] as usize..self.offsets[x as usize + 1] as usize]
    }

    /// The degree of `x` (edge ends, duplicates included).
    pub fn degree(&self, x: NodeId) -> usize {
        (self.offsets[x as usize + 1] - self.offsets[x as usize]) as usize
    }
}

/// The other end of edge `e` seen from `x`.
pub fn other(list: &EdgeList, e: u32, x: NodeId) -> NodeId {
    let (a, b) = (list.a[e as usize], list.b[e as usize]);
    if a == x {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dict_interns_and_packs_hash_values() {
        let mut d = NodeDict::default();
        let h = "a".repeat(64);
        let (p, new) = d.intern("phone_hash", &h);
        assert!(new);
        assert_eq!(d.intern("phone_hash", &h), (p, false));
        assert_eq!(d.raw(p).len(), 32, "packed");
        assert_eq!(d.value(p), h);
        let (o, _) = d.intern("order", "taobao:123");
        let (u, _) = d.intern("unionid", "taobao:123");
        assert_ne!(o, u, "same value, other type");
        assert_eq!(d.get("order", "taobao:123"), Some(o));
        assert_eq!(d.get("order", "taobao:124"), None);
        assert_eq!(d.get("nope", "taobao:123"), None);
        let upper = "A".repeat(64);
        let (x, _) = d.intern("phone_hash", &upper);
        assert_eq!(d.value(x), upper, "upper-case hex is stored as text");
        for i in 0..100_000 {
            d.intern("order", &format!("pdd:{i}"));
        }
        assert_eq!(
            d.get("order", "pdd:77777").map(|i| d.value(i).into_owned()),
            Some("pdd:77777".into())
        );
        assert_eq!(d.type_name(p), "phone_hash");
    }

    #[test]
    fn union_find_and_adjacency() {
        let mut uf = UnionFind::new(6);
        uf.union(0, 1);
        uf.union(2, 3);
        uf.union(1, 3);
        assert_eq!(uf.find(0), uf.find(2));
        assert_ne!(uf.find(0), uf.find(4));
        let mut l = EdgeList::default();
        l.push(0, 1, "r", 0);
        l.push(1, 2, "r", 7);
        l.push(3, 3, "alone", 0);
        let adj = Adjacency::new(4, &l);
        assert_eq!(adj.degree(1), 2);
        assert_eq!(adj.degree(3), 0);
        assert_eq!(other(&l, adj.of(2)[0], 2), 1);
    }
}
