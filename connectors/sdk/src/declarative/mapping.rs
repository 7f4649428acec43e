//! The declarative mapping: which column feeds which canonical field, how
//! the cell is parsed, and how platform / vendor values map into our
//! vocabularies. A row becomes an `orders`, `contacts` or `touchpoints` row,
//! or a rejection with the reason.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use quanyu_schemas::{
    normalize_phone, Bridge, Channel, ContactRow, OrderRow, OrderStatus, Outcome, PhoneError,
    PiiHasher, TableKind, TouchEvent, TouchpointRow,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::cells::{parse_datetime, parse_duration, parse_int, parse_yuan};

/// How a cell is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parser {
    /// Text as is (trimmed).
    #[default]
    Text,
    /// An integer.
    Int,
    /// Yuan (`188.50`, `¥1,288`) → fen.
    Yuan,
    /// Already fen.
    Fen,
    /// A date/time in Beijing time (many Chinese formats, unix, Excel serials).
    Datetime,
    /// A duration (`83`, `1分23秒`, `00:01:23`) → seconds.
    Duration,
    /// A mobile number: hashed with the lake key (masked numbers stay masked).
    Phone,
    /// Comma / semicolon / 、 separated list (tags).
    List,
}

/// Where one canonical field comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ColumnSpec {
    /// Just the header name (parsed per the field's natural type).
    Name(String),
    /// Header, parser and value map.
    Full {
        /// The header name.
        column: String,
        /// The parser (default: the field's natural type).
        #[serde(default)]
        parse: Option<Parser>,
        /// Vendor value → our value (`已接通` → `connected`); `*` is the
        /// fallback for unlisted values, else an unlisted value rejects the row.
        #[serde(default)]
        map: BTreeMap<String, String>,
    },
}

impl ColumnSpec {
    fn column(&self) -> &str {
        match self {
            ColumnSpec::Name(c) | ColumnSpec::Full { column: c, .. } => c,
        }
    }
}

/// The longest text a canonical field takes (ids, campaigns, states): a
/// 10 MB cell is a broken export, and one such row would not fit the
/// sort of a refresh at a small memory budget.
pub const MAX_TEXT_BYTES: usize = 4096;

/// How a call / SMS is billed when the log has no cost column.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostRule {
    /// Fen per touchpoint.
    #[serde(default)]
    pub per_event_fen: i64,
    /// Fen per started minute of `duration_secs`.
    #[serde(default)]
    pub per_minute_fen: i64,
}

/// The natural parser of each canonical field.
fn natural(table: TableKind, field: &str) -> Option<Parser> {
    use Parser::*;
    Some(match (table, field) {
        (_, "phone") => Phone,
        (_, "created_at" | "paid_at" | "updated_at" | "occurred_at") => Datetime,
        (TableKind::Orders, "amount") => Yuan,
        (TableKind::Orders, "amount_fen") => Fen,
        (TableKind::Orders, "item_count") => Int,
        (
            TableKind::Orders,
            "channel" | "shop_id" | "order_id" | "buyer_id" | "status" | "platform_status"
            | "province" | "city" | "receiver_name" | "receiver_address",
        ) => Text,
        (TableKind::Contacts, "tags") => List,
        (TableKind::Contacts, "add_way") => Int,
        (TableKind::Contacts, "channel" | "contact_id" | "unionid" | "owner_userid" | "state") => {
            Text
        }
        (TableKind::Touchpoints, "duration_secs") => Duration,
        (TableKind::Touchpoints, "cost") => Yuan,
        (TableKind::Touchpoints, "cost_fen") => Fen,
        (
            TableKind::Touchpoints,
            "channel" | "event_id" | "event_type" | "order_channel" | "order_id" | "unionid"
            | "external_userid" | "owner_userid" | "state" | "campaign" | "outcome"
            | "intent_level",
        ) => Text,
        _ => return None,
    })
}

/// A parsed cell.
#[derive(Debug, Clone)]
enum Value {
    Text(String),
    Int(i64),
    Time(DateTime<Utc>),
    /// (hash, masked) — either may be missing.
    Phone(Option<String>, Option<String>),
    List(Vec<String>),
}

/// One bad value of an optional field (an invalid phone): the row lands
/// without it and the problem is quarantined with the value hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// The canonical field.
    pub field: String,
    /// The raw cell (never stored as is: hash it).
    pub value: String,
    /// Why it was dropped.
    pub reason: String,
}

/// A compiled mapping for one file's header.
pub struct RowMapper {
    table: TableKind,
    /// (field, column index, parser, value map)
    fields: Vec<(String, usize, Parser, BTreeMap<String, String>)>,
    constants: BTreeMap<String, String>,
    cost: Option<CostRule>,
    hasher: PiiHasher,
}

/// A mapping problem found from the header (the whole file is refused).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MappingError(pub String);

/// A header row as an error may show it: when the first row is data (a
/// file without a header), cells holding numbers, mail addresses or long
/// text (more than 16 characters) are not repeated.
fn header_for_errors(header: &[String]) -> String {
    let plausible = |h: &str| {
        let digits = h
            .chars()
            .filter(|c| c.is_ascii_digit() || ('０'..='９').contains(c))
            .count();
        h.chars().count() <= 16 && digits < 5 && !h.contains('@')
    };
    let shown: Vec<&str> = header
        .iter()
        .take(40)
        .map(|h| {
            if plausible(h) {
                h.as_str()
            } else {
                "<value not shown>"
            }
        })
        .collect();
    let mut out = shown.join(", ");
    if header.len() > shown.len() {
        out.push_str(&format!(", ... ({} columns)", header.len()));
    }
    if header.iter().any(|h| !plausible(h)) {
        out.push_str(" (the first row looks like data: does the file have a header row?)");
    }
    out
}

impl RowMapper {
    /// Compile `columns` against a file's `header`.
    pub fn new(
        table: TableKind,
        columns: &BTreeMap<String, ColumnSpec>,
        constants: &BTreeMap<String, String>,
        cost: Option<CostRule>,
        header: &[String],
        hasher: PiiHasher,
    ) -> Result<Self, MappingError> {
        let norm = |s: &str| s.trim().trim_start_matches('\u{feff}').to_string();
        let header: Vec<String> = header.iter().map(|h| norm(h)).collect();
        let mut fields = Vec::new();
        for (field, spec) in columns {
            let Some(nat) = natural(table, field) else {
                return Err(MappingError(format!(
                    "{} has no field {field:?} (see the mapping docs for its fields)",
                    table.name()
                )));
            };
            let col = norm(spec.column());
            let idx = header.iter().position(|h| *h == col).ok_or_else(|| {
                MappingError(format!(
                    "column {col:?} (for {field}) is not in the header: {}",
                    header_for_errors(&header)
                ))
            })?;
            let twice: Vec<usize> = header
                .iter()
                .enumerate()
                .filter(|(_, h)| **h == col)
                .map(|(i, _)| i + 1)
                .collect();
            if twice.len() > 1 {
                return Err(MappingError(format!(
                    "column {col:?} (for {field}) appears {} times in the header (columns {}): which one is meant is not clear",
                    twice.len(),
                    twice.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
                )));
            }
            let (parser, map) = match spec {
                ColumnSpec::Name(_) => (nat, BTreeMap::new()),
                ColumnSpec::Full { parse, map, .. } => (parse.unwrap_or(nat), map.clone()),
            };
            fields.push((field.clone(), idx, parser, map));
        }
        for field in constants.keys() {
            if natural(table, field).is_none() {
                return Err(MappingError(format!(
                    "{} has no field {field:?}",
                    table.name()
                )));
            }
        }
        Ok(RowMapper {
            table,
            fields,
            constants: constants.clone(),
            cost,
            hasher,
        })
    }

    fn parse(&self, parser: Parser, raw: &str) -> Result<Value, String> {
        Ok(match parser {
            Parser::Text if raw.len() > MAX_TEXT_BYTES => {
                return Err(format!(
                    "{} bytes of text (a field holds at most {MAX_TEXT_BYTES})",
                    raw.len()
                ))
            }
            Parser::Text => Value::Text(raw.to_string()),
            Parser::Int => Value::Int(parse_int(raw)?),
            Parser::Yuan => Value::Int(parse_yuan(raw)?),
            Parser::Fen => Value::Int(parse_int(raw)?),
            Parser::Datetime => Value::Time(parse_datetime(raw)?),
            Parser::Duration => Value::Int(parse_duration(raw)?),
            Parser::Phone => match normalize_phone(raw) {
                Ok(p) => Value::Phone(Some(self.hasher.phone(&p)), Some(p.masked())),
                Err(PhoneError::Masked) => Value::Phone(None, Some(raw.to_string())),
                Err(e) => return Err(e.to_string()),
            },
            Parser::List => Value::List(
                raw.split([',', ';', '，', '；', '、'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
        })
    }

    /// Map one row: the canonical row and the optional fields dropped for a
    /// bad value, or why the whole row is rejected.
    pub fn map(&self, cells: &[String]) -> Result<(Mapped, Vec<FieldProblem>), String> {
        let mut problems = Vec::new();
        let mapped = self.map_row(cells, &mut problems)?;
        Ok((mapped, problems))
    }

    fn map_row(
        &self,
        cells: &[String],
        problems: &mut Vec<FieldProblem>,
    ) -> Result<Mapped, String> {
        if cells.iter().any(|c| c.contains('\u{fffd}')) {
            return Err("the row has bytes that are not valid in the file's encoding".into());
        }
        let mut values: HashMap<&str, Value> = HashMap::new();
        for (field, text) in &self.constants {
            let parser = natural(self.table, field).unwrap_or_default();
            values.insert(
                field,
                self.parse(parser, text)
                    .map_err(|e| format!("{field}: {e}"))?,
            );
        }
        for (field, idx, parser, map) in &self.fields {
            let Some(raw) = cells.get(*idx) else {
                return Err(format!(
                    "the row has {} cells, the header more (column for {field} missing)",
                    cells.len()
                ));
            };
            if raw.is_empty() {
                continue;
            }
            let raw = if map.is_empty() {
                raw.as_str()
            } else {
                match map.get(raw.as_str()).or_else(|| map.get("*")) {
                    Some(v) => v.as_str(),
                    None => return Err(format!("{field}: value {raw:?} is not in the mapping")),
                }
            };
            match self.parse(*parser, raw) {
                Ok(v) => {
                    values.insert(field, v);
                }
                // An identifier that is not one: the row keeps its others.
                Err(e) if *parser == Parser::Phone => problems.push(FieldProblem {
                    field: field.clone(),
                    value: raw.to_string(),
                    reason: e,
                }),
                Err(e) => return Err(format!("{field}: {e}")),
            }
        }
        let digest = || {
            let mut h = Sha256::new();
            for c in cells {
                h.update(c.as_bytes());
                h.update([0x1f]);
            }
            hex::encode(&h.finalize()[..12])
        };
        let v = Fields(values);
        match self.table {
            TableKind::Orders => v.order(&self.hasher).map(Mapped::Order),
            TableKind::Contacts => v.contact().map(Mapped::Contact),
            TableKind::Touchpoints => v.touchpoint(self.cost, digest).map(Mapped::Touchpoint),
            other => Err(format!("files are not imported into {}", other.name())),
        }
    }

    /// The record key of a row, for quarantine (best effort).
    pub fn key_of(&self, cells: &[String]) -> Option<String> {
        let key_field = match self.table {
            TableKind::Orders => "order_id",
            TableKind::Contacts => "contact_id",
            TableKind::Touchpoints => "event_id",
            _ => return None,
        };
        self.fields
            .iter()
            .find(|f| f.0 == key_field)
            .and_then(|f| cells.get(f.1))
            .filter(|s| !s.is_empty())
            .cloned()
    }
}

/// A mapped row.
#[derive(Debug, Clone)]
pub enum Mapped {
    /// An `orders` row.
    Order(OrderRow),
    /// A `contacts` row.
    Contact(ContactRow),
    /// A `touchpoints` row.
    Touchpoint(TouchpointRow),
}

impl Mapped {
    /// A page's mapped rows as one batch of the table they map into (a
    /// mapping maps into one table), `None` for a page without rows.
    pub fn batch(
        rows: impl IntoIterator<Item = Mapped>,
        ctx: &crate::PullContext,
    ) -> Option<arrow::array::RecordBatch> {
        let (mut orders, mut contacts, mut events) = (Vec::new(), Vec::new(), Vec::new());
        for row in rows {
            match row {
                Mapped::Order(o) => orders.push(o),
                Mapped::Contact(c) => contacts.push(c),
                Mapped::Touchpoint(t) => events.push(t),
            }
        }
        let tables = [orders.len(), contacts.len(), events.len()];
        debug_assert!(
            tables.iter().filter(|n| **n > 0).count() <= 1,
            "a mapping maps into one table: {tables:?}"
        );
        let (run, at) = (ctx.run_id.as_str(), ctx.ingested_at);
        [
            (!orders.is_empty()).then(|| OrderRow::batch(&orders, run, at)),
            (!contacts.is_empty()).then(|| ContactRow::batch(&contacts, run, at)),
            (!events.is_empty()).then(|| TouchpointRow::batch(&events, run, at)),
        ]
        .into_iter()
        .flatten()
        .next()
    }
}

struct Fields<'a>(HashMap<&'a str, Value>);

impl Fields<'_> {
    fn text(&self, f: &str) -> Option<String> {
        match self.0.get(f)? {
            Value::Text(s) => Some(s.clone()).filter(|s| !s.is_empty()),
            Value::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }
    fn need_text(&self, f: &str) -> Result<String, String> {
        self.text(f).ok_or_else(|| format!("{f} is missing"))
    }
    fn int(&self, f: &str) -> Option<i64> {
        match self.0.get(f)? {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    fn time(&self, f: &str) -> Option<DateTime<Utc>> {
        match self.0.get(f)? {
            Value::Time(t) => Some(*t),
            _ => None,
        }
    }
    fn phone(&self) -> (Option<String>, Option<String>) {
        match self.0.get("phone") {
            Some(Value::Phone(h, m)) => (h.clone(), m.clone()),
            _ => (None, None),
        }
    }
    fn parsed<T: std::str::FromStr<Err = String>>(&self, f: &str) -> Result<Option<T>, String> {
        self.text(f)
            .map(|t| t.parse::<T>())
            .transpose()
            .map_err(|e| format!("{f}: {e}"))
    }

    fn order(&self, hasher: &PiiHasher) -> Result<OrderRow, String> {
        let channel: Channel = self.parsed("channel")?.ok_or("channel is missing")?;
        let status: OrderStatus = self.parsed("status")?.ok_or("status is missing")?;
        let created_at = self.time("created_at").ok_or("created_at is missing")?;
        let (phone_hash, phone_masked) = self.phone();
        let amount_fen = self
            .int("amount_fen")
            .or_else(|| self.int("amount"))
            .ok_or("amount is missing")?;
        Ok(OrderRow {
            channel,
            shop_id: self.need_text("shop_id")?,
            order_id: self.need_text("order_id")?,
            buyer_id: self.text("buyer_id"),
            phone_hash,
            phone_masked,
            platform_status: self
                .text("platform_status")
                .unwrap_or_else(|| status.as_str().into()),
            status,
            amount_fen,
            item_count: self
                .int("item_count")
                .unwrap_or(1)
                .clamp(0, i64::from(i32::MAX)) as i32,
            province: self.text("province"),
            city: self.text("city"),
            created_at,
            paid_at: self.time("paid_at"),
            updated_at: self
                .time("updated_at")
                .or(self.time("paid_at"))
                .unwrap_or(created_at),
            buyer_unionid: None,
            receiver_hash: hasher.receiver(
                self.text("receiver_name").as_deref(),
                self.text("receiver_address").as_deref(),
            ),
        })
    }

    fn contact(&self) -> Result<ContactRow, String> {
        let channel: Channel = self.parsed("channel")?.unwrap_or(Channel::Crm);
        let (phone_hash, _) = self.phone();
        let created_at = self.time("created_at");
        Ok(ContactRow {
            channel,
            contact_id: self.need_text("contact_id")?,
            unionid: self.text("unionid"),
            phone_hash,
            owner_userid: self.text("owner_userid").unwrap_or_default(),
            add_way: self
                .int("add_way")
                .map(|a| a.clamp(0, i64::from(i32::MAX)) as i32),
            state: self.text("state"),
            tags: match self.0.get("tags") {
                Some(Value::List(v)) => v.clone(),
                _ => vec![],
            },
            created_at,
            updated_at: self
                .time("updated_at")
                .or(created_at)
                .ok_or("updated_at or created_at is needed")?,
        })
    }

    fn touchpoint(
        &self,
        cost: Option<CostRule>,
        digest: impl Fn() -> String,
    ) -> Result<TouchpointRow, String> {
        let channel: Bridge = self.parsed("channel")?.ok_or("channel is missing")?;
        let event_type: TouchEvent = self.parsed("event_type")?.ok_or("event_type is missing")?;
        let outcome: Option<Outcome> = self.parsed("outcome")?;
        let occurred_at = self.time("occurred_at").ok_or("occurred_at is missing")?;
        let duration = self.int("duration_secs");
        let cost_fen = self.int("cost_fen").or(self.int("cost")).or_else(|| {
            cost.map(|c| {
                let minutes = duration.map_or(0, |d| (d.max(0) + 59) / 60);
                c.per_event_fen + c.per_minute_fen * minutes
            })
        });
        let intent = self.text("intent_level").map(|s| {
            // "A级(有意向)", "D级(需筛选)" → the letter.
            s.chars()
                .next()
                .filter(|c| c.is_ascii_alphabetic())
                .map_or(s.clone(), |c| c.to_ascii_uppercase().to_string())
        });
        let (phone_hash, _) = self.phone();
        Ok(TouchpointRow {
            channel,
            event_id: self.text("event_id").unwrap_or_else(digest),
            event_type,
            occurred_at,
            phone_hash,
            order_channel: self.parsed("order_channel")?,
            order_id: self.text("order_id"),
            unionid: self.text("unionid"),
            external_userid: self.text("external_userid"),
            owner_userid: self.text("owner_userid"),
            state: self.text("state"),
            campaign: self.text("campaign"),
            outcome,
            intent_level: intent,
            duration_secs: duration.map(|d| d.clamp(0, i64::from(i32::MAX)) as i32),
            cost_fen,
            source: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quanyu_schemas::LakeKey;

    /// A file whose first row is data: the error says so and repeats no
    /// phone, mail address or long value from it; a real header is shown.
    #[test]
    fn a_missing_column_error_does_not_repeat_a_data_row() {
        let columns = BTreeMap::from([("phone".to_string(), ColumnSpec::Name("被叫号码".into()))]);
        let hasher = PiiHasher::new(&LakeKey::from_bytes([3; 32]));
        let new = |header: &[&str]| {
            let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
            RowMapper::new(
                TableKind::Touchpoints,
                &columns,
                &BTreeMap::new(),
                None,
                &header,
                hasher.clone(),
            )
            .err()
            .expect("the column is missing")
            .0
        };
        let err = new(&[
            "139 1234 0101",
            "a.b@example.com",
            "浙江省杭州市西湖区文三路一百二十号三单元",
            "CALL8812345",
        ]);
        for leaked in ["1234", "example", "文三路", "8812345"] {
            assert!(!err.contains(leaked), "{err}");
        }
        assert!(err.contains("does the file have a header row"), "{err}");
        let err = new(&["被叫号码", "时间", "被叫号码"]);
        assert!(
            err.contains("appears 2 times") && err.contains("columns 1, 3"),
            "{err}"
        );
        let err = new(&["通话ID", "号码", "呼叫时间"]);
        assert!(
            err.contains("通话ID, 号码, 呼叫时间") && !err.contains("header row?"),
            "{err}"
        );
    }
}
