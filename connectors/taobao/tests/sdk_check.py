"""Pull orders from a TOP gateway (our sandbox) through the official Taobao
Python SDK (taobao-sdk-python3 on PyPI): its own RestApi client, system
parameters, md5 signing and error handling. Prints {"orders": N}; exits
non-zero when the gateway rejects the call."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
import sdk_check_kit as kit  # noqa: E402
from urllib.parse import urlparse  # noqa: E402

import top  # noqa: E402
from top.api.base import RestApi, TopException  # noqa: E402

TradesSoldIncrementGetRequest = kit.request_class(
    RestApi,
    "taobao.trades.sold.increment.get",
    ["fields", "start_modified", "end_modified", "page_no", "page_size"],
)


def main():
    a = kit.arguments("base-url", "app-key", "secret", "token")
    url = urlparse(a.base_url)
    orders = 0
    for start, end in kit.windows(a.start, a.end, 86400):
        page = 1
        while True:
            req = TradesSoldIncrementGetRequest(url.hostname, url.port)
            req.set_app_info(top.appinfo(a.app_key, a.secret))
            req.fields = "tid,status,modified,payment"
            req.start_modified = kit.beijing(start)
            req.end_modified = kit.beijing(end - 1)
            req.page_no = page
            req.page_size = 100
            try:
                resp = req.getResponse(a.token)
            except TopException as e:
                return kit.rejected(e)
            body = resp["trades_sold_increment_get_response"]
            orders += len(body.get("trades", {}).get("trade", []))
            if page * 100 >= body["total_results"]:
                break
            page += 1
    return kit.answer(orders)


if __name__ == "__main__":
    sys.exit(main())
