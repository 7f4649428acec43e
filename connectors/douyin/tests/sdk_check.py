"""Pull orders from a Douyin shop gateway (our sandbox) through the Douyin
shop Python SDK (doudian on PyPI): its own token flow (`/token/create`
with grant_type=authorization_self for the shop id), its own signing
(HMAC-SHA256 over the fixed pattern) and request building. The SDK takes
no gateway URL, so a subclass sets it before the SDK's first token call.
The SDK stamps requests in local time, as Douyin expects Beijing time:
the check runs in Asia/Shanghai. Prints {"orders": N}; exits non-zero
when the gateway rejects a call."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
import sdk_check_kit as kit  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

os.environ["TZ"] = "Asia/Shanghai"
time.tzset()

from doudian.core import DouDian  # noqa: E402
from doudian.type import AppType  # noqa: E402


class SandboxDouDian(DouDian):
    gateway = None

    def init_token(self, code=""):
        self._gate_way = SandboxDouDian.gateway
        return super().init_token(code)


def main():
    a = kit.arguments("base-url", "app-key", "secret", "shop-id")
    SandboxDouDian.gateway = a.base_url
    dd = SandboxDouDian(a.app_key, a.secret, app_type=AppType.SELF, shop_id=a.shop_id)
    if not dd._token:
        return kit.rejected("token/create was refused")
    seen = set()
    for start, end in kit.windows(a.start, a.end, 86400):
        page = 0
        while True:
            resp = dd.request(
                "/order/searchList",
                {
                    "page": page,
                    "size": 100,
                    "update_time_start": start,
                    "update_time_end": end - 1,
                    "order_by": "update_time",
                    "order_asc": False,
                },
            )
            if not resp or resp.get("code") != 10000:
                return kit.rejected(resp)
            data = resp["data"]
            for o in data.get("shop_order_list") or []:
                seen.add(o["order_id"])
            if (page + 1) * 100 >= data.get("total", 0):
                break
            page += 1
    return kit.answer(len(seen))


if __name__ == "__main__":
    sys.exit(main())
