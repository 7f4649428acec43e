//! WeCom callback crypto checked against an independent implementation
//! (wechatpy's `WeChatCrypto`, from PyPI): payloads it encrypts we verify and
//! decrypt, payloads we encrypt it verifies and decrypts.

use quanyu_connector_sdk::conformance::run_sdk_check;
use quanyu_connector_sdk::Secret;
use quanyu_wecom::callback::{parse_event, CallbackCrypto};

const TOKEN: &str = "QDG6eK";
const AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const CORP: &str = "wx5823bf96d3bd56c7";
const XML: &str = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[woAJ2GCAAAXtWyujaWJHDDGi0mAAAA]]></ExternalUserID><State><![CDATA[pdd_240318-422796379670125]]></State><WelcomeCode><![CDATA[WELCOMECODE]]></WelcomeCode></xml>";

fn script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wechatpy_check.py")
}

fn args(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    v.extend(
        ["--token", TOKEN, "--aes-key", AES_KEY, "--corp-id", CORP]
            .iter()
            .map(|s| s.to_string()),
    );
    v
}

fn crypto() -> CallbackCrypto {
    CallbackCrypto::new(Secret::new(TOKEN), &Secret::new(AES_KEY), CORP).unwrap()
}

#[test]
fn wechatpy_encrypted_events_verify_and_decrypt() {
    let Some(out) = run_sdk_check(&script(), &args(&["encrypt", "--xml", XML])) else {
        return;
    };
    let c = crypto();
    let plain = c
        .open(
            out["msg_signature"].as_str().unwrap(),
            out["timestamp"].as_str().unwrap(),
            out["nonce"].as_str().unwrap(),
            out["encrypt"].as_str().unwrap(),
        )
        .unwrap();
    assert_eq!(plain, XML);
    let ev = parse_event(&plain).unwrap();
    assert_eq!(ev.user_id.as_deref(), Some("zhangsan"));
    // A tampered signature is refused.
    assert!(c
        .open(
            "0000000000000000000000000000000000000000",
            out["timestamp"].as_str().unwrap(),
            out["nonce"].as_str().unwrap(),
            out["encrypt"].as_str().unwrap(),
        )
        .is_err());
}

#[test]
fn our_payloads_decrypt_in_wechatpy() {
    let c = crypto();
    let enc = c.encrypt(XML, *b"0123456789abcdef");
    let sig = c.signature("1704081600", "nonce123", &enc);
    let Some(out) = run_sdk_check(
        &script(),
        &args(&["decrypt", "--encrypt", &enc, "--signature", &sig]),
    ) else {
        return;
    };
    assert_eq!(out["xml"].as_str().unwrap(), XML);
}
