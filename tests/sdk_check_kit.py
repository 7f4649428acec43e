"""What every official-SDK check script (connectors/<name>/tests/sdk_check.py)
shares: its arguments, the windows it walks, the request class it declares
the way the SDKs' own generators write them, and its one-line answer.

A script does `sys.path.insert(0, <repo>/tests)` and `import sdk_check_kit`."""
import argparse
import datetime
import json

BEIJING = datetime.timezone(datetime.timedelta(hours=8))


def arguments(*names):
    """Parse `--<name>` for each of `names` (all required strings) plus the
    window `--start`/`--end` (unix seconds)."""
    p = argparse.ArgumentParser()
    for n in names:
        p.add_argument(f"--{n}", required=True)
    p.add_argument("--start", type=int, required=True)
    p.add_argument("--end", type=int, required=True)
    return p.parse_args()


def windows(start, end, step):
    """[start, end) cut into half-open windows of at most `step` seconds."""
    while start < end:
        yield start, min(start + step, end)
        start += step


def beijing(ts):
    """Unix seconds as Beijing `yyyy-MM-dd HH:mm:ss`."""
    return datetime.datetime.fromtimestamp(ts, BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def request_class(rest_api, api_name, fields):
    """A RestApi subclass for `api_name` whose attributes are the business
    parameters `fields`, as the TOP-style SDK generators write them."""

    def init(self, domain, port=80):
        rest_api.__init__(self, domain, port)
        for f in fields:
            setattr(self, f, None)

    return type(api_name, (rest_api,), {"__init__": init, "getapiname": lambda self: api_name})


def rejected(what):
    """Say the platform rejected a call; the script's exit status."""
    print(json.dumps({"error": what}, ensure_ascii=False, default=str))
    return 1


def answer(orders):
    """Print the order count; the script's exit status."""
    print(json.dumps({"orders": orders}))
    return 0
