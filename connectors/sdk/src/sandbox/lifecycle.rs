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
}

const PRICES_FEN: [i64; 6] = [3990, 5900, 8900, 12900, 19900, 29900];

impl Lifecycle {
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
        }
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
