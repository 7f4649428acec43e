"""Independent WeCom callback crypto (wechatpy from PyPI).

encrypt: encrypt --xml with wechatpy and print {encrypt, msg_signature,
timestamp, nonce}. decrypt: check --signature and decrypt --encrypt with
wechatpy and print {xml}."""
import argparse
import json
import sys

from wechatpy.enterprise.crypto import WeChatCrypto


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["encrypt", "decrypt"])
    p.add_argument("--token", required=True)
    p.add_argument("--aes-key", required=True)
    p.add_argument("--corp-id", required=True)
    p.add_argument("--xml")
    p.add_argument("--encrypt")
    p.add_argument("--signature")
    p.add_argument("--timestamp", default="1704081600")
    p.add_argument("--nonce", default="nonce123")
    a = p.parse_args()
    crypto = WeChatCrypto(a.token, a.aes_key, a.corp_id)
    if a.mode == "encrypt":
        out = crypto.encrypt_message(a.xml, a.nonce, a.timestamp)
        import xml.etree.ElementTree as ET
        root = ET.fromstring(out)
        print(json.dumps({
            "encrypt": root.findtext("Encrypt"),
            "msg_signature": root.findtext("MsgSignature"),
            "timestamp": root.findtext("TimeStamp"),
            "nonce": root.findtext("Nonce"),
        }))
    else:
        body = "<xml><ToUserName><![CDATA[%s]]></ToUserName><Encrypt><![CDATA[%s]]></Encrypt></xml>" % (a.corp_id, a.encrypt)
        xml = crypto.decrypt_message(body, a.signature, a.timestamp, a.nonce)
        print(json.dumps({"xml": xml}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
