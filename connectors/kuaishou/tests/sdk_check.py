"""Pull orders from a Kuaishou open-platform gateway (our sandbox) through the
official Kuaishou shop Python SDK (ks-shop-python-sdk on PyPI, module
ks_shop_api): its own RestApi client, system parameters, MD5 signing with
the signSecret. Prints {"orders": N}; exits non-zero when the gateway
rejects a call."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
import sdk_check_kit as kit  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402

from ks_shop_api.order.request import OpenOrderCursorListRequest  # noqa: E402
from ks_shop_api.order.schema import OpenOrderCursorListSchema  # noqa: E402


def main():
    a = kit.arguments("base-url", "app-key", "secret", "sign-secret", "token")
    orders = 0
    for start, end in kit.windows(a.start, a.end, 7 * 86400):
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
                return kit.rejected(resp)
            data = resp["data"]
            orders += len(data.get("orderList") or [])
            cursor = data.get("cursor") or "nomore"
            if cursor == "nomore":
                break
    return kit.answer(orders)


if __name__ == "__main__":
    sys.exit(main())
