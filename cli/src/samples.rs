//! Realistic bridge exports rendered from the seeded world, as vendors hand
//! them over: an AI-call log (GBK CSV, Chinese headers, 百应-style columns),
//! package-insert card scans (XLSX with real Excel dates), and a CRM member
//! export (UTF-8 CSV with a BOM) plus the same members as a SQL seed. The
//! demo imports them through the mappings in `examples/quanyu.toml`; the
//! files in `examples/` were written by `quanyu samples`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, Utc};
use quanyu_connector_sdk::sandbox::world::{
    mix, store_phone, ContactOrigin, CrmPhone, World, BAD_PHONES,
};
use quanyu_wecom::sandbox::external_userid;

/// The files written.
#[derive(Debug, Clone)]
pub struct SampleFiles {
    /// AI-call log, GBK CSV.
    pub calls: PathBuf,
    /// Card scans, XLSX.
    pub card_scans: PathBuf,
    /// CRM members, UTF-8 CSV with BOM.
    pub crm_members: PathBuf,
    /// The same members as SQL inserts (PostgreSQL `timestamp` columns).
    pub crm_seed_sql: PathBuf,
    /// The same for MySQL / MariaDB (`DATETIME` columns: naive Beijing time,
    /// unlike MySQL `TIMESTAMP`, which follows the session time zone).
    pub crm_seed_mysql: PathBuf,
}

fn beijing(t: DateTime<Utc>) -> String {
    quanyu_schemas::time::format_beijing(t)
}

/// Write the sample exports of `world` (as it stands at `as_of`) into `dir`.
pub fn write_samples(world: &World, as_of: DateTime<Utc>, dir: &Path) -> Result<SampleFiles> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let seed = world.config.seed;
    let files = SampleFiles {
        calls: dir.join("ai_calls_baiying.csv"),
        card_scans: dir.join("card_scans.xlsx"),
        crm_members: dir.join("crm_members.csv"),
        crm_seed_sql: dir.join("crm_seed.sql"),
        crm_seed_mysql: dir.join("crm_seed_mysql.sql"),
    };

    // AI calls: every buyer a rep later saved by phone was called first
    // (connected, good intent); as many other buyers were called too, with
    // the usual mix of outcomes.
    let mut calls = String::from(
        "通话ID,任务名称,被叫号码,客户姓名,呼叫时间,通话时长(秒),通话状态,意向等级,重拨次数\r\n",
    );
    let mut n = 0u64;
    let mut called = std::collections::HashSet::new();
    let mut call = |person: u32,
                    at: DateTime<Utc>,
                    saved: bool,
                    calls: &mut String,
                    called: &mut std::collections::HashSet<u32>| {
        if at > as_of || !called.insert(person) {
            return;
        }
        n += 1;
        let r = mix(seed ^ u64::from(person) ^ 0xCA11);
        let (status, secs, intent) = if saved {
            (
                "已接通",
                40 + r % 120,
                ["A级(有意向)", "B级(可跟进)"][(r % 2) as usize],
            )
        } else {
            match r % 6 {
                0 | 1 => (
                    "已接通",
                    15 + r % 60,
                    ["C级(一般)", "D级(需筛选)", "E级(无意向)"][(r % 3) as usize],
                ),
                2 => ("未接", 0, "F级"),
                3 => ("拒接", 0, "F级"),
                4 => ("关机", 0, "F级"),
                _ => ("占线", 0, "F级"),
            }
        };
        let phone = &world.persons[person as usize].phone;
        calls.push_str(&format!(
            "BY{n:08},618会员唤醒,{phone},{}*,{},{secs},{status},{intent},{}\r\n",
            ["张", "李", "王", "赵", "陈"][(r % 5) as usize],
            beijing(at),
            r % 2
        ));
    };
    for c in &world.contacts {
        if matches!(
            c.origin,
            ContactOrigin::Phone | ContactOrigin::CardAndPhone(_)
        ) {
            call(
                c.person,
                c.added - Duration::hours(2),
                true,
                &mut calls,
                &mut called,
            );
        }
    }
    let saved = called.len();
    // Other buyers are called on the phones the brand can see: clear on the
    // order or decrypted (a JD buyer's phone stays hidden), of orders the
    // platform lists.
    let decrypted = crate::registry::decrypting_channels();
    let phone_seen = |p: &&quanyu_connector_sdk::sandbox::world::Purchase| {
        (p.phone_plain || decrypted.contains(&p.channel))
            && world.listed_at(p).is_some_and(|t| t <= as_of.timestamp())
    };
    for p in world.purchases.iter().filter(phone_seen) {
        if called.len() >= saved * 2 {
            break;
        }
        if world.contacts.iter().all(|c| c.person != p.person) {
            call(
                p.person,
                p.created + Duration::days(3),
                false,
                &mut calls,
                &mut called,
            );
        }
    }
    let (gbk, _, unmappable) = encoding_rs::GBK.encode(&calls);
    anyhow::ensure!(!unmappable, "the call log has characters GBK cannot hold");
    std::fs::write(&files.calls, &gbk)?;

    // Card scans: the buyers who scanned their package-insert card.
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("扫码记录")?;
    let date = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    for (i, h) in [
        "扫码ID",
        "扫码时间",
        "卡片编码",
        "活动",
        "企业微信成员",
        "外部联系人ID",
    ]
    .iter()
    .enumerate()
    {
        ws.write_string(0, i as u16, *h)?;
    }
    let mut row = 1u32;
    for c in world.contacts.iter().filter(|c| c.added <= as_of) {
        let (ContactOrigin::Card(pi) | ContactOrigin::CardAndPhone(pi)) = c.origin else {
            continue;
        };
        let Some(state) = world.contact_state(c) else {
            continue;
        };
        let scanned = c.added - Duration::minutes(3);
        let local = (scanned + Duration::hours(8)).naive_utc();
        let t = rust_xlsxwriter::ExcelDateTime::from_timestamp(local.and_utc().timestamp())?;
        ws.write_string(
            row,
            0,
            format!("SC{:012}", world.purchases[pi].order_no % 1_000_000_000_000),
        )?;
        ws.write_datetime_with_format(row, 1, &t, &date)?;
        ws.write_string(row, 2, state)?;
        ws.write_string(row, 3, "包裹卡-加微送券")?;
        ws.write_string(row, 4, &world.config.reps[c.rep])?;
        ws.write_string(row, 5, external_userid(c.person, seed))?;
        row += 1;
    }
    wb.save(&files.card_scans)?;

    // CRM members: the people who signed up in store (also WeCom contacts).
    let mut csv = String::from("\u{feff}会员号,手机号,unionid,门店,注册时间\n");
    let table = |ts: &str, db: &str| {
        format!(
            "-- CRM members (sandbox data) for {db}; times are Beijing wall time.\n\
             CREATE TABLE IF NOT EXISTS crm_members (member_no VARCHAR(20) PRIMARY KEY, mobile VARCHAR(20), unionid VARCHAR(40), store_code VARCHAR(20), created_at {ts} NULL, updated_at {ts} NULL);\n"
        )
    };
    let mut sql = String::new();
    for c in world
        .contacts
        .iter()
        .filter(|c| c.origin == ContactOrigin::PrivateOnly && c.added <= as_of)
    {
        let p = &world.persons[c.person as usize];
        let store = ["SH01", "BJ02", "HZ03"][(mix(u64::from(c.person)) % 3) as usize];
        let at = beijing(c.added - Duration::days(1));
        let union = p.unionid.clone().unwrap_or_default();
        // Walk-ins were registered with the store's phone; some forms hold junk.
        let phone = match c.crm_phone {
            CrmPhone::Own => p.phone.clone(),
            CrmPhone::Store(i) => store_phone(i),
            CrmPhone::Invalid(i) => BAD_PHONES[i].to_string(),
        };
        csv.push_str(&format!(
            "VIP{:06},{phone},{union},{store},{at}\n",
            c.person
        ));
        sql.push_str(&format!(
            "INSERT INTO crm_members VALUES ('VIP{:06}', '{}', {}, '{store}', '{at}', '{at}');\n",
            c.person,
            phone,
            if union.is_empty() {
                "NULL".to_string()
            } else {
                format!("'{union}'")
            }
        ));
    }
    std::fs::write(&files.crm_members, csv)?;
    std::fs::File::create(&files.crm_seed_sql)?
        .write_all((table("TIMESTAMP", "PostgreSQL") + &sql).as_bytes())?;
    std::fs::File::create(&files.crm_seed_mysql)?
        .write_all((table("DATETIME", "MySQL / MariaDB") + &sql).as_bytes())?;
    Ok(files)
}

/// `examples/quanyu.toml`, parsed.
fn example_config() -> Result<crate::config::Config> {
    crate::config::Config::parse(include_str!("../../examples/quanyu.toml"))
        .context("examples/quanyu.toml")
}

/// The `[[imports]]` of `examples/quanyu.toml`: the demo imports its sample
/// exports with exactly the mappings the example documents.
pub fn example_imports() -> Result<Vec<quanyu_files::ImportConfig>> {
    Ok(example_config()?.imports)
}

/// The `[marts]` of `examples/quanyu.toml`: the demo builds its marts with
/// the settings the example documents.
pub fn example_marts() -> Result<crate::marts::MartsConfig> {
    Ok(example_config()?.marts)
}
