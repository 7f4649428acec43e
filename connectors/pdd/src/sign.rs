//! Pinduoduo open-platform request signing, as the official SDK signs
//! (pdd-sdk `pdd_sdk/api/base.py` `sign()`): every parameter but `sign`,
//! keys in ASCII order, `client_secret + Σ key+value + client_secret`,
//! MD5, upper-case hex.

use md5::{Digest, Md5};
use quanyu_connector_sdk::market::sorted_params_text;

/// The string that is hashed.
pub fn sign_string<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    client_secret: &str,
) -> String {
    let text = sorted_params_text(params, false, "", "");
    format!("{client_secret}{text}{client_secret}")
}

/// Sign `params` (name, value) with the app's client secret.
pub fn sign<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    client_secret: &str,
) -> String {
    hex::encode_upper(Md5::digest(sign_string(params, client_secret).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector() -> Vec<(&'static str, &'static str)> {
        vec![
            ("type", "pdd.order.number.list.increment.get"),
            ("client_id", "CID"),
            ("access_token", "TOKEN"),
            ("timestamp", "1704081600"),
            ("data_type", "JSON"),
            ("version", "V1"),
            ("start_updated_at", "1704080000"),
            ("end_updated_at", "1704081600"),
            ("is_lucky_flag", "0"),
            ("order_status", "5"),
            ("refund_status", "5"),
            ("page", "1"),
            ("page_size", "100"),
        ]
    }

    #[test]
    fn matches_the_contract_vector() {
        assert_eq!(sign(vector(), "secret"), "F612E306882D49DFC4EF594ACDA5EB9E");
    }

    #[test]
    fn sign_is_excluded_and_order_does_not_matter() {
        let mut v = vector();
        v.reverse();
        v.push(("sign", "whatever"));
        assert_eq!(sign(v, "secret"), "F612E306882D49DFC4EF594ACDA5EB9E");
        assert!(sign_string(vector(), "S").starts_with("Saccess_tokenTOKENclient_idCID"));
    }
}
