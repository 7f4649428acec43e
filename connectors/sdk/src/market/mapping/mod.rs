//! A platform's record layout as data: where each canonical field stands in
//! the platform's order and refund records, in which unit, and what its
//! status words mean, read from the connector's `mapping.toml`. One
//! interpreter maps every platform, so a rule (what an unset time looks
//! like, that a mask is never a phone, that a negative amount is refused)
//! is written once; the file also holds the mapping's checks (`[[check]]`),
//! records with what they must map to, run by [`RecordMapping::check`].
//!
//! Only the fields the layout names are kept from a record: it is parsed
//! once, each named path's value into its slot, and whatever else the
//! platform sends is skipped unread.

mod check;
mod tree;

use super::record::{item_count_of, lines_of, yuan_of, Line, MappedOrder, Rejected};
use check::Check;
use quanyu_schemas::time::{from_unix_millis, from_unix_seconds, parse_beijing};
use quanyu_schemas::{
    normalize_phone, Channel, OrderRow, OrderStatus, PhoneError, PiiHasher, RefundRow, RefundStatus,
};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;
use tree::{Fields, Path, Record, Tree};

/// A connector's record mapping: its `mapping.toml`, read on first use.
pub struct RecordMapping {
    channel: Channel,
    text: &'static str,
    spec: OnceLock<Layout>,
}

impl RecordMapping {
    /// The mapping of `channel`'s records that `text` (the connector's
    /// `mapping.toml`, by `include_str!`) describes.
    pub const fn new(channel: Channel, text: &'static str) -> Self {
        RecordMapping {
            channel,
            text,
            spec: OnceLock::new(),
        }
    }

    /// The layout; a file that does not read is a defect of the connector
    /// (its `check` test fails first), so it stops here with the reason.
    fn layout(&self) -> &Layout {
        self.spec.get_or_init(|| {
            Layout::read(self.text).unwrap_or_else(|e| panic!("{} mapping.toml: {e}", self.channel))
        })
    }

    /// One order record of `shop` as its canonical row, lines and phone
    /// ciphertext, or why not (the rejection names the field).
    pub fn order(
        &self,
        raw: &str,
        shop: &str,
        hasher: &PiiHasher,
    ) -> Result<MappedOrder, Rejected> {
        let layout = self.layout();
        let order = layout
            .order
            .as_ref()
            .ok_or_else(|| Rejected::new(None, "this platform lists no orders"))?;
        order.map(self.channel, raw, shop, hasher)
    }

    /// One refund (after-sale) record of `shop` as its canonical row, or
    /// why not.
    pub fn refund(&self, raw: &str, shop: &str) -> Result<RefundRow, Rejected> {
        let refund = self
            .layout()
            .refund
            .as_ref()
            .ok_or_else(|| Rejected::new(None, "this platform lists no refunds"))?;
        refund.map(self.channel, raw, shop)
    }

    /// The items of a batch decrypt request: one object per `(id,
    /// ciphertext)` with the keys the layout's `[decrypt]` names.
    pub fn decrypt_items(&self, items: &[(&str, &str)]) -> Value {
        let d = self.decrypt_layout();
        items
            .iter()
            .map(|(id, cipher)| {
                let mut o = serde_json::Map::new();
                o.insert(d.id.clone(), Value::from(*id));
                o.insert(d.cipher.clone(), Value::from(*cipher));
                Value::Object(o)
            })
            .collect()
    }

    /// The phones a batch decrypt's answer `body` gives `items`, in their
    /// order: the result naming an item's id (and its ciphertext, where
    /// the result repeats it) whose error code is absent or the layout's
    /// success; `None` where there is none. An answer that is not JSON is
    /// a protocol error.
    pub fn decrypted(
        &self,
        ctx: &crate::RequestContext,
        body: &[u8],
        items: &[(&str, &str)],
    ) -> Result<Vec<Option<String>>, crate::ConnectorError> {
        let d = self.decrypt_layout();
        let answer: Value = super::record::read_answer(ctx, body, "decrypt")?;
        let results = d.answer.iter().find_map(|p| {
            p.split('.')
                .try_fold(&answer, |v, k| v.get(k))
                .and_then(Value::as_array)
        });
        let field = |r: &Value, k: &str| r.get(k).and_then(text);
        Ok(super::record::phones_for(
            items,
            results.map_or(&[][..], Vec::as_slice),
            |r, id, cipher| {
                field(r, &d.id).as_deref() == Some(id)
                    && field(r, &d.cipher).is_none_or(|c| c == cipher)
            },
            |r| {
                let ok = r.get(&d.error).and_then(int).is_none_or(|c| c == d.ok);
                field(r, &d.phone).filter(|_| ok)
            },
        ))
    }

    fn decrypt_layout(&self) -> &DecryptLayout {
        let channel = self.channel;
        self.layout()
            .decrypt
            .as_ref()
            .unwrap_or_else(|| panic!("{channel} mapping.toml has no [decrypt]"))
    }

    /// Run the file's checks: every `[[check]]` record must map to what it
    /// says (or be refused for the reason it says). The error lists each
    /// check that failed and how.
    pub fn check(&self) -> Result<usize, String> {
        let layout = Layout::read(self.text)?;
        let hasher = PiiHasher::new(&quanyu_schemas::LakeKey::from_bytes([1; 32]));
        let mut failures = Vec::new();
        for check in &layout.check {
            if let Err(e) = check.run(self, &layout.check, &hasher) {
                failures.push(format!("check {:?}: {e}", check.name));
            }
        }
        if layout.check.is_empty() {
            failures.push("the file has no [[check]]".into());
        }
        match failures.is_empty() {
            true => Ok(layout.check.len()),
            false => Err(failures.join("\n")),
        }
    }
}

/// One or more paths; the first that holds a value wins.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "OneOrMore")]
struct Paths(Vec<Path>);

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMore {
    One(String),
    More(Vec<String>),
}

impl From<OneOrMore> for Paths {
    fn from(v: OneOrMore) -> Self {
        match v {
            OneOrMore::One(p) => Paths(vec![p.into()]),
            OneOrMore::More(v) => Paths(v.into_iter().map(Path::from).collect()),
        }
    }
}

impl Paths {
    /// The first path holding a non-blank scalar, with that path.
    fn find<'v>(&'v self, record: &'v impl Fields) -> Option<(&'v str, &'v Value)> {
        self.0.iter().find_map(|p| {
            record
                .at(p)
                .filter(|v| holds(v))
                .map(|v| (p.name.as_str(), v))
        })
    }

    fn text(&self, record: &impl Fields) -> Option<String> {
        self.find(record).and_then(|(_, v)| text(v))
    }

    /// The name a rejection gives the field.
    fn name(&self) -> &str {
        self.0.first().map_or("?", |p| p.name.as_str())
    }
}

/// How a record writes its times.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum TimeUnit {
    /// `yyyy-MM-dd HH:mm:ss` in Beijing time.
    Beijing,
    /// Unix seconds (a number or a string holding one).
    UnixSeconds,
    /// Unix milliseconds.
    UnixMillis,
}

/// How a record writes its amounts.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum MoneyUnit {
    /// Integer fen.
    Fen,
    /// Yuan as decimal text or a number, read exactly.
    Yuan,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Layout {
    order: Option<OrderLayout>,
    refund: Option<RefundLayout>,
    decrypt: Option<DecryptLayout>,
    #[serde(default)]
    check: Vec<Check>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderLayout {
    /// What the record is called in a rejection (`JD order`).
    what: String,
    time: TimeUnit,
    money: MoneyUnit,
    id: Paths,
    /// Where the record is refused without its id, the field keying the
    /// refusal instead (`o_id:77`).
    #[serde(default)]
    id_else: Option<Path>,
    created: Paths,
    updated: Paths,
    #[serde(default)]
    paid: Paths,
    #[serde(default)]
    amount: Paths,
    #[serde(default)]
    buyer: Paths,
    /// Buyer ids hold only within a shop: stored as `id@shop`.
    #[serde(default)]
    buyer_per_shop: bool,
    #[serde(default)]
    unionid: Paths,
    #[serde(default)]
    province: Paths,
    #[serde(default)]
    city: Paths,
    /// The receiver's name and address (masked or clear), hashed together
    /// to tell buyers apart where the platform names none.
    #[serde(default)]
    receiver: Option<(Path, Path)>,
    #[serde(default)]
    phone: PhoneLayout,
    status: StatusLayout,
    #[serde(default)]
    lines: Option<LineLayout>,
    #[serde(skip)]
    tree: Tree,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PhoneLayout {
    /// Where the receiver's phone stands: clear, masked or ciphertext.
    #[serde(default)]
    at: Paths,
    /// Where a mask stands beside it.
    #[serde(default)]
    mask: Paths,
    /// Where the phone's ciphertext stands, or `"phone"`: a `$…$` value in
    /// the phone itself is its ciphertext.
    #[serde(default)]
    cipher: Option<String>,
    /// The phone is not the receiver's when this path holds this value
    /// (a virtual number).
    #[serde(default)]
    unless: Option<(Path, String)>,
    /// The ciphertext's path, when it has its own.
    #[serde(skip)]
    cipher_at: Option<Path>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusLayout {
    at: Paths,
    /// How the platform status is shown in `platform_status`: the first
    /// template whose `{path}`s all hold a value; the status itself when
    /// none does.
    #[serde(default)]
    shown: Vec<String>,
    #[serde(skip)]
    templates: Vec<Vec<Piece>>,
    /// The platform's words for each order status.
    #[serde(default)]
    means: BTreeMap<OrderStatus, Vec<String>>,
    /// Closed words: refunded when the order was paid (or carries
    /// refunds), cancelled when it was not.
    #[serde(default)]
    closed: Vec<String>,
    /// A field whose values say the order was refunded whatever its status.
    #[serde(default)]
    refunded_when: Option<(Path, Vec<String>)>,
    /// A list that, when not empty, says a closed order was refunded.
    #[serde(default)]
    refunds: Option<Path>,
    #[serde(skip)]
    words: HashMap<String, Option<OrderStatus>>,
}

/// A batch decrypt's request items and answer, by key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecryptLayout {
    /// An item's id key, in the request and in a result.
    id: String,
    /// An item's ciphertext key, in the request and (where repeated) in a
    /// result.
    cipher: String,
    /// Where the answer lists its results (dotted; the first that holds a
    /// list).
    answer: Vec<String>,
    /// A result's clear phone.
    phone: String,
    /// A result's error code.
    error: String,
    /// The error code of a success.
    #[serde(default)]
    ok: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LineLayout {
    /// The list of lines (one object counts as a list of one).
    list: String,
    #[serde(default)]
    id: Paths,
    #[serde(default)]
    item: Paths,
    #[serde(default)]
    sku: Paths,
    #[serde(default)]
    title: Paths,
    #[serde(default)]
    quantity: Paths,
    #[serde(default)]
    price: Paths,
    #[serde(default)]
    amount: Paths,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundLayout {
    what: String,
    time: TimeUnit,
    money: MoneyUnit,
    id: Paths,
    order: Paths,
    #[serde(default)]
    line: Paths,
    status: Paths,
    amount: Paths,
    created: Paths,
    updated: Paths,
    means: BTreeMap<RefundStatus, Vec<String>>,
    #[serde(skip)]
    words: HashMap<String, RefundStatus>,
    #[serde(skip)]
    tree: Tree,
}

impl Layout {
    fn read(text: &str) -> Result<Layout, String> {
        let mut layout: Layout = toml::from_str(text).map_err(|e| e.to_string())?;
        if let Some(o) = layout.order.as_mut() {
            o.prepare()?;
        }
        if let Some(r) = layout.refund.as_mut() {
            r.prepare()?;
        }
        Ok(layout)
    }
}

/// Each word once: a word in two lists would mean whichever came first.
/// `10..=59` stands for every number from 10 to 59.
fn word_table<T: Copy + std::fmt::Debug>(
    lists: impl IntoIterator<Item = (T, Vec<String>)>,
) -> Result<HashMap<String, T>, String> {
    let mut words = HashMap::new();
    for (meaning, list) in lists {
        let mut expanded = Vec::new();
        for w in list {
            match w
                .split_once("..=")
                .map(|(a, b)| (a.parse::<u32>(), b.parse::<u32>()))
            {
                Some((Ok(a), Ok(b))) if a <= b && b - a < 1000 => {
                    expanded.extend((a..=b).map(|n| n.to_string()))
                }
                Some(_) => return Err(format!("{w:?} is not a range of at most 1,000 numbers")),
                None => expanded.push(w),
            }
        }
        for w in expanded {
            if let Some(before) = words.insert(w.clone(), meaning) {
                return Err(format!(
                    "status {w:?} means both {before:?} and {meaning:?}"
                ));
            }
        }
    }
    Ok(words)
}

impl OrderLayout {
    fn prepare(&mut self) -> Result<(), String> {
        let s = &mut self.status;
        let lists = s
            .means
            .iter()
            .map(|(k, v)| (Some(*k), v.clone()))
            .chain([(None, s.closed.clone())]);
        s.words = word_table(lists)?;
        s.templates = s
            .shown
            .iter()
            .map(|t| template(t))
            .collect::<Result<_, _>>()?;
        let p = &mut self.phone;
        p.cipher_at = p.cipher.clone().filter(|c| c != "phone").map(Path::from);
        let mut tree = Tree::default();
        let all = [
            &mut self.id,
            &mut self.created,
            &mut self.updated,
            &mut self.paid,
            &mut self.amount,
            &mut self.buyer,
            &mut self.unionid,
            &mut self.province,
            &mut self.city,
            &mut p.at,
            &mut p.mask,
            &mut s.at,
        ];
        for path in all.into_iter().flat_map(|p| p.0.iter_mut()) {
            tree.add(path)?;
        }
        let (name, address) = match self.receiver.as_mut() {
            Some((n, a)) => (Some(n), Some(a)),
            None => (None, None),
        };
        let singles = [
            self.id_else.as_mut(),
            name,
            address,
            p.unless.as_mut().map(|u| &mut u.0),
            p.cipher_at.as_mut(),
            s.refunded_when.as_mut().map(|r| &mut r.0),
            s.refunds.as_mut(),
        ];
        for path in singles.into_iter().flatten() {
            tree.add(path)?;
        }
        for piece in s.templates.iter_mut().flatten() {
            if let Piece::Field(path) = piece {
                tree.add(path)?;
            }
        }
        if let Some(l) = &mut self.lines {
            let line = [
                &mut l.id,
                &mut l.item,
                &mut l.sku,
                &mut l.title,
                &mut l.quantity,
                &mut l.price,
                &mut l.amount,
            ];
            for path in line.into_iter().flat_map(|p| p.0.iter_mut()) {
                tree.add_line(&l.list, path)?;
            }
        }
        self.tree = tree;
        Ok(())
    }

    fn map(
        &self,
        channel: Channel,
        raw: &str,
        shop: &str,
        hasher: &PiiHasher,
    ) -> Result<MappedOrder, Rejected> {
        let r = self.tree.read(raw, &self.what)?;
        let order_id = self.id.text(&r).ok_or_else(|| {
            let also = self.id_else.as_ref();
            let key = also.and_then(|p| Some(format!("{}:{}", p.name, r.at(p).and_then(text)?)));
            Rejected::new(key.as_deref(), format!("order has no {}", self.id.name()))
        })?;
        let reject = |reason: String| Rejected::new(Some(&order_id), reason);
        let time = |paths: &Paths| read_time(&r, paths, self.time).map_err(reject);
        let required = |paths: &Paths| {
            time(paths)?.ok_or_else(|| reject(format!("order has no {}", paths.name())))
        };
        let created_at = required(&self.created)?;
        let updated_at = required(&self.updated)?;
        let paid_at = time(&self.paid)?;
        let (platform_status, status) = self.status.read(&r, paid_at.is_some()).map_err(reject)?;
        let amount_fen = read_money(&r, &self.amount, self.money)
            .map_err(reject)?
            .unwrap_or(0);
        let lines = match &self.lines {
            Some(l) => l.read(&r, self.money).map_err(reject)?,
            None => Vec::new(),
        };
        let (phone_hash, phone_masked, cipher) = self.phone.read(&r, hasher);
        let row = OrderRow {
            channel,
            shop_id: shop.to_string(),
            buyer_id: self.buyer.text(&r).filter(|b| !b.contains('*')).map(|b| {
                match self.buyer_per_shop {
                    true => format!("{b}@{shop}"),
                    false => b,
                }
            }),
            order_id,
            phone_hash,
            phone_masked,
            status,
            platform_status,
            amount_fen,
            item_count: item_count_of(&lines),
            province: self.province.text(&r),
            city: self.city.text(&r),
            created_at,
            paid_at,
            updated_at,
            receiver_hash: self.receiver.as_ref().and_then(|(name, address)| {
                let part = |p: &Path| r.at(p).and_then(text);
                hasher.receiver(part(name).as_deref(), part(address).as_deref())
            }),
            buyer_unionid: self.unionid.text(&r),
        };
        Ok(MappedOrder {
            lines: lines_of(&row, lines),
            row,
            cipher,
        })
    }
}

impl StatusLayout {
    /// The status as shown and in the closed vocabulary, or why not.
    fn read(&self, r: &impl Fields, paid: bool) -> Result<(String, OrderStatus), String> {
        let (_, value) = self
            .at
            .find(r)
            .ok_or_else(|| format!("order has no {}", self.at.name()))?;
        let word = text(value).unwrap_or_default();
        let shown = self
            .templates
            .iter()
            .find_map(|t| render(t, r))
            .unwrap_or_else(|| word.clone());
        let refunded = self
            .refunded_when
            .as_ref()
            .is_some_and(|(p, values)| r.at(p).and_then(text).is_some_and(|v| values.contains(&v)));
        let has_refunds = self.refunds.as_ref().is_some_and(|p| match r.at(p) {
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(o)) => !o.is_empty(),
            _ => false,
        });
        let status = match self.words.get(&word) {
            _ if refunded => OrderStatus::Refunded,
            Some(Some(s)) => *s,
            Some(None) if paid || has_refunds => OrderStatus::Refunded,
            Some(None) => OrderStatus::Cancelled,
            None => return Err(format!("unknown order status {shown:?}")),
        };
        Ok((shown, status))
    }
}

impl PhoneLayout {
    /// The phone's hash and mask, and its ciphertext for the decrypt API.
    /// A clear mobile is hashed at once; a mask is kept only as a mask;
    /// anything else (a landline, garbage) stays out of the lake.
    fn read(
        &self,
        r: &impl Fields,
        hasher: &PiiHasher,
    ) -> (Option<String>, Option<String>, Option<String>) {
        let virtual_number = self
            .unless
            .as_ref()
            .is_some_and(|(p, v)| r.at(p).and_then(text).as_ref() == Some(v));
        let phone = self.at.text(r).filter(|_| !virtual_number);
        let (mut hash, mut mask, mut cipher) = (None, None, None);
        if let Some(p) = &phone {
            match normalize_phone(p) {
                Ok(n) => (hash, mask) = (Some(hasher.phone(&n)), Some(n.masked())),
                Err(PhoneError::Masked) => mask = Some(p.clone()),
                Err(_) if self.cipher.as_deref() == Some("phone") && is_dollar_cipher(p) => {
                    cipher = Some(p.clone())
                }
                Err(_) => {}
            }
        }
        if mask.is_none() {
            mask = self
                .mask
                .text(r)
                .filter(|m| matches!(normalize_phone(m), Err(PhoneError::Masked)));
        }
        if let Some(path) = &self.cipher_at {
            cipher = r.at(path).and_then(text);
        }
        (hash, mask, cipher)
    }
}

/// A `$…$`-framed value: Pinduoduo's and Youzan's phone ciphertext.
fn is_dollar_cipher(v: &str) -> bool {
    v.len() > 2 && v.starts_with('$') && v.ends_with('$')
}

impl LineLayout {
    fn read(&self, r: &Record, money: MoneyUnit) -> Result<Vec<Line>, String> {
        let mut lines = Vec::new();
        for (k, item) in r.lines().enumerate() {
            let item = &item;
            let named = |e: String| format!("{}[{k}].{e}", self.list);
            let quantity = match self.quantity.find(item) {
                None => None,
                Some((p, v)) => Some(
                    int(v)
                        .filter(|n| *n >= 0)
                        .ok_or_else(|| named(format!("{p}: not a piece count")))?,
                ),
            };
            lines.push(Line {
                id: self.id.text(item),
                item: self.item.text(item),
                // An item without SKUs has SKU id 0 on some platforms.
                sku: self.sku.text(item).filter(|s| s != "0"),
                title: self.title.text(item),
                quantity,
                price_fen: read_money(item, &self.price, money).map_err(named)?,
                amount_fen: read_money(item, &self.amount, money).map_err(named)?,
            });
        }
        Ok(lines)
    }
}

impl RefundLayout {
    fn prepare(&mut self) -> Result<(), String> {
        self.words = word_table(self.means.iter().map(|(k, v)| (*k, v.clone())))?;
        let mut tree = Tree::default();
        let all = [
            &mut self.id,
            &mut self.order,
            &mut self.line,
            &mut self.status,
            &mut self.amount,
            &mut self.created,
            &mut self.updated,
        ];
        for path in all.into_iter().flat_map(|p| p.0.iter_mut()) {
            tree.add(path)?;
        }
        self.tree = tree;
        Ok(())
    }

    fn map(&self, channel: Channel, raw: &str, shop: &str) -> Result<RefundRow, Rejected> {
        let r = self.tree.read(raw, &self.what)?;
        let refund_id = self
            .id
            .text(&r)
            .ok_or_else(|| Rejected::new(None, "refund has no id"))?;
        let reject = |reason: String| Rejected::new(Some(&refund_id), reason);
        let present = |p: &Paths| {
            p.text(&r)
                .ok_or_else(|| reject(format!("refund has no {}", p.name())))
        };
        let order_id = present(&self.order)?;
        let platform_status = present(&self.status)?;
        let status = *self.words.get(&platform_status).ok_or_else(|| {
            reject(format!(
                "unknown {} {platform_status:?}",
                self.status.name()
            ))
        })?;
        // An amount must be there: a refund of unknown size would count as
        // nothing paid back.
        let refund_fen = read_money(&r, &self.amount, self.money)
            .map_err(reject)?
            .ok_or_else(|| reject(format!("refund has no {}", self.amount.name())))?;
        let time = |p: &Paths| {
            read_time(&r, p, self.time)
                .map_err(reject)?
                .ok_or_else(|| reject(format!("refund has no {}", p.name())))
        };
        Ok(RefundRow {
            channel,
            shop_id: shop.to_string(),
            created_at: time(&self.created)?,
            updated_at: time(&self.updated)?,
            // A request on the whole order names the order as its line.
            line_id: self.line.text(&r).filter(|l| *l != order_id),
            refund_id,
            order_id,
            status,
            platform_status,
            refund_fen,
        })
    }
}

/// A time at `paths`: `None` when absent or unset (blank, 0, the years 1
/// and 1970 some platforms write for "no time"), else the time or why not.
fn read_time(
    r: &impl Fields,
    paths: &Paths,
    unit: TimeUnit,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
    let Some((name, v)) = paths.0.iter().find_map(|p| {
        r.at(p)
            .filter(|v| !unset_time(v))
            .map(|v| (p.name.as_str(), v))
    }) else {
        return Ok(None);
    };
    let whole = |what: &str| {
        int(v)
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{name}: {v} is not {what}"))
    };
    match unit {
        TimeUnit::Beijing => match v {
            Value::String(s) => parse_beijing(s.trim()),
            _ => return Err(format!("{name}: {v} is not a time")),
        },
        TimeUnit::UnixSeconds => from_unix_seconds(whole("a unix time in seconds")?),
        TimeUnit::UnixMillis => from_unix_millis(whole("a unix time in milliseconds")?),
    }
    .map(Some)
    .map_err(|e| format!("{name}: {e}"))
}

fn unset_time(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::String(s) => {
            let s = s.trim();
            s.is_empty() || s == "0" || s.starts_with("0001-") || s.starts_with("1970-01-01")
        }
        _ => false,
    }
}

/// An amount at `paths` in fen: `None` when absent or blank, else the
/// amount or why not (a negative amount is refused).
fn read_money(r: &impl Fields, paths: &Paths, unit: MoneyUnit) -> Result<Option<i64>, String> {
    let Some((name, v)) = paths
        .0
        .iter()
        .find_map(|p| r.at(p).filter(|v| holds(v)).map(|v| (p.name.as_str(), v)))
    else {
        return Ok(None);
    };
    let fen = match unit {
        MoneyUnit::Fen => int(v).ok_or_else(|| format!("{name}: {v} is not an amount in fen"))?,
        MoneyUnit::Yuan => yuan_of(v)
            .map_err(|e| format!("{name}: {e}"))?
            .unwrap_or_default(),
    };
    match fen < 0 {
        true => Err(format!("{name}: {fen} is negative")),
        false => Ok(Some(fen)),
    }
}

/// A number, or non-blank text trimmed.
fn text(v: &Value) -> Option<String> {
    super::record::text_of(v)
}

/// Whether `v` is a number or non-blank text (without copying it).
fn holds(v: &Value) -> bool {
    match v {
        Value::Number(_) => true,
        Value::String(s) => !s.trim().is_empty(),
        _ => false,
    }
}

fn int(v: &Value) -> Option<i64> {
    super::record::int_of(v)
}

/// A piece of a `platform_status` template.
#[derive(Debug)]
enum Piece {
    Text(String),
    Field(Path),
}

/// A template's pieces: text, and `{path}`s.
fn template(t: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = t;
    while let Some((before, after)) = rest.split_once('{') {
        let (path, tail) = after
            .split_once('}')
            .ok_or_else(|| format!("template {t:?} opens a brace it does not close"))?;
        pieces.push(Piece::Text(before.to_string()));
        pieces.push(Piece::Field(Path::from(path.to_string())));
        rest = tail;
    }
    pieces.push(Piece::Text(rest.to_string()));
    Ok(pieces)
}

/// A template with every `{path}` filled, or `None` when one is absent.
fn render(t: &[Piece], r: &impl Fields) -> Option<String> {
    let mut out = String::new();
    for piece in t {
        match piece {
            Piece::Text(s) => out.push_str(s),
            Piece::Field(p) => out.push_str(&r.at(p).and_then(text)?),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layout exercising the rules every platform shares, with checks.
    const SHARED: &str = include_str!("../shared_rules.toml");

    #[test]
    fn the_shared_rules_hold() {
        let m = RecordMapping::new(Channel::Taobao, SHARED);
        assert_eq!(m.check(), Ok(17));
    }

    /// A batch decrypt's items carry the layout's keys; its answer gives
    /// each item the phone of the result naming it (in any order), none
    /// where the result failed, repeats another ciphertext or is missing.
    #[test]
    fn decrypt_items_and_answers_follow_the_layout() {
        let m = RecordMapping::new(Channel::Taobao, SHARED);
        let items = [("o1", "c1"), ("o2", "c2"), ("o3", "c3"), ("4", "c4")];
        assert_eq!(
            m.decrypt_items(&items[..1]),
            serde_json::json!([{"tag": "o1", "enc": "c1"}])
        );
        let body = serde_json::json!({"r": {"items": [
            {"tag": "o2", "enc": "c2", "clear": "13800000002", "code": 1},
            {"tag": "o1", "enc": "c1", "clear": "13800000001", "code": 7},
            {"tag": "o3", "enc": "cX", "clear": "13800000003"},
            {"tag": 4, "clear": "13800000004"},
        ]}})
        .to_string();
        let ctx = crate::RequestContext::new("t", Some("s"), "decrypt");
        let got = m.decrypted(&ctx, body.as_bytes(), &items).unwrap();
        assert_eq!(
            got,
            [
                None,
                Some("13800000002".into()),
                None,
                Some("13800000004".into())
            ]
        );
        assert_eq!(
            m.decrypted(&ctx, b"{}", &items).unwrap(),
            [None, None, None, None]
        );
        let e = m.decrypted(&ctx, b"<html>", &items).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Protocol);
    }

    /// A check that does not hold is reported with its name and why.
    #[test]
    fn a_wrong_check_fails_naming_itself() {
        let wrong = SHARED.replace("amount_fen = 1230", "amount_fen = 1231");
        let e = RecordMapping::new(Channel::Taobao, Box::leak(wrong.into_boxed_str()))
            .check()
            .unwrap_err();
        assert_eq!(e, "check \"base\": amount_fen is 1230, not 1231");
    }

    #[test]
    fn a_bad_layout_says_what_is_wrong() {
        let read = |t: &str| Layout::read(t).map(|_| ()).unwrap_err();
        let twice = SHARED.replace(
            r#"means = { paid = ["PAID", "10..=12"] }"#,
            r#"means = { paid = ["PAID"], completed = ["PAID"] }"#,
        );
        assert!(
            read(&twice).contains("\"PAID\" means both"),
            "{}",
            read(&twice)
        );
        let range = SHARED.replace("10..=12", "12..=10");
        assert!(read(&range).contains("not a range"), "{}", read(&range));
        let unknown = SHARED.replace("buyer_per_shop", "buyer_per_shops");
        assert!(
            read(&unknown).contains("unknown field"),
            "{}",
            read(&unknown)
        );
    }

    /// Only the layout's paths are read: a list on the way stands for its
    /// first element, the list of lines is read element by element, and a
    /// record that is not one JSON object is refused.
    #[test]
    fn records_are_read_into_their_paths_only() {
        let path = |p: &str| Path::from(p.to_string());
        let mut tree = Tree::default();
        let mut paths: Vec<Path> = ["a.b", "a.c.d", "first.x", "q"].map(path).into();
        for p in &mut paths[..3] {
            tree.add(p).unwrap();
        }
        let (mut x, mut z) = (path("x"), path("y.z"));
        tree.add_line("l", &mut x).unwrap();
        tree.add_line("l", &mut z).unwrap();
        let r = tree
            .read(
                r#"{"a":{"b":[1,{"c":2}],"c":{"d":"s","e":1},"z":{"deep":[[[]]]}},"first":[{"x":7},{"x":8}],
                   "l":[{"x":1,"y":{"z":2}},3,{"x":4}],"q":"big"}"#,
                "t",
            )
            .unwrap();
        let at = |i: usize| r.at(&paths[i]).cloned();
        assert_eq!(at(0), Some(serde_json::json!([1, {"c": 2}])));
        assert_eq!(at(1), Some(serde_json::json!("s")));
        assert_eq!(
            at(2),
            Some(serde_json::json!(7)),
            "a list stands for its first"
        );
        assert_eq!(at(3), None, "not a path of the layout");
        let lines: Vec<_> = r
            .lines()
            .map(|l| (l.at(&x).cloned(), l.at(&z).cloned()))
            .collect();
        assert_eq!(
            lines,
            [
                (Some(1.into()), Some(2.into())),
                (None, None),
                (Some(4.into()), None)
            ]
        );
        let one = tree.read(r#"{"l":{"x":5}}"#, "t").unwrap();
        assert_eq!(
            one.lines().map(|l| l.at(&x).cloned()).collect::<Vec<_>>(),
            [Some(5.into())]
        );
        for bad in ["[]", "1", "{\"a\":1} x", "{\"a\":", "\"s\""] {
            let e = tree.read(bad, "t").unwrap_err();
            assert!(
                e.reason.starts_with("not a valid t object"),
                "{bad}: {}",
                e.reason
            );
        }
        assert!(
            tree.add(&mut path("a.b.c")).is_err(),
            "inside another path's value"
        );
        assert!(tree.add(&mut path("a.c")).is_err(), "a path holding others");
    }
}
