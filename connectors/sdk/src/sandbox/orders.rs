//! The order book every marketplace sandbox serves from: the world's
//! purchases of one channel, each with a seeded lifecycle (created → paid →
//! shipped → finished, or closed before payment, or refunded), shown as they
//! stand at the sandbox clock and indexed by modification time per shop.
//! Each sandbox renders the stages in its platform's own status codes.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use quanyu_schemas::Channel;

pub use super::lifecycle::{Lifecycle, RefundPlan, Stage};
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

/// One refund request as it stands at the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundEntry {
    /// Modification time: when it was asked, or settled once it is.
    pub modified: i64,
    /// Index into `World::purchases`.
    pub purchase: u32,
    /// Index into the lifecycle's [`Lifecycle::refunds`].
    pub refund: u8,
    /// Whether it is settled at the clock.
    pub settled: bool,
}

/// Where a refund request stands at the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefundStage {
    /// Asked, not settled.
    Asked,
    /// Granted: the money went back.
    Granted,
    /// Refused.
    Refused,
}

impl RefundEntry {
    /// Its stage, given its plan.
    pub fn stage(&self, plan: &RefundPlan) -> RefundStage {
        match (self.settled, plan.granted) {
            (false, _) => RefundStage::Asked,
            (true, true) => RefundStage::Granted,
            (true, false) => RefundStage::Refused,
        }
    }
}

/// The index at one clock reading.
#[derive(Debug)]
pub struct Snapshot {
    /// The clock (unix seconds).
    pub as_of: i64,
    /// Per served shop (in `OrderBook::shops` order): entries by `modified`
    /// descending, then purchase index descending.
    pub per_shop: Vec<Vec<Entry>>,
    /// Per served shop: the refund requests asked by the clock, by
    /// `modified` descending.
    pub refunds_per_shop: Vec<Vec<RefundEntry>>,
}

/// The entries of `list` (newest first) modified in `[start, end]`.
fn modified_in<T>(list: &[T], modified: impl Fn(&T) -> i64, start: i64, end: i64) -> &[T] {
    let lo = list.partition_point(|x| modified(x) > end);
    let hi = list.partition_point(|x| modified(x) >= start);
    &list[lo..hi.max(lo)]
}

impl Snapshot {
    /// The entries of `shop` (local index) modified in `[start, end]`
    /// (inclusive, unix seconds), newest first.
    pub fn window(&self, shop: usize, start: i64, end: i64) -> &[Entry] {
        modified_in(&self.per_shop[shop], |e| e.modified, start, end)
    }

    /// The refund requests of `shop` modified in `[start, end]`, newest
    /// first.
    pub fn refund_window(&self, shop: usize, start: i64, end: i64) -> &[RefundEntry] {
        modified_in(&self.refunds_per_shop[shop], |e| e.modified, start, end)
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

/// One refund request as the platform shows it now: the ground truth for
/// tests.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VisibleRefund {
    /// Shop id.
    pub shop: String,
    /// The platform's order id.
    pub order_id: String,
    /// Which request of the order (0, 1).
    pub index: u8,
    /// The refund id every sandbox shows (decimal).
    pub refund_id: String,
    /// Its stage now.
    pub stage: RefundStage,
    /// The amount asked, in fen.
    pub amount_fen: i64,
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

/// One purchase as it stands at one of its events.
pub struct OrderView<'a> {
    /// The world it belongs to.
    pub world: &'a World,
    /// The purchase.
    pub purchase: &'a super::world::Purchase,
    /// Its lifecycle.
    pub lifecycle: &'a Lifecycle,
    /// Who receives it.
    pub receiver: super::world::Receiver,
    /// The receiver's (province, city).
    pub region: (&'static str, &'static str),
    /// The event index (its stage now).
    pub event: usize,
    /// When that event happened (unix seconds): the order's modification time.
    pub modified: i64,
    /// The stage it is in.
    pub stage: Stage,
}

impl OrderView<'_> {
    /// The creation time as `show` renders it; a text no platform would
    /// send where the faults ask for a corrupt record.
    pub fn created_as<T: Into<serde_json::Value>>(
        &self,
        corrupt: bool,
        show: impl Fn(i64) -> T,
    ) -> serde_json::Value {
        if corrupt {
            "not-a-time".into()
        } else {
            show(self.lifecycle.created()).into()
        }
    }
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
                        after_sale: None,
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
                refunds_per_shop: vec![],
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

    /// Purchase `i` as it stands at its event `ev`: what a platform
    /// renders an order from.
    pub fn view(&self, i: usize, ev: usize) -> OrderView<'_> {
        let purchase = &self.world.purchases[i];
        let lifecycle = &self.lifecycles[i];
        let (modified, stage) = lifecycle.events[ev];
        let receiver = self.world.receiver(purchase);
        OrderView {
            world: &self.world,
            purchase,
            lifecycle,
            region: super::world::REGIONS[receiver.region],
            receiver,
            event: ev,
            modified,
            stage,
        }
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
        let mut refunds_per_shop = vec![Vec::new(); self.shops.len()];
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
            for (k, plan) in lc.refunds().iter().enumerate() {
                if plan.asked <= now {
                    let settled = plan.settled <= now;
                    refunds_per_shop[local].push(RefundEntry {
                        modified: if settled { plan.settled } else { plan.asked },
                        purchase: i as u32,
                        refund: k as u8,
                        settled,
                    });
                }
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
        for v in &mut refunds_per_shop {
            v.sort_unstable_by(|a, b| {
                (b.modified, b.purchase, b.refund).cmp(&(a.modified, a.purchase, a.refund))
            });
        }
        let idx = Arc::new(Snapshot {
            as_of: now,
            per_shop,
            refunds_per_shop,
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

    /// Every refund request as the platform shows it at the clock.
    pub fn visible_refunds(&self) -> Vec<VisibleRefund> {
        let idx = self.snapshot();
        let mut out = Vec::new();
        for (shop, v) in idx.refunds_per_shop.iter().enumerate() {
            for e in v {
                let plan = self.refund_plan(e);
                out.push(VisibleRefund {
                    shop: self.shop_id(shop).to_string(),
                    order_id: self
                        .world
                        .order_id(&self.world.purchases[e.purchase as usize]),
                    index: e.refund,
                    refund_id: self.refund_no(e).to_string(),
                    stage: e.stage(&plan),
                    amount_fen: plan.amount,
                });
            }
        }
        out.sort();
        out
    }

    /// The refund id of `e` (every sandbox renders it in decimal).
    pub fn refund_no(&self, e: &RefundEntry) -> u64 {
        self.world.purchases[e.purchase as usize].order_no * 100 + 50 + u64::from(e.refund)
    }

    /// The plan of the refund request `e` points at.
    pub fn refund_plan(&self, e: &RefundEntry) -> RefundPlan {
        self.lifecycles[e.purchase as usize].refunds()[usize::from(e.refund)]
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

    /// Refunds come from orders refunded after payment (the whole payment)
    /// and from after-sale requests on finished orders (one line, some
    /// refused); a request is asked before it is settled, and the clock
    /// settles it.
    #[test]
    fn refunds_are_asked_then_settled() {
        let now = DateTime::from_timestamp(1_735_000_000, 0).unwrap();
        let world = Arc::new(World::generate(WorldConfig::demo(now, 3000)));
        let book = OrderBook::new(world.clone(), Channel::Taobao, Some(now));
        let refunds = book.visible_refunds();
        let stages =
            |v: &[VisibleRefund], s: RefundStage| v.iter().filter(|r| r.stage == s).count();
        assert!(
            stages(&refunds, RefundStage::Granted) > 10,
            "{}",
            refunds.len()
        );
        assert!(stages(&refunds, RefundStage::Refused) > 0);
        assert!(stages(&refunds, RefundStage::Asked) > 0);
        assert!(
            refunds.iter().all(|r| r.amount_fen > 0),
            "every request asks for money"
        );
        let orders: std::collections::HashMap<_, _> = book
            .visible()
            .into_iter()
            .map(|o| (o.order_id.clone(), o))
            .collect();
        for r in &refunds {
            let o = &orders[&r.order_id];
            assert!(r.amount_fen <= o.payment_fen + 30_000, "{r:?}");
            if r.index == 0 && o.stage == Stage::Refunded {
                assert_eq!(
                    r.amount_fen, o.payment_fen,
                    "a refunded order gives all back"
                );
            }
        }
        book.set_as_of(now + chrono::Duration::days(30));
        let later = book.visible_refunds();
        assert!(later.len() >= refunds.len());
        assert!(
            later.len() > refunds.len(),
            "requests of orders finished since"
        );
        assert_eq!(
            stages(&later, RefundStage::Asked),
            0,
            "a month later all are settled"
        );
        let snap = book.snapshot();
        let all: usize = (0..book.shops().len())
            .map(|s| snap.refund_window(s, i64::MIN, i64::MAX).len())
            .sum();
        assert_eq!(all, later.len());
    }

    #[test]
    fn windows_are_inclusive() {
        let snap = Snapshot {
            as_of: 0,
            refunds_per_shop: vec![],
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
