//! WeCom `batch/get_by_user` items → canonical `contacts` rows.

use chrono::{DateTime, Utc};
use quanyu_schemas::time::from_unix_seconds;
use quanyu_schemas::{Channel, ContactRow, PiiHasher};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Item {
    external_contact: Option<External>,
    follow_info: Option<FollowInfo>,
}

#[derive(Debug, Deserialize)]
struct External {
    external_userid: Option<String>,
    unionid: Option<String>,
}

#[derive(Debug, Deserialize)]
struct FollowInfo {
    userid: Option<String>,
    createtime: Option<i64>,
    #[serde(default)]
    tag_id: Vec<String>,
    #[serde(default)]
    remark_mobiles: Vec<String>,
    add_way: Option<i32>,
    state: Option<String>,
}

/// Why an item was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The external_userid when readable.
    pub key: Option<String>,
    /// Why.
    pub reason: String,
}

/// Map one `external_contact_list` item, observed at `observed_at`.
/// The first remark mobile that is a valid mainland number is hashed; names
/// and remarks are not read at all.
pub fn map_contact(
    raw: &str,
    observed_at: DateTime<Utc>,
    hasher: &PiiHasher,
) -> Result<ContactRow, Rejected> {
    let item: Item = serde_json::from_str(raw).map_err(|e| Rejected {
        key: None,
        reason: format!("not a WeCom contact item: {e}"),
    })?;
    let ext = item.external_contact.ok_or_else(|| Rejected {
        key: None,
        reason: "item has no external_contact".into(),
    })?;
    let id = ext
        .external_userid
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Rejected {
            key: None,
            reason: "contact has no external_userid".into(),
        })?;
    let reject = |reason: &str| Rejected {
        key: Some(id.clone()),
        reason: reason.into(),
    };
    let follow = item
        .follow_info
        .ok_or_else(|| reject("contact has no follow_info"))?;
    let owner = follow
        .userid
        .filter(|s| !s.is_empty())
        .ok_or_else(|| reject("follow_info has no userid"))?;
    let created_at = match follow.createtime {
        Some(t) => Some(from_unix_seconds(t).map_err(|e| reject(&format!("createtime: {e}")))?),
        None => None,
    };
    Ok(ContactRow {
        channel: Channel::Wecom,
        contact_id: id,
        unionid: ext.unionid.filter(|s| !s.is_empty()),
        phone_hash: follow
            .remark_mobiles
            .iter()
            .find_map(|m| hasher.phone_text(m)),
        owner_userid: owner,
        add_way: follow.add_way,
        state: follow.state.filter(|s| !s.is_empty()),
        tags: follow.tag_id,
        created_at,
        updated_at: observed_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quanyu_schemas::LakeKey;

    #[test]
    fn maps_an_item_and_hashes_the_first_valid_remark_mobile() {
        let h = PiiHasher::new(&LakeKey::from_bytes([3; 32]));
        let raw = r#"{"external_contact":{"external_userid":"wmA","name":"张三","type":1,"unionid":"oUn1"},
            "follow_info":{"userid":"zhangsan","remark":"老客户","createtime":1704067200,"tag_id":["et1"],
            "remark_mobiles":["0571-8888", "+86 139 1234 5678"],"add_way":1,"state":"tb_3100"}}"#;
        let now = Utc::now();
        let r = map_contact(raw, now, &h).unwrap();
        assert_eq!(r.contact_id, "wmA");
        assert_eq!(r.owner_userid, "zhangsan");
        assert_eq!(r.phone_hash, h.phone_text("13912345678"));
        assert_eq!(r.state.as_deref(), Some("tb_3100"));
        assert_eq!(r.tags, vec!["et1".to_string()]);
        assert_eq!(r.updated_at, now);
        let e = map_contact(
            r#"{"external_contact":{"external_userid":""},"follow_info":{}}"#,
            now,
            &h,
        )
        .unwrap_err();
        assert_eq!(e.reason, "contact has no external_userid");
        let e = map_contact(
            r#"{"external_contact":{"external_userid":"wmB"},"follow_info":{}}"#,
            now,
            &h,
        )
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("wmB"));
    }
}
