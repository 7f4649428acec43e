"""Pull orders from a TOP gateway (our sandbox) through the official Taobao
Python SDK (taobao-sdk-python3 on PyPI): its own RestApi client, system
parameters, md5 signing and error handling. Prints {"orders": N}; exits
non-zero when the gateway rejects the call."""
import argparse
import json
import sys
import time
from urllib.parse import urlparse

import top
from top.api.base import RestApi, TopException


class TradesSoldIncrementGetRequest(RestApi):
    """The request class as TOP's SDK generator writes it."""

    def __init__(self, domain, port):
        RestApi.__init__(self, domain, port)
        self.fields = None
        self.start_modified = None
        self.end_modified = None
        self.page_no = None
        self.page_size = None

    def getapiname(self):
        return "taobao.trades.sold.increment.get"


def beijing(ts):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts + 8 * 3600))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--app-key", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--start", type=int, required=True)
    p.add_argument("--end", type=int, required=True)
    a = p.parse_args()
    url = urlparse(a.base_url)
    orders = 0
    start = a.start
    while start < a.end:
        end = min(start + 86400, a.end)
        page = 1
        while True:
            req = TradesSoldIncrementGetRequest(url.hostname, url.port)
            req.set_app_info(top.appinfo(a.app_key, a.secret))
            req.fields = "tid,status,modified,payment"
            req.start_modified = beijing(start)
            req.end_modified = beijing(end - 1)
            req.page_no = page
            req.page_size = 100
            try:
                resp = req.getResponse(a.token)
            except TopException as e:
                print(json.dumps({"error": str(e)}))
                return 1
            body = resp["trades_sold_increment_get_response"]
            orders += len(body.get("trades", {}).get("trade", []))
            if page * 100 >= body["total_results"]:
                break
            page += 1
        start = end
    print(json.dumps({"orders": orders}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
