//! The order book every marketplace sandbox serves from: the world's
//! purchases of one channel, each with a seeded lifecycle (created → paid →
//! shipped → finished, or closed before payment, or refunded), shown as they
//! stand at the sandbox clock and indexed by modification time per shop.
//! Each sandbox renders the stages in its platform's own status codes.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use quanyu_schemas::Channel;

pub use super::lifecycle::{Lifecycle, Stage};
use super::world::{lists_unpaid, World};

/// One order as it stands at the clock: (modified, purchase index, event index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Modification time: the time of the current event (unix seconds).
    pub modified: i64,
    /// Index into `World::purchases`.
    pub purchase: u32,
    /// Index into the lifecycle's events: the current stage.
    pub event: u8,
}

/// The index at one clock reading.
#[derive(Debug)]
pub struct Snapshot {
    /// The clock (unix seconds).
    pub as_of: i64,
    /// Per served shop (in `OrderBook::shops` order): entries by `modified`
    /// descending, then purchase index descending.
    pub per_shop: Vec<Vec<Entry>>,
}

impl Snapshot {
    /// The entries of `shop` (local index) modified in `[start, end]`
    /// (inclusive, unix seconds), newest first.
    pub fn window(&self, shop: usize, start: i64, end: i64) -> &[Entry] {
        let list = &self.per_shop[shop];
        let lo = list.partition_point(|x| x.modified > end);
        let hi = list.partition_point(|x| x.modified >= start);
        &list[lo..hi.max(lo)]
    }
}

/// One order as a platform shows it now: the ground truth for tests.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VisibleOrder {
    /// Shop id.
    pub shop: String,
    /// The platform's order id.
    pub order_id: String,
    /// Its stage now.
    pub stage: Stage,
    /// Payment in fen.
    pub payment_fen: i64,
}

/// The purchases of one channel, with lifecycles and a clock.
pub struct OrderBook {
    world: Arc<World>,
    channel: Channel,
    shops: Vec<usize>,
    lifecycles: Vec<Lifecycle>,
    fixed_as_of: RwLock<Option<DateTime<Utc>>>,
    index: RwLock<Arc<Snapshot>>,
}

impl OrderBook {
    /// The order book of `channel` in `world`; `as_of` fixes the clock
    /// (`None` = the wall clock).
    pub fn new(world: Arc<World>, channel: Channel, as_of: Option<DateTime<Utc>>) -> Self {
        let shops = world.shops_of(channel);
        let lifecycles = world
            .purchases
            .iter()
            .map(|p| {
                if p.channel == channel {
                    Lifecycle::generate(p.created.timestamp(), p.detail_seed)
                } else {
                    Lifecycle {
                        events: vec![(i64::MAX, Stage::Created)],
                        items: vec![],
                        post_fee: 0,
                        discount: 0,
                    }
                }
            })
            .collect();
        OrderBook {
            world,
            channel,
            shops,
            lifecycles,
            fixed_as_of: RwLock::new(as_of),
            index: RwLock::new(Arc::new(Snapshot {
                as_of: i64::MIN,
                per_shop: vec![],
            })),
        }
    }

    /// The world.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The channel served.
    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// World shop indices served, in local order.
    pub fn shops(&self) -> &[usize] {
        &self.shops
    }

    /// The shop id of local shop `i`.
    pub fn shop_id(&self, i: usize) -> &str {
        &self.world.config.shops[self.shops[i]].id
    }

    /// The lifecycle of purchase `i`.
    pub fn lifecycle(&self, i: usize) -> &Lifecycle {
        &self.lifecycles[i]
    }

    /// Move the clock.
    pub fn set_as_of(&self, t: DateTime<Utc>) {
        *self.fixed_as_of.write().unwrap_or_else(|p| p.into_inner()) = Some(t);
    }

    /// The clock now.
    pub fn as_of(&self) -> DateTime<Utc> {
        self.fixed_as_of
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_else(Utc::now)
    }

    /// The index at the clock (re-built when the clock moved; at most once
    /// a minute on the wall clock).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        let fixed = self
            .fixed_as_of
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        let now = self.as_of().timestamp();
        {
            let idx = self.index.read().unwrap_or_else(|p| p.into_inner());
            if idx.as_of == now || (!fixed && (now - idx.as_of).abs() < 60) {
                return idx.clone();
            }
        }
        let mut per_shop = vec![Vec::new(); self.shops.len()];
        for (i, p) in self.world.purchases.iter().enumerate() {
            if p.channel != self.channel {
                continue;
            }
            let Some(local) = self.shops.iter().position(|&s| s == p.shop) else {
                continue;
            };
            let lc = &self.lifecycles[i];
            let listed = if lists_unpaid(self.channel) {
                Some(lc.created())
            } else {
                lc.time_of(Stage::Paid, lc.events.len())
            };
            if listed.is_none_or(|t| t > now) {
                continue;
            }
            let ev = lc.events.iter().rposition(|e| e.0 <= now).unwrap_or(0);
            per_shop[local].push(Entry {
                modified: lc.events[ev].0,
                purchase: i as u32,
                event: ev as u8,
            });
        }
        for v in &mut per_shop {
            v.sort_unstable_by(|a, b| {
                b.modified
                    .cmp(&a.modified)
                    .then(b.purchase.cmp(&a.purchase))
            });
        }
        let idx = Arc::new(Snapshot {
            as_of: now,
            per_shop,
        });
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = idx.clone();
        idx
    }

    /// Every order as the platform shows it at the clock.
    pub fn visible(&self) -> Vec<VisibleOrder> {
        let idx = self.snapshot();
        let mut out = Vec::new();
        for (shop, v) in idx.per_shop.iter().enumerate() {
            for e in v {
                let lc = &self.lifecycles[e.purchase as usize];
                out.push(VisibleOrder {
                    shop: self.shop_id(shop).to_string(),
                    order_id: self
                        .world
                        .order_id(&self.world.purchases[e.purchase as usize]),
                    stage: lc.events[e.event as usize].1,
                    payment_fen: lc.payment(),
                });
            }
        }
        out.sort();
        out
    }
}

/// `12.30` from 1230 fen.
pub fn fen_text(fen: i64) -> String {
    format!(
        "{}{}.{:02}",
        if fen < 0 { "-" } else { "" },
        (fen / 100).abs(),
        (fen % 100).abs()
    )
}

/// A masked phone as platforms show it: `138****5678`.
pub fn mask_phone(phone: &str) -> String {
    if phone.len() == 11 {
        format!("{}****{}", &phone[..3], &phone[7..])
    } else {
        "***".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::world::WorldConfig;
    use chrono::Duration;

    #[test]
    fn books_split_the_world_by_channel_and_move_with_the_clock() {
        let now = DateTime::from_timestamp(1_735_000_000, 0).unwrap();
        let world = Arc::new(World::generate(WorldConfig::demo(now, 700)));
        let mut total = 0;
        let mut channels: Vec<Channel> = world.config.shops.iter().map(|s| s.channel).collect();
        channels.sort_unstable();
        channels.dedup();
        for ch in channels {
            let book = OrderBook::new(world.clone(), ch, Some(now));
            let v = book.visible();
            assert!(!v.is_empty(), "{ch:?} has orders");
            total += v.len();
            let before: Vec<_> = v.iter().map(|o| o.stage).collect();
            book.set_as_of(now + Duration::days(10));
            let after: Vec<_> = book.visible().iter().map(|o| o.stage).collect();
            assert_ne!(before, after, "{ch:?} orders move on");
        }
        let listed = world
            .purchases
            .iter()
            .filter(|p| world.listed_at(p).is_some_and(|t| t <= now.timestamp()))
            .count();
        assert_eq!(total, listed);
        let unpaid_pdd = world
            .purchases
            .iter()
            .filter(|p| p.channel == Channel::Pdd && p.created <= now)
            .count()
            - OrderBook::new(world.clone(), Channel::Pdd, Some(now))
                .visible()
                .len();
        assert!(unpaid_pdd > 0, "Pinduoduo hides unpaid orders");
        assert!(
            OrderBook::new(world.clone(), Channel::Pdd, Some(now))
                .visible()
                .iter()
                .all(|o| !matches!(o.stage, Stage::Created | Stage::Cancelled)),
            "Pinduoduo lists orders from payment on"
        );
        assert_eq!(fen_text(1230), "12.30");
        assert_eq!(fen_text(5), "0.05");
        assert_eq!(mask_phone("13812345678"), "138****5678");
    }

    #[test]
    fn windows_are_inclusive() {
        let snap = Snapshot {
            as_of: 0,
            per_shop: vec![vec![
                Entry {
                    modified: 30,
                    purchase: 2,
                    event: 0,
                },
                Entry {
                    modified: 20,
                    purchase: 1,
                    event: 0,
                },
                Entry {
                    modified: 10,
                    purchase: 0,
                    event: 0,
                },
            ]],
        };
        assert_eq!(snap.window(0, 10, 20).len(), 2);
        assert_eq!(snap.window(0, 21, 29).len(), 0);
        assert_eq!(snap.window(0, 0, 100).len(), 3);
    }
}
