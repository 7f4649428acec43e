//! An order's seeded life before any platform renders it: created → paid
//! → shipped → finished, or closed before payment, or refunded; with its
//! lines, shipping fee and discount.

use super::seed::mix;

/// A stage of an order's life, before platform rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Created, waiting for payment.
    Created,
    /// Paid, waiting to ship.
    Paid,
    /// Shipped, waiting for the buyer to confirm.
    Shipped,
    /// Finished (confirmed).
    Finished,
    /// Closed before payment.
    Cancelled,
    /// Closed after payment: refunded.
    Refunded,
}

/// One order's lifecycle and amounts, derived from its seed.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    /// (unix seconds, stage), in order; the first is creation.
    pub events: Vec<(i64, Stage)>,
    /// (quantity, unit price in fen) per line.
    pub items: Vec<(u32, i64)>,
    /// Shipping fee in fen.
    pub post_fee: i64,
    /// Discount in fen.
    pub discount: i64,
    /// An after-sale request on one line of a finished order: (asked,
    /// settled, line, granted), unix seconds.
    pub after_sale: Option<(i64, i64, usize, bool)>,
}

/// A refund or after-sale request in an order's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundPlan {
    /// When the buyer asked (unix seconds).
    pub asked: i64,
    /// When it was settled (unix seconds).
    pub settled: i64,
    /// The line asked for; `None` for the whole order.
    pub line: Option<usize>,
    /// The amount asked for, in fen.
    pub amount: i64,
    /// Whether the seller granted it (the money went back).
    pub granted: bool,
}

const PRICES_FEN: [i64; 6] = [3990, 5900, 8900, 12900, 19900, 29900];

impl Lifecycle {
    /// Each line rendered by `line(position, quantity, unit price in fen)`,
    /// in order: the platform's item list.
    pub fn render_items<T>(&self, line: impl Fn(usize, u32, i64) -> T) -> Vec<T> {
        self.items
            .iter()
            .enumerate()
            .map(|(k, &(n, price))| line(k, n, price))
            .collect()
    }

    /// The lifecycle of an order created at `created` (unix seconds).
    pub fn generate(created: i64, seed: u64) -> Lifecycle {
        let r = |k: u64, n: u64| mix(seed ^ k.wrapping_mul(0x9E37)) % n;
        let mut events = vec![(created, Stage::Created)];
        let branch = r(1, 100);
        if branch < 6 {
            events.push((created + 1800 + r(2, 80_000) as i64, Stage::Cancelled));
        } else {
            let paid = created + 60 + r(3, 1700) as i64;
            events.push((paid, Stage::Paid));
            if branch < 10 {
                events.push((paid + 86_400 + r(4, 2 * 86_400) as i64, Stage::Refunded));
            } else {
                let shipped = paid + 4 * 3600 + r(5, 44 * 3600) as i64;
                events.push((shipped, Stage::Shipped));
                events.push((
                    shipped + 3 * 86_400 + r(6, 7 * 86_400) as i64,
                    Stage::Finished,
                ));
            }
        }
        let lines = 1 + r(7, 3) as usize;
        // One finished order in twelve has an after-sale request on one
        // line a few days later; one in four of those is refused.
        let after_sale = match events.last() {
            Some(&(finished, Stage::Finished)) if r(40, 12) == 0 => {
                let asked = finished + 3600 + r(41, 3 * 86_400) as i64;
                let settled = asked + 6 * 3600 + r(42, 2 * 86_400) as i64;
                Some((asked, settled, r(43, lines as u64) as usize, r(44, 4) != 0))
            }
            _ => None,
        };
        let items = (0..lines)
            .map(|i| {
                (
                    1 + r(10 + i as u64, 2) as u32,
                    PRICES_FEN[r(20 + i as u64, 6) as usize],
                )
            })
            .collect();
        Lifecycle {
            events,
            items,
            post_fee: if r(8, 3) == 0 { 800 } else { 0 },
            discount: [0, 0, 500, 1000][r(9, 4) as usize],
            after_sale,
        }
    }

    /// The order's refund requests, in the order they were asked: the whole
    /// payment when it closed refunded after payment (asked half-way
    /// between payment and the refund), and its after-sale request.
    pub fn refunds(&self) -> Vec<RefundPlan> {
        let mut out = Vec::new();
        if let (Some(paid), Some(refunded)) = (
            self.time_of(Stage::Paid, self.events.len()),
            self.time_of(Stage::Refunded, self.events.len()),
        ) {
            out.push(RefundPlan {
                asked: paid + (refunded - paid) / 2,
                settled: refunded,
                line: None,
                amount: self.payment(),
                granted: true,
            });
        }
        if let Some((asked, settled, line, granted)) = self.after_sale {
            let (n, price) = self.items[line.min(self.items.len() - 1)];
            out.push(RefundPlan {
                asked,
                settled,
                line: Some(line),
                amount: i64::from(n) * price,
                granted,
            });
        }
        out
    }

    /// Sum of the lines in fen.
    pub fn goods_total(&self) -> i64 {
        self.items.iter().map(|(n, p)| i64::from(*n) * p).sum()
    }

    /// What the buyer pays in fen: lines + shipping − discount.
    pub fn payment(&self) -> i64 {
        (self.goods_total() + self.post_fee - self.discount).max(0)
    }

    /// Number of pieces.
    pub fn pieces(&self) -> u32 {
        self.items.iter().map(|(n, _)| n).sum()
    }

    /// When the order reached `stage`, among the first `upto + 1` events.
    pub fn time_of(&self, stage: Stage, upto: usize) -> Option<i64> {
        self.events
            .iter()
            .take(upto + 1)
            .find(|e| e.1 == stage)
            .map(|e| e.0)
    }

    /// The creation time.
    pub fn created(&self) -> i64 {
        self.events[0].0
    }
}
