//! Jushuitan open API v2 signing: lowercase hex MD5 of the app secret
//! followed by every parameter but `sign`, sorted by key, as `key` + `value`
//! (the secret only in front).

use md5::{Digest, Md5};

/// The signature of `params` with `secret`.
pub fn sign<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>, secret: &str) -> String {
    let mut kv: Vec<(&str, &str)> = params
        .into_iter()
        .filter(|(k, v)| *k != "sign" && !v.is_empty())
        .collect();
    kv.sort_unstable();
    let mut h = Md5::new();
    h.update(secret.as_bytes());
    for (k, v) in kv {
        h.update(k.as_bytes());
        h.update(v.as_bytes());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_contract_vector() {
        let biz = r#"{"modified_begin":"2024-01-01 00:00:00","modified_end":"2024-01-01 01:00:00","page_index":1,"page_size":100}"#;
        let params = [
            ("access_token", "TOKEN"),
            ("app_key", "AK"),
            ("timestamp", "1704081600"),
            ("version", "2"),
            ("charset", "utf-8"),
            ("biz", biz),
        ];
        assert_eq!(sign(params, "secret"), "6927ff3b60c00d7087ad38a8e902bf4e");
        // `sign` itself never takes part.
        let mut with_sign = params.to_vec();
        with_sign.push(("sign", "x"));
        assert_eq!(
            sign(with_sign, "secret"),
            "6927ff3b60c00d7087ad38a8e902bf4e"
        );
    }
}
