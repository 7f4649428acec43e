//! WeCom callback crypto and events: the `msg_signature` check (SHA-1 over
//! the sorted token, timestamp, nonce and ciphertext), AES-256-CBC with the
//! EncodingAESKey (IV = first 16 key bytes, PKCS#7 padding to 32 bytes,
//! plaintext = 16 random bytes ‖ big-endian length ‖ XML ‖ corp id), and the
//! `change_external_contact` event it carries.

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine;
use quanyu_connector_sdk::Secret;
use serde::Deserialize;
use sha1::{Digest, Sha1};

type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;
type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;

/// Why a callback was refused. Never contains the token or key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// The EncodingAESKey is not 43 base64 characters for 32 bytes.
    #[error("EncodingAESKey must be 43 base64 characters (32 bytes)")]
    BadKey,
    /// `msg_signature` does not match.
    #[error("msg_signature does not match")]
    BadSignature,
    /// The ciphertext is not valid base64 / AES / padding.
    #[error("cannot decrypt the payload: {0}")]
    BadCiphertext(&'static str),
    /// The payload was encrypted for another corp / suite.
    #[error("the payload is addressed to another receiver id")]
    WrongReceiver,
    /// The XML is not a WeCom message.
    #[error("unreadable callback XML: {0}")]
    BadXml(String),
}

/// The callback settings of one corp.
#[derive(Clone)]
pub struct CallbackCrypto {
    token: Secret,
    key: [u8; 32],
    receive_id: String,
}

impl std::fmt::Debug for CallbackCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackCrypto")
            .field("receive_id", &self.receive_id)
            .finish_non_exhaustive()
    }
}

impl CallbackCrypto {
    /// Settings from the callback Token, the 43-character EncodingAESKey,
    /// and the receive id (the corp id for a self-built app).
    pub fn new(
        token: Secret,
        encoding_aes_key: &Secret,
        receive_id: &str,
    ) -> Result<Self, CallbackError> {
        let k = encoding_aes_key.expose();
        if k.len() != 43 {
            return Err(CallbackError::BadKey);
        }
        // Like WeCom's own libraries, ignore the last character's spare bits.
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
        );
        let bytes = lenient
            .decode(format!("{k}="))
            .map_err(|_| CallbackError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CallbackError::BadKey)?;
        Ok(CallbackCrypto {
            token,
            key,
            receive_id: receive_id.into(),
        })
    }

    /// `msg_signature` for these values: lowercase hex SHA-1 of the four
    /// strings sorted and concatenated.
    pub fn signature(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        let mut parts = [self.token.expose(), timestamp, nonce, encrypt];
        parts.sort_unstable();
        let mut h = Sha1::new();
        for p in parts {
            h.update(p.as_bytes());
        }
        hex::encode(h.finalize())
    }

    /// Check `msg_signature` (constant time).
    pub fn verify(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<(), CallbackError> {
        let expected = self.signature(timestamp, nonce, encrypt);
        let given = msg_signature.to_ascii_lowercase();
        let same = expected.len() == given.len()
            && expected
                .bytes()
                .zip(given.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if same {
            Ok(())
        } else {
            Err(CallbackError::BadSignature)
        }
    }

    /// Verify and decrypt: the plaintext XML (or the URL check's `echostr`).
    pub fn open(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<String, CallbackError> {
        self.verify(msg_signature, timestamp, nonce, encrypt)?;
        self.decrypt(encrypt)
    }

    /// Decrypt a base64 ciphertext.
    pub fn decrypt(&self, encrypt: &str) -> Result<String, CallbackError> {
        let mut buf = base64::engine::general_purpose::STANDARD
            .decode(encrypt.trim())
            .map_err(|_| CallbackError::BadCiphertext("not base64"))?;
        if buf.is_empty() || buf.len() % 16 != 0 {
            return Err(CallbackError::BadCiphertext(
                "length is not whole AES blocks",
            ));
        }
        let plain = Aes256CbcDec::new(&self.key.into(), self.key[..16].into())
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .map_err(|_| CallbackError::BadCiphertext("AES"))?;
        let pad = usize::from(*plain.last().unwrap_or(&0));
        if !(1..=32).contains(&pad) || pad > plain.len() {
            return Err(CallbackError::BadCiphertext("bad padding"));
        }
        let content = &plain[..plain.len() - pad];
        if content.len() < 20 {
            return Err(CallbackError::BadCiphertext("too short"));
        }
        let len = u32::from_be_bytes([content[16], content[17], content[18], content[19]]) as usize;
        let body = &content[20..];
        if len > body.len() {
            return Err(CallbackError::BadCiphertext("length field exceeds payload"));
        }
        if &body[len..] != self.receive_id.as_bytes() {
            return Err(CallbackError::WrongReceiver);
        }
        String::from_utf8(body[..len].to_vec())
            .map_err(|_| CallbackError::BadCiphertext("not UTF-8"))
    }

    /// Encrypt `text` as WeCom does, with the given 16 random bytes (replies
    /// and the sandbox's own callbacks).
    pub fn encrypt(&self, text: &str, random: [u8; 16]) -> String {
        let mut plain = Vec::with_capacity(text.len() + 64);
        plain.extend_from_slice(&random);
        plain.extend_from_slice(&(text.len() as u32).to_be_bytes());
        plain.extend_from_slice(text.as_bytes());
        plain.extend_from_slice(self.receive_id.as_bytes());
        let pad = 32 - plain.len() % 32;
        plain.extend(std::iter::repeat_n(pad as u8, pad));
        let n = plain.len();
        let out = Aes256CbcEnc::new(&self.key.into(), self.key[..16].into())
            .encrypt_padded_mut::<NoPadding>(&mut plain, n)
            .expect("a whole number of blocks");
        base64::engine::general_purpose::STANDARD.encode(out)
    }
}

/// The outer XML WeCom POSTs: `<xml><ToUserName/><AgentID/><Encrypt/></xml>`.
#[derive(Debug, Deserialize)]
#[serde(rename = "xml")]
pub struct Envelope {
    /// The receiving corp.
    #[serde(rename = "ToUserName", default)]
    pub to_user_name: Option<String>,
    /// The app.
    #[serde(rename = "AgentID", default)]
    pub agent_id: Option<String>,
    /// The ciphertext.
    #[serde(rename = "Encrypt")]
    pub encrypt: String,
}

/// Read the outer envelope.
pub fn parse_envelope(xml: &str) -> Result<Envelope, CallbackError> {
    quick_xml::de::from_str(xml).map_err(|e| CallbackError::BadXml(e.to_string()))
}

/// A decrypted event (the fields quanyu reads; others are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename = "xml")]
pub struct Event {
    /// The corp id.
    #[serde(rename = "ToUserName", default)]
    pub to_user_name: Option<String>,
    /// Unix seconds.
    #[serde(rename = "CreateTime", default)]
    pub create_time: Option<i64>,
    /// `event`.
    #[serde(rename = "MsgType", default)]
    pub msg_type: Option<String>,
    /// `change_external_contact`, ...
    #[serde(rename = "Event", default)]
    pub event: Option<String>,
    /// `add_external_contact`, `edit_external_contact`, `del_external_contact`,
    /// `del_follow_user`, `add_half_external_contact`, `transfer_fail`.
    #[serde(rename = "ChangeType", default)]
    pub change_type: Option<String>,
    /// The rep (follow user).
    #[serde(rename = "UserID", default)]
    pub user_id: Option<String>,
    /// The customer.
    #[serde(rename = "ExternalUserID", default)]
    pub external_user_id: Option<String>,
    /// The contact way's `state`, when added through one that carries it.
    #[serde(rename = "State", default)]
    pub state: Option<String>,
    /// The welcome code (short-lived).
    #[serde(rename = "WelcomeCode", default)]
    pub welcome_code: Option<String>,
}

/// Read a decrypted event.
pub fn parse_event(xml: &str) -> Result<Event, CallbackError> {
    quick_xml::de::from_str(xml).map_err(|e| CallbackError::BadXml(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crypto() -> CallbackCrypto {
        CallbackCrypto::new(
            Secret::new("TOKEN"),
            &Secret::new("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"),
            "wwcorp",
        )
        .unwrap()
    }

    #[test]
    fn signature_matches_the_contract_vector() {
        assert_eq!(
            crypto().signature("1704081600", "nonce123", "ENCRYPTED"),
            "1862de7bebc8da839f0d91ebd87f3a10d4c80e66"
        );
        assert!(crypto()
            .verify(
                "1862DE7BEBC8DA839F0D91EBD87F3A10D4C80E66",
                "1704081600",
                "nonce123",
                "ENCRYPTED"
            )
            .is_ok());
        assert_eq!(
            crypto().verify("00", "1704081600", "nonce123", "ENCRYPTED"),
            Err(CallbackError::BadSignature)
        );
    }

    #[test]
    fn round_trips_and_parses_the_event() {
        let xml = "<xml><ToUserName><![CDATA[wwcorp]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[woAJ2GCAAAXtWyujaWJHDDGi0mAAAA]]></ExternalUserID><State><![CDATA[tb_31000]]></State><WelcomeCode><![CDATA[WELCOMECODE]]></WelcomeCode></xml>";
        let c = crypto();
        let enc = c.encrypt(xml, [7; 16]);
        let sig = c.signature("1", "n", &enc);
        let plain = c.open(&sig, "1", "n", &enc).unwrap();
        assert_eq!(plain, xml);
        let ev = parse_event(&plain).unwrap();
        assert_eq!(ev.change_type.as_deref(), Some("add_external_contact"));
        assert_eq!(ev.state.as_deref(), Some("tb_31000"));
        assert_eq!(ev.create_time, Some(1403610513));
        let other = CallbackCrypto::new(
            Secret::new("TOKEN"),
            &Secret::new("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"),
            "wwother",
        )
        .unwrap();
        assert_eq!(other.decrypt(&enc), Err(CallbackError::WrongReceiver));
        assert!(c.decrypt("!!!").is_err());
        assert!(c.decrypt("AAAA").is_err());
        let env = parse_envelope("<xml><ToUserName><![CDATA[wwcorp]]></ToUserName><AgentID><![CDATA[1000002]]></AgentID><Encrypt><![CDATA[abc]]></Encrypt></xml>").unwrap();
        assert_eq!(env.encrypt, "abc");
        assert!(parse_envelope("<xml>").is_err());
        assert!(CallbackCrypto::new(Secret::new("t"), &Secret::new("short"), "x").is_err());
    }
}
