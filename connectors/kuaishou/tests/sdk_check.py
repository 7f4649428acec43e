"""Pull orders from a Kuaishou open-platform gateway (our sandbox) through the
official Kuaishou shop Python SDK (ks-shop-python-sdk on PyPI, module
ks_shop_api): its own RestApi client, system parameters, MD5 signing with
the signSecret. Prints {"orders": N}; exits non-zero when the gateway
rejects a call."""
import argparse
import contextlib
import io
import json
import sys

from ks_shop_api.order.request import OpenOrderCursorListRequest
from ks_shop_api.order.schema import OpenOrderCursorListSchema


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--app-key", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--sign-secret", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--start", type=int, required=True)
    p.add_argument("--end", type=int, required=True)
    a = p.parse_args()
    orders = 0
    start = a.start
    week = 7 * 86400
    while start < a.end:
        end = min(start + week, a.end)
        cursor = ""
        while True:
            req = OpenOrderCursorListRequest(a.app_key, a.secret, a.sign_secret)
            req.base_url = a.base_url
            param = OpenOrderCursorListSchema(
                orderViewStatus=1,
                pageSize=50,
                sort=1,
                queryType=2,
                beginTime=start * 1000,
                endTime=end * 1000 - 1,
                cursor=cursor,
            )
            # The SDK prints the string it signs (with the signSecret): keep
            # it out of the output.
            with contextlib.redirect_stdout(io.StringIO()):
                resp = req.getResponse(a.token, param.model_dump(exclude_none=True))
            if resp.get("result") != 1:
                print(json.dumps({"error": resp}, ensure_ascii=False))
                return 1
            data = resp["data"]
            orders += len(data.get("orderList") or [])
            cursor = data.get("cursor") or "nomore"
            if cursor == "nomore":
                break
        start = end
    print(json.dumps({"orders": orders}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
