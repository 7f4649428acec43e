//! The `touchpoints` table: one row per bridge event (a card scan, an AI
//! call, an SMS, a WeCom contact added or deleted), with what it can tell
//! identity (phone, order, unionid, external_userid) and what operators need
//! to judge the bridge (campaign, outcome, intent, duration, cost).

use chrono::{DateTime, Utc};

use crate::row::canonical_table;
use crate::vocab::{Bridge, Channel, Outcome, TouchEvent};

canonical_table! {
    /// One bridge event in canonical form.
    pub struct TouchpointRow in touchpoints_schema by TouchpointsBuilder {
        /// Which bridge.
        pub channel: Bridge,
        /// Unique within the bridge: the vendor's call / scan id, or a digest of
        /// the event's fields when the feed has none (so replays collapse).
        pub event_id: String,
        /// What happened.
        pub event_type: TouchEvent,
        /// When it happened.
        pub occurred_at: DateTime<Utc>,
        /// Keyed hash of the phone involved.
        pub phone_hash: Option<String>,
        /// The marketplace of the order it refers to.
        pub order_channel: Option<Channel>,
        /// The order it refers to.
        pub order_id: Option<String>,
        /// WeChat unionid, when known.
        pub unionid: Option<String>,
        /// WeCom external_userid, when known.
        pub external_userid: Option<String>,
        /// The rep (WeCom userid) involved.
        pub owner_userid: Option<String>,
        /// The card / contact-way `state`.
        pub state: Option<String>,
        /// Campaign, card run or call task.
        pub campaign: Option<String>,
        /// How it ended.
        pub outcome: Option<Outcome>,
        /// Intent level A–F (AI calls).
        pub intent_level: Option<String>,
        /// Talk time in seconds.
        pub duration_secs: Option<i32>,
        /// What it cost, in fen.
        pub cost_fen: Option<i64>,
        /// The feed it came from (`wecom_callback@corp`, `file:calls.csv`, `baiying`).
        pub source: String,
    }
    // The event itself is the version: a replay is the same row.
    version updated_at = occurred_at;
}

impl TouchpointRow {
    /// An event of `bridge` with only what every event has: its id, type,
    /// time and feed; every identifier and figure unset.
    pub fn event(
        bridge: Bridge,
        event_id: impl Into<String>,
        event_type: TouchEvent,
        occurred_at: DateTime<Utc>,
        source: impl Into<String>,
    ) -> Self {
        TouchpointRow {
            channel: bridge,
            event_id: event_id.into(),
            event_type,
            occurred_at,
            phone_hash: None,
            order_channel: None,
            order_id: None,
            unionid: None,
            external_userid: None,
            owner_userid: None,
            state: None,
            campaign: None,
            outcome: None,
            intent_level: None,
            duration_secs: None,
            cost_fen: None,
            source: source.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_batch_in_the_schema() {
        let mut b = TouchpointsBuilder::new("r1", Utc::now());
        b.append(&TouchpointRow {
            channel: Bridge::AiCall,
            event_id: "c1".into(),
            event_type: TouchEvent::Call,
            occurred_at: Utc::now(),
            phone_hash: Some("h".into()),
            order_channel: Some(Channel::Taobao),
            order_id: Some("1".into()),
            unionid: None,
            external_userid: None,
            owner_userid: None,
            state: None,
            campaign: Some("task-9".into()),
            outcome: Some(Outcome::Connected),
            intent_level: Some("A".into()),
            duration_secs: Some(35),
            cost_fen: Some(12),
            source: "file:calls.csv".into(),
        });
        let batch = b.finish();
        // The version is the event time; the stamps fill every row.
        let col = |n: &str| batch.column_by_name(n).unwrap().clone();
        assert_eq!(col("updated_at").as_ref(), col("occurred_at").as_ref());
        let run = col("run_id");
        assert_eq!(arrow::array::AsArray::as_string::<i32>(&run).value(0), "r1");
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.schema(), touchpoints_schema());
        assert!(b.is_empty());
    }
}
