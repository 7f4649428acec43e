//! A deterministic seeded "world" of customers shared by all sandboxes.
//!
//! Each person has a phone, maybe a WeChat unionid, and a home region; some
//! buy in marketplace shops, some become WeCom contacts of a sales rep (by
//! scanning a package-insert card whose `state` names their order, or by a
//! rep saving their phone), some both. Every sandbox renders its own records
//! from the same world, so a Taobao buyer and a WeCom contact of the same
//! person really are the same person, and tests can predict how many unified
//! customers identity must find.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Duration, Utc};
use quanyu_schemas::Channel;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Provinces and cities the generator draws from.
pub const REGIONS: &[(&str, &str)] = &[
    ("浙江省", "杭州市"),
    ("浙江省", "宁波市"),
    ("广东省", "广州市"),
    ("广东省", "深圳市"),
    ("江苏省", "南京市"),
    ("江苏省", "苏州市"),
    ("上海", "上海市"),
    ("北京", "北京市"),
    ("四川省", "成都市"),
    ("湖北省", "武汉市"),
    ("山东省", "青岛市"),
    ("福建省", "厦门市"),
    ("河南省", "郑州市"),
    ("陕西省", "西安市"),
    ("重庆", "重庆市"),
];

/// The size and shape of a world.
#[derive(Debug, Clone)]
pub struct WorldConfig {
    /// Seed: same seed, same world.
    pub seed: u64,
    /// How many people exist.
    pub persons: usize,
    /// How many marketplace orders they place.
    pub orders: usize,
    /// Marketplace shops, each on one channel; every sandbox serves the
    /// shops of its own channel.
    pub shops: Vec<WorldShop>,
    /// Orders are created in `[start, start + days)`.
    pub start: DateTime<Utc>,
    /// Span of order creation, in days.
    pub days: i64,
    /// Share of Taobao orders whose receiver phone TOP returns in clear
    /// (older authorizations); the rest are masked. Other marketplaces only
    /// return ciphertext and masks (phones need their decrypt API); the ERP
    /// (Jushuitan) returns the phones of its own channels in clear.
    pub plain_phone_share: f64,
    /// Share of buyers who become WeCom contacts.
    pub buyer_contact_share: f64,
    /// Extra WeCom contacts who never bought, as a share of `persons`.
    pub private_only_share: f64,
    /// Sales reps (WeCom userids).
    pub reps: Vec<String>,
}

impl WorldConfig {
    /// The demo's default world ending at `now`.
    pub fn demo(now: DateTime<Utc>, orders: usize) -> Self {
        WorldConfig {
            seed: 2024,
            persons: (orders * 3 / 5).max(10),
            orders,
            shops: WorldShop::demo_shops(),
            start: now - Duration::days(30),
            days: 30,
            plain_phone_share: 0.3,
            buyer_contact_share: 0.35,
            private_only_share: 0.1,
            reps: vec![
                "zhangsan".into(),
                "lisi".into(),
                "wangwu".into(),
                "zhaoliu".into(),
            ],
        }
    }
}

/// One shop of the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldShop {
    /// The marketplace.
    pub channel: Channel,
    /// The shop id as the lake names it.
    pub id: String,
}

impl WorldShop {
    /// A shop.
    pub fn new(channel: Channel, id: &str) -> Self {
        WorldShop {
            channel,
            id: id.into(),
        }
    }

    /// The demo's shops: two Taobao / Tmall shops and one on every other
    /// marketplace and the ERP.
    pub fn demo_shops() -> Vec<WorldShop> {
        vec![
            WorldShop::new(Channel::Taobao, "tmall-flagship"),
            WorldShop::new(Channel::Taobao, "taobao-outlet"),
            WorldShop::new(Channel::Jd, "jd-flagship"),
            WorldShop::new(Channel::Pdd, "pdd-store"),
            WorldShop::new(Channel::Douyin, "douyin-store"),
            WorldShop::new(Channel::Kuaishou, "kuaishou-store"),
            WorldShop::new(Channel::Jushuitan, "jst-miniapp"),
        ]
    }

    /// Only the shops of one channel (a single-platform world for a test).
    pub fn only(channel: Channel) -> Vec<WorldShop> {
        let mut shops: Vec<_> = Self::demo_shops()
            .into_iter()
            .filter(|s| s.channel == channel)
            .collect();
        if shops.len() < 2 {
            let second = format!("{}-2", shops[0].id);
            shops.push(WorldShop::new(channel, &second));
        }
        shops
    }
}

/// Whether a channel's orders carry a buyer id (and at which scope).
pub fn has_buyer_id(channel: Channel) -> bool {
    // Pinduoduo's order APIs expose no buyer identifier at all.
    channel != Channel::Pdd
}

/// Whether a channel lists an order before it is paid. Pinduoduo's order
/// APIs show an order only once it is paid (a group-buy order exists for
/// the merchant from payment on); an order closed unpaid never appears.
pub fn lists_unpaid(channel: Channel) -> bool {
    channel != Channel::Pdd
}

/// The prefix a package-insert card `state` uses for a channel's orders.
pub fn state_prefix(channel: Channel) -> &'static str {
    match channel {
        Channel::Taobao => "tb",
        Channel::Jd => "jd",
        Channel::Pdd => "pdd",
        Channel::Douyin => "dy",
        Channel::Kuaishou => "ks",
        Channel::Jushuitan => "jst",
        Channel::Wecom => "wc",
        Channel::Crm => "crm",
    }
}

/// One person.
#[derive(Debug, Clone)]
pub struct Person {
    /// Index in the world.
    pub id: u32,
    /// 11-digit mobile number (sandbox data only, never real).
    pub phone: String,
    /// WeChat unionid, when the brand's WeChat account knows one.
    pub unionid: Option<String>,
    /// Index into [`REGIONS`].
    pub region: usize,
    /// Full name (sandbox data only).
    pub name: String,
    /// Street address within the region (sandbox data only).
    pub address: String,
}

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "罗", "高",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀", "霞", "平", "刚", "桂", "英", "华", "坤", "婷", "雪", "晨", "宇", "欣",
];
const ROADS: &[&str] = &[
    "文三路",
    "解放路",
    "人民路",
    "中山路",
    "建设路",
    "和平路",
    "新华路",
    "长江路",
    "黄河路",
    "滨江路",
    "学院路",
    "花园街",
    "幸福里",
    "光明街",
    "东风路",
];

/// A person's name and street address, derived from their id.
fn name_and_address(seed: u64, id: u32) -> (String, String) {
    let r = mix(seed ^ 0xA11CE ^ (u64::from(id) << 20));
    let surname = SURNAMES[(r % SURNAMES.len() as u64) as usize];
    let g1 = GIVEN[((r >> 8) % GIVEN.len() as u64) as usize];
    let name = if (r >> 16) % 3 == 0 {
        format!("{surname}{g1}")
    } else {
        let g2 = GIVEN[((r >> 24) % GIVEN.len() as u64) as usize];
        format!("{surname}{g1}{g2}")
    };
    let road = ROADS[((r >> 32) % ROADS.len() as u64) as usize];
    let address = format!(
        "{road}{}号{}室",
        1 + (r >> 40) % 300,
        101 + (r >> 50) % 1200
    );
    (name, address)
}

/// A name as Pinduoduo and Douyin mask it: `林*坤`, `王*`.
pub fn mask_name(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    match chars.len() {
        0 => String::new(),
        1 | 2 => format!("{}*", chars[0]),
        n => format!("{}{}{}", chars[0], "*".repeat(n - 2), chars[n - 1]),
    }
}

/// An address as the platforms mask it: the road kept, numbers hidden.
pub fn mask_address(address: &str) -> String {
    let road: String = address
        .chars()
        .take_while(|c| !c.is_ascii_digit())
        .collect();
    format!("{road}****")
}

/// One marketplace order, before any platform rendering.
#[derive(Debug, Clone)]
pub struct Purchase {
    /// The buyer.
    pub person: u32,
    /// Index into `WorldConfig::shops`.
    pub shop: usize,
    /// The shop's channel.
    pub channel: Channel,
    /// Platform order number, unique in the world.
    pub order_no: u64,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// Whether the platform shows the receiver phone in clear (without
    /// any decrypt call).
    pub phone_plain: bool,
    /// Seed for the platform-specific details (items, lifecycle).
    pub detail_seed: u64,
}

/// How a WeCom contact was added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactOrigin {
    /// Scanned the package-insert card of this purchase (index into purchases):
    /// `state` names the order.
    Card(usize),
    /// A rep saved the buyer's phone in remark_mobiles (AI call, manual call).
    Phone,
    /// Both: scanned a card and the rep also saved the phone.
    CardAndPhone(usize),
    /// Never bought; joined in store or through ads.
    PrivateOnly,
}

/// One WeCom contact relationship (person held by a rep).
#[derive(Debug, Clone)]
pub struct Contact {
    /// The person.
    pub person: u32,
    /// Index into `WorldConfig::reps`.
    pub rep: usize,
    /// How it was added.
    pub origin: ContactOrigin,
    /// When it was added.
    pub added: DateTime<Utc>,
}

/// The generated world.
#[derive(Debug, Clone)]
pub struct World {
    /// Its configuration.
    pub config: WorldConfig,
    /// People.
    pub persons: Vec<Person>,
    /// Orders, sorted by creation time.
    pub purchases: Vec<Purchase>,
    /// WeCom contacts.
    pub contacts: Vec<Contact>,
    /// Cipher token → person, built on first use.
    ciphers: Arc<OnceLock<HashMap<String, u32>>>,
}

impl World {
    /// Generate the world for `config`; the same config gives the same world.
    pub fn generate(config: WorldConfig) -> World {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let n = config.persons.max(1);
        let persons: Vec<Person> = (0..n as u32)
            .map(|id| {
                let (name, address) = name_and_address(config.seed, id);
                Person {
                    id,
                    phone: phone_for(config.seed, id),
                    unionid: rng
                        .random_bool(0.7)
                        .then(|| format!("oUn{:08x}{:016x}", id, mix(config.seed ^ u64::from(id)))),
                    region: rng.random_range(0..REGIONS.len()),
                    name,
                    address,
                }
            })
            .collect();

        let span_secs = (config.days.max(1) * 86_400) as u64;
        let mut purchases: Vec<Purchase> = (0..config.orders)
            .map(|i| {
                // A third of the people buy most of the orders: repeat buyers.
                let person = if rng.random_bool(0.5) {
                    rng.random_range(0..(n as u32 / 3).max(1))
                } else {
                    rng.random_range(0..n as u32)
                };
                let created =
                    config.start + Duration::seconds(rng.random_range(0..span_secs) as i64);
                let shop = rng.random_range(0..config.shops.len().max(1));
                let channel = config
                    .shops
                    .get(shop)
                    .map(|s| s.channel)
                    .unwrap_or(Channel::Taobao);
                let plain_draw = rng.random_bool(config.plain_phone_share.clamp(0.0, 1.0));
                Purchase {
                    person,
                    shop,
                    channel,
                    order_no: 3_100_000_000_000_000 + (i as u64) * 7919 + (mix(config.seed) % 7919),
                    created,
                    phone_plain: match channel {
                        Channel::Taobao => plain_draw,
                        Channel::Jushuitan => true,
                        _ => false,
                    },
                    detail_seed: mix(config.seed.wrapping_add(i as u64)),
                }
            })
            .collect();
        purchases.sort_by_key(|p| (p.created, p.order_no));

        // Contacts: a share of buyers (once each), from their first purchase.
        let mut first_purchase: Vec<Option<usize>> = vec![None; n];
        for (i, p) in purchases.iter().enumerate() {
            first_purchase[p.person as usize].get_or_insert(i);
        }
        let reps = config.reps.len().max(1);
        let mut contacts = Vec::new();
        for (person, first) in first_purchase.iter().enumerate() {
            let Some(pi) = *first else { continue };
            if !rng.random_bool(config.buyer_contact_share.clamp(0.0, 1.0)) {
                continue;
            }
            let origin = match rng.random_range(0..10) {
                0..=4 => ContactOrigin::Card(pi),
                5..=7 => ContactOrigin::Phone,
                _ => ContactOrigin::CardAndPhone(pi),
            };
            let added = purchases[pi].created + Duration::hours(rng.random_range(48..240));
            contacts.push(Contact {
                person: person as u32,
                rep: rng.random_range(0..reps),
                origin,
                added,
            });
        }
        let private = (n as f64 * config.private_only_share) as usize;
        for _ in 0..private {
            let person = rng.random_range(0..n as u32);
            if first_purchase[person as usize].is_some()
                || contacts.iter().any(|c| c.person == person)
            {
                continue;
            }
            contacts.push(Contact {
                person,
                rep: rng.random_range(0..reps),
                origin: ContactOrigin::PrivateOnly,
                added: config.start + Duration::seconds(rng.random_range(0..span_secs) as i64),
            });
        }
        World {
            config,
            persons,
            purchases,
            contacts,
            ciphers: Arc::default(),
        }
    }

    /// The order id as the purchase's platform shows it: Taobao tids,
    /// 12-digit JD order ids, Pinduoduo `yymmdd-` order_sn, 19-digit Douyin
    /// ids, 16-digit Kuaishou oids, Jushuitan `so_id`s of the ERP's own shop.
    pub fn order_id(&self, p: &Purchase) -> String {
        let n = p.order_no;
        match p.channel {
            Channel::Taobao | Channel::Wecom | Channel::Crm => n.to_string(),
            Channel::Jd => (200_000_000_000 + n % 100_000_000_000).to_string(),
            Channel::Pdd => {
                let day = (p.created + Duration::hours(8)).format("%y%m%d");
                format!("{day}-{:015}", n % 1_000_000_000_000_000)
            }
            Channel::Douyin => format!("69{:017}", n % 100_000_000_000_000_000),
            Channel::Kuaishou => (2_400_000_000_000_000 + n % 100_000_000_000_000).to_string(),
            Channel::Jushuitan => format!("XCX{:012}", n % 1_000_000_000_000),
        }
    }

    /// The `state` the package-insert card of a purchase carries:
    /// `<prefix>_<order id>`, e.g. `tb_3100000000000123`.
    pub fn card_state(&self, p: &Purchase) -> String {
        format!("{}_{}", state_prefix(p.channel), self.order_id(p))
    }

    /// The shop-scoped buyer token of a person in a shop (platforms derive
    /// open ids per app / shop, so the same person differs across shops).
    pub fn buyer_token(&self, person: u32, shop: usize) -> String {
        format!("{:016x}", mix(u64::from(person) ^ mix(shop as u64 + 17)))
    }

    /// The opaque token a sandbox puts inside a phone ciphertext for a person
    /// (the platform's ciphertext stands for it; only the decrypt API maps
    /// it back).
    pub fn cipher_token(&self, person: u32) -> String {
        let a = mix(self.config.seed ^ 0xC1F3 ^ u64::from(person));
        format!("{a:016x}{:08x}", person ^ (a as u32))
    }

    /// The person behind a cipher token, as a decrypt API would resolve it.
    pub fn person_by_cipher(&self, token: &str) -> Option<&Person> {
        let map = self.ciphers.get_or_init(|| {
            self.persons
                .iter()
                .map(|p| (self.cipher_token(p.id), p.id))
                .collect()
        });
        map.get(token).map(|&i| &self.persons[i as usize])
    }

    /// When the purchase first shows on its platform (unix seconds):
    /// creation, or payment where the platform lists only paid orders;
    /// `None` when it never shows.
    pub fn listed_at(&self, p: &Purchase) -> Option<i64> {
        let created = p.created.timestamp();
        if lists_unpaid(p.channel) {
            return Some(created);
        }
        let lc = super::orders::Lifecycle::generate(created, p.detail_seed);
        lc.time_of(super::orders::Stage::Paid, lc.events.len())
    }

    /// Indices of the shops of one channel.
    pub fn shops_of(&self, channel: Channel) -> Vec<usize> {
        (0..self.config.shops.len())
            .filter(|&i| self.config.shops[i].channel == channel)
            .collect()
    }

    /// The number of unified customers identity should find from what the
    /// platforms expose, with phones decrypted on the channels in `decrypt`.
    ///
    /// Reasoned per person, since persons never share identifiers: the
    /// nodes are one buyer per shop bought in (one per order where the
    /// platform has no buyer id), plus the WeCom contact. A clear or decrypted
    /// phone joins its node to the person's phone; a contact whose rep saved
    /// the phone joins it too; a card joins the contact to the node of the
    /// order it names. Each connected group is one customer.
    pub fn expected_unified_customers(&self, as_of: DateTime<Utc>, decrypt: &[Channel]) -> usize {
        let mut by_person: Vec<Vec<usize>> = vec![Vec::new(); self.persons.len()];
        for (i, p) in self.purchases.iter().enumerate() {
            if self.listed_at(p).is_some_and(|t| t <= as_of.timestamp()) {
                by_person[p.person as usize].push(i);
            }
        }
        let mut contact_of: Vec<Option<&Contact>> = vec![None; self.persons.len()];
        for c in &self.contacts {
            if c.added <= as_of {
                contact_of[c.person as usize].get_or_insert(c);
            }
        }
        let mut total = 0;
        for person in 0..self.persons.len() {
            // Node keys: shop buyer nodes (0..shops), per-order nodes
            // (shops + purchase index), the contact (usize::MAX - 1), the
            // phone (usize::MAX).
            let shops = self.config.shops.len();
            let node_of = |i: usize| {
                let p = &self.purchases[i];
                if has_buyer_id(p.channel) {
                    p.shop
                } else {
                    shops + i
                }
            };
            let mut nodes: Vec<usize> = Vec::new();
            let mut edges: Vec<(usize, usize)> = Vec::new();
            const CONTACT: usize = usize::MAX - 1;
            const PHONE: usize = usize::MAX;
            for &i in &by_person[person] {
                let p = &self.purchases[i];
                nodes.push(node_of(i));
                if p.phone_plain || decrypt.contains(&p.channel) {
                    edges.push((node_of(i), PHONE));
                }
            }
            if let Some(c) = contact_of[person] {
                nodes.push(CONTACT);
                if matches!(
                    c.origin,
                    ContactOrigin::Phone | ContactOrigin::CardAndPhone(_)
                ) {
                    edges.push((CONTACT, PHONE));
                }
                if let ContactOrigin::Card(i) | ContactOrigin::CardAndPhone(i) = c.origin {
                    if self.purchases[i].created <= as_of {
                        edges.push((CONTACT, node_of(i)));
                    }
                }
            }
            nodes.sort_unstable();
            nodes.dedup();
            total += components(&nodes, &edges);
        }
        total
    }
}

/// Connected components among `nodes` (an edge end outside `nodes`, such as
/// the phone, only joins).
fn components(nodes: &[usize], edges: &[(usize, usize)]) -> usize {
    let mut all: Vec<usize> = nodes.to_vec();
    all.extend(edges.iter().flat_map(|&(a, b)| [a, b]));
    all.sort_unstable();
    all.dedup();
    let pos = |x: usize| all.binary_search(&x).expect("known node");
    let mut parent: Vec<usize> = (0..all.len()).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for &(a, b) in edges {
        let (ra, rb) = (find(&mut parent, pos(a)), find(&mut parent, pos(b)));
        parent[ra] = rb;
    }
    let mut roots: Vec<usize> = nodes.iter().map(|&n| find(&mut parent, pos(n))).collect();
    roots.sort_unstable();
    roots.dedup();
    roots.len()
}

/// A stable 64-bit mix (splitmix64).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A unique, valid, non-placeholder mobile number for person `id`.
fn phone_for(seed: u64, id: u32) -> String {
    const PREFIXES: [&str; 8] = ["139", "138", "186", "158", "177", "150", "188", "135"];
    let prefix = PREFIXES[(mix(seed ^ u64::from(id)) % 8) as usize];
    // An odd multiplier is a bijection modulo 10^8 only if coprime with 10:
    // 37 is; so distinct ids give distinct suffixes for up to 10^8 people.
    let suffix = (u64::from(id) * 37 + 12_345_679) % 100_000_000;
    let phone = format!("{prefix}{suffix:08}");
    // A suffix that reads as a placeholder (`12345678`) moves to a prefix no
    // other person uses, with its suffix shifted: still unique.
    match quanyu_schemas::normalize_phone(&phone) {
        Ok(p) if p.is_placeholder() => format!("166{:08}", (suffix + 50_000_000) % 100_000_000),
        _ => phone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_world_and_phones_are_valid_and_unique() {
        let now = DateTime::from_timestamp(1_735_000_000, 0).unwrap();
        let a = World::generate(WorldConfig::demo(now, 500));
        let b = World::generate(WorldConfig::demo(now, 500));
        assert_eq!(a.purchases.len(), 500);
        assert_eq!(
            a.purchases.iter().map(|p| p.order_no).collect::<Vec<_>>(),
            b.purchases.iter().map(|p| p.order_no).collect::<Vec<_>>()
        );
        let mut phones: Vec<_> = a.persons.iter().map(|p| p.phone.clone()).collect();
        phones.sort();
        phones.dedup();
        assert_eq!(phones.len(), a.persons.len());
        for p in &a.persons {
            let n = quanyu_schemas::normalize_phone(&p.phone).unwrap();
            assert!(!n.is_placeholder());
        }
        assert!(a
            .contacts
            .iter()
            .any(|c| matches!(c.origin, ContactOrigin::Card(_))));
        assert!(a
            .contacts
            .iter()
            .any(|c| c.origin == ContactOrigin::PrivateOnly));
        let expected = a.expected_unified_customers(now, &[]);
        let decrypted = a.expected_unified_customers(now, &[Channel::Pdd, Channel::Jd]);
        assert!(decrypted < expected, "decrypted phones join buyers");
        assert!(expected > 0 && expected <= a.persons.len() * 3);
    }
}
