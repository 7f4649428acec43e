"""Pull orders from a Pinduoduo router (our sandbox) through the official
Pinduoduo Python SDK (pdd-sdk on PyPI, module pdd_sdk): its own RestApi
client, system parameters (type, client_id, timestamp, data_type,
version) and MD5 signing. The SDK ships request classes only for the
多多客 APIs, so the order API is declared the way its own classes are: a
RestApi subclass whose attributes are the business parameters. The access
token is passed as the `access_token` parameter (the SDK's `authrize`
argument sends a `session` parameter instead). Prints {"orders": N};
exits non-zero when the router rejects a call."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
import sdk_check_kit as kit  # noqa: E402
import warnings  # noqa: E402

warnings.simplefilter("ignore", SyntaxWarning)

import pdd_sdk  # noqa: E402
from pdd_sdk.api.base import DdkException, RestApi  # noqa: E402

OrderNumberListIncrementGet = kit.request_class(
    RestApi,
    "pdd.order.number.list.increment.get",
    ["access_token", "start_updated_at", "end_updated_at", "is_lucky_flag", "order_status",
     "refund_status", "page", "page_size"],
)


def main():
    a = kit.arguments("host", "port", "client-id", "secret", "token")
    seen = set()
    for start, end in kit.windows(a.start, a.end, 1800):
        page = 1
        while True:
            req = OrderNumberListIncrementGet(a.host, int(a.port))
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
                return kit.rejected(e)
            if "error_response" in resp:
                return kit.rejected(resp)
            data = resp["order_sn_increment_get_response"]
            for o in data.get("order_sn_list") or []:
                seen.add(o["order_sn"])
            if not data.get("has_next"):
                break
            page += 1
    return kit.answer(len(seen))


if __name__ == "__main__":
    sys.exit(main())
