//! Kuaishou open-platform request signing, as the official SDKs sign
//! (ks-shop-python-sdk `ks_shop_api/base.py`, kwaixiaodian
//! `auth/signature.py`): every parameter but `sign` and empty values, keys in
//! ASCII order, joined as `k=v` with `&`, then `&signSecret=<signSecret>`
//! appended; MD5 → lower-case hex, HMAC_SHA256 → base64 of
//! HMAC-SHA256(key = signSecret). The signSecret is NOT the app secret.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use quanyu_connector_sdk::market::sorted_params_text;
use sha2::Sha256;

/// The `signMethod` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
pub enum SignMethod {
    /// `MD5`
    #[default]
    #[serde(rename = "MD5")]
    Md5,
    /// `HMAC_SHA256`
    #[serde(rename = "HMAC_SHA256")]
    HmacSha256,
}

impl SignMethod {
    /// The parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            SignMethod::Md5 => "MD5",
            SignMethod::HmacSha256 => "HMAC_SHA256",
        }
    }

    /// Parse the parameter value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "MD5" => Some(SignMethod::Md5),
            "HMAC_SHA256" => Some(SignMethod::HmacSha256),
            _ => None,
        }
    }
}

/// The string that is signed.
pub fn sign_string<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    sign_secret: &str,
) -> String {
    let mut s = sorted_params_text(params, true, "=", "&");
    s.push_str("signSecret=");
    s.push_str(sign_secret);
    s
}

/// Sign `params` (name, value) with the app's signSecret.
pub fn sign<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    sign_secret: &str,
    method: SignMethod,
) -> String {
    let s = sign_string(params, sign_secret);
    match method {
        SignMethod::Md5 => hex::encode(Md5::digest(s.as_bytes())),
        SignMethod::HmacSha256 => {
            // HMAC accepts keys of any length: new_from_slice cannot fail.
            match Hmac::<Sha256>::new_from_slice(sign_secret.as_bytes()) {
                Ok(mut m) => {
                    m.update(s.as_bytes());
                    base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
                }
                Err(_) => String::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAM: &str = r#"{"beginTime":1704038400000,"cursor":"","endTime":1704124799000,"orderViewStatus":1,"pageSize":50,"queryType":2,"sort":1}"#;

    fn vector(m: SignMethod) -> Vec<(&'static str, &'static str)> {
        vec![
            ("access_token", "TOKEN"),
            ("appkey", "ks123"),
            ("method", "open.order.cursor.list"),
            ("param", PARAM),
            ("signMethod", m.as_str()),
            ("timestamp", "1704081600000"),
            ("version", "1"),
        ]
    }

    #[test]
    fn md5_matches_the_contract_vector() {
        assert_eq!(
            sign(vector(SignMethod::Md5), "SIGNSECRET", SignMethod::Md5),
            "9343ea05f8a72fb96f564dad4087342f"
        );
    }

    #[test]
    fn hmac_sha256_matches_the_contract_vector() {
        assert_eq!(
            sign(
                vector(SignMethod::HmacSha256),
                "SIGNSECRET",
                SignMethod::HmacSha256
            ),
            "QNldY1LZ+uJ9/ZKfZScx5WSkUECxOvUB3/661uPChac="
        );
    }

    #[test]
    fn sign_and_empty_values_are_excluded_and_order_does_not_matter() {
        let mut v = vector(SignMethod::Md5);
        v.reverse();
        v.push(("sign", "whatever"));
        v.push(("cpsType", ""));
        assert_eq!(
            sign(v, "SIGNSECRET", SignMethod::Md5),
            "9343ea05f8a72fb96f564dad4087342f"
        );
        assert!(sign_string(vector(SignMethod::Md5), "X").ends_with("&version=1&signSecret=X"));
    }
}
