//! A mapping's checks: records with what they must map to, in the
//! connector's `mapping.toml`.

use super::super::record::MappedOrder;
use super::RecordMapping;
use quanyu_schemas::{PiiHasher, RefundRow};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One check of a mapping: a record and what it must map to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Check {
    pub(super) name: String,
    /// The record, as the platform sends it.
    #[serde(default)]
    record: Option<String>,
    /// Or the record of the named check, changed.
    #[serde(default)]
    like: Option<String>,
    /// Paths set (to a TOML value) in the record of `like`.
    #[serde(default)]
    set: BTreeMap<String, toml::Value>,
    /// Paths removed from it.
    #[serde(default)]
    drop: Vec<String>,
    /// `order` (default) or `refund`.
    #[serde(default)]
    kind: Option<String>,
    /// Fields of the mapped row and their values (`lines.0.sku_id` for a
    /// line's); `phone_hash` is given as the clear phone it must be the
    /// hash of.
    #[serde(default)]
    expect: BTreeMap<String, toml::Value>,
    /// Fields that must be empty.
    #[serde(default)]
    absent: Vec<String>,
    /// Fields that must hold something.
    #[serde(default)]
    present: Vec<String>,
    /// The lines as `[line_id, quantity, amount_fen]`.
    #[serde(default)]
    lines: Option<Vec<(String, i64, i64)>>,
    /// The record is refused, for a reason containing this.
    #[serde(default)]
    refused: Option<String>,
    /// The key the refusal names (`""`: none).
    #[serde(default)]
    key: Option<String>,
}

impl Check {
    fn record(&self, all: &[Check]) -> Result<String, String> {
        if let Some(r) = &self.record {
            return Ok(r.clone());
        }
        let base = self.like.as_ref().ok_or("no record and no like")?;
        let base = all
            .iter()
            .find(|c| c.name == *base)
            .ok_or_else(|| format!("no check named {base:?}"))?
            .record(all)?;
        let mut v: Value = serde_json::from_str(&base).map_err(|e| e.to_string())?;
        for (path, value) in &self.set {
            let value = serde_json::to_value(value).map_err(|e| e.to_string())?;
            *path_mut(&mut v, path)? = value;
        }
        for path in &self.drop {
            let (parent, last) = path.rsplit_once('.').unwrap_or(("", path));
            let node = match parent {
                "" => &mut v,
                p => path_mut(&mut v, p)?,
            };
            node.as_object_mut().and_then(|o| o.remove(last));
        }
        Ok(v.to_string())
    }

    pub(super) fn run(
        &self,
        mapping: &RecordMapping,
        all: &[Check],
        hasher: &PiiHasher,
    ) -> Result<(), String> {
        let raw = self.record(all)?;
        let got = match self.kind.as_deref().unwrap_or("order") {
            "order" => mapping
                .order(&raw, "shop", hasher)
                .map(|m| order_fields(&m)),
            "refund" => mapping.refund(&raw, "shop").map(|r| refund_fields(&r)),
            k => return Err(format!("unknown kind {k:?}")),
        };
        let fields = match (got, &self.refused) {
            (Err(e), Some(why)) => {
                if !e.reason.contains(why.as_str()) {
                    return Err(format!("refused for {:?}, not {why:?}", e.reason));
                }
                if let Some(k) = &self.key {
                    let want = Some(k.as_str()).filter(|k| !k.is_empty());
                    if e.key.as_deref() != want {
                        return Err(format!("refusal names {:?}, not {want:?}", e.key));
                    }
                }
                return Ok(());
            }
            (Ok(_), Some(why)) => return Err(format!("mapped, but should be refused ({why})")),
            (Err(e), None) => return Err(format!("refused: {}", e.reason)),
            (Ok(f), None) => f,
        };
        let fields = Value::Object(fields);
        let field = |name: &str| {
            name.split('.')
                .try_fold(&fields, |v, key| match key.parse::<usize>() {
                    Ok(i) => v.get(i),
                    Err(_) => v.get(key),
                })
        };
        for (name, want) in &self.expect {
            let got = field(name).ok_or_else(|| format!("no field {name}"))?;
            let want = match (name.as_str(), want) {
                ("phone_hash", toml::Value::String(p)) => Value::from(
                    hasher
                        .phone_text(p)
                        .ok_or("expected phone is not a mobile")?,
                ),
                _ => serde_json::to_value(want).map_err(|e| e.to_string())?,
            };
            if *got != want {
                return Err(format!("{name} is {got}, not {want}"));
            }
        }
        for name in &self.absent {
            if !field(name).is_some_and(Value::is_null) {
                return Err(format!("{name} should be empty"));
            }
        }
        for name in &self.present {
            if field(name).is_none_or(Value::is_null) {
                return Err(format!("{name} should hold something"));
            }
        }
        if let Some(want) = &self.lines {
            let got: Vec<(String, i64, i64)> = fields["lines"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| {
                    (
                        l["line_id"].as_str().unwrap_or_default().to_string(),
                        l["quantity"].as_i64().unwrap_or(-1),
                        l["amount_fen"].as_i64().unwrap_or(-1),
                    )
                })
                .collect();
            if got != *want {
                return Err(format!("lines are {got:?}, not {want:?}"));
            }
        }
        Ok(())
    }
}

fn path_mut<'v>(mut v: &'v mut Value, path: &str) -> Result<&'v mut Value, String> {
    for key in path.split('.') {
        if !v.is_object() {
            return Err(format!("{path}: not an object on the way"));
        }
        v = v
            .as_object_mut()
            .map(|o| o.entry(key.to_string()).or_insert(Value::Null))
            .ok_or("unreachable")?;
    }
    Ok(v)
}

fn order_fields(m: &MappedOrder) -> serde_json::Map<String, Value> {
    let r = &m.row;
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339());
    let lines: Vec<Value> = m
        .lines
        .iter()
        .map(|l| {
            serde_json::json!({
                "line_id": l.line_id, "item_id": l.item_id, "sku_id": l.sku_id,
                "title": l.title, "quantity": l.quantity,
                "unit_price_fen": l.unit_price_fen, "amount_fen": l.amount_fen,
            })
        })
        .collect();
    let v = serde_json::json!({
        "order_id": r.order_id, "buyer_id": r.buyer_id, "buyer_unionid": r.buyer_unionid,
        "phone_hash": r.phone_hash, "phone_masked": r.phone_masked,
        "status": r.status.as_str(), "platform_status": r.platform_status,
        "amount_fen": r.amount_fen, "item_count": r.item_count,
        "province": r.province, "city": r.city,
        "created_at": time(Some(r.created_at)), "paid_at": time(r.paid_at),
        "updated_at": time(Some(r.updated_at)), "receiver_hash": r.receiver_hash,
        "cipher": m.cipher, "lines": lines,
    });
    match v {
        Value::Object(o) => o,
        _ => unreachable!("a JSON object literal"),
    }
}

fn refund_fields(r: &RefundRow) -> serde_json::Map<String, Value> {
    let v = serde_json::json!({
        "refund_id": r.refund_id, "order_id": r.order_id, "line_id": r.line_id,
        "status": r.status.as_str(), "platform_status": r.platform_status,
        "refund_fen": r.refund_fen, "created_at": r.created_at.to_rfc3339(),
        "updated_at": r.updated_at.to_rfc3339(),
    });
    match v {
        Value::Object(o) => o,
        _ => unreachable!("a JSON object literal"),
    }
}
