//! A deterministic seeded "world" of customers shared by all sandboxes.
//!
//! Each person has a phone, maybe a WeChat unionid, and a home region; some
//! buy in marketplace shops, some become WeCom contacts of a sales rep (by
//! scanning a package-insert card whose `state` names their order, or by a
//! rep saving their phone), some both. Every sandbox renders its own records
//! from the same world, so a Taobao buyer and a WeCom contact of the same
//! person really are the same person, and tests can predict how many unified
//! customers identity must find.

pub use super::seed::mix;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

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
#[derive(Debug, Clone, PartialEq)]
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
    /// The mess real data has.
    pub hazards: Hazards,
}

/// The mess real brands' data has, each with its ground truth: identity
/// must not link different people through it (households and gifts
/// excepted: no deterministic rule can tell them apart; they are reported
/// apart).
#[derive(Debug, Clone, PartialEq)]
pub struct Hazards {
    /// Share of people living in a household of 2–3 who share one phone
    /// and address.
    pub households: f64,
    /// Share of orders shipped to another person (their phone, name and
    /// address): gifts.
    pub gift_orders: f64,
    /// Share of gift orders whose package card the receiver scans.
    pub gift_cards: f64,
    /// Walk-ins per store, registered in the CRM (and by the rep) with the
    /// store's phone.
    pub store_walk_ins: Vec<usize>,
    /// Parcel stations whose phone orders are shipped to.
    pub courier_stations: usize,
    /// Share of orders shipped to a parcel station's phone (at least 8 per
    /// station); each station serves one shop's buyers.
    pub courier_orders: f64,
    /// Share of package-card scans printed with a batch code instead of
    /// the order (`dy_batch07`).
    pub batch_cards: f64,
    /// ERP orders typed in by staff with the buyer id `test`.
    pub test_buyer_orders: usize,
    /// Orders whose receiver phone is a placeholder (`13800138000`,
    /// `13812345678`).
    pub placeholder_orders: usize,
    /// People buying dozens of times on Pinduoduo (no buyer id there).
    pub heavy_pdd_buyers: usize,
    /// Orders each heavy buyer places.
    pub heavy_orders: usize,
    /// CRM members whose phone is junk (`无`, `-`, `11111111111`, ten
    /// digits).
    pub bad_crm_phones: usize,
}

impl Hazards {
    /// A clean world.
    pub fn none() -> Self {
        Hazards {
            households: 0.0,
            gift_orders: 0.0,
            gift_cards: 0.0,
            store_walk_ins: vec![],
            courier_stations: 0,
            courier_orders: 0.0,
            batch_cards: 0.0,
            test_buyer_orders: 0,
            placeholder_orders: 0,
            heavy_pdd_buyers: 0,
            heavy_orders: 0,
            bad_crm_phones: 0,
        }
    }

    /// The mix seen in a real brand's data, scaled to `persons`.
    pub fn realistic(persons: usize) -> Self {
        let scale = |n: usize| (n * persons / 20_000).max(1);
        Hazards {
            households: 0.05,
            gift_orders: 0.015,
            gift_cards: 0.3,
            store_walk_ins: vec![5, 12, 48, scale(300)],
            courier_stations: scale(6),
            courier_orders: 0.01,
            batch_cards: 0.08,
            test_buyer_orders: scale(40),
            placeholder_orders: scale(60),
            heavy_pdd_buyers: scale(4),
            heavy_orders: 60,
            bad_crm_phones: scale(80),
        }
    }
}

/// Where a parcel goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShipTo {
    /// The buyer's own phone, name and address.
    Own,
    /// Another person (a gift).
    Gift(u32),
    /// A parcel station's phone and address (the buyer's name).
    Courier(usize),
    /// A placeholder phone (the buyer's name and address).
    Placeholder(usize),
}

/// The phone a CRM member was registered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrmPhone {
    /// Their own.
    Own,
    /// The store's (a walk-in).
    Store(usize),
    /// Junk typed in a form (index into [`BAD_PHONES`]).
    Invalid(usize),
}

/// Junk typed into phone fields.
pub const BAD_PHONES: &[&str] = &["无", "-", "11111111111", "1391234567", "null"];

/// Placeholder phones orders are shipped to.
pub const PLACEHOLDER_PHONES: &[&str] = &["13800138000", "13812345678"];

/// The phone of parcel station `i`.
pub fn station_phone(i: usize) -> String {
    format!("170{:08}", 10_000 + i * 7)
}

/// The phone of store `i` (walk-ins are registered with it).
pub fn store_phone(i: usize) -> String {
    format!("171{:08}", 20_000 + i * 11)
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
            hazards: Hazards::realistic((orders * 3 / 5).max(10)),
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
            WorldShop::new(Channel::Youzan, "youzan-mall"),
            WorldShop::new(Channel::WechatShop, "wechat-store"),
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
        Channel::Youzan => "yz",
        Channel::WechatShop => "wxs",
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
    /// The household (its first member) when they share a phone and
    /// address with others.
    pub household: Option<u32>,
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
    let name = if (r >> 16).is_multiple_of(3) {
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
    /// Where the parcel goes.
    pub ship_to: ShipTo,
    /// Typed into the ERP by staff with the buyer id `test`.
    pub test_buyer: bool,
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
    /// The batch code the scanned card carried instead of its order.
    pub batch_card: Option<String>,
    /// The phone the CRM (and the rep) registered (private-only contacts).
    pub crm_phone: CrmPhone,
}

impl Contact {
    /// A person who never bought, signed up in store or through ads at a
    /// random time of the world's span.
    fn private_only(person: u32, rng: &mut StdRng, config: &WorldConfig) -> Self {
        let span_secs = (config.days.max(1) * 86_400) as u64;
        Contact {
            person,
            rep: rng.random_range(0..config.reps.len().max(1)),
            origin: ContactOrigin::PrivateOnly,
            added: config.start + Duration::seconds(rng.random_range(0..span_secs) as i64),
            batch_card: None,
            crm_phone: CrmPhone::Own,
        }
    }
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
    ciphers: Arc<OnceLock<HashMap<String, Receiver>>>,
}

/// Who a parcel goes to, as the platform holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receiver {
    /// The receiver phone.
    pub phone: String,
    /// The receiver name.
    pub name: String,
    /// The street address.
    pub address: String,
    /// Index into [`REGIONS`].
    pub region: usize,
}

impl World {
    /// The world for `config`, generated once while anyone in the process
    /// holds it: the sandboxes of one demo (every marketplace and WeCom)
    /// share one copy instead of each generating its own.
    pub fn shared(config: &WorldConfig) -> Arc<World> {
        static WORLDS: Mutex<Vec<(WorldConfig, Weak<World>)>> = Mutex::new(Vec::new());
        let find = |worlds: &mut Vec<(WorldConfig, Weak<World>)>| {
            worlds.retain(|(_, w)| w.strong_count() > 0);
            worlds
                .iter()
                .find(|(c, _)| c == config)
                .and_then(|(_, w)| w.upgrade())
        };
        if let Some(w) = find(&mut WORLDS.lock().unwrap_or_else(|e| e.into_inner())) {
            return w;
        }
        // Generated outside the lock: other worlds are not held up.
        let world = Arc::new(World::generate(config.clone()));
        let mut worlds = WORLDS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = find(&mut worlds) {
            return w;
        }
        worlds.push((config.clone(), Arc::downgrade(&world)));
        world
    }

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
                    household: None,
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
                    ship_to: ShipTo::Own,
                    test_buyer: false,
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
                batch_card: None,
                crm_phone: CrmPhone::Own,
            });
        }
        let private = (n as f64 * config.private_only_share) as usize;
        // Who has a contact already (a lookup, not a scan of every contact:
        // that was quadratic, minutes for a world of 10 M orders).
        let mut has_contact = vec![false; n];
        for c in &contacts {
            has_contact[c.person as usize] = true;
        }
        for _ in 0..private {
            let person = rng.random_range(0..n as u32);
            if first_purchase[person as usize].is_some() || has_contact[person as usize] {
                continue;
            }
            has_contact[person as usize] = true;
            contacts.push(Contact::private_only(person, &mut rng, &config));
        }
        let mut persons = persons;
        apply_hazards(&config, &mut persons, &mut purchases, &mut contacts);
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
    /// ids, 16-digit Kuaishou oids, Jushuitan `so_id`s of the ERP's own shop,
    /// Youzan `E` + creation second + 9 digits (24 characters), 19-digit
    /// Channels shop ids. Ids do not move with the world's clock.
    pub fn order_id(&self, p: &Purchase) -> String {
        let n = p.order_no;
        match p.channel {
            Channel::Taobao | Channel::Wecom | Channel::Crm => n.to_string(),
            Channel::Jd => (200_000_000_000 + n % 100_000_000_000).to_string(),
            Channel::Pdd => {
                let day = self.id_clock(p).format("%y%m%d");
                format!("{day}-{:015}", n % 1_000_000_000_000_000)
            }
            Channel::Douyin => format!("69{:017}", n % 100_000_000_000_000_000),
            Channel::Kuaishou => (2_400_000_000_000_000 + n % 100_000_000_000_000).to_string(),
            Channel::Jushuitan => format!("XCX{:012}", n % 1_000_000_000_000),
            Channel::Youzan => {
                let at = self.id_clock(p).format("%Y%m%d%H%M%S");
                format!("E{at}{:09}", n % 1_000_000_000)
            }
            Channel::WechatShop => format!("37{:017}", n % 100_000_000_000_000_000),
        }
    }

    /// The Beijing wall-clock time a platform writes into an order id
    /// (Pinduoduo's day, Youzan's second): the creation time as the world's
    /// first day were 2026-01-01. The world is laid out relative to its
    /// clock, so creation times move with it; ids must not, or a demo run
    /// a minute later would see other orders (and cards naming none).
    fn id_clock(&self, p: &Purchase) -> chrono::NaiveDateTime {
        let epoch = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .expect("a valid date");
        epoch + (p.created - self.config.start)
    }

    /// The buyer's WeChat unionid as the purchase's order shows it: only a
    /// WeChat-bound shop (the Channels shop) gives one, where WeChat knows
    /// the person's.
    pub fn order_unionid(&self, p: &Purchase) -> Option<&str> {
        (p.channel == Channel::WechatShop)
            .then(|| self.persons[p.person as usize].unionid.as_deref())
            .flatten()
    }

    /// The `state` the package-insert card of a purchase carries:
    /// `<prefix>_<order id>`, e.g. `tb_3100000000000123`.
    pub fn card_state(&self, p: &Purchase) -> String {
        format!("{}_{}", state_prefix(p.channel), self.order_id(p))
    }

    /// The `state` a contact added through a package card carries: the
    /// card's order (`tb_<tid>`), or the batch code printed instead.
    pub fn contact_state(&self, c: &Contact) -> Option<String> {
        match c.origin {
            ContactOrigin::Card(i) | ContactOrigin::CardAndPhone(i) => Some(
                c.batch_card
                    .clone()
                    .unwrap_or_else(|| self.card_state(&self.purchases[i])),
            ),
            _ => None,
        }
    }

    /// The shop-scoped buyer token of a person in a shop (platforms derive
    /// open ids per app / shop, so the same person differs across shops).
    pub fn buyer_token(&self, person: u32, shop: usize) -> String {
        format!("{:016x}", mix(u64::from(person) ^ mix(shop as u64 + 17)))
    }

    /// Who the parcel of `p` goes to: the buyer, a gift's receiver, a
    /// parcel station, or a placeholder phone.
    pub fn receiver(&self, p: &Purchase) -> Receiver {
        let buyer = &self.persons[p.person as usize];
        let own = |x: &Person| Receiver {
            phone: x.phone.clone(),
            name: x.name.clone(),
            address: x.address.clone(),
            region: x.region,
        };
        match p.ship_to {
            ShipTo::Own => own(buyer),
            ShipTo::Gift(to) => own(&self.persons[to as usize]),
            ShipTo::Courier(i) => Receiver {
                phone: station_phone(i),
                address: format!("菜鸟驿站{}号店", i + 1),
                ..own(buyer)
            },
            ShipTo::Placeholder(i) => Receiver {
                phone: PLACEHOLDER_PHONES[i % PLACEHOLDER_PHONES.len()].to_string(),
                ..own(buyer)
            },
        }
    }

    /// The opaque token a sandbox puts inside a phone ciphertext (the
    /// platform's ciphertext stands for it; only the decrypt API maps it
    /// back).
    pub fn cipher_token_of(&self, phone: &str) -> String {
        let digits: u64 = phone.parse().unwrap_or_else(|_| mix(phone.len() as u64));
        let a = mix(self.config.seed ^ 0xC1F3 ^ digits);
        format!("{a:016x}{:08x}", mix(digits ^ self.config.seed) as u32)
    }

    /// The cipher token of the receiver of `p`.
    pub fn cipher_token(&self, p: &Purchase) -> String {
        self.cipher_token_of(&self.receiver(p).phone)
    }

    /// The receiver behind the cipher token a ciphertext's `payload`
    /// ([`cipher_payload`]) holds for `field`, as a decrypt API would
    /// resolve it.
    pub fn receiver_in(&self, payload: &str, field: u8) -> Option<&Receiver> {
        self.receiver_by_cipher(&token_in(payload, field)?)
    }

    /// The receiver behind a cipher token, as a decrypt API would resolve it.
    pub fn receiver_by_cipher(&self, token: &str) -> Option<&Receiver> {
        let map = self.ciphers.get_or_init(|| {
            self.purchases
                .iter()
                .map(|p| {
                    let r = self.receiver(p);
                    (self.cipher_token_of(&r.phone), r)
                })
                .collect()
        });
        map.get(token)
    }

    /// When the purchase first shows on its platform (unix seconds):
    /// creation, or payment where the platform lists only paid orders;
    /// `None` when it never shows.
    pub fn listed_at(&self, p: &Purchase) -> Option<i64> {
        let created = p.created.timestamp();
        if lists_unpaid(p.channel) {
            return Some(created);
        }
        let lc = super::lifecycle::Lifecycle::generate(created, p.detail_seed);
        lc.time_of(super::lifecycle::Stage::Paid, lc.events.len())
    }

    /// Indices of the shops of one channel.
    pub fn shops_of(&self, channel: Channel) -> Vec<usize> {
        (0..self.config.shops.len())
            .filter(|&i| self.config.shops[i].channel == channel)
            .collect()
    }

    /// What a perfect identity finds from what the platforms expose (phones
    /// decrypted on the channels in `decrypt`): every record identity reads
    /// (orders, WeCom contacts, CRM members) with its true person and the
    /// customer it belongs to.
    ///
    /// The graph links what the records say, except through the hazards'
    /// shared identifiers (store and parcel-station phones, placeholder
    /// phones, batch card codes, the ERP's `test` buyer), which must never
    /// link. Households (a shared phone) and gifts (an order shipped to
    /// another person) do link: no deterministic rule can tell them apart.
    pub fn truth(&self, as_of: DateTime<Utc>, decrypt: &[Channel]) -> Truth {
        let mut g = Oracle::default();
        let mut records = Vec::new();
        let visible = |p: &Purchase| self.listed_at(p).is_some_and(|t| t <= as_of.timestamp());
        // Gifts identity can tell: where orders carry the receiver's name
        // and address beside a buyer id (the ERP's), a buyer id ships mostly
        // to its owner; an order to another receiver is a gift and links
        // nobody through its phone or its card.
        let receiver_key = |p: &Purchase| {
            let r = self.receiver(p);
            format!("{}\u{1f}{}", r.name, r.address)
        };
        let told = |p: &Purchase| p.channel == Channel::Jushuitan && !p.test_buyer;
        let mut by_buyer: HashMap<(u32, usize), HashMap<String, u32>> = HashMap::new();
        for p in self.purchases.iter().filter(|p| told(p) && visible(p)) {
            *by_buyer
                .entry((p.person, p.shop))
                .or_default()
                .entry(receiver_key(p))
                .or_default() += 1;
        }
        let dominant: HashMap<(u32, usize), String> = by_buyer
            .into_iter()
            .filter_map(|(b, counts)| {
                let mut v: Vec<(String, u32)> = counts.into_iter().collect();
                v.sort_by_key(|x| std::cmp::Reverse(x.1));
                match v.as_slice() {
                    [(k, n)] if *n >= 2 => Some((b, k.clone())),
                    [(k, n), (_, m), ..] if *n >= 2 && n > m => Some((b, k.clone())),
                    _ => None,
                }
            })
            .collect();
        let gift = |p: &Purchase| {
            told(p)
                && dominant
                    .get(&(p.person, p.shop))
                    .is_some_and(|d| *d != receiver_key(p))
        };
        for p in &self.purchases {
            if !visible(p) {
                continue;
            }
            let order = format!("{}:{}", p.channel, self.order_id(p));
            let o = g.node(format!("o:{order}"));
            records.push(("order", order, p.person, o));
            let phone = (p.phone_plain || decrypt.contains(&p.channel))
                && matches!(p.ship_to, ShipTo::Own | ShipTo::Gift(_));
            let phone = phone.then(|| g.node(format!("p:{}", self.receiver(p).phone)));
            if has_buyer_id(p.channel) {
                if p.test_buyer {
                    continue;
                }
                let b = g.node(format!("b:{}:{}", p.person, p.shop));
                g.link(o, b);
                if let Some(u) = self.order_unionid(p) {
                    let u = g.node(format!("u:{u}"));
                    g.link(b, u);
                }
                if let Some(ph) = phone.filter(|_| !gift(p)) {
                    g.link(b, ph);
                }
            } else if let Some(ph) = phone {
                g.link(o, ph);
            }
        }
        for c in self.contacts.iter().filter(|c| c.added <= as_of) {
            let person = &self.persons[c.person as usize];
            let (kind, id, node) = if c.origin == ContactOrigin::PrivateOnly {
                // A CRM member (the store sign-up) and the WeCom contact the
                // rep added with the phone the CRM holds.
                let m = g.node(format!("m:{}", c.person));
                let w = g.node(format!("c:{}", c.person));
                records.push(("crm_member", format!("VIP{:06}", c.person), c.person, m));
                records.push((
                    "wecom_external_userid",
                    external_userid(c.person, self.config.seed),
                    c.person,
                    w,
                ));
                if let Some(u) = &person.unionid {
                    let u = g.node(format!("u:{u}"));
                    g.link(m, u);
                    g.link(w, u);
                }
                match c.crm_phone {
                    CrmPhone::Own => {
                        let ph = g.node(format!("p:{}", person.phone));
                        g.link(m, ph);
                        g.link(w, ph);
                    }
                    CrmPhone::Invalid(_) => {
                        let ph = g.node(format!("p:{}", person.phone));
                        g.link(w, ph);
                    }
                    CrmPhone::Store(_) => {}
                }
                continue;
            } else {
                let w = g.node(format!("c:{}", c.person));
                (
                    "wecom_external_userid",
                    external_userid(c.person, self.config.seed),
                    w,
                )
            };
            records.push((kind, id, c.person, node));
            if let Some(u) = &person.unionid {
                let u = g.node(format!("u:{u}"));
                g.link(node, u);
            }
            if matches!(
                c.origin,
                ContactOrigin::Phone | ContactOrigin::CardAndPhone(_)
            ) {
                let ph = g.node(format!("p:{}", person.phone));
                g.link(node, ph);
            }
            if let ContactOrigin::Card(i) | ContactOrigin::CardAndPhone(i) = c.origin {
                let p = &self.purchases[i];
                if c.batch_card.is_none() && p.created <= as_of && !(gift(p) && visible(p)) {
                    let o = g.node(format!("o:{}:{}", p.channel, self.order_id(p)));
                    g.link(node, o);
                }
            }
        }
        // A contact appears once even when the person has several contact
        // relationships (one per rep): identity sees one identifier.
        records.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        records.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
        let customers = g.components();
        let keys: Vec<(String, u32)> = g.index.iter().map(|(k, &i)| (k.clone(), i)).collect();
        let nodes = keys.into_iter().map(|(k, i)| (k, g.root(i))).collect();
        let records = records
            .into_iter()
            .map(|(id_type, id_value, person, node)| TruthRecord {
                id_type,
                id_value,
                person,
                customer: g.root(node),
            })
            .collect();
        Truth {
            records,
            customers,
            nodes,
        }
    }

    /// The number of unified customers identity should find (see
    /// [`World::truth`]).
    pub fn expected_unified_customers(&self, as_of: DateTime<Utc>, decrypt: &[Channel]) -> usize {
        self.truth(as_of, decrypt).customers
    }
}

/// Add the configured hazards to a generated world (from a random stream
/// of their own: a world without hazards stays as it was).
fn apply_hazards(
    config: &WorldConfig,
    persons: &mut [Person],
    purchases: &mut Vec<Purchase>,
    contacts: &mut Vec<Contact>,
) {
    let h = &config.hazards;
    let mut rng = StdRng::seed_from_u64(config.seed ^ 0x4A2A_2D5E);
    let n = persons.len();
    let span_secs = (config.days.max(1) * 86_400) as u64;
    // Households: runs of 2-3 consecutive people share the first one's
    // phone and address.
    let mut i = 0;
    while i + 1 < n && h.households > 0.0 {
        if rng.random_bool((h.households / 2.5).clamp(0.0, 1.0)) {
            let size = rng.random_range(2..=3usize).min(n - i);
            let (phone, address) = (persons[i].phone.clone(), persons[i].address.clone());
            for m in &mut persons[i..i + size] {
                m.household = Some(i as u32);
                m.phone = phone.clone();
                m.address = address.clone();
            }
            i += size;
        } else {
            i += 1;
        }
    }
    let single = |persons: &[Person], x: u32| persons[x as usize].household.is_none();
    // Heavy Pinduoduo buyers.
    let pdd_shops: Vec<usize> = (0..config.shops.len())
        .filter(|&s| config.shops[s].channel == Channel::Pdd)
        .collect();
    let mut next_no = purchases.len() as u64;
    if let Some(&shop) = pdd_shops.first() {
        let mut picked = 0;
        while picked < h.heavy_pdd_buyers && n > 0 {
            let person = rng.random_range(0..n as u32);
            if !single(persons, person) {
                continue;
            }
            picked += 1;
            for _ in 0..h.heavy_orders {
                purchases.push(Purchase {
                    person,
                    shop,
                    channel: Channel::Pdd,
                    order_no: 3_100_000_000_000_000 + next_no * 7919 + (mix(config.seed) % 7919),
                    created: config.start
                        + Duration::seconds(rng.random_range(0..span_secs) as i64),
                    phone_plain: false,
                    detail_seed: mix(config.seed.wrapping_add(next_no)),
                    ship_to: ShipTo::Own,
                    test_buyer: false,
                });
                next_no += 1;
            }
        }
        // Contacts name purchases by index: follow them through the sort.
        let before: Vec<u64> = purchases.iter().map(|p| p.order_no).collect();
        purchases.sort_by_key(|p| (p.created, p.order_no));
        let at: HashMap<u64, usize> = purchases
            .iter()
            .enumerate()
            .map(|(i, p)| (p.order_no, i))
            .collect();
        for c in contacts.iter_mut() {
            if let ContactOrigin::Card(pi) | ContactOrigin::CardAndPhone(pi) = &mut c.origin {
                *pi = at[&before[*pi]];
            }
        }
    }
    // Gifts (to single people, each receiving at most one), parcel
    // stations (each serving mostly one shop), placeholder phones.
    let mut gifted = vec![false; n];
    let shops = config.shops.len().max(1);
    for p in purchases.iter_mut() {
        let r = rng.random::<f64>();
        if r < h.gift_orders {
            let to = rng.random_range(0..n as u32);
            // Each single person is in one gift at most, as sender or
            // receiver: chains of gifts would join more people than a
            // household.
            if to != p.person
                && single(persons, to)
                && single(persons, p.person)
                && !gifted[to as usize]
                && !gifted[p.person as usize]
            {
                gifted[to as usize] = true;
                gifted[p.person as usize] = true;
                p.ship_to = ShipTo::Gift(to);
            }
        }
    }
    // Parcel stations: each takes its share of `courier_orders` from the
    // buyers of one shop, at least 8 of them, each buyer once: a station
    // seen with three buyers would look like a household and no identity
    // could tell (a small world gave exactly that), and one spread thinly
    // over shops would look like a household in each.
    let per_station = ((h.courier_orders * purchases.len() as f64
        / h.courier_stations.max(1) as f64)
        .round() as usize)
        .max(8);
    let mut by_shop: Vec<Vec<usize>> = vec![Vec::new(); shops];
    for (i, p) in purchases.iter().enumerate() {
        by_shop[p.shop % shops].push(i);
    }
    for station in 0..h.courier_stations {
        let pool = &by_shop[station % shops];
        let mut buyers = std::collections::HashSet::new();
        // Bounded: a shop with few buyers gets what it has.
        for _ in 0..per_station * 4 {
            if buyers.len() >= per_station || pool.is_empty() {
                break;
            }
            let i = pool[rng.random_range(0..pool.len())];
            if purchases[i].ship_to == ShipTo::Own && buyers.insert(purchases[i].person) {
                purchases[i].ship_to = ShipTo::Courier(station);
            }
        }
    }
    for _ in 0..h.placeholder_orders.min(purchases.len()) {
        let i = rng.random_range(0..purchases.len());
        if purchases[i].ship_to == ShipTo::Own {
            purchases[i].ship_to =
                ShipTo::Placeholder(rng.random_range(0..PLACEHOLDER_PHONES.len()));
        }
    }
    let erp: Vec<usize> = (0..purchases.len())
        .filter(|&i| purchases[i].channel == Channel::Jushuitan)
        .collect();
    for _ in 0..h.test_buyer_orders.min(erp.len()) {
        let i = erp[rng.random_range(0..erp.len())];
        purchases[i].test_buyer = true;
    }
    // Batch cards.
    let reps = config.reps.len().max(1);
    for c in contacts.iter_mut() {
        let card = matches!(
            c.origin,
            ContactOrigin::Card(_) | ContactOrigin::CardAndPhone(_)
        );
        if card && rng.random_bool(h.batch_cards.clamp(0.0, 1.0)) {
            let prefix = ["dy_batch", "tb_618batch", "jd_card", "ks_batch"][rng.random_range(0..4)];
            c.batch_card = Some(format!("{prefix}{:02}", rng.random_range(1..12)));
        }
    }
    // Gift cards: the receiver scans the card in the gifted parcel.
    let has_contact: std::collections::HashSet<u32> = contacts.iter().map(|c| c.person).collect();
    for (i, p) in purchases.iter().enumerate() {
        if let ShipTo::Gift(to) = p.ship_to {
            if !has_contact.contains(&to) && rng.random_bool(h.gift_cards.clamp(0.0, 1.0)) {
                contacts.push(Contact {
                    person: to,
                    rep: rng.random_range(0..reps),
                    origin: ContactOrigin::Card(i),
                    added: p.created + Duration::hours(rng.random_range(72..240)),
                    batch_card: None,
                    crm_phone: CrmPhone::Own,
                });
            }
        }
    }
    // Store walk-ins and junk CRM phones among the private-only contacts;
    // more walk-ins join when there are too few.
    let mut private: Vec<usize> = (0..contacts.len())
        .filter(|&i| {
            contacts[i].origin == ContactOrigin::PrivateOnly && single(persons, contacts[i].person)
        })
        .collect();
    let needed: usize = h.store_walk_ins.iter().sum::<usize>() + h.bad_crm_phones;
    let mut busy: std::collections::HashSet<u32> = contacts.iter().map(|c| c.person).collect();
    for p in purchases.iter() {
        busy.insert(p.person);
        if let ShipTo::Gift(to) = p.ship_to {
            busy.insert(to);
        }
    }
    let mut tries = 0;
    while private.len() < needed && tries < n * 4 {
        tries += 1;
        let person = rng.random_range(0..n as u32);
        if busy.contains(&person) || !single(persons, person) {
            continue;
        }
        busy.insert(person);
        contacts.push(Contact::private_only(person, &mut rng, config));
        private.push(contacts.len() - 1);
    }
    let mut k = 0;
    for (store, &walk_ins) in h.store_walk_ins.iter().enumerate() {
        for _ in 0..walk_ins {
            if let Some(&ci) = private.get(k) {
                contacts[ci].crm_phone = CrmPhone::Store(store);
            }
            k += 1;
        }
    }
    for &ci in private.iter().skip(k).take(h.bad_crm_phones) {
        contacts[ci].crm_phone = CrmPhone::Invalid(rng.random_range(0..BAD_PHONES.len()));
    }
}

/// One record as a perfect identity sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruthRecord {
    /// `order`, `wecom_external_userid` or `crm_member`.
    pub id_type: &'static str,
    /// The identifier as the lake holds it (`taobao:3100...` for orders).
    pub id_value: String,
    /// The person it really belongs to.
    pub person: u32,
    /// The customer a perfect identity puts it in.
    pub customer: u32,
}

/// The ground truth of a world at one time.
#[derive(Debug, Clone)]
pub struct Truth {
    /// Every record identity reads.
    pub records: Vec<TruthRecord>,
    /// The number of customers a perfect identity finds.
    pub customers: usize,
    /// The customer of every identifier that links: `p:<phone>`,
    /// `o:<channel>:<order id>`, `c:<person>` (WeCom contact), `m:<person>`
    /// (CRM member), `b:<person>:<shop>`, `u:<unionid>`.
    pub nodes: HashMap<String, u32>,
}

/// The external_userid WeCom gives a person in the sandbox corp.
pub fn external_userid(person: u32, seed: u64) -> String {
    format!(
        "wmSbx{:012x}{:08x}",
        mix(seed ^ u64::from(person)) & 0xffff_ffff_ffff,
        person
    )
}

/// Union-find over named nodes: the prediction's graph.
#[derive(Default)]
struct Oracle {
    index: HashMap<String, u32>,
    parent: Vec<u32>,
}

impl Oracle {
    fn node(&mut self, key: String) -> u32 {
        let n = self.parent.len() as u32;
        let i = *self.index.entry(key).or_insert(n);
        if i == n {
            self.parent.push(n);
        }
        i
    }

    fn root(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = p;
            x = p;
        }
        x
    }

    fn link(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.root(a), self.root(b));
        if ra != rb {
            self.parent[ra as usize] = rb;
        }
    }

    fn components(&mut self) -> usize {
        (0..self.parent.len() as u32)
            .filter(|&x| self.root(x) == x)
            .count()
    }
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

/// The payload an emulator frames its ciphertext of `token` (the world's
/// [`World::cipher_token`]) for `field` around: base64 of `token:field`.
pub fn cipher_payload(token: &str, field: u8) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{token}:{field}"))
}

/// The cipher token in a [`cipher_payload`], when it was made for `field`
/// (a name's ciphertext is not a phone's).
pub fn token_in(payload: &str, field: u8) -> Option<String> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (token, f) = text.rsplit_once(':')?;
    (f == field.to_string()).then(|| token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_config_one_shared_world_while_held() {
        let now = DateTime::from_timestamp(1_735_000_000, 0).unwrap();
        let config = WorldConfig::demo(now, 300);
        let a = World::shared(&config);
        let b = World::shared(&config);
        assert!(Arc::ptr_eq(&a, &b), "the same config shares one world");
        let mut other = config.clone();
        other.seed += 1;
        let c = World::shared(&other);
        assert!(!Arc::ptr_eq(&a, &c), "another config gets its own world");
        let weak = Arc::downgrade(&a);
        drop((a, b));
        assert!(weak.upgrade().is_none(), "freed once nobody holds it");
        let d = World::shared(&config);
        assert_eq!(d.purchases.len(), World::generate(config).purchases.len());
    }

    /// A parcel station serves at least 8 distinct buyers, all of one shop,
    /// in worlds small and large: seen with fewer it would look like a
    /// household, which no identity can tell from a station.
    #[test]
    fn every_parcel_station_serves_enough_buyers_of_one_shop() {
        let now = DateTime::from_timestamp(1_735_000_000, 0).unwrap();
        for orders in [300, 2_000, 30_000] {
            let w = World::generate(WorldConfig::demo(now, orders));
            use std::collections::HashSet;
            let mut stations: HashMap<usize, (HashSet<usize>, HashSet<u32>)> = HashMap::new();
            for p in &w.purchases {
                if let ShipTo::Courier(s) = p.ship_to {
                    let e = stations.entry(s).or_default();
                    e.0.insert(p.shop);
                    e.1.insert(p.person);
                }
            }
            assert!(!stations.is_empty(), "{orders} orders have stations");
            for (s, (shops, buyers)) in stations {
                assert_eq!(shops.len(), 1, "station {s} of {orders} orders");
                assert!(
                    buyers.len() >= 8,
                    "station {s} of {orders}: {} buyers",
                    buyers.len()
                );
            }
        }
    }

    #[test]
    fn order_ids_and_cards_do_not_move_with_the_clock() {
        let now = DateTime::from_timestamp(1_735_000_000, 0).unwrap();
        let ids = |t: DateTime<Utc>| {
            let w = World::generate(WorldConfig::demo(t, 2_000));
            let ids: Vec<String> = w.purchases.iter().map(|p| w.card_state(p)).collect();
            ids
        };
        let (a, b) = (
            ids(now),
            ids(now + Duration::minutes(1) + Duration::hours(13)),
        );
        assert_eq!(a, b);
        let unique: std::collections::HashSet<&String> = a.iter().collect();
        assert_eq!(unique.len(), a.len(), "order ids are unique");
        assert!(
            a.iter().any(|s| s.starts_with("yz_E2026")),
            "Youzan ids carry a time"
        );
    }

    #[test]
    fn same_seed_same_world_and_phones_are_valid_and_unique() {
        let now = DateTime::from_timestamp(1_735_000_000, 0).unwrap();
        let mut clean = WorldConfig::demo(now, 500);
        clean.hazards = Hazards::none();
        let a = World::generate(clean.clone());
        let b = World::generate(clean);
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

    #[test]
    fn hazards_are_in_the_world_and_out_of_the_truth() {
        let now = DateTime::from_timestamp(1_735_000_000, 0).unwrap();
        let w = World::generate(WorldConfig::demo(now, 20_000));
        let n = |f: &dyn Fn(&Purchase) -> bool| w.purchases.iter().filter(|p| f(p)).count();
        assert!(n(&|p| matches!(p.ship_to, ShipTo::Gift(_))) > 100);
        assert!(n(&|p| matches!(p.ship_to, ShipTo::Courier(_))) > 50);
        assert!(n(&|p| matches!(p.ship_to, ShipTo::Placeholder(_))) > 20);
        assert!(n(&|p| p.test_buyer) > 10);
        assert!(w.persons.iter().filter(|p| p.household.is_some()).count() > 200);
        assert!(w.contacts.iter().filter(|c| c.batch_card.is_some()).count() > 50);
        for (store, &k) in w.config.hazards.store_walk_ins.iter().enumerate() {
            let at = w
                .contacts
                .iter()
                .filter(|c| c.crm_phone == CrmPhone::Store(store))
                .count();
            assert_eq!(at, k, "store {store}");
        }
        // Card indices survive the re-sort after heavy buyers were added.
        for c in &w.contacts {
            if let ContactOrigin::Card(i) | ContactOrigin::CardAndPhone(i) = c.origin {
                let p = &w.purchases[i];
                assert!(p.person == c.person || p.ship_to == ShipTo::Gift(c.person));
                assert!(p.created < c.added);
            }
        }
        let heavy = w.config.hazards.heavy_orders;
        let mut per: HashMap<u32, usize> = HashMap::new();
        for p in w.purchases.iter().filter(|p| p.channel == Channel::Pdd) {
            *per.entry(p.person).or_default() += 1;
        }
        assert!(per.values().filter(|&&k| k >= heavy).count() >= w.config.hazards.heavy_pdd_buyers);
        // Receivers decrypt back; hazard phones are never a person's.
        for p in w.purchases.iter().take(2000) {
            let r = w.receiver(p);
            // (A household shares one phone: the token stands for the phone.)
            let back = w.receiver_by_cipher(&w.cipher_token(p)).map(|x| &x.phone);
            assert_eq!(back, Some(&r.phone));
        }
        let own: std::collections::HashSet<&str> =
            w.persons.iter().map(|p| p.phone.as_str()).collect();
        assert!(!own.contains(station_phone(0).as_str()) && !own.contains(store_phone(0).as_str()));
        // The truth: more customers than people who link nothing, fewer
        // than records.
        let t = w.truth(now, &[Channel::Taobao, Channel::Pdd]);
        assert!(t.customers > 0 && t.customers < t.records.len());
        let mut keys: Vec<_> = t.records.iter().map(|r| (r.id_type, &r.id_value)).collect();
        keys.dedup();
        assert_eq!(keys.len(), t.records.len(), "one record per identifier");
    }
}
