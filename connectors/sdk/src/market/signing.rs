//! The text a parameter-signing gateway hashes (TOP, JD, Pinduoduo,
//! Kuaishou): its parameters sorted by name, written one after another.

/// `params` as a gateway signs them: every one but `sign` (and, where
/// `skip_empty`, those with an empty value), sorted by name (ASCII), each
/// written `name{between}value{after}`.
pub fn sorted_params_text<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    skip_empty: bool,
    between: &str,
    after: &str,
) -> String {
    let mut sorted: Vec<(&str, &str)> = params
        .into_iter()
        .filter(|(k, v)| *k != "sign" && !(skip_empty && v.is_empty()))
        .collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut s = String::new();
    for (k, v) in sorted {
        s.push_str(k);
        s.push_str(between);
        s.push_str(v);
        s.push_str(after);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::sorted_params_text;

    #[test]
    fn sorted_by_name_without_sign_and_empties_where_asked() {
        let p = [("b", "2"), ("sign", "x"), ("a", "1"), ("c", "")];
        assert_eq!(sorted_params_text(p, false, "", ""), "a1b2c");
        assert_eq!(sorted_params_text(p, true, "", ""), "a1b2");
        assert_eq!(sorted_params_text(p, true, "=", "&"), "a=1&b=2&");
    }
}
