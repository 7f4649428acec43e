//! The `touchpoints` table: one row per bridge event (a card scan, an AI
//! call, an SMS, a WeCom contact added or deleted), with what it can tell
//! identity (phone, order, unionid, external_userid) and what operators need
//! to judge the bridge (campaign, outcome, intent, duration, cost).

use std::sync::{Arc, OnceLock};

use arrow::array::{
    ArrayRef, Int32Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};

use crate::vocab::{Bridge, Channel, Outcome, TouchEvent};

/// Schema of `touchpoints`.
pub fn touchpoints_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let utf8 = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
        Arc::new(Schema::new(vec![
            utf8("channel", false),
            utf8("event_id", false),
            utf8("event_type", false),
            Field::new("occurred_at", ts(), false),
            utf8("phone_hash", true),
            utf8("order_channel", true),
            utf8("order_id", true),
            utf8("unionid", true),
            utf8("external_userid", true),
            utf8("owner_userid", true),
            utf8("state", true),
            utf8("campaign", true),
            utf8("outcome", true),
            utf8("intent_level", true),
            Field::new("duration_secs", DataType::Int32, true),
            Field::new("cost_fen", DataType::Int64, true),
            utf8("source", false),
            Field::new("updated_at", ts(), false),
            Field::new("ingested_at", ts(), false),
            utf8("run_id", false),
        ]))
    })
    .clone()
}

/// One bridge event in canonical form.
#[derive(Debug, Clone, PartialEq)]
pub struct TouchpointRow {
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

/// Builds `touchpoints` batches.
pub struct TouchpointsBuilder {
    ingested_at: i64,
    run_id: String,
    rows: Vec<TouchpointRow>,
}

impl TouchpointsBuilder {
    /// A builder for rows of one run, ingested at `ingested_at`.
    pub fn new(run_id: &str, ingested_at: DateTime<Utc>) -> Self {
        TouchpointsBuilder {
            ingested_at: ingested_at.timestamp_micros(),
            run_id: run_id.into(),
            rows: Vec::new(),
        }
    }

    /// Append one row.
    pub fn append(&mut self, r: TouchpointRow) {
        self.rows.push(r);
    }

    /// Rows pending.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when no row is pending.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Take the pending rows as a batch.
    pub fn finish(&mut self) -> RecordBatch {
        let rows = std::mem::take(&mut self.rows);
        let text = |f: &dyn Fn(&TouchpointRow) -> Option<&str>| {
            let mut b = StringBuilder::new();
            rows.iter().for_each(|r| b.append_option(f(r)));
            Arc::new(b.finish()) as ArrayRef
        };
        let time = |f: &dyn Fn(&TouchpointRow) -> i64| {
            let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
            rows.iter().for_each(|r| b.append_value(f(r)));
            Arc::new(b.finish()) as ArrayRef
        };
        let mut duration = Int32Builder::new();
        let mut cost = Int64Builder::new();
        for r in &rows {
            duration.append_option(r.duration_secs);
            cost.append_option(r.cost_fen);
        }
        let ingested = self.ingested_at;
        let mut run = StringBuilder::new();
        rows.iter().for_each(|_| run.append_value(&self.run_id));
        let columns: Vec<ArrayRef> = vec![
            text(&|r| Some(r.channel.as_str())),
            text(&|r| Some(&r.event_id)),
            text(&|r| Some(r.event_type.as_str())),
            time(&|r| r.occurred_at.timestamp_micros()),
            text(&|r| r.phone_hash.as_deref()),
            text(&|r| r.order_channel.map(Channel::as_str)),
            text(&|r| r.order_id.as_deref()),
            text(&|r| r.unionid.as_deref()),
            text(&|r| r.external_userid.as_deref()),
            text(&|r| r.owner_userid.as_deref()),
            text(&|r| r.state.as_deref()),
            text(&|r| r.campaign.as_deref()),
            text(&|r| r.outcome.map(Outcome::as_str)),
            text(&|r| r.intent_level.as_deref()),
            Arc::new(duration.finish()),
            Arc::new(cost.finish()),
            text(&|r| Some(&r.source)),
            // The event itself is the version: a replay is the same row.
            time(&|r| r.occurred_at.timestamp_micros()),
            time(&|_| ingested),
            Arc::new(run.finish()),
        ];
        RecordBatch::try_new(touchpoints_schema(), columns)
            .expect("builder columns match the schema")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_batch_in_the_schema() {
        let mut b = TouchpointsBuilder::new("r1", Utc::now());
        b.append(TouchpointRow {
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
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.schema(), touchpoints_schema());
        assert!(b.is_empty());
    }
}
