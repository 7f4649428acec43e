//! `retention`, `retention_months` and `repurchase_intervals`: how monthly
//! cohorts of new buyers come back, and how many days pass between a
//! customer's orders (to set the recall window from the brand's own data).

use super::sql::{day_of, month_number, period_of, text_literal, Reference};
use super::{MartsConfig, Present};

/// The repurchase windows of `retention`, in days.
const WINDOWS: [i64; 4] = [30, 90, 180, 365];

/// The customers' first and second paid orders (by creation time, up to
/// the reference day): `firsts` (unified_id, first_channel, first_at,
/// first_day, cohort_month) and `seconds` (unified_id, days_to_second).
fn firsts_ctes(reference: &Reference) -> String {
    let covers = reference.covers("created_at");
    format!(
        "firsts AS (
           SELECT unified_id, channel AS first_channel, created_at AS first_at,
                  {first_day} AS first_day, {cohort} AS cohort_month,
                  {month} AS first_month
           FROM customer_orders WHERE paid_seq = 1 AND {covers}
         ),
         seconds AS (
           SELECT unified_id, days_since_previous AS days_to_second
           FROM customer_orders WHERE paid_seq = 2 AND {covers}
         )",
        first_day = day_of("created_at"),
        cohort = period_of("month", "created_at"),
        month = month_number("created_at"),
    )
}

/// The `retention` query over `customer_orders`.
pub fn retention_query(present: &Present, cfg: &MartsConfig) -> Option<String> {
    present
        .has("customer_orders")
        .then(|| retention_sql(&Reference::of(cfg)))
}

/// The `retention` query: one row per cohort month (the Beijing month of
/// a customer's first paid order) and first channel (that order's
/// channel), and one per cohort month with `first_channel = 'all'`.
///
/// Columns: `cohort_month` (its first day), `first_channel`,
/// `cohort_size`; for N in 30, 90, 180, 365: `repurchased_Nd` (customers
/// whose second paid order came within N whole days of the first) and
/// `repurchase_rate_Nd` (that ÷ the cohort size), both null until every
/// member of the cohort has had N days by the reference day.
fn retention_sql(reference: &Reference) -> String {
    let d = reference.day;
    let mut counts = Vec::new();
    let mut outputs = Vec::new();
    for n in WINDOWS {
        counts.push(format!(
            "count(s.days_to_second) FILTER (WHERE s.days_to_second <= {n}) AS r{n}"
        ));
        outputs.push(format!(
            "CASE WHEN last_first_day + {n} <= {d} THEN CAST(r{n} AS BIGINT) END AS repurchased_{n}d,
             CASE WHEN last_first_day + {n} <= {d} THEN CAST(r{n} AS DOUBLE) / cohort_size END AS repurchase_rate_{n}d"
        ));
    }
    let counts = counts.join(", ");
    let outputs = outputs.join(", ");
    format!(
        "WITH {firsts},
         grouped AS (
           SELECT f.cohort_month, COALESCE(f.first_channel, 'all') AS first_channel,
                  CAST(count(*) AS BIGINT) AS cohort_size, max(f.first_day) AS last_first_day,
                  {counts}
           FROM firsts f LEFT JOIN seconds s ON s.unified_id = f.unified_id
           GROUP BY GROUPING SETS ((f.cohort_month, f.first_channel), (f.cohort_month))
         )
         SELECT cohort_month, first_channel, cohort_size, {outputs}
         FROM grouped",
        firsts = firsts_ctes(reference),
    )
}

/// The `retention_months` query over `customer_orders`.
pub fn retention_months_query(present: &Present, cfg: &MartsConfig) -> Option<String> {
    present
        .has("customer_orders")
        .then(|| retention_months_sql(&Reference::of(cfg)))
}

/// The `retention_months` query: the month-N retention heat map. One row
/// per cohort month, first channel (and `all`) and month after the cohort
/// (0 = the cohort month itself, up to the reference day's month; months
/// without a buyer have a row with 0).
///
/// Columns: `cohort_month`, `first_channel`, `months_after`,
/// `cohort_size`, `active_customers` (cohort members with a paid order
/// created in that Beijing calendar month), `retention` (that ÷ the cohort
/// size; 1 in month 0).
fn retention_months_sql(reference: &Reference) -> String {
    let covers = reference.covers("o.created_at");
    let month = month_number("o.created_at");
    let ref_month = month_number(&super::sql::timestamp_literal(reference.end_us - 1));
    format!(
        "WITH {firsts},
         activity AS (
           SELECT DISTINCT f.unified_id, f.cohort_month, f.first_channel,
                  {month} - f.first_month AS months_after
           FROM firsts f JOIN customer_orders o ON o.unified_id = f.unified_id
           WHERE o.is_paid AND {covers}
         ),
         active AS (
           SELECT cohort_month, COALESCE(first_channel, 'all') AS first_channel, months_after,
                  count(*) AS active_customers
           FROM activity
           GROUP BY GROUPING SETS ((cohort_month, first_channel, months_after), (cohort_month, months_after))
         ),
         cohorts AS (
           SELECT cohort_month, COALESCE(first_channel, 'all') AS first_channel,
                  count(*) AS cohort_size, {ref_month} - min(first_month) AS last_month
           FROM firsts
           GROUP BY GROUPING SETS ((cohort_month, first_channel), (cohort_month))
         ),
         grid AS (
           SELECT cohort_month, first_channel, cohort_size,
                  unnest(range(0, last_month + 1)) AS months_after
           FROM cohorts
         )
         SELECT g.cohort_month, g.first_channel, CAST(g.months_after AS BIGINT) AS months_after,
                CAST(g.cohort_size AS BIGINT) AS cohort_size,
                CAST(COALESCE(a.active_customers, 0) AS BIGINT) AS active_customers,
                CAST(COALESCE(a.active_customers, 0) AS DOUBLE) / g.cohort_size AS retention
         FROM grid g LEFT JOIN active a ON a.cohort_month = g.cohort_month
              AND a.first_channel = g.first_channel AND a.months_after = g.months_after",
        firsts = firsts_ctes(reference),
    )
}

/// The `repurchase_intervals` query over `customer_orders` and, when
/// categories are configured, `order_lines`.
pub fn repurchase_intervals_query(present: &Present, cfg: &MartsConfig) -> Option<String> {
    present
        .has("customer_orders")
        .then(|| repurchase_intervals_sql(&Reference::of(cfg), cfg, present.has("order_lines")))
}

/// Width of an interval band, in days.
const BAND_DAYS: i64 = 30;

/// Bands past this many days are one open band.
const LAST_BAND_START: i64 = 360;

/// An order's category: `[marts.categories]` matched against the title of
/// its largest line (the first category, by name, with a word the title
/// contains), `other` when none matches; `all` with no categories.
fn category_sql(cfg: &MartsConfig, has_lines: bool) -> (String, String) {
    if cfg.categories.is_empty() || !has_lines {
        return (String::new(), "'all'".to_string());
    }
    let mut arms = Vec::new();
    for (category, words) in &cfg.categories {
        let any = words
            .iter()
            .map(|w| format!("strpos(l.title, {}) > 0", text_literal(w)))
            .collect::<Vec<_>>()
            .join(" OR ");
        arms.push(format!("WHEN {any} THEN {}", text_literal(category)));
    }
    // The largest line's title: the greatest of amount (19 fixed-width
    // digits) then title, a native string max per order.
    let cte = format!(
        "main_line AS (
           SELECT l.channel, l.shop_id, l.order_id,
                  substr(max(lpad(CAST(greatest(l.amount_fen, 0) AS VARCHAR), 19, '0') || COALESCE(l.title, '')), 20) AS title
           FROM order_lines l GROUP BY l.channel, l.shop_id, l.order_id
         ),
         categorized AS (
           SELECT channel, shop_id, order_id, CASE {} ELSE 'other' END AS category
           FROM main_line l
         ),",
        arms.join(" ")
    );
    (cte, "COALESCE(k.category, 'other')".to_string())
}

/// The `repurchase_intervals` query: every paid order after a customer's
/// first (created by the reference day) is one interval, the whole days
/// since that customer's previous paid order, counted under the channel
/// and category of the later order. One row per channel (and `all`),
/// category (and `all`) and 30-day band.
///
/// Columns: `channel`, `category`, `band_start_days`, `band_end_days`
/// (inclusive; null for the open band from 360 days), `intervals`,
/// `share` (of the channel × category's intervals) and
/// `cumulative_share` (of intervals up to this band's end); and, of the
/// channel × category as a whole (the same on each of its bands),
/// `median_days`, `p75_days`, `p90_days`.
fn repurchase_intervals_sql(reference: &Reference, cfg: &MartsConfig, has_lines: bool) -> String {
    let covers = reference.covers("o.created_at");
    let (category_cte, category) = category_sql(cfg, has_lines);
    let join = if category_cte.is_empty() {
        String::new()
    } else {
        "LEFT JOIN categorized k ON k.channel = o.channel AND k.shop_id = o.shop_id AND k.order_id = o.order_id".to_string()
    };
    let band = format!(
        "least(o.days_since_previous / {BAND_DAYS}, {}) * {BAND_DAYS}",
        LAST_BAND_START / BAND_DAYS
    );
    // Without categories every order is in `all`: no category dimension
    // (it would repeat each channel's rows).
    let (band_sets, stat_sets, category_out) = if category_cte.is_empty() {
        ("(channel, band), (band)", "(channel), ()", "'all'")
    } else {
        (
            "(channel, category, band), (channel, band), (category, band), (band)",
            "(channel, category), (channel), (category), ()",
            "COALESCE(category, 'all')",
        )
    };
    format!(
        "WITH {category_cte}
         repeats AS (
           SELECT o.channel, {category} AS category, o.days_since_previous AS days, {band} AS band
           FROM customer_orders o {join}
           WHERE o.days_since_previous IS NOT NULL AND {covers}
         ),
         banded AS (
           SELECT COALESCE(channel, 'all') AS channel, {category_out} AS category, band,
                  count(*) AS intervals
           FROM repeats
           GROUP BY GROUPING SETS ({band_sets})
         ),
         stats AS (
           SELECT COALESCE(channel, 'all') AS channel, {category_out} AS category,
                  count(*) AS total,
                  approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY days) AS median_days,
                  approx_percentile_cont(0.75) WITHIN GROUP (ORDER BY days) AS p75_days,
                  approx_percentile_cont(0.9) WITHIN GROUP (ORDER BY days) AS p90_days
           FROM repeats
           GROUP BY GROUPING SETS ({stat_sets})
         )
         SELECT b.channel, b.category, CAST(b.band AS BIGINT) AS band_start_days,
                CASE WHEN b.band < {LAST_BAND_START} THEN CAST(b.band + {BAND_DAYS} - 1 AS BIGINT) END AS band_end_days,
                CAST(b.intervals AS BIGINT) AS intervals,
                CAST(b.intervals AS DOUBLE) / s.total AS share,
                CAST(sum(b.intervals) OVER (PARTITION BY b.channel, b.category ORDER BY b.band) AS DOUBLE) / s.total AS cumulative_share,
                CAST(s.median_days AS DOUBLE) AS median_days,
                CAST(s.p75_days AS DOUBLE) AS p75_days,
                CAST(s.p90_days AS DOUBLE) AS p90_days
         FROM banded b JOIN stats s ON s.channel = b.channel AND s.category = b.category"
    )
}
