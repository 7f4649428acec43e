//! JD open-platform (宙斯 / JOS) request signing, as the official SDK signs
//! (jd-sdk `jd/api/base.py` `sign()`): every parameter but `sign`, keys in
//! ASCII order, `app_secret + Σ key+value + app_secret`, MD5 over the UTF-8
//! bytes, upper-case hex. The business parameters take part as one value,
//! the `360buy_param_json` text exactly as sent.

use md5::{Digest, Md5};
use quanyu_connector_sdk::market::sorted_params_text;

/// The string that is hashed.
pub fn sign_string<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    app_secret: &str,
) -> String {
    let text = sorted_params_text(params, false, "", "");
    format!("{app_secret}{text}{app_secret}")
}

/// Sign `params` (name, value) with the app secret.
pub fn sign<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>, app_secret: &str) -> String {
    hex::encode_upper(Md5::digest(sign_string(params, app_secret).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector() -> Vec<(&'static str, &'static str)> {
        vec![
            ("app_key", "APPKEY"),
            ("method", "jingdong.pop.order.search"),
            ("access_token", "TOKEN"),
            ("timestamp", "2024-01-01 12:00:00"),
            ("v", "2.0"),
            (
                "360buy_param_json",
                r#"{"end_date":"2024-01-01 01:00:00","page":"1","page_size":"100","start_date":"2024-01-01 00:00:00"}"#,
            ),
        ]
    }

    #[test]
    fn matches_the_contract_vector() {
        assert_eq!(sign(vector(), "secret"), "480A76559A177A0EFAC1C601ECD3C9DF");
    }

    #[test]
    fn sign_is_excluded_and_order_does_not_matter() {
        let mut v = vector();
        v.reverse();
        v.push(("sign", "whatever"));
        assert_eq!(sign(v, "secret"), "480A76559A177A0EFAC1C601ECD3C9DF");
        // `360buy_param_json` sorts before `access_token` ('3' < 'a').
        assert!(sign_string(vector(), "S").starts_with("S360buy_param_json{"));
        assert!(sign_string(vector(), "S").ends_with("v2.0S"));
    }
}
