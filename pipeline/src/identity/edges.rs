//! Edges: which identifiers one record puts side by side. Each edge names
//! its rule, the record it came from (table, key, time) and, for an order,
//! the keyed receiver hash that lets identity count the people behind a
//! shared phone.
//!
//! | rule | from | links |
//! |---|---|---|
//! | `order_buyer` | orders | the order ↔ its buyer id |
//! | `buyer_phone` | orders | the buyer id ↔ the receiver phone |
//! | `order_phone` | orders without a buyer id (Pinduoduo) | the order ↔ the receiver phone |
//! | `contact_unionid` | contacts | the contact or member ↔ its unionid |
//! | `contact_phone` | contacts | the contact or member ↔ its (remark) phone |
//! | `contact_state_order` | contacts | the contact ↔ the order its `state` names |
//! | `touch_contact_order` | touchpoints | the contact a card added ↔ the card's order |
//! | `touch_contact_phone` | touchpoints | the contact a call added ↔ the phone called |
//! | `touch_contact_unionid` | touchpoints | the contact ↔ a unionid |
//! | `touch_order_phone` | touchpoints | a card's order ↔ the phone it names, no contact known |
//! | `order_alone`, `contact_alone` | orders, contacts | a record that links nothing still names its identifier (a self-loop) |

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::config::StateRule;

/// Schema of `identity_edges`.
pub fn identity_edges_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            Field::new("a_type", DataType::Utf8, true),
            Field::new("a_value", DataType::Utf8, true),
            Field::new("b_type", DataType::Utf8, true),
            Field::new("b_value", DataType::Utf8, true),
            Field::new("rule", DataType::Utf8, true),
            Field::new("signal", DataType::Utf8, true),
            Field::new("source_table", DataType::Utf8, true),
            Field::new("record_key", DataType::Utf8, true),
            Field::new(
                "observed_at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]))
    })
    .clone()
}

/// The source tables identity reads, and the SQL of each one's record key.
pub const SOURCES: &[(&str, &str)] = &[
    ("orders", "channel || ':' || shop_id || ':' || order_id"),
    (
        "contacts",
        "channel || ':' || contact_id || ':' || owner_userid",
    ),
    ("touchpoints", "channel || ':' || event_id"),
];

/// The record-key SQL of a source table.
pub fn record_key_sql(table: &str) -> &'static str {
    SOURCES
        .iter()
        .find(|(t, _)| *t == table)
        .map(|(_, k)| *k)
        .expect("a known source table")
}

/// The node type of a contact row: WeCom contacts are `wecom_external_userid`,
/// CRM members `<channel>_member`.
pub fn contact_type_sql() -> &'static str {
    "CASE WHEN channel = 'wecom' THEN 'wecom_external_userid' ELSE channel || '_member' END"
}

/// `CASE` arms turning a `state` column into the order node it names, or
/// NULL when the rest of the state is not in the channel's order format.
pub fn state_order_sql(rules: &[StateRule], column: &str) -> String {
    if rules.is_empty() {
        return "CAST(NULL AS VARCHAR)".into();
    }
    let q = |s: &str| s.replace('\'', "''");
    let arms: Vec<String> = rules
        .iter()
        .map(|r| {
            let from = r.prefix.chars().count() + 1;
            format!(
                "WHEN starts_with({column}, '{p}') AND regexp_like(substr({column}, {from}), '{re}') THEN '{ch}:' || substr({column}, {from})",
                p = q(&r.prefix),
                re = q(&r.pattern()),
                ch = q(&r.channel),
            )
        })
        .collect();
    format!("CASE {} END", arms.join(" "))
}

/// What the edge query reads.
pub struct EdgeSources<'a> {
    /// The state rules.
    pub rules: &'a [StateRule],
    /// Source tables registered in the session (subset of [`SOURCES`]).
    pub tables: Vec<&'static str>,
    /// `orders` has a `receiver_hash` column (lakes from before it had none).
    pub orders_receiver: bool,
    /// `orders` has a `buyer_unionid` column (lakes from before it had none).
    pub orders_unionid: bool,
    /// Restrict each table to the record keys listed in a registered table
    /// `changed_<table>(record_key)`.
    pub only_changed: bool,
}

/// The SQL of every edge the registered source tables give.
pub fn edges_sql(src: &EdgeSources) -> String {
    let mut parts = Vec::new();
    let filter = |table: &str| {
        if src.only_changed {
            format!(
                " AND {} IN (SELECT record_key FROM changed_{table})",
                record_key_sql(table)
            )
        } else {
            String::new()
        }
    };
    // One SELECT of an edge kind, every column named.
    let edge = |a: [&str; 2],
                b: [&str; 2],
                rule: &str,
                signal: &str,
                table: &str,
                key: &str,
                at: &str,
                rest: &str| {
        format!(
            "SELECT {} AS a_type, {} AS a_value, {} AS b_type, {} AS b_value, '{rule}' AS rule, {signal} AS signal, '{table}' AS source_table, {key} AS record_key, {at} AS observed_at {rest}",
            a[0], a[1], b[0], b[1]
        )
    };
    let none = "CAST(NULL AS VARCHAR)";
    if src.tables.contains(&"orders") {
        let key = record_key_sql("orders");
        let order = ["'order'", "channel || ':' || order_id"];
        let buyer = ["channel || '_buyer'", "buyer_id"];
        let phone = ["'phone_hash'", "phone_hash"];
        let signal = if src.orders_receiver {
            "receiver_hash"
        } else {
            none
        };
        let from = format!("FROM orders WHERE true{}", filter("orders"));
        let e = |a, b, rule, cond: &str| {
            edge(
                a,
                b,
                rule,
                signal,
                "orders",
                key,
                "created_at",
                &format!("{from} AND {cond}"),
            )
        };
        parts.push(e(order, buyer, "order_buyer", "buyer_id IS NOT NULL"));
        parts.push(e(
            buyer,
            phone,
            "buyer_phone",
            "buyer_id IS NOT NULL AND phone_hash IS NOT NULL",
        ));
        parts.push(e(
            order,
            phone,
            "order_phone",
            "buyer_id IS NULL AND phone_hash IS NOT NULL",
        ));
        // A WeChat-bound shop's buyer carries the unionid a WeCom contact
        // of the same person carries.
        let unionid = ["'unionid'", "buyer_unionid"];
        if src.orders_unionid {
            parts.push(e(
                buyer,
                unionid,
                "buyer_unionid",
                "buyer_id IS NOT NULL AND buyer_unionid IS NOT NULL",
            ));
            parts.push(e(
                order,
                unionid,
                "order_unionid",
                "buyer_id IS NULL AND buyer_unionid IS NOT NULL",
            ));
        }
        parts.push(e(
            order,
            order,
            "order_alone",
            if src.orders_unionid {
                "buyer_id IS NULL AND phone_hash IS NULL AND buyer_unionid IS NULL"
            } else {
                "buyer_id IS NULL AND phone_hash IS NULL"
            },
        ));
    }
    if src.tables.contains(&"contacts") {
        let ct = contact_type_sql();
        let contact = [ct, "contact_id"];
        let key = record_key_sql("contacts");
        let at = "COALESCE(created_at, updated_at)";
        let f = filter("contacts");
        let cases = state_order_sql(src.rules, "state");
        let e = |b, rule, cond: &str| {
            edge(
                contact,
                b,
                rule,
                none,
                "contacts",
                key,
                at,
                &format!("FROM contacts WHERE {cond}{f}"),
            )
        };
        parts.push(e(
            ["'unionid'", "unionid"],
            "contact_unionid",
            "unionid IS NOT NULL",
        ));
        parts.push(e(
            ["'phone_hash'", "phone_hash"],
            "contact_phone",
            "phone_hash IS NOT NULL",
        ));
        parts.push(format!(
            "SELECT * FROM ({}) WHERE b_value IS NOT NULL",
            e(
                ["'order'", &cases],
                "contact_state_order",
                "state IS NOT NULL"
            )
        ));
        parts.push(e(
            contact,
            "contact_alone",
            &format!("unionid IS NULL AND phone_hash IS NULL AND ({cases}) IS NULL"),
        ));
    }
    if src.tables.contains(&"touchpoints") {
        // A bridge event links what it knows: the contact it added to the
        // order its card names (or its state names), to the phone it
        // called, to a unionid. An event that knows only a phone adds no
        // node: it is counted through the phone.
        let state_order = state_order_sql(src.rules, "state");
        let t = format!(
            "SELECT CASE WHEN order_id IS NOT NULL AND order_channel IS NOT NULL THEN order_channel || ':' || order_id ELSE {state_order} END AS order_node, \
             external_userid, phone_hash, unionid, {key} AS record_key, occurred_at FROM touchpoints WHERE true{f}",
            key = record_key_sql("touchpoints"),
            f = filter("touchpoints"),
        );
        let contact = ["'wecom_external_userid'", "external_userid"];
        let order = ["'order'", "order_node"];
        let e = |a, b, rule, cond: &str| {
            edge(
                a,
                b,
                rule,
                none,
                "touchpoints",
                "record_key",
                "occurred_at",
                &format!("FROM ({t}) WHERE {cond}"),
            )
        };
        parts.push(e(
            contact,
            order,
            "touch_contact_order",
            "external_userid IS NOT NULL AND order_node IS NOT NULL",
        ));
        parts.push(e(
            contact,
            ["'phone_hash'", "phone_hash"],
            "touch_contact_phone",
            "external_userid IS NOT NULL AND phone_hash IS NOT NULL",
        ));
        parts.push(e(
            contact,
            ["'unionid'", "unionid"],
            "touch_contact_unionid",
            "external_userid IS NOT NULL AND unionid IS NOT NULL",
        ));
        parts.push(e(
            order,
            ["'phone_hash'", "phone_hash"],
            "touch_order_phone",
            "external_userid IS NULL AND order_node IS NOT NULL AND phone_hash IS NOT NULL",
        ));
    }
    if parts.is_empty() {
        return edge(
            [none, none],
            [none, none],
            "",
            none,
            "",
            none,
            "CAST(NULL AS TIMESTAMP)",
            "WHERE false",
        );
    }
    parts.join(" UNION ALL ")
}
