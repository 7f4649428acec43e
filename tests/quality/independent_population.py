#!/usr/bin/env python3
"""Independent check of quanyu's identity resolution on a messy population.

Population (from --seed, --people N people, default 15000), written as CSV
exports and imported through `quanyu import`:

* Orders on Taobao/Tmall (two shops), JD, Pinduoduo (no buyer id), Douyin and
  Kuaishou.  Purchase counts are Zipf-like (P(k) ~ k^-2, up to 300 orders);
  a quarter of the people never buy (CRM / WeCom only).  Buyer ids are scoped
  per shop ("<open id>@<shop>"); Taobao tids have 16-19 digits, Pinduoduo
  order_sn looks like 240601-123456789012345.  Some platform phones are masked.
* Phones: 8% of people have a second phone; some people give up their number
  and it is reissued later to someone else who also buys (recycled phones);
  families of 2-4 share one phone (and an address); offices of 6-40 colleagues
  ship to the reception phone (30% of receptions are landlines); a few daigou
  agents buy for 20-100 recipients, shipping to each recipient's phone and
  name; 2% of orders are gifts shipped to a friend's phone and name.
  Receivers vary: home/office addresses and name variants (张先生).
* Junk: test orders (buyer "test", "TEST01", "demo_user"; placeholder phones
  13800138000, 13888888888, 13912345678, 18600000000), CRM members with junk
  phones ("无", "-", "0", "1380013800", "+86 138 0013 8000x"), placeholder
  phones and store phones, and a numeric card batch code
  (ks_20250618000001) that has the shape of a Kuaishou order id.
* WeCom contacts: unionids (most shared with nobody else), remark phones in
  many spellings (+86, spaces, dashes, full-width digits), contacts added by
  two staff members, `state` naming a real order (tb_<tid>, pdd_<order_sn>...)
  or a campaign (tb_summer2025, dy_batch12).  Package cards are sometimes
  scanned by the gift recipient or a family member instead of the buyer.
* Touchpoints: package-card scans (state + external_userid) and AI calls
  (phone + order, sometimes the WeCom contact added), including reactivation
  calls months later that reach whoever holds the number then.

Ground truth: every order and contact record carries its person (the buyer
account holder for orders, including an agent's orders for others; each test
order is its own pseudo-person).  Scoring, over the scored records (orders by
`order:<channel>:<order_id>`, contacts by `wecom_external_userid` /
`crm_member`), after reading `identity_map`:

* precision: over all pairs of records sharing a unified id; a pair of
  different people is false, except pairs inside one family and pairs of an
  agent with one of his recipients, which are counted and reported apart
  (precision is printed both with them excluded and with them as false).
* recall ("clean path"): an identifier (normalized phone, buyer id, order id,
  unionid, external_userid, member id) is clean when, in the ground truth,
  every record carrying it belongs to the same person and it is not junk
  (placeholders, test buyers, invalid or masked phones are never
  identifiers).  Records joined through clean identifiers (touchpoints
  included as carriers) form clean components; each holds one person.  Recall
  is the share of same-person record pairs inside a clean component that
  quanyu put in one customer.  A looser recall over all same-person pairs is
  printed too.

False pairs are grouped by the hazard tags of the identifiers that two
people share inside the customer (gift, recycled_phone, family_phone,
office_phone, store_phone, card_other = a package card scanned by someone
other than the buyer, call_other = an AI call answered by someone else,
agent, batch_code); missed pairs by the reason identity_map gives for the
person's clean identifiers it kept out.

Pair counts are dominated by heavy buyers (a 250-order buyer alone makes
31,000 pairs), so record- and component-level figures are printed too.  An
import that exits non-zero is reported (!! FAILURE), retried once, and if it
still fails `quanyu identity rebuild` is run so that scoring can go on.

Run: python3 tests/quality/independent_population.py [--people N] [--seed S]
     [--work DIR] [--bin /tmp/quanyu-helper] [--skip ai-calls] [--explain 4]
(the work folder is wiped and rebuilt; --skip leaves an import out, for
ablations).
"""

import argparse
import collections
import csv
import datetime as dt
import os
import random
import re
import shutil
import subprocess
import sys
import time

# --------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------

START = dt.datetime(2022, 1, 1)
END = dt.datetime(2025, 6, 30)
SPAN_DAYS = (END - START).days

SHOPS = {  # channel -> shops, weight of the channel, Chinese platform name
    "taobao": (["tmall-flagship", "taobao-outlet"], 0.40, "淘宝"),
    "jd": (["jd-flagship"], 0.15, "京东"),
    "pdd": (["pdd-store"], 0.20, "拼多多"),
    "douyin": (["douyin-store"], 0.15, "抖音"),
    "kuaishou": (["ks-store"], 0.10, "快手"),
}
CN_NAME = {ch: v[2] for ch, v in SHOPS.items()}
STATE_PREFIX = {"taobao": "tb_", "jd": "jd_", "pdd": "pdd_", "douyin": "dy_", "kuaishou": "ks_"}
MASKED_SHARE = {"taobao": 0.10, "jd": 0.05, "pdd": 0.20, "douyin": 0.15, "kuaishou": 0.10}

PLACEHOLDERS = ["13800138000", "13888888888", "13912345678", "18600000000"]
JUNK_PHONES = ["无", "-", "0", "1380013800", "+86 138 0013 8000x"]
TEST_BUYERS = ["test", "TEST01", "demo_user"]
CAMPAIGNS = ["tb_summer2025", "dy_batch12", "jd_618card", "pdd_newyear", "store_sh001", "ai_reactivate"]
NUMERIC_BATCH = "ks_20250618000001"  # looks like a Kuaishou order id, names none

MOBILE_PREFIXES = ["130", "131", "132", "133", "134", "135", "136", "137", "138", "139",
                   "150", "151", "152", "153", "155", "156", "157", "158", "159",
                   "166", "172", "176", "177", "178", "180", "181", "182", "183",
                   "184", "185", "186", "187", "188", "189", "191", "198", "199"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红兰飞鹏辉婷雪琳晨浩宇欣怡子涵梓轩一诺思远雨萱嘉"
CITIES = [("广东省", "深圳市", ["南山区", "福田区", "宝安区"]), ("上海市", "上海市", ["浦东新区", "徐汇区", "闵行区"]),
          ("北京市", "北京市", ["朝阳区", "海淀区", "丰台区"]), ("浙江省", "杭州市", ["西湖区", "余杭区", "滨江区"]),
          ("四川省", "成都市", ["武侯区", "高新区", "锦江区"]), ("湖北省", "武汉市", ["洪山区", "江汉区"]),
          ("江苏省", "南京市", ["鼓楼区", "江宁区"]), ("河南省", "郑州市", ["金水区", "二七区"])]
ROADS = ["科技园路", "人民路", "解放大道", "中山路", "建设路", "文三路", "长江路", "南京东路", "天府大道", "学院路"]
STATUSES = [("交易成功", 0.62), ("已发货", 0.10), ("买家已付款", 0.08), ("交易关闭", 0.10), ("退款成功", 0.07), ("等待买家付款", 0.03)]
OWNERS = ["ZhangWei", "li.na", "wangfang01", "LiuYang", "chenjing", "kefu_xiaomei", "kefu_ajie", "ZhaoLei"]
STORES = ["SH%03d" % i for i in range(1, 11)] + ["BJ%03d" % i for i in range(1, 6)] + ["GZ%03d" % i for i in range(1, 6)]
B62 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


class Gen:
    """Random id / text makers, all unique where they have to be."""

    def __init__(self, rng):
        self.r = rng
        self.used = set()

    def unique(self, make):
        while True:
            v = make()
            if v not in self.used:
                self.used.add(v)
                return v

    def mobile(self):
        while True:
            p = self.r.choice(MOBILE_PREFIXES) + "".join(self.r.choice("0123456789") for _ in range(8))
            # a real subscriber's number: no placeholder-looking runs or repeats
            if len(set(p[3:])) > 3 and "12345678" not in p and "87654321" not in p and p not in self.used:
                self.used.add(p)
                return p

    def landline(self):
        return self.unique(lambda: "%s-%d %04d" % (self.r.choice(["0755", "021", "010", "0571"]),
                                                    self.r.randint(2000, 8999), self.r.randint(0, 9999)))

    def b62(self, n):
        return "".join(self.r.choice(B62) for _ in range(n))

    def name(self):
        n = self.r.choice(SURNAMES) + self.r.choice(GIVEN)
        if self.r.random() < 0.6:
            n += self.r.choice(GIVEN)
        return n

    def address(self):
        prov, city, dists = self.r.choice(CITIES)
        return "%s%s%s%s%d号%d栋%d室" % (prov, city, self.r.choice(dists), self.r.choice(ROADS),
                                      self.r.randint(1, 999), self.r.randint(1, 30), self.r.randint(101, 2806))

    def order_id(self, channel, when):
        r = self.r
        if channel == "taobao":
            return self.unique(lambda: str(r.randint(1, 4)) + "".join(r.choice("0123456789") for _ in range(r.randint(15, 18))))
        if channel == "jd":
            return self.unique(lambda: str(r.randint(2, 3)) + "".join(r.choice("0123456789") for _ in range(11)))
        if channel == "pdd":
            return self.unique(lambda: when.strftime("%y%m%d") + "-" + "".join(r.choice("0123456789") for _ in range(15)))
        if channel == "douyin":
            return self.unique(lambda: "69" + "".join(r.choice("0123456789") for _ in range(17)))
        return self.unique(lambda: "21" + "".join(r.choice("0123456789") for _ in range(14)))

    def buyer_raw(self, channel):
        if channel == "taobao":
            return self.unique(lambda: "AAH" + self.b62(21))
        if channel == "jd":
            return self.unique(lambda: "jd_" + "".join(self.r.choice("0123456789abcdef") for _ in range(13)))
        if channel == "douyin":
            return self.unique(lambda: "1##" + self.b62(24))
        if channel == "kuaishou":
            return self.unique(lambda: "f1" + self.b62(20).lower())
        return None

    def unionid(self):
        return self.unique(lambda: "o6_bm" + self.b62(23))

    def external_userid(self):
        return self.unique(lambda: "wm" + self.b62(30))

    def member_no(self):
        return self.unique(lambda: "HY%010d" % self.r.randint(0, 9999999999))


def spell_phone(r, p, plain=0.7):
    """The same mobile written the way exports and people write it."""
    x = r.random()
    if x < plain:
        return p
    choices = [
        lambda: "+86 %s %s %s" % (p[:3], p[3:7], p[7:]),
        lambda: "+86" + p,
        lambda: "%s-%s-%s" % (p[:3], p[3:7], p[7:]),
        lambda: "%s %s %s" % (p[:3], p[3:7], p[7:]),
        lambda: "".join(chr(ord(c) + 0xFEE0) for c in p),  # full-width digits
        lambda: "0086-" + p,
        lambda: " " + p + " ",
    ]
    return r.choice(choices)()


def masked(p):
    return p[:3] + "****" + p[7:]


def zipf_count(r, a=2.0, kmax=300):
    # inverse-CDF sampling over a truncated power law
    u = r.random() * ZIPF_TOTAL
    acc = 0.0
    for k in range(1, kmax + 1):
        acc += k ** -a
        if acc >= u:
            return k
    return kmax


ZIPF_TOTAL = sum(k ** -2.0 for k in range(1, 301))


def ts(d):
    return d.strftime("%Y-%m-%d %H:%M:%S")


def rand_time(r, a, b):
    if b <= a:
        return a
    return a + dt.timedelta(seconds=r.randint(0, int((b - a).total_seconds())))


# --------------------------------------------------------------------------
# The population
# --------------------------------------------------------------------------

class Person:
    __slots__ = ("pid", "kind", "name", "names", "addrs", "phones", "phone2", "channels",
                 "buyer", "unionid", "family", "office", "agent_of", "recipients", "win", "n_orders",
                 "wecom", "members")

    def __init__(self, pid):
        self.pid = pid
        self.kind = "regular"
        self.phones = []        # [(phone or None, start, end)] in time order
        self.phone2 = None      # a second phone in use alongside
        self.buyer = {}         # channel -> raw buyer id
        self.family = None
        self.office = None
        self.agent_of = set()   # agents who bought for this person
        self.recipients = []
        self.wecom = None
        self.members = []


class World:
    def __init__(self, n, seed):
        self.r = random.Random(seed)
        self.g = Gen(self.r)
        self.n = n
        self.people = [Person(i) for i in range(n)]
        self.phone_kind = {}        # phone -> personal/second/family/office/store/recycled/placeholder
        self.holders = collections.defaultdict(list)  # phone -> [(pid, start, end)]
        self.families = []
        self.offices = []
        self.agents = []
        self.orders = []            # dicts
        self.contacts = {}          # (type, id) -> dict (one per identifier)
        self.contact_rows = []      # wecom rows (a contact per owner) and crm rows
        self.touches = []
        self.test_people = 0
        self.build()

    # ---- people -----------------------------------------------------------
    def build(self):
        r, g = self.r, self.g
        for p in self.people:
            p.name = g.name()
            variants = [p.name]
            if r.random() < 0.10:
                variants.append(p.name[0] + r.choice(["先生", "女士", "小姐"]))
            if r.random() < 0.05:
                variants.append(p.name[1:] if len(p.name) > 2 else p.name + p.name[-1])
            p.names = variants
            k = 1 + (r.random() < 0.25) + (r.random() < 0.05)
            p.addrs = [g.address() for _ in range(k)]
            p.unionid = g.unionid()
            a = START + dt.timedelta(days=r.randint(0, SPAN_DAYS - 30))
            p.win = (a, rand_time(r, a + dt.timedelta(days=30), END))
            ph = g.mobile()
            p.phones = [(ph, START, END)]
            self.phone_kind[ph] = "personal"
            if r.random() < 0.08:
                p.phone2 = g.mobile()
                self.phone_kind[p.phone2] = "second"
            p.n_orders = 0 if r.random() < 0.25 else zipf_count(r)
            chs = list(SHOPS)
            w = [SHOPS[c][1] for c in chs]
            p.channels = []
            for _ in range(1 + (r.random() < 0.35) + (r.random() < 0.10)):
                c = r.choices(chs, w)[0]
                if c not in p.channels:
                    p.channels.append(c)
            for c in p.channels:
                b = g.buyer_raw(c)
                if b:
                    p.buyer[c] = b
        free = list(range(self.n))
        r.shuffle(free)
        # families of 2-4 sharing the first member's phone and a home address
        fam_people = int(self.n * 0.10)
        while fam_people > 0:
            size = r.randint(2, 4)
            members = [self.people[free.pop()] for _ in range(size)]
            fam_people -= size
            fid = len(self.families)
            shared = members[0].phones[0][0]
            self.phone_kind[shared] = "family"
            home = members[0].addrs[0]
            for i, m in enumerate(members):
                m.kind = "family"
                m.family = fid
                m.addrs[0] = home
                if i > 0 and r.random() < 0.5:
                    self.phone_kind.pop(m.phones[0][0], None)
                    m.phones = [(shared, START, END)]
            self.families.append(members)
        # offices of 6-40 colleagues with one reception phone
        for _ in range(max(2, self.n // 1000)):
            size = r.randint(6, 40)
            staff = [self.people[free.pop()] for _ in range(size)]
            rec = g.mobile() if r.random() < 0.7 else g.landline()
            self.phone_kind[rec] = "office"
            addr = g.address()
            oid = len(self.offices)
            for s in staff:
                s.kind = "office"
                s.office = oid
            self.offices.append((rec, addr, staff))
        # daigou agents buying for 20-100 recipients
        for _ in range(max(1, self.n // 3000)):
            a = self.people[free.pop()]
            a.kind = "agent"
            a.n_orders = max(a.n_orders, 3)
            if not any(c in a.buyer for c in a.channels):
                a.channels = ["taobao"]
                a.buyer["taobao"] = g.buyer_raw("taobao")
            k = r.randint(20, 100)
            pool = [q for q in r.sample(self.people, k * 2) if q.kind != "agent"][:k]
            a.recipients = pool
            for q in pool:
                q.agent_of.add(a.pid)
            self.agents.append(a)
        # recycled numbers: A gives up a number, B gets it 60-300 days later
        n_recycle = int(self.n * 0.02)
        done = 0
        while done < n_recycle and len(free) > 2:
            a, b = self.people[free.pop()], self.people[free.pop()]
            old = a.phones[0][0]
            lo = a.win[0] + dt.timedelta(days=30)
            hi = min(a.win[1], END - dt.timedelta(days=400))
            if hi <= lo:
                continue
            churn = rand_time(r, lo, hi)
            new = g.mobile()
            a.phones = [(old, START, churn), (new, churn, END)]
            self.phone_kind[new] = "personal"
            self.phone_kind[old] = "recycled"
            self.phone_kind.pop(b.phones[0][0], None)
            b_start = churn + dt.timedelta(days=r.randint(60, 300))
            b.phones = [(old, b_start, END)]
            b.win = (b_start, rand_time(r, b_start + dt.timedelta(days=1), END))
            b.n_orders = max(b.n_orders, 1)
            a.n_orders = max(a.n_orders, 2)
            a.kind = b.kind = "recycled"
            done += 1
        for p in self.people:
            for ph, s, e in p.phones:
                self.holders[ph].append((p.pid, s, e))
            if p.phone2:
                self.holders[p.phone2].append((p.pid, START, END))
        for rec, _, staff in self.offices:
            self.holders[rec].append((staff[0].pid, START, END))  # the receptionist answers

        for p in self.people:
            self.make_orders(p)
        self.make_test_orders()
        self.make_members()
        self.make_wecom()
        self.make_calls()

    def phone_at(self, p, t):
        """The phone p holds at t (None before a reissued number reached them)."""
        for ph, s, e in p.phones:
            if s <= t < e:
                return ph
        return p.phones[-1][0] if t >= END else None

    def holder_at(self, phone, t):
        for pid, s, e in self.holders.get(phone, []):
            if s <= t < e:
                return pid
        return None

    # ---- orders -----------------------------------------------------------
    def add_order(self, person, channel, when, phone, name, addr, tags, beneficiary=None):
        r, g = self.r, self.g
        shop = r.choice(SHOPS[channel][0])
        oid = g.order_id(channel, when)
        raw_buyer = person.buyer.get(channel) if person is not None else None
        buyer = "%s@%s" % (raw_buyer, shop) if raw_buyer else ""
        phone_cell, phone_norm = "", None
        if phone:
            if phone[0].isdigit() and len(phone) == 11 and r.random() < MASKED_SHARE[channel]:
                phone_cell = masked(phone)
            else:
                phone_cell = spell_phone(r, phone, plain=0.9)
                if len(phone) == 11 and phone.isdigit():
                    phone_norm = phone
        status = r.choices([s for s, _ in STATUSES], [w for _, w in STATUSES])[0]
        amount = "%.2f" % (r.lognormvariate(4.5, 0.8))
        o = dict(channel=channel, shop=shop, order_id=oid, buyer=buyer, phone_cell=phone_cell,
                 phone=phone_norm, name=name, addr=addr, status=status, amount=amount, when=when,
                 person=person.pid if person is not None else None, tags=set(tags), beneficiary=beneficiary)
        if phone_norm:
            kind = self.phone_kind.get(phone_norm, "personal")
            if kind in ("family", "office", "recycled"):
                o["tags"].add(kind + "_phone")
        self.orders.append(o)
        return o

    def make_orders(self, p):
        r = self.r
        if p.n_orders == 0 or not p.channels:
            return
        for _ in range(p.n_orders):
            when = rand_time(r, p.win[0], p.win[1])
            ch = r.choice(p.channels)
            phone = self.phone_at(p, when)
            name = r.choice(p.names) if r.random() < 0.2 else p.names[0]
            addr = p.addrs[0] if r.random() < 0.75 else r.choice(p.addrs)
            tags = set()
            if p.phone2 and r.random() < 0.3:
                phone = p.phone2
            if p.family is not None and p.phones[0][0] != self.families[p.family][0].phones[0][0] and r.random() < 0.4:
                phone = self.families[p.family][0].phones[0][0]
            if p.office is not None and r.random() < 0.5:
                rec, oaddr, _ = self.offices[p.office]
                addr = oaddr
                if r.random() < 0.6:
                    phone = rec
            friend = None
            if r.random() < 0.02:  # a gift to a friend: the friend's phone and name
                friend = self.people[r.randrange(self.n)]
                if friend.pid != p.pid:
                    phone, name, addr = self.phone_at(friend, when), friend.names[0], friend.addrs[0]
                    tags.add("gift")
                else:
                    friend = None
            o = self.add_order(p, ch, when, phone, name, addr, tags, beneficiary=friend.pid if friend else None)
            o["gift_to"] = friend.pid if friend else None
        if p.kind == "agent":
            for q in p.recipients:
                for _ in range(r.randint(1, 3)):
                    when = rand_time(r, START + dt.timedelta(days=200), END)
                    ch = r.choice([c for c in p.channels if c in p.buyer] or ["taobao"])
                    if ch not in p.buyer:
                        p.buyer[ch] = self.g.buyer_raw(ch)
                    self.add_order(p, ch, when, self.phone_at(q, when), q.names[0], q.addrs[0],
                                   {"agent"}, beneficiary=q.pid)

    def make_test_orders(self):
        r = self.r
        for i in range(max(20, self.n // 75)):
            ch = r.choice(list(SHOPS))
            when = rand_time(r, START, END)
            shop = r.choice(SHOPS[ch][0])
            oid = self.g.order_id(ch, when)
            buyer = "" if ch == "pdd" else "%s@%s" % (r.choice(TEST_BUYERS), shop)
            ph = r.choice(PLACEHOLDERS) if r.random() < 0.8 else ""
            self.orders.append(dict(channel=ch, shop=shop, order_id=oid, buyer=buyer, phone_cell=ph, phone=None,
                                    name=r.choice(["测试", "test", "张三"]), addr="测试地址", status="交易关闭",
                                    amount="0.01", when=when, person=-(i + 1), tags={"test"}, beneficiary=None,
                                    gift_to=None, junk_phone=ph or None))
            self.test_people += 1

    # ---- CRM members --------------------------------------------------------
    def make_members(self):
        r, g = self.r, self.g
        store_phone = {s: g.mobile() for s in STORES}
        for ph in store_phone.values():
            self.phone_kind[ph] = "store"
        for p in self.people:
            if r.random() >= 0.30:
                continue
            for dup in range(1 + (r.random() < 0.03)):
                store = r.choice(STORES)
                when = rand_time(r, START, END)
                x = r.random()
                tags = set()
                norm = None
                if x < 0.06:
                    cell = r.choice(JUNK_PHONES)
                    tags.add("junk_phone")
                elif x < 0.09:
                    cell = r.choice(PLACEHOLDERS[:2])
                    tags.add("placeholder")
                elif x < 0.13:
                    cell = store_phone[store]
                    norm = cell
                    tags.add("store_phone")
                elif x < 0.23:
                    cell = ""
                else:
                    ph = self.phone_at(p, when)
                    if not ph or not (ph.isdigit() and len(ph) == 11):
                        cell = ""
                    else:
                        cell = spell_phone(r, ph, plain=0.6)
                        norm = ph
                        kind = self.phone_kind.get(ph, "personal")
                        if kind in ("family", "office", "recycled"):
                            tags.add(kind + "_phone")
                uid = p.unionid if r.random() < 0.35 else ""
                mid = g.member_no()
                c = dict(type="crm_member", id=mid, person=p.pid, phone_cell=cell, phone=norm, unionid=uid,
                         owner=store, when=when, state="", tags=tags)
                self.contacts[("crm_member", mid)] = c
                p.members.append(mid)
                self.contact_rows.append(c)

    # ---- WeCom contacts and package cards -----------------------------------
    def add_wecom(self, p, when, state, tags, phone=None):
        r, g = self.r, self.g
        if p.wecom is not None:
            return p.wecom
        ext = g.external_userid()
        p.wecom = ext
        uid = p.unionid if r.random() < 0.70 else ""
        norm, cell = None, ""
        ph = phone or self.phone_at(p, when)
        if ph and r.random() < 0.25 and ph.isdigit() and len(ph) == 11:
            cell, norm = spell_phone(r, ph, plain=0.4), ph
        c = dict(type="wecom_external_userid", id=ext, person=p.pid, phone_cell=cell, phone=norm, unionid=uid,
                 when=when, state=state, tags=set(tags), owners=[])
        owners = r.sample(OWNERS, 2 if r.random() < 0.10 else 1)
        for o in owners:
            c["owners"].append(o)
        self.contacts[("wecom_external_userid", ext)] = c
        return ext

    def card_state(self, o):
        return STATE_PREFIX[o["channel"]] + o["order_id"]

    def make_wecom(self):
        r = self.r
        by_person = collections.defaultdict(list)
        for o in self.orders:
            if o["person"] is not None and o["person"] >= 0:
                by_person[o["person"]].append(o)
        events = []  # (scanner, order, when, tags)
        for pid, os_ in by_person.items():
            p = self.people[pid]
            if r.random() < 0.22:
                o = r.choice(os_)
                events.append((p, o, o["when"] + dt.timedelta(days=r.randint(2, 12)), set()))
            for o in os_:
                if o.get("gift_to") is not None and r.random() < 0.25:
                    events.append((self.people[o["gift_to"]], o, o["when"] + dt.timedelta(days=r.randint(2, 12)),
                                   {"card_other"}))
                elif p.family is not None and r.random() < 0.03:
                    other = r.choice(self.families[p.family])
                    if other.pid != pid:
                        events.append((other, o, o["when"] + dt.timedelta(days=r.randint(2, 12)), {"card_other"}))
                if "agent" in o["tags"] and r.random() < 0.10:
                    events.append((self.people[o["beneficiary"]], o, o["when"] + dt.timedelta(days=r.randint(2, 12)),
                                   {"card_other", "agent"}))
        events.sort(key=lambda e: e[2])
        n_scan = 0
        for scanner, o, when, tags in events:
            if when > END:
                continue
            state = self.card_state(o)
            ext = self.add_wecom(scanner, when, state, tags)
            self.touches.append(dict(kind="scan", id="SC%09d" % n_scan, when=when, state=state, ext=ext,
                                     owner=r.choice(OWNERS), campaign="包裹卡", person=scanner.pid, phone=None,
                                     order=o["channel"] + ":" + o["order_id"], tags=set(tags)))
            n_scan += 1
        for o in r.sample(self.orders, min(len(self.orders), len(self.orders) // 40)):  # scans without an add
            self.touches.append(dict(kind="scan", id="SC%09d" % n_scan, when=o["when"] + dt.timedelta(days=5),
                                     state=self.card_state(o), ext="", owner="", campaign="包裹卡", person=None,
                                     phone=None, order=None, tags=set()))
            n_scan += 1
        # campaign adds (state names no order) and the numeric batch code
        for p in r.sample(self.people, self.n // 12):
            self.add_wecom(p, rand_time(r, START, END), r.choice(CAMPAIGNS), set())
        for p in r.sample(self.people, max(5, self.n // 500)):
            if p.wecom is None:
                self.add_wecom(p, rand_time(r, START, END), NUMERIC_BATCH, {"batch_code"})
        for c in self.contacts.values():
            if c["type"] == "wecom_external_userid":
                for o in c["owners"]:
                    self.contact_rows.append(dict(c, owner=o))

    # ---- AI calls -----------------------------------------------------------
    def make_calls(self):
        r = self.r
        n = 0
        for o in self.orders:
            if not o["phone"] or o["person"] is None or o["person"] < 0 or r.random() >= 0.08:
                continue
            if r.random() < 0.5:
                when = o["when"] + dt.timedelta(days=r.randint(1, 3), hours=r.randint(0, 8))
            else:
                when = o["when"] + dt.timedelta(days=r.randint(90, 540))
            if when > END:
                continue
            answerer = self.holder_at(o["phone"], when)
            connected = answerer is not None and r.random() < 0.55
            ext, person, tags = "", o["person"], set()
            if connected and r.random() < 0.15:
                q = self.people[answerer]
                ext = self.add_wecom(q, when, "ai_reactivate", set(), phone=o["phone"])
                person = answerer
                if answerer != o["person"]:
                    tags.add("call_other")
                    if self.phone_kind.get(o["phone"]) == "recycled":
                        tags.add("recycled_phone")
                    self.contacts[("wecom_external_userid", ext)]["tags"] |= tags
            outcome = "已接通" if connected else r.choice(["未接", "拒接", "关机", "空号", "占线"])
            self.touches.append(dict(kind="call", id="CALL%09d" % n, when=when, phone=o["phone"], ext=ext,
                                     order=o["channel"] + ":" + o["order_id"], order_channel=o["channel"],
                                     order_id=o["order_id"], outcome=outcome, person=person, tags=tags, state=""))
            n += 1
        # wecom contacts created by calls come after make_wecom wrote its rows
        have = {(c["id"], c["owner"]) for c in self.contact_rows if c["type"] == "wecom_external_userid"}
        for c in self.contacts.values():
            if c["type"] == "wecom_external_userid":
                for ow in c["owners"]:
                    if (c["id"], ow) not in have:
                        self.contact_rows.append(dict(c, owner=ow))


# --------------------------------------------------------------------------
# Files, config, import
# --------------------------------------------------------------------------

ORDER_HEADER = ["平台", "店铺", "订单号", "买家ID", "收货人", "收货手机", "收货地址", "订单状态", "实付金额", "下单时间"]


def write_files(w, work):
    os.makedirs(work, exist_ok=True)
    files = []
    by_ch = collections.defaultdict(list)
    for o in w.orders:
        by_ch[o["channel"]].append(o)
    for ch, rows in sorted(by_ch.items()):
        path = os.path.join(work, "orders_%s.csv" % ch)
        with open(path, "w", newline="", encoding="utf-8") as f:
            cw = csv.writer(f)
            cw.writerow(ORDER_HEADER)
            for o in sorted(rows, key=lambda o: o["when"]):
                cw.writerow([CN_NAME[ch], o["shop"], o["order_id"], o["buyer"], o["name"], o["phone_cell"],
                             o["addr"], o["status"], o["amount"], ts(o["when"])])
        files.append(("orders", path))
    def write(import_name, file_name, header, rows, encoding="utf-8"):
        path = os.path.join(work, file_name)
        with open(path, "w", newline="", encoding=encoding) as f:
            cw = csv.writer(f)
            cw.writerow(header)
            cw.writerows(rows)
        files.append((import_name, path))

    def contacts(kind):
        return (c for c in w.contact_rows if c["type"] == kind)

    def touches(kind):
        return (t for t in w.touches if t["kind"] == kind)

    write("crm-members", "crm_members.csv", ["会员号", "手机号", "unionid", "门店", "注册时间"],
          ([c["id"], c["phone_cell"], c["unionid"], c["owner"], ts(c["when"])] for c in contacts("crm_member")),
          encoding="utf-8-sig")
    write("wecom-contacts", "wecom_contacts.csv", ["外部联系人ID", "unionid", "备注手机号", "添加人", "渠道码", "添加时间"],
          ([c["id"], c["unionid"], c["phone_cell"], c["owner"], c["state"], ts(c["when"])]
           for c in contacts("wecom_external_userid")))
    write("card-scans", "card_scans.csv", ["扫码ID", "扫码时间", "卡片编码", "活动", "企业微信成员", "外部联系人ID"],
          ([t["id"], ts(t["when"]), t["state"], t["campaign"], t["owner"], t["ext"]] for t in touches("scan")))
    write("ai-calls", "ai_calls.csv", ["通话ID", "被叫号码", "呼叫时间", "订单平台", "订单号", "外部联系人ID", "通话状态"],
          ([t["id"], spell_phone(w.r, t["phone"], plain=0.8), ts(t["when"]), CN_NAME[t["order_channel"]],
            t["order_id"], t["ext"], t["outcome"]] for t in touches("call")))
    return files


def identity_section(repo):
    """The [identity] section of examples/quanyu.toml (what a user copies)."""
    path = os.path.join(repo, "examples", "quanyu.toml")
    try:
        text = open(path, encoding="utf-8").read()
    except OSError:
        return ""
    i = text.find("\n[identity]")
    return text[i + 1:] if i >= 0 else ""


def write_config(work, repo):
    platform_map = ", ".join('"%s" = "%s"' % (v[2], ch) for ch, v in SHOPS.items())
    status_map = ('{ "交易成功" = "completed", "已发货" = "shipped", "买家已付款" = "paid", "交易关闭" = "cancelled", '
                  '"退款成功" = "refunded", "等待买家付款" = "pending_payment" }')
    toml = f'''# written by tests/quality/independent_population.py
[lake]
root = "{work}/lake"
key_file = "{work}/lake.key"

[[imports]]
name = "orders"
table = "orders"
columns = {{ channel = {{ column = "平台", map = {{ {platform_map} }} }}, shop_id = "店铺", order_id = "订单号", buyer_id = "买家ID", receiver_name = "收货人", phone = "收货手机", receiver_address = "收货地址", status = {{ column = "订单状态", map = {status_map} }}, amount = "实付金额", created_at = "下单时间" }}

[[imports]]
name = "crm-members"
table = "contacts"
values = {{ channel = "crm" }}
columns = {{ contact_id = "会员号", phone = "手机号", unionid = "unionid", owner_userid = "门店", created_at = "注册时间" }}

[[imports]]
name = "wecom-contacts"
table = "contacts"
values = {{ channel = "wecom" }}
columns = {{ contact_id = "外部联系人ID", unionid = "unionid", phone = "备注手机号", owner_userid = "添加人", state = "渠道码", created_at = "添加时间" }}

[[imports]]
name = "card-scans"
table = "touchpoints"
values = {{ channel = "package_card", event_type = "scan" }}
columns = {{ event_id = "扫码ID", occurred_at = "扫码时间", state = "卡片编码", campaign = "活动", owner_userid = "企业微信成员", external_userid = "外部联系人ID" }}

[[imports]]
name = "ai-calls"
table = "touchpoints"
values = {{ channel = "ai_call", event_type = "call" }}
columns = {{ event_id = "通话ID", phone = "被叫号码", occurred_at = "呼叫时间", order_channel = {{ column = "订单平台", map = {{ {platform_map} }} }}, order_id = "订单号", external_userid = "外部联系人ID", outcome = {{ column = "通话状态", map = {{ "已接通" = "connected", "未接" = "no_answer", "拒接" = "refused", "占线" = "busy", "关机" = "power_off", "空号" = "vacant_number", "*" = "unreachable" }} }} }}

'''
    ident = identity_section(repo)
    toml += ident if ident else "# no [identity]: quanyu's defaults\n"
    path = os.path.join(work, "quanyu.toml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(toml)
    return path, bool(ident)


def run(cmd, env, check=True):
    t0 = time.time()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    took = time.time() - t0
    if check and p.returncode != 0:
        sys.exit("command failed (%d): %s\n%s\n%s" % (p.returncode, " ".join(cmd), p.stdout, p.stderr))
    return p, took


# --------------------------------------------------------------------------
# Ground truth: scored records, identifiers, clean components
# --------------------------------------------------------------------------

class UF:
    def __init__(self):
        self.p = {}

    def find(self, x):
        p = self.p
        p.setdefault(x, x)
        while p[x] != x:
            p[x] = p[p[x]]
            x = p[x]
        return x

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a != b:
            self.p[a] = b


def truth(w):
    """Scored records [(key, person, tags, idents)] and unscored carriers."""
    recs, carriers = [], []
    for o in w.orders:
        key = ("order", "%s:%s" % (o["channel"], o["order_id"]))
        ids = {key}
        if o["buyer"]:
            ids.add(("%s_buyer" % o["channel"], o["buyer"]) if "test" not in o["tags"] else ("junk", o["buyer"]))
        if o["phone"]:
            ids.add(("phone", o["phone"]))
        recs.append((key, o["person"], o["tags"], ids))
    for (t, cid), c in w.contacts.items():
        key = (t, cid)
        ids = {key}
        if c["phone"]:
            ids.add(("phone", c["phone"]))
        if c["unionid"]:
            ids.add(("unionid", c["unionid"]))
        st = c.get("state") or ""
        for ch, pre in STATE_PREFIX.items():
            if st.startswith(pre):
                rest = st[len(pre):]
                if re.fullmatch(ORDER_RE[ch], rest):
                    ids.add(("order", "%s:%s" % (ch, rest)))
        recs.append((key, c["person"], c["tags"], ids))
    for t in w.touches:
        if t["person"] is None:
            continue
        ids = set()
        if t.get("ext"):
            ids.add(("wecom_external_userid", t["ext"]))
        if t.get("order"):
            ids.add(("order", t["order"]))
        if t.get("phone") and t["kind"] == "call":
            ids.add(("phone", t["phone"]))
        if len(ids) > 1 or (t["kind"] == "call" and not t.get("ext")):
            carriers.append((None, t["person"], t["tags"], ids))
    return recs, carriers


ORDER_RE = {"taobao": r"[0-9]{12,20}", "jd": r"[0-9]{9,15}", "pdd": r"[0-9]{6}-[0-9]{10,20}",
            "douyin": r"[0-9]{16,20}", "kuaishou": r"[0-9]{14,20}"}


def clean_components(recs, carriers):
    owners = collections.defaultdict(set)
    for _, person, _, ids in recs + carriers:
        for i in ids:
            owners[i].add(person)
    clean = {i for i, ps in owners.items() if len(ps) == 1 and i[0] != "junk"}
    uf = UF()
    for n, (_, _, _, ids) in enumerate(recs + carriers):
        uf.find(("rec", n))
        for i in ids:
            if i in clean:
                uf.union(("rec", n), ("id",) + i)
    return [uf.find(("rec", n)) for n in range(len(recs))], owners


# --------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------

def c2(n):
    return n * (n - 1) // 2


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--people", type=int, default=15000)
    ap.add_argument("--seed", type=int, default=20250601)
    ap.add_argument("--work", default="/tmp/quanyu-independent")
    ap.add_argument("--bin", default="/tmp/quanyu-helper")
    ap.add_argument("--explain", type=int, default=4, help="false-link pairs to explain")
    ap.add_argument("--skip", action="append", default=[], metavar="IMPORT",
                    help="do not import this file (ai-calls, card-scans, ...) and drop it from the ground truth")
    args = ap.parse_args()
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    t_start = time.time()

    w = World(args.people, args.seed)
    work = os.path.abspath(args.work)
    if os.path.exists(work):
        shutil.rmtree(work)
    os.makedirs(work)
    files = write_files(w, work)
    cfg, has_ident = write_config(work, repo)
    lake = os.path.join(work, "lake")
    print("population: %d people (%d in families, %d office staff in %d offices, %d agents, %d recycled-number people), "
          "%d test orders" % (args.people, sum(len(f) for f in w.families), sum(len(o[2]) for o in w.offices),
                              len(w.offices), len(w.agents), sum(p.kind == "recycled" for p in w.people), w.test_people))
    print("records: %d orders, %d contacts (%d rows), %d touchpoints; generated in %.1fs" % (
        len(w.orders), len(w.contacts), len(w.contact_rows), len(w.touches), time.time() - t_start))
    print("config: %s (%s)" % (cfg, "[identity] copied from examples/quanyu.toml" if has_ident else "identity defaults"))

    env = {k: v for k, v in os.environ.items() if k != "QUANYU_LAKE_KEY"}
    failures = []
    run([args.bin, "init", "--config", cfg], env)
    for name, path in files:
        if name in args.skip:
            print("  import %-15s skipped" % name)
            continue
        p, took = run([args.bin, "--no-progress", "import", "--config", cfg, name, path], env, check=False)
        print("  import %-15s %-22s %5.1fs  %s" % (name, os.path.basename(path), took, p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""))
        if p.returncode != 0:
            # keep going so the rest can still be scored, but say so loudly
            err = (p.stderr.strip().splitlines() or ["?"])[-1]
            failures.append("import %s %s: exit %d: %s" % (name, os.path.basename(path), p.returncode, err))
            print("  !! %s" % failures[-1])
            p, took = run([args.bin, "--no-progress", "import", "--config", cfg, name, path], env, check=False)
            print("  !! retried: exit %d %s" % (p.returncode, (p.stdout.strip() or p.stderr.strip()).splitlines()[-1:]))
            if p.returncode != 0:
                p, took = run([args.bin, "--no-progress", "identity", "rebuild", "--config", cfg], env, check=False)
                print("  !! identity rebuild: exit %d %s (%.1fs)" % (p.returncode, (p.stdout.strip() or p.stderr.strip()).splitlines()[-1:], took))
                failures.append("after it: retry failed; identity rebuild exit %d" % p.returncode)

    p, _ = run([args.bin, "sql", "--lake", lake, "--format", "csv",
                "select id_type, id_value, unified_id, excluded_reason from identity_map"], env)
    uid, excluded = {}, collections.Counter()
    excluded_ids = {}
    for row in csv.DictReader(p.stdout.splitlines()):
        k = (row["id_type"], row["id_value"])
        if row["unified_id"]:
            uid[k] = row["unified_id"]
        else:
            excluded[(row["id_type"], row["excluded_reason"])] += 1
            excluded_ids[k] = row["excluded_reason"]
    p, _ = run([args.bin, "sql", "--lake", lake, "--format", "csv", "select count(*) n from customers"], env)
    n_customers_table = int(p.stdout.splitlines()[1])
    p, _ = run([args.bin, "sql", "--lake", lake, "--format", "csv",
                "select source, reason, count(*) n from quarantine group by 1, 2 order by 3 desc"], env)
    quarantine = p.stdout.strip().splitlines()[1:]

    skipped = {"ai-calls": "call", "card-scans": "scan"}
    w.touches = [t for t in w.touches if t["kind"] not in {skipped.get(s) for s in args.skip}]
    recs, carriers = truth(w)
    comp, owners = clean_components(recs, carriers)
    people_info = {p.pid: p for p in w.people}

    # each scored record -> customer (a record quanyu did not map is its own customer)
    unmapped = 0
    cust = []
    for key, *_ in recs:
        u = uid.get(key)
        if u is None:
            unmapped += 1
            u = "unmapped:%s:%s" % key
        cust.append(u)

    # pair categories between two different people
    fam_of = {p.pid: p.family for p in w.people}

    def pair_kind(a, b):
        if a is None or b is None:
            return "false"
        if a >= 0 and b >= 0:
            if fam_of[a] is not None and fam_of[a] == fam_of[b]:
                return "family"
            pa, pb = people_info[a], people_info[b]
            if (pa.kind == "agent" and b in {q.pid for q in pa.recipients}) or \
               (pb.kind == "agent" and a in {q.pid for q in pb.recipients}):
                return "agent/recipient"
        return "false"

    by_cust = collections.defaultdict(list)
    for n, u in enumerate(cust):
        by_cust[u].append(n)
    carriers_in = collections.defaultdict(list)  # customer -> touchpoints whose order / contact landed there
    for c in carriers:
        us = {uid[i] for i in c[3] if i[0] != "phone" and i in uid}
        for u in us:
            carriers_in[u].append(c)

    same = fam = agent = false = 0
    false_by_reason = collections.Counter()
    false_custs = []
    for u, members in by_cust.items():
        per = collections.Counter(recs[n][1] for n in members)
        same += sum(c2(k) for k in per.values())
        persons = list(per)
        f_here = 0
        for i in range(len(persons)):
            for j in range(i + 1, len(persons)):
                k = pair_kind(persons[i], persons[j])
                m = per[persons[i]] * per[persons[j]]
                if k == "family":
                    fam += m
                elif k == "agent/recipient":
                    agent += m
                else:
                    f_here += m
        if f_here:
            false += f_here
            # identifiers (ground truth) carried by 2+ people inside this customer, and their hazard tags
            # (touchpoints that landed in this customer count as carriers)
            ids_people = collections.defaultdict(set)
            tags_of = collections.defaultdict(set)
            for _, person, tags, ids in [recs[n] for n in members] + carriers_in.get(u, []):
                for i in ids:
                    ids_people[i].add(person)
                    tags_of[i] |= tags
            bridge = {i for i, ps in ids_people.items() if len(ps) > 1}
            reasons = set()
            for i in bridge:
                reasons |= tags_of[i] or {"%s (untagged)" % i[0]}
            if not bridge:
                reasons.add("no identifier shared by two people found")
            reason = ", ".join(sorted(reasons))
            false_by_reason[reason] += f_here
            false_custs.append((f_here, u, members, per, bridge, reason))

    total_pairs = same + fam + agent + false
    print()
    print("== customers ==")
    people_present = {r[1] for r in recs}
    n_clean = len(set(comp))
    print("scored records: %d (orders %d, contacts %d); without a unified id (excluded; each its own customer): %d" % (
        len(recs), len(w.orders), len(w.contacts), unmapped))
    print("distinct people among scored records (each test order one): %d" % len(people_present))
    print("clean-path components (ideal split given clean identifiers): %d" % n_clean)
    print("quanyu customers over scored records: %d; rows in customers table: %d" % (len(by_cust), n_customers_table))
    big = max(by_cust.items(), key=lambda kv: len(kv[1]))
    bigp = max(by_cust.items(), key=lambda kv: len({recs[n][1] for n in kv[1]}))
    print("largest customer by records: %s  %d records, %d distinct people" % (big[0], len(big[1]), len({recs[n][1] for n in big[1]})))
    print("largest customer by people:  %s  %d records, %d distinct people" % (bigp[0], len(bigp[1]), len({recs[n][1] for n in bigp[1]})))
    hist = collections.Counter(min(len({recs[n][1] for n in m}), 10) for m in by_cust.values())
    print("customers by distinct people: " + ", ".join("%s%s: %d" % (k, "+" if k == 10 else "", v) for k, v in sorted(hist.items())))

    purity = sum(max(collections.Counter(recs[n][1] for n in m).values()) for m in by_cust.values())
    mixed = sum(1 for fc in false_custs)
    print("customers mixing people other than one family or an agent and a recipient: %d (%d records in them); "
          "records whose customer belongs mostly to someone else (family members too): %d (%.4f)" % (
              mixed, sum(len(fc[2]) for fc in false_custs), len(recs) - purity, 1 - purity / len(recs)))

    print()
    print("== precision (pairs of records sharing a unified id) ==")
    print("pairs: %d  same person %d, family %d, agent/recipient %d, false %d" % (total_pairs, same, fam, agent, false))
    if total_pairs:
        print("precision (family and agent pairs left out): %.5f" % (same / max(1, same + false)))
        print("precision (family and agent pairs counted false): %.5f" % (same / total_pairs))
    print("false pairs by hazard tags of the identifiers bridging people in the customer:")
    for reason, n in false_by_reason.most_common():
        print("  %9d  %s" % (n, reason))

    print()
    print("== recall ==")
    # phone -> lake hash, learned from the records that carry the phone, so
    # that excluded phones can be checked too (and spellings that hash apart)
    phone_hash = collections.defaultdict(set)
    p, _ = run([args.bin, "sql", "--lake", lake, "--format", "csv",
                "select 'order' t, channel || ':' || order_id k, phone_hash h from orders where phone_hash is not null "
                "union all select case when channel = 'wecom' then 'wecom_external_userid' else channel || '_member' end t, "
                "contact_id k, phone_hash h from contacts where phone_hash is not null"], env)
    hash_of_rec = {(row["t"], row["k"]): row["h"] for row in csv.DictReader(p.stdout.splitlines())}
    for key, _, _, ids in recs:
        h = hash_of_rec.get(key)
        for i in ids:
            if i[0] == "phone" and h:
                phone_hash[i[1]].add(h)
    split_spellings = sum(len(hs) > 1 for hs in phone_hash.values())
    no_hash = sum(1 for key, _, _, ids in recs if any(i[0] == "phone" for i in ids) and key not in hash_of_rec)
    print("phones written in several spellings: %d distinct phones hash to more than one value; "
          "%d records with a valid phone landed without a hash" % (split_spellings, no_hash))

    def excluded_reason(i):
        if i[0] == "phone":
            for h in phone_hash.get(i[1], ()):
                if ("phone_hash", h) in excluded_ids:
                    return excluded_ids[("phone_hash", h)]
            return None
        return excluded_ids.get(i)

    def reason_class(i, reason):
        reason = re.sub(r"^cut from a customer .*", "cut by the component caps", reason)
        reason = re.sub(r"^stands for [0-9]+ people, more than the [0-9]+ allowed for [a-z_]+: [0-9]+ ", "over max_people: ", reason)
        return "%s %s" % (i[0] if i[0] != "phone" else "phone_hash", reason)

    group = collections.defaultdict(collections.Counter)
    comp_recs = collections.defaultdict(list)
    for n, c in enumerate(comp):
        group[c][cust[n]] += 1
        comp_recs[c].append(n)
    want = got = 0
    want_by_kind, miss_by_kind = collections.Counter(), collections.Counter()
    miss_by_reason = collections.Counter()
    whole = multi = recs_main = 0
    clean_excluded = collections.Counter()
    for c, cc in group.items():
        tot = sum(cc.values())
        w_, g_ = c2(tot), sum(c2(k) for k in cc.values())
        want += w_
        got += g_
        pid = recs[comp_recs[c][0]][1]
        kind = people_info[pid].kind if pid is not None and pid >= 0 else "test"
        want_by_kind[kind] += w_
        miss_by_kind[kind] += w_ - g_
        recs_main += max(cc.values())
        if tot > 1:
            multi += 1
            whole += len(cc) == 1
        # clean identifiers of this component that quanyu kept out
        reasons = set()
        ids = set().union(*(recs[n][3] for n in comp_recs[c]))
        for i in ids:
            if len(owners[i]) == 1 and i[0] != "junk":
                why = excluded_reason(i)
                if why:
                    reasons.add(reason_class(i, why))
                    clean_excluded[reason_class(i, why)] += 1
        if w_ > g_:
            miss_by_reason[" | ".join(sorted(reasons)) or "no clean identifier excluded (edges cut or not made)"] += w_ - g_
    print("clean-path same-person pairs: %d, linked by quanyu: %d, recall %.5f" % (want, got, got / max(1, want)))
    nz = {k: v for k, v in want_by_kind.items() if v}
    for k in sorted(nz):
        print("  %-9s pairs %9d  missed %8d  recall %.5f" % (k, nz[k], miss_by_kind[k], 1 - miss_by_kind[k] / nz[k]))
    wa = want - want_by_kind["agent"]
    print("recall without the agents' own orders: %.5f" % ((wa - (sum(miss_by_kind.values()) - miss_by_kind["agent"])) / max(1, wa)))
    print("clean components of 2+ records kept whole: %d of %d (%.4f); records in their component's main customer: %.4f" % (
        whole, multi, whole / max(1, multi), recs_main / max(1, len(recs))))
    per_person = collections.defaultdict(collections.Counter)
    for n, (_, person, _, _) in enumerate(recs):
        per_person[person][cust[n]] += 1
    all_want = sum(c2(sum(cc.values())) for cc in per_person.values())
    all_got = sum(sum(c2(k) for k in cc.values()) for cc in per_person.values())
    print("all same-person pairs (loose, no path needed): %d, linked %d, recall %.5f" % (all_want, all_got, all_got / max(1, all_want)))
    print("missed clean pairs by why quanyu kept the person's clean identifiers out:")
    for reason, n in miss_by_reason.most_common(12):
        print("  %9d  %s" % (n, reason))
    print("clean (single-person) identifiers quanyu excluded:")
    for reason, n in clean_excluded.most_common():
        print("  %7d  %s" % (n, reason))
    print("all identifiers quanyu excluded, by type and reason:")
    excl_cls = collections.Counter()
    for (t, reason), n in excluded.items():
        excl_cls[(t, re.sub(r"[0-9]+", "N", reason))] += n
    for (t, reason), n in excl_cls.most_common():
        print("  %7d  %-22s %s" % (n, t, reason))
    print("junk identifiers:")
    tb = [(t, v) for t, v in uid if t.endswith("_buyer") and v.split("@")[0] in TEST_BUYERS]
    tb_all = {(o["channel"] + "_buyer", o["buyer"]) for o in w.orders if "test" in o["tags"] and o["buyer"]}
    print("  test buyer ids: %d in the files, %d of them with a unified id" % (len(tb_all), len(tb)))
    for ph in PLACEHOLDERS:
        p, _ = run([args.bin, "explain", "--lake", lake, "--config", cfg, "phone:" + ph], env, check=False)
        first = (p.stdout + p.stderr).strip().splitlines()[:1]
        print("  %s -> %s" % (ph, re.sub(r"phone_hash:[0-9a-f]{64}", "phone_hash:…", first[0]) if first else "?"))
    print("quarantine:")
    for q in quarantine:
        print("  " + q)

    print()
    print("== 5 worst false-link customers ==")
    false_custs.sort(key=lambda x: -x[0])
    for f_here, u, members, per, bridge, reason in false_custs[:5]:
        print("%s: %d records, %d people, %d false pairs; hazards: %s" % (u, len(members), len(per), f_here, reason))
        for pid, k in per.most_common(12):
            if pid is not None and pid >= 0:
                p = people_info[pid]
                extra = " family=%s" % p.family if p.family is not None else ""
                extra += " office=%s" % p.office if p.office is not None else ""
                print("   person %-6s %-9s %3d records  %s%s" % (pid, p.kind, k, p.name, extra))
            else:
                print("   test order %-6s %3d records" % (pid, k))
        if len(per) > 12:
            print("   ... %d more people" % (len(per) - 12))
        kinds = collections.Counter()
        for i in bridge:
            kinds[i[0] if i[0] != "phone" else "phone(%s)" % w.phone_kind.get(i[1], "personal")] += 1
        print("   identifiers shared by 2+ people here: " + ", ".join("%s x%d" % kv for kv in kinds.most_common()))

    print()
    print("== explain on false-link pairs ==")
    # one customer for each of the hazards with the most false pairs (the
    # smallest such customer, so the path is short), and in it two records
    # of different people that carry a common identifier when there are any
    picked, used = [], set()
    for reason, _ in false_by_reason.most_common():  # hazards with no tag in common, most pairs first
        tags = set(reason.split(", "))
        if tags & used or len(picked) >= args.explain - 1:
            continue
        used |= tags
        picked.append(min((fc for fc in false_custs if fc[5] == reason), key=lambda fc: len(fc[2])))
    # then a link made by a package card scanned by someone else, then anything
    rest = sorted((fc for fc in false_custs if fc not in picked),
                  key=lambda fc: ("card_other" not in fc[5], len(fc[2])))
    picked += rest[:max(0, args.explain - len(picked))]
    for f_here, u, members, per, bridge, reason in picked:
        pairs = [(a, b) for a in members for b in members
                 if recs[a][1] != recs[b][1] and pair_kind(recs[a][1], recs[b][1]) == "false"]
        direct = [(a, b) for a, b in pairs if recs[a][3] & recs[b][3]]
        a, b = (direct or pairs)[0]
        ka, kb = recs[a][0], recs[b][0]
        print("-- hazard: %s" % reason)
        print("   %s:%s (person %s, tags %s)  vs  %s:%s (person %s, tags %s)" % (
            ka[0], ka[1], recs[a][1], sorted(recs[a][2]), kb[0], kb[1], recs[b][1], sorted(recs[b][2])))
        p, _ = run([args.bin, "explain", "--lake", lake, "--config", cfg, "%s:%s" % ka, "%s:%s" % kb], env, check=False)
        print((p.stdout + p.stderr).rstrip())
    print()
    for f in failures:
        print("!! FAILURE: " + f)
    print("total %.1fs" % (time.time() - t_start))


if __name__ == "__main__":
    main()
