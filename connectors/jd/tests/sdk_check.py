"""Pull orders from a JD open-platform gateway (our sandbox) through the
official JD Python SDK (jd-sdk on PyPI, module jd): its own RestApi client,
system parameters (method, app_key, access_token, timestamp, v=2.0,
360buy_param_json) and MD5 signing. The SDK ships no request class for
jingdong.pop.order.search, so the API is declared the way its own classes
are: a RestApi subclass whose attributes are the business parameters. The
SDK takes a host and a port (it adds /routerjson itself), so it points at
the sandbox without any patching. Prints {"orders": N}; exits non-zero when
the gateway rejects a call."""
import sys
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
import sdk_check_kit as kit  # noqa: E402
import jd  # noqa: E402
from jd.api.base import RestApi  # noqa: E402

STATES = ",".join([
    "WAIT_SELLER_STOCK_OUT", "WAIT_GOODS_RECEIVE_CONFIRM", "WAIT_SELLER_DELIVERY",
    "PAUSE", "FINISHED_L", "TRADE_CANCELED", "LOCKED", "NOT_PAY", "DELIVERY_RETURN",
])
FIELDS = "orderId,orderState,orderPayment,modified"
PopOrderSearchRequest = kit.request_class(
    RestApi,
    "jingdong.pop.order.search",
    ["start_date", "end_date", "order_state", "optional_fields", "page", "page_size",
     "sortType", "dateType"],
)


def main():
    a = kit.arguments("base-url", "app-key", "secret", "token")
    url = urllib.parse.urlparse(a.base_url)
    seen = set()
    for start, end in kit.windows(a.start, a.end, 30 * 86400):
        page = 1
        while True:
            req = PopOrderSearchRequest(url.hostname, url.port or 80)
            req.set_app_info(jd.appinfo(a.app_key, a.secret))
            req.start_date = kit.beijing(start)
            req.end_date = kit.beijing(end - 1)
            req.order_state = STATES
            req.optional_fields = FIELDS
            req.page = str(page)
            req.page_size = "100"
            req.sortType = "1"
            req.dateType = "0"
            resp = req.getResponse(a.token)
            if "error_response" in resp:
                return kit.rejected(resp)
            root = resp.get("jingdong_pop_order_search_responce") or {}
            result = root.get("searchorderinfo_result") or {}
            if root.get("code") != "0" or not (result.get("apiResult") or {}).get("success"):
                return kit.rejected(resp)
            for o in result.get("orderInfoList") or []:
                seen.add(o["orderId"])
            if page * 100 >= int(result.get("orderTotal") or 0):
                break
            page += 1
    return kit.answer(len(seen))


if __name__ == "__main__":
    sys.exit(main())
