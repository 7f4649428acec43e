//! SQL pieces the operators' marts share: Beijing days and months, the
//! reference day, who holds which customer in WeCom, which customer a
//! touchpoint reached.

use chrono::NaiveDate;

use super::MartsConfig;

/// Microseconds in a day.
pub const DAY_US: i64 = 86_400_000_000;

/// Microseconds Beijing time is ahead of UTC.
const BEIJING_US: i64 = 8 * 3_600_000_000;

/// The Beijing day number (days since 1970-01-01) of a timestamp column.
pub fn day_of(ts: &str) -> String {
    format!("((CAST({ts} AS BIGINT) + {BEIJING_US}) / {DAY_US})")
}

/// The first day (a `DATE`) of the Beijing month or ISO week of a
/// timestamp column: `period` is `month` or `week`.
pub fn period_of(period: &str, ts: &str) -> String {
    format!("CAST(date_trunc('{period}', {ts} + INTERVAL '8 hours') AS DATE)")
}

/// The Beijing month number (`year × 12 + month`) of a timestamp column.
pub fn month_number(ts: &str) -> String {
    format!(
        "(CAST(date_part('year', {ts} + INTERVAL '8 hours') AS BIGINT) * 12 \
         + CAST(date_part('month', {ts} + INTERVAL '8 hours') AS BIGINT))"
    )
}

/// A timestamp literal of microseconds since the epoch (UTC).
pub fn timestamp_literal(us: i64) -> String {
    format!("arrow_cast({us}, 'Timestamp(Microsecond, Some(\"UTC\"))')")
}

/// A string literal (single quotes doubled).
pub fn text_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The reference day of a mart build: everything up to its end counts;
/// later records (a lake pulled after `as_of`) do not.
#[derive(Debug, Clone, Copy)]
pub struct Reference {
    /// The Beijing day number.
    pub day: i64,
    /// The first microsecond after the day (UTC microseconds).
    pub end_us: i64,
}

impl Reference {
    /// The reference day of `cfg`.
    pub fn of(cfg: &MartsConfig) -> Reference {
        Reference::on(cfg.reference_day())
    }

    /// The reference day `day`.
    pub fn on(day: NaiveDate) -> Reference {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date");
        let day = (day - epoch).num_days();
        Reference {
            day,
            end_us: (day + 1) * DAY_US - BEIJING_US,
        }
    }

    /// SQL: `ts` falls on or before the reference day.
    pub fn covers(&self, ts: &str) -> String {
        format!("{ts} < {}", timestamp_literal(self.end_us))
    }
}

/// A CTE list defining `relationships`: one row per WeCom contact
/// relationship (a customer held by a rep) added by the reference day:
/// `unified_id`, `external_userid`, `owner_userid`, `added_at` (the
/// contact's add time, else when it was first seen) and `deleted_at` (the
/// first deletion by either side after the add, by the reference day; null
/// while held). Reads `identity_map` and, when present, `contacts`;
/// deletions come from `touchpoints` when `has_touchpoints`.
pub fn relationships_ctes(
    reference: &Reference,
    has_contacts: bool,
    has_touchpoints: bool,
) -> String {
    if !has_contacts {
        return format!(
            "relationships AS (
               SELECT CAST(NULL AS VARCHAR) AS unified_id, CAST(NULL AS VARCHAR) AS external_userid,
                      CAST(NULL AS VARCHAR) AS owner_userid, {TS_NULL} AS added_at, {TS_NULL} AS deleted_at
               WHERE false
             )"
        );
    }
    let added = "COALESCE(c.created_at, c.updated_at)";
    let deletions = if has_touchpoints {
        format!(
            "SELECT external_userid, owner_userid, occurred_at FROM touchpoints
             WHERE event_type IN ('friend_deleted', 'deleted_by_customer')
               AND external_userid IS NOT NULL AND owner_userid IS NOT NULL AND {}",
            reference.covers("occurred_at")
        )
    } else {
        format!(
            "SELECT CAST(NULL AS VARCHAR) AS external_userid, CAST(NULL AS VARCHAR) AS owner_userid, \
             {TS_NULL} AS occurred_at WHERE false"
        )
    };
    format!(
        "held AS (
           SELECT m.unified_id, c.contact_id AS external_userid, c.owner_userid, {added} AS added_at
           FROM contacts c
           JOIN identity_map m ON m.id_type = 'wecom_external_userid' AND m.id_value = c.contact_id
           WHERE c.channel = 'wecom' AND c.owner_userid <> '' AND m.unified_id IS NOT NULL
             AND {covered}
         ),
         deletions AS ({deletions}),
         relationships AS (
           SELECT h.unified_id, h.external_userid, h.owner_userid, h.added_at,
                  min(d.occurred_at) AS deleted_at
           FROM held h
           LEFT JOIN deletions d ON d.external_userid = h.external_userid
                AND d.owner_userid = h.owner_userid AND d.occurred_at >= h.added_at
           GROUP BY h.unified_id, h.external_userid, h.owner_userid, h.added_at
         )",
        covered = reference.covers(added),
    )
}

/// A typed null timestamp.
pub const TS_NULL: &str = "arrow_cast(NULL, 'Timestamp(Microsecond, Some(\"UTC\"))')";

/// A CTE defining `reached`: which unified customer each touchpoint
/// reached (through its phone, its external_userid or its order; one row
/// per touchpoint and customer), with the touchpoint's `channel` (the
/// bridge), `event_id`, `event_type`, `campaign`, `occurred_at` and
/// `external_userid`. Reads the `touchpoints` that `filter` (an SQL
/// condition on `t`) keeps (none when `has_touchpoints` is false) and
/// `identity_map`.
pub fn reached_cte(has_touchpoints: bool, filter: &str) -> String {
    let cols = "t.channel, t.event_id, t.event_type, t.campaign, t.occurred_at, t.external_userid";
    if !has_touchpoints {
        return format!(
            "reached AS (
               SELECT CAST(NULL AS VARCHAR) AS channel, CAST(NULL AS VARCHAR) AS event_id,
                      CAST(NULL AS VARCHAR) AS event_type, CAST(NULL AS VARCHAR) AS campaign,
                      {TS_NULL} AS occurred_at, CAST(NULL AS VARCHAR) AS external_userid,
                      CAST(NULL AS VARCHAR) AS unified_id
               WHERE false
             )"
        );
    }
    // Touchpoints first: the side a hash join builds on.
    format!(
        "reached AS (
           SELECT {cols}, m.unified_id FROM (SELECT * FROM touchpoints t WHERE {filter}) t
             JOIN identity_map m ON m.id_type = 'phone_hash' AND m.id_value = t.phone_hash
           UNION
           SELECT {cols}, m.unified_id FROM (SELECT * FROM touchpoints t WHERE {filter}) t
             JOIN identity_map m ON m.id_type = 'wecom_external_userid' AND m.id_value = t.external_userid
           UNION
           SELECT {cols}, m.unified_id FROM (SELECT * FROM touchpoints t WHERE {filter} AND t.order_id IS NOT NULL) t
             JOIN identity_map m ON m.id_type = 'order' AND m.id_value = t.order_channel || ':' || t.order_id
         )"
    )
}

/// The private channels (the brand's own shops), as an SQL list.
pub const PRIVATE_CHANNELS: &str = "('youzan', 'wechat_shop')";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_day_ends_at_beijing_midnight() {
        let r = Reference::on(NaiveDate::from_ymd_opt(2026, 6, 30).unwrap());
        // 2026-07-01 00:00 +08:00 is 2026-06-30 16:00 UTC.
        let end = chrono::DateTime::parse_from_rfc3339("2026-06-30T16:00:00Z").unwrap();
        assert_eq!(r.end_us, end.timestamp_micros());
        assert_eq!(r.day, 20634);
    }
}
