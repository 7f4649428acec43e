//! A deterministic seeded "world" of customers shared by all sandboxes.
//!
//! Each person has a phone, maybe a WeChat unionid, and a home region; some
//! buy in marketplace shops, some become WeCom contacts of a sales rep (by
//! scanning a package-insert card whose `state` names their order, or by a
//! rep saving their phone), some both. Every sandbox renders its own records
//! from the same world, so a Taobao buyer and a WeCom contact of the same
//! person really are the same person, and tests can predict how many unified
//! customers identity must find.

use chrono::{DateTime, Duration, Utc};
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
    /// Marketplace shops (Taobao shop ids / seller nicks).
    pub shops: Vec<String>,
    /// Orders are created in `[start, start + days)`.
    pub start: DateTime<Utc>,
    /// Span of order creation, in days.
    pub days: i64,
    /// Share of orders whose receiver phone the platform returns in clear
    /// (older authorizations, self-pickup); the rest are masked.
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
            shops: vec!["tmall-flagship".into(), "taobao-outlet".into()],
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
}

/// One marketplace order, before any platform rendering.
#[derive(Debug, Clone)]
pub struct Purchase {
    /// The buyer.
    pub person: u32,
    /// Index into `WorldConfig::shops`.
    pub shop: usize,
    /// Platform order number, unique in the world.
    pub order_no: u64,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// Whether the platform shows the receiver phone in clear.
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
}

/// The `state` a package-insert card QR carries for an order.
pub fn card_state(order_no: u64) -> String {
    format!("tb_{order_no}")
}

impl World {
    /// Generate the world for `config`; the same config gives the same world.
    pub fn generate(config: WorldConfig) -> World {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let n = config.persons.max(1);
        let persons: Vec<Person> = (0..n as u32)
            .map(|id| Person {
                id,
                phone: phone_for(config.seed, id),
                unionid: rng
                    .random_bool(0.7)
                    .then(|| format!("oUn{:08x}{:016x}", id, mix(config.seed ^ u64::from(id)))),
                region: rng.random_range(0..REGIONS.len()),
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
                Purchase {
                    person,
                    shop: rng.random_range(0..config.shops.len().max(1)),
                    order_no: 3_100_000_000_000_000 + (i as u64) * 7919 + (mix(config.seed) % 7919),
                    created,
                    phone_plain: rng.random_bool(config.plain_phone_share.clamp(0.0, 1.0)),
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
        }
    }

    /// The number of unified customers identity should find from what the
    /// platforms expose, reasoned per person: a person's shop-scoped buyer
    /// ids and WeCom contact fall into one customer only where a clear phone
    /// (on an order or in the contact's remark) or a card `state` connects
    /// them. Persons never share identifiers, so no customer spans two people.
    pub fn expected_unified_customers(&self, as_of: DateTime<Utc>) -> usize {
        let shops = self.config.shops.len().max(1);
        // Per person: which shops they bought in (visible by as_of), which of
        // those showed a clear phone.
        let mut bought = vec![vec![false; shops]; self.persons.len()];
        let mut plain = vec![vec![false; shops]; self.persons.len()];
        for p in self.purchases.iter().filter(|p| p.created <= as_of) {
            bought[p.person as usize][p.shop] = true;
            plain[p.person as usize][p.shop] |= p.phone_plain;
        }
        let mut total = 0;
        for person in 0..self.persons.len() {
            let contact = self
                .contacts
                .iter()
                .find(|c| c.person as usize == person && c.added <= as_of);
            // Nodes: one per shop bought in, plus the contact. Groups: the
            // "phone hub" joins every node that shows the clear phone; a card
            // joins the contact to the shop of the scanned order.
            let mut groups = 0;
            let mut hub_used = false;
            let contact_phone = matches!(
                contact.map(|c| &c.origin),
                Some(ContactOrigin::Phone | ContactOrigin::CardAndPhone(_))
            );
            let card_shop = contact.and_then(|c| match c.origin {
                ContactOrigin::Card(i) | ContactOrigin::CardAndPhone(i)
                    if self.purchases[i].created <= as_of =>
                {
                    Some(self.purchases[i].shop)
                }
                _ => None,
            });
            // The contact's group is the hub if it has the phone, or the
            // card's shop group.
            let card_shop_on_hub = card_shop.is_some_and(|s| plain[person][s]);
            let contact_on_hub = contact.is_some() && (contact_phone || card_shop_on_hub);
            for s in 0..shops {
                if !bought[person][s] {
                    continue;
                }
                let on_hub = plain[person][s] || (contact_on_hub && card_shop == Some(s));
                if on_hub {
                    hub_used = true;
                } else if card_shop == Some(s) && contact.is_some() {
                    // joined with the contact's own group, counted below
                } else {
                    groups += 1;
                }
            }
            if contact.is_some() {
                if contact_on_hub {
                    hub_used = true;
                } else {
                    groups += 1; // the contact, with its card shop if any
                }
            }
            if hub_used {
                groups += 1;
            }
            total += groups;
        }
        total
    }
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
    format!("{prefix}{suffix:08}")
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
        let expected = a.expected_unified_customers(now);
        assert!(expected > 0 && expected <= a.persons.len() * 3);
    }
}
