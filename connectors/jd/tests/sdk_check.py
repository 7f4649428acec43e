"""Pull orders from a JD open-platform gateway (our sandbox) through the
official JD Python SDK (jd-sdk on PyPI, module jd): its own RestApi client,
system parameters (method, app_key, access_token, timestamp, v=2.0,
360buy_param_json) and MD5 signing. The SDK ships no request class for
jingdong.pop.order.search, so the API is declared the way its own classes
are: a RestApi subclass whose attributes are the business parameters. The
SDK takes a host and a port (it adds /routerjson itself), so it points at
the sandbox without any patching. Prints {"orders": N}; exits non-zero when
the gateway rejects a call."""
import argparse
import datetime
import json
import sys
import urllib.parse

import jd  # noqa: E402
from jd.api.base import RestApi  # noqa: E402

BEIJING = datetime.timezone(datetime.timedelta(hours=8))
STATES = ",".join([
    "WAIT_SELLER_STOCK_OUT", "WAIT_GOODS_RECEIVE_CONFIRM", "WAIT_SELLER_DELIVERY",
    "PAUSE", "FINISHED_L", "TRADE_CANCELED", "LOCKED", "NOT_PAY", "DELIVERY_RETURN",
])
FIELDS = "orderId,orderState,orderPayment,modified"


class PopOrderSearchRequest(RestApi):
    def __init__(self, domain, port=80):
        RestApi.__init__(self, domain, port)
        self.start_date = None
        self.end_date = None
        self.order_state = None
        self.optional_fields = None
        self.page = None
        self.page_size = None
        self.sortType = None
        self.dateType = None

    def getapiname(self):
        return "jingdong.pop.order.search"


def beijing(ts):
    return datetime.datetime.fromtimestamp(ts, BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--app-key", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--start", type=int, required=True)
    p.add_argument("--end", type=int, required=True)
    a = p.parse_args()
    url = urllib.parse.urlparse(a.base_url)
    seen = set()
    month = 30 * 86400
    start = a.start
    while start < a.end:
        end = min(start + month, a.end)
        page = 1
        while True:
            req = PopOrderSearchRequest(url.hostname, url.port or 80)
            req.set_app_info(jd.appinfo(a.app_key, a.secret))
            req.start_date = beijing(start)
            req.end_date = beijing(end - 1)
            req.order_state = STATES
            req.optional_fields = FIELDS
            req.page = str(page)
            req.page_size = "100"
            req.sortType = "1"
            req.dateType = "0"
            resp = req.getResponse(a.token)
            if "error_response" in resp:
                print(json.dumps({"error": resp}, ensure_ascii=False))
                return 1
            root = resp.get("jingdong_pop_order_search_responce") or {}
            result = root.get("searchorderinfo_result") or {}
            if root.get("code") != "0" or not (result.get("apiResult") or {}).get("success"):
                print(json.dumps({"error": resp}, ensure_ascii=False))
                return 1
            for o in result.get("orderInfoList") or []:
                seen.add(o["orderId"])
            if page * 100 >= int(result.get("orderTotal") or 0):
                break
            page += 1
        start = end
    print(json.dumps({"orders": len(seen)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
