//! AI outbound-call vendors' call-record callbacks as touchpoints:
//! Baiying (百应) `CALL_INSTANCE_RESULT` and Yiwise (一知) `ROBOT_CALL_RECORD`.
//! Statuses map into our outcomes, intent levels to A–F, durations to
//! seconds; the callee's phone is hashed at once; the cost comes from the
//! configured rule when the record has none. Import variables carried with
//! the call (`properties` / `attributes`) can name the order it is about.
#![warn(missing_docs)]

use quanyu_connector_sdk::declarative::cells::parse_datetime;
use quanyu_connector_sdk::declarative::CostRule;
use quanyu_schemas::{
    normalize_phone, Bridge, Channel, Outcome, PiiHasher, TouchEvent, TouchpointRow,
};
use serde::Deserialize;
use serde_json::Value;

/// Which vendor's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vendor {
    /// 百应 (open.byai.com) `CALL_INSTANCE_RESULT`.
    Baiying,
    /// 一知 / 探意 (Yiwise) `ROBOT_CALL_RECORD`.
    Yiwise,
}

impl Vendor {
    /// The vendor's name in sources and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::Baiying => "baiying",
            Vendor::Yiwise => "yiwise",
        }
    }

    /// The body the vendor expects as an acknowledgement.
    pub fn ack(self) -> &'static str {
        match self {
            Vendor::Baiying => r#"{"code":200,"resultMsg":"success"}"#,
            Vendor::Yiwise => "success",
        }
    }
}

/// How calls of one vendor account map.
#[derive(Debug, Clone, Default)]
pub struct CallMapping {
    /// Cost when the record has none.
    pub cost: Option<CostRule>,
    /// The import variable that carries an order id (`订单号`).
    pub order_property: Option<String>,
    /// The marketplace of those orders.
    pub order_channel: Option<Channel>,
}

/// Why a callback body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// Not JSON / not the vendor's shape.
    #[error("not a {vendor} callback: {reason}")]
    Shape {
        /// The vendor.
        vendor: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn shape(vendor: Vendor, reason: impl Into<String>) -> CallbackError {
    CallbackError::Shape {
        vendor: vendor.as_str(),
        reason: reason.into(),
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The letter of an intent level: `D级(需筛选)` → `D`, `a` → `A`.
pub fn intent_letter(s: &str) -> Option<String> {
    s.trim()
        .chars()
        .next()
        .filter(|c| c.is_ascii_alphabetic())
        .map(|c| c.to_ascii_uppercase().to_string())
}

/// Baiying `finishStatus`: 0 answered, 1 rejected, 2 unreachable, 6 busy,
/// 8 no answer (others: could not connect).
pub fn baiying_outcome(finish_status: i64) -> Outcome {
    match finish_status {
        0 => Outcome::Connected,
        1 => Outcome::Refused,
        6 => Outcome::Busy,
        8 => Outcome::NoAnswer,
        _ => Outcome::Unreachable,
    }
}

/// Yiwise `resultStatus`.
pub fn yiwise_outcome(status: &str) -> Outcome {
    match status {
        "ANSWERED" => Outcome::Connected,
        "NO_ANSWER" => Outcome::NoAnswer,
        "BUSY" => Outcome::Busy,
        "POWER_OFF" => Outcome::PowerOff,
        "OUT_OF_SERVICE" => Outcome::OutOfService,
        "REFUSED" => Outcome::Refused,
        "VACANT_NUMBER" => Outcome::VacantNumber,
        _ => Outcome::Unreachable,
    }
}

/// Import variables as a key → text map (an object, a JSON string of one,
/// or Yiwise's `[{name, value}]` list).
fn variables(v: Option<&Value>) -> Vec<(String, String)> {
    match v {
        Some(Value::Object(m)) => m
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), text(v)?)))
            .collect(),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s)
            .ok()
            .map(|v| variables(Some(&v)))
            .unwrap_or_default(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| {
                let k = i.get("name").or_else(|| i.get("key")).and_then(text)?;
                Some((k, i.get("value").and_then(text)?))
            })
            .collect(),
        _ => vec![],
    }
}

/// Map one callback body. `Ok(None)`: a valid callback quanyu does not
/// record (job progress).
pub fn map_callback(
    vendor: Vendor,
    body: &[u8],
    account: &str,
    mapping: &CallMapping,
    hasher: &PiiHasher,
) -> Result<Option<TouchpointRow>, CallbackError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| shape(vendor, e.to_string()))?;
    let (id, job, phone, status, intent, start, duration, vars) = match vendor {
        Vendor::Baiying => {
            let d = v.get("data").ok_or_else(|| shape(vendor, "no data"))?;
            match d.get("callbackType").and_then(Value::as_str) {
                Some("CALL_INSTANCE_RESULT") => {}
                Some(_) => return Ok(None),
                None => return Err(shape(vendor, "no callbackType")),
            }
            let inner = d.get("data").ok_or_else(|| shape(vendor, "no data.data"))?;
            let ci = inner
                .get("callInstance")
                .ok_or_else(|| shape(vendor, "no callInstance"))?;
            let intent = inner
                .get("taskResult")
                .and_then(Value::as_array)
                .and_then(|rs| {
                    rs.iter().find(|r| {
                        r.get("analyzeType").and_then(Value::as_str)
                            == Some("DYNAMIC_ANALYZE_USER_LEVEL")
                            || r.get("resultName").and_then(Value::as_str) == Some("客户意向等级")
                    })
                })
                .and_then(|r| r.get("resultValue"))
                .and_then(text);
            (
                ci.get("callInstanceId").and_then(text),
                ci.get("callJobId").and_then(text),
                ci.get("customerTelephone").and_then(text),
                baiying_outcome(ci.get("finishStatus").and_then(Value::as_i64).unwrap_or(-1)),
                intent,
                ci.get("startTime").and_then(text),
                ci.get("duration").and_then(Value::as_i64),
                variables(ci.get("properties")),
            )
        }
        Vendor::Yiwise => {
            match v.get("dataType").and_then(Value::as_str) {
                Some("ROBOT_CALL_RECORD") => {}
                Some(_) => return Ok(None),
                None => return Err(shape(vendor, "no dataType")),
            }
            let d = v.get("data").ok_or_else(|| shape(vendor, "no data"))?;
            (
                d.get("callRecordId").and_then(text),
                d.get("robotCallJobId").and_then(text),
                d.get("calledPhoneNumber").and_then(text),
                yiwise_outcome(d.get("resultStatus").and_then(Value::as_str).unwrap_or("")),
                d.get("intentLevel").and_then(text),
                d.get("startTime").and_then(text),
                d.get("chatDuration").and_then(Value::as_i64),
                variables(d.get("attributes")),
            )
        }
    };
    let id = id.ok_or_else(|| shape(vendor, "no call id"))?;
    let occurred_at = parse_datetime(&start.ok_or_else(|| shape(vendor, "no start time"))?)
        .map_err(|e| shape(vendor, format!("start time: {e}")))?;
    let phone_hash = match phone.as_deref().map(normalize_phone) {
        Some(Ok(p)) => Some(hasher.phone(&p)),
        _ => None,
    };
    let duration = duration.map(|d| d.clamp(0, i64::from(i32::MAX)));
    let cost_fen = mapping.cost.map(|c| {
        let minutes = duration.map_or(0, |d| (d + 59) / 60);
        c.per_event_fen + c.per_minute_fen * minutes
    });
    let order_id = mapping
        .order_property
        .as_ref()
        .and_then(|k| vars.iter().find(|(n, _)| n == k))
        .map(|(_, v)| v.clone());
    Ok(Some(TouchpointRow {
        channel: Bridge::AiCall,
        event_id: format!("{}-{id}", vendor.as_str()),
        event_type: TouchEvent::Call,
        occurred_at,
        phone_hash,
        order_channel: order_id.as_ref().and(mapping.order_channel),
        order_id,
        unionid: None,
        external_userid: None,
        owner_userid: None,
        state: None,
        campaign: job,
        outcome: Some(status),
        intent_level: intent.as_deref().and_then(intent_letter),
        duration_secs: duration.map(|d| d as i32),
        cost_fen,
        source: format!("{}@{account}", vendor.as_str()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quanyu_schemas::LakeKey;

    fn hasher() -> PiiHasher {
        PiiHasher::new(&LakeKey::from_bytes([3; 32]))
    }

    #[test]
    fn maps_a_baiying_call_instance() {
        let body = r#"{"code":200,"data":{"callbackType":"CALL_INSTANCE_RESULT","data":{"callInstance":{"companyId":1,"callJobId":9001,"callInstanceId":77,"callInstanceStatus":2,"finishStatus":0,"customerTelephone":"13912345678","duration":65,"startTime":"2024-06-01 10:00:05","properties":"{\"订单号\":\"3100000000000001\"}"},"taskResult":[{"resultName":"客户意向等级","resultValue":"D级(需筛选)","analyzeType":"DYNAMIC_ANALYZE_USER_LEVEL"}]}},"resultMsg":"ok"}"#;
        let m = CallMapping {
            cost: Some(CostRule {
                per_event_fen: 5,
                per_minute_fen: 8,
            }),
            order_property: Some("订单号".into()),
            order_channel: Some(Channel::Taobao),
        };
        let r = map_callback(Vendor::Baiying, body.as_bytes(), "acme", &m, &hasher())
            .unwrap()
            .unwrap();
        assert_eq!(r.event_id, "baiying-77");
        assert_eq!(r.outcome, Some(Outcome::Connected));
        assert_eq!(r.intent_level.as_deref(), Some("D"));
        assert_eq!(r.duration_secs, Some(65));
        assert_eq!(r.cost_fen, Some(5 + 8 * 2));
        assert_eq!(r.campaign.as_deref(), Some("9001"));
        assert_eq!(r.order_id.as_deref(), Some("3100000000000001"));
        assert_eq!(r.order_channel, Some(Channel::Taobao));
        assert_eq!(r.phone_hash, hasher().phone_text("13912345678"));
        assert_eq!(r.occurred_at.to_rfc3339(), "2024-06-01T02:00:05+00:00");
        let job =
            r#"{"code":200,"data":{"callbackType":"JOB_INFO_RESULT","data":{"callJobId":1}}}"#;
        assert!(
            map_callback(Vendor::Baiying, job.as_bytes(), "acme", &m, &hasher())
                .unwrap()
                .is_none()
        );
        assert!(map_callback(Vendor::Baiying, b"not json", "acme", &m, &hasher()).is_err());
    }

    #[test]
    fn maps_a_yiwise_record() {
        let body = r#"{"dataType":"ROBOT_CALL_RECORD","data":{"callRecordId":5,"tenantId":1,"robotCallJobId":42,"calledPhoneNumber":"+86 139-1234-5678","resultStatus":"POWER_OFF","intentLevel":"F","startTime":"2024-06-01 10:00:05","chatDuration":0,"attributes":[{"name":"订单号","value":"x1"}]}}"#;
        let r = map_callback(
            Vendor::Yiwise,
            body.as_bytes(),
            "t1",
            &CallMapping::default(),
            &hasher(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.event_id, "yiwise-5");
        assert_eq!(r.outcome, Some(Outcome::PowerOff));
        assert_eq!(r.intent_level.as_deref(), Some("F"));
        assert_eq!(r.order_id, None, "no order property configured");
        assert!(r.phone_hash.is_some());
        let job =
            r#"{"dataType":"ROBOT_CALL_JOB","data":{"robotCallJobId":42,"status":"COMPLETED"}}"#;
        assert!(map_callback(
            Vendor::Yiwise,
            job.as_bytes(),
            "t1",
            &CallMapping::default(),
            &hasher()
        )
        .unwrap()
        .is_none());
    }
}
