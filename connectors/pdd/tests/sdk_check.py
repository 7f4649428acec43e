"""Pull orders from a Pinduoduo router (our sandbox) through the official
Pinduoduo Python SDK (pdd-sdk on PyPI, module pdd_sdk): its own RestApi
client, system parameters (type, client_id, timestamp, data_type,
version) and MD5 signing. The SDK ships request classes only for the
多多客 APIs, so the order API is declared the way its own classes are: a
RestApi subclass whose attributes are the business parameters. The access
token is passed as the `access_token` parameter (the SDK's `authrize`
argument sends a `session` parameter instead). Prints {"orders": N};
exits non-zero when the router rejects a call."""
import argparse
import json
import sys
import warnings

warnings.simplefilter("ignore", SyntaxWarning)

import pdd_sdk  # noqa: E402
from pdd_sdk.api.base import DdkException, RestApi  # noqa: E402


class OrderNumberListIncrementGet(RestApi):
    def __init__(self, domain, port):
        RestApi.__init__(self, domain, port)
        self.access_token = None
        self.start_updated_at = None
        self.end_updated_at = None
        self.is_lucky_flag = None
        self.order_status = None
        self.refund_status = None
        self.page = None
        self.page_size = None

    def getapiname(self):
        return "pdd.order.number.list.increment.get"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--start", type=int, required=True)
    p.add_argument("--end", type=int, required=True)
    a = p.parse_args()
    seen = set()
    start = a.start
    while start < a.end:
        end = min(start + 1800, a.end)
        page = 1
        while True:
            req = OrderNumberListIncrementGet(a.host, a.port)
            req.set_app_info(pdd_sdk.appinfo(a.client_id, a.secret))
            req.access_token = a.token
            req.start_updated_at = start
            req.end_updated_at = end - 1
            req.is_lucky_flag = 0
            req.order_status = 5
            req.refund_status = 5
            req.page = page
            req.page_size = 100
            try:
                resp = req.getResponse()
            except DdkException as e:
                print(json.dumps({"error": str(e)}, ensure_ascii=False))
                return 1
            if "error_response" in resp:
                print(json.dumps({"error": resp}, ensure_ascii=False))
                return 1
            data = resp["order_sn_increment_get_response"]
            for o in data.get("order_sn_list") or []:
                seen.add(o["order_sn"])
            if not data.get("has_next"):
                break
            page += 1
        start = end
    print(json.dumps({"orders": len(seen)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
