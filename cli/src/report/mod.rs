//! `quanyu report`: one self-contained HTML file a brand manager opens in a
//! browser (no network at view time: charts are inline SVG drawn here).
//! Orders and GMV by channel over time, the channel overlap of customers,
//! the bridge funnel and ROI, the retention heat map, the recall list by
//! value band and the top reps; each chart with its numbers in a table
//! beside it. It reads the marts as the last sync built them.

mod svg;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use anyhow::Result;

use crate::lake::Lake;
use svg::{escape, grouped};

/// A chart of the report: its title, what it shows, the SVG and the table.
struct Section {
    title: String,
    about: String,
    /// Empty when the mart it reads has nothing yet.
    svg: String,
    table: String,
}

impl Section {
    /// A section with nothing drawn yet.
    fn new(title: &str, about: &str) -> Section {
        Section {
            title: title.into(),
            about: about.into(),
            svg: String::new(),
            table: String::new(),
        }
    }
}

/// The Chinese name of a channel or bridge, with its id.
fn label(id: &str) -> String {
    let name = match id {
        "taobao" => "淘宝/天猫",
        "jd" => "京东",
        "pdd" => "拼多多",
        "douyin" => "抖音",
        "kuaishou" => "快手",
        "jushuitan" => "聚水潭",
        "youzan" => "有赞",
        "wechat_shop" => "视频号小店",
        "wecom" => "企业微信",
        "crm" => "CRM会员",
        "package_card" => "包裹卡",
        "ai_call" => "AI外呼",
        "ai_sms" => "AI短信",
        "manual_call" => "人工外呼",
        "store" => "门店",
        "high" => "高价值",
        "mid" => "中价值",
        "low" => "低价值",
        _ => return id.to_string(),
    };
    format!("{name} ({id})")
}

/// Fen as yuan with thousands separators.
fn yuan(fen: f64) -> String {
    grouped(fen / 100.0, 0)
}

/// The rows of `query` (read-only SQL over the lake and marts) as text
/// cells, null as empty.
pub(crate) async fn rows(lake: &Lake, query: &str) -> Result<Vec<Vec<String>>> {
    let batches = crate::sql::query(lake, query).await?;
    let mut out = Vec::new();
    for b in &batches {
        let cols = (0..b.num_columns())
            .map(|i| crate::lake::strings(b.column(i)))
            .collect::<Result<Vec<_>>>()?;
        for r in 0..b.num_rows() {
            out.push(
                cols.iter()
                    .map(|c| {
                        if arrow::array::Array::is_null(c, r) {
                            String::new()
                        } else {
                            c.value(r).to_string()
                        }
                    })
                    .collect(),
            );
        }
    }
    Ok(out)
}

fn num(s: &str) -> f64 {
    s.parse().unwrap_or(0.0)
}

/// An HTML table: header cells and rows of cells (numbers right-aligned).
fn html_table(header: &[String], body: &[Vec<String>]) -> String {
    let mut t = String::from("<table><thead><tr>");
    for h in header {
        let _ = write!(t, "<th>{}</th>", escape(h));
    }
    t.push_str("</tr></thead><tbody>");
    for r in body {
        t.push_str("<tr>");
        for c in r {
            let numeric = c
                .chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_digit() || ch == '-')
                && c.chars()
                    .all(|ch| ch.is_ascii_digit() || ",.-%".contains(ch));
            let _ = write!(
                t,
                "<td{}>{}</td>",
                if numeric { " class=\"n\"" } else { "" },
                escape(c)
            );
        }
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table>");
    t
}

/// Whether the lake has table `name`.
async fn has(lake: &Lake, name: &str) -> Result<bool> {
    Ok(lake.version(name).await?.is_some())
}

async fn sales_by_channel(lake: &Lake) -> Result<Section> {
    let mut s = Section::new(
        "订单与GMV：按渠道、按月 · Orders and GMV by channel",
        "Paid orders by the Beijing month they were placed; GMV net of refunds (元).",
    );
    if !has(lake, "customer_orders").await? {
        return Ok(s);
    }
    let data = rows(
        lake,
        "SELECT CAST(date_trunc('month', created_at + INTERVAL '8 hours') AS DATE) AS m, channel,
                count(*) FILTER (WHERE is_paid), sum(net_fen)
         FROM customer_orders GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .await?;
    let months: Vec<String> = data
        .iter()
        .map(|r| r[0][..7].to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let channels: Vec<String> = data
        .iter()
        .map(|r| r[1].clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut gmv: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    for r in &data {
        gmv.insert(
            (r[0][..7].to_string(), r[1].clone()),
            (num(&r[2]), num(&r[3])),
        );
    }
    let series: Vec<(String, Vec<f64>)> = channels
        .iter()
        .map(|c| {
            let v = months
                .iter()
                .map(|m| {
                    gmv.get(&(m.clone(), c.clone()))
                        .map_or(0.0, |x| x.1 / 100.0)
                })
                .collect();
            (label(c), v)
        })
        .collect();
    if !months.is_empty() {
        s.svg = svg::stacked_columns(&months, &series, "GMV 元");
    }
    let mut header = vec!["月份 month".to_string()];
    header.extend(channels.iter().map(|c| format!("{} GMV", label(c))));
    header.push("订单 orders".into());
    header.push("GMV 元".into());
    let body = months
        .iter()
        .map(|m| {
            let mut row = vec![m.clone()];
            let (mut orders, mut total) = (0.0, 0.0);
            for c in &channels {
                let (o, g) = gmv
                    .get(&(m.clone(), c.clone()))
                    .copied()
                    .unwrap_or((0.0, 0.0));
                orders += o;
                total += g;
                row.push(yuan(g));
            }
            row.push(grouped(orders, 0));
            row.push(yuan(total));
            row
        })
        .collect::<Vec<_>>();
    s.table = html_table(&header, &body);
    Ok(s)
}

async fn channel_overlap(lake: &Lake) -> Result<Section> {
    let mut s = Section::new("渠道重叠 · Customers across channels", "Unified customers found in both the row's and the column's channel (the diagonal: in that channel at all).");
    if !has(lake, "customers").await? {
        return Ok(s);
    }
    let data = rows(
        lake,
        "WITH c AS (SELECT unified_id, unnest(channels) AS ch FROM customers)
         SELECT x.ch, y.ch, count(*) FROM c x JOIN c y ON x.unified_id = y.unified_id
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .await?;
    let channels: Vec<String> = data
        .iter()
        .map(|r| r[0].clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let count: BTreeMap<(String, String), f64> = data
        .iter()
        .map(|r| ((r[0].clone(), r[1].clone()), num(&r[2])))
        .collect();
    let values: Vec<Vec<Option<f64>>> = channels
        .iter()
        .map(|a| {
            channels
                .iter()
                .map(|b| count.get(&(a.clone(), b.clone())).copied())
                .collect()
        })
        .collect();
    let max = count.values().copied().fold(0.0, f64::max);
    let labels: Vec<String> = channels.iter().map(|c| label(c)).collect();
    if !channels.is_empty() {
        s.svg = svg::heatmap(&labels, &labels, &values, max, |v| grouped(v, 0));
    }
    let mut header = vec!["渠道 channel".to_string()];
    header.extend(channels.iter().cloned());
    let body = channels
        .iter()
        .zip(&values)
        .map(|(c, v)| {
            let mut row = vec![label(c)];
            row.extend(v.iter().map(|x| grouped(x.unwrap_or(0.0), 0)));
            row
        })
        .collect::<Vec<_>>();
    s.table = html_table(&header, &body);
    Ok(s)
}

async fn bridge_funnel(lake: &Lake) -> Result<Section> {
    let mut s = Section::new("加粉漏斗与ROI · Bridge funnel and ROI", "Per bridge (all campaigns and cohorts): customers touched and added to WeCom; coverage = revenue of the added customers in the window after joining ÷ cost.");
    if !has(lake, "bridge_roi").await? {
        return Ok(s);
    }
    let data = rows(
        lake,
        "SELECT bridge, sum(touchpoints), sum(cost_fen), sum(customers_touched), sum(customers_added),
                sum(revenue_fen), sum(private_revenue_fen)
         FROM bridge_roi GROUP BY bridge ORDER BY bridge",
    )
    .await?;
    let labels: Vec<String> = data.iter().map(|r| label(&r[0])).collect();
    if !data.is_empty() {
        s.svg = svg::horizontal_bars(
            &labels,
            &[
                (
                    "触达客户 touched".into(),
                    data.iter().map(|r| num(&r[3])).collect(),
                ),
                (
                    "加微客户 added".into(),
                    data.iter().map(|r| num(&r[4])).collect(),
                ),
            ],
            "customers",
        );
    }
    let header: Vec<String> = [
        "桥接 bridge",
        "触点 touchpoints",
        "成本 cost 元",
        "触达 touched",
        "加微 added",
        "收入 revenue 元",
        "私域收入 private 元",
        "覆盖率 coverage",
        "单客成本 cost/added 元",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let body = data
        .iter()
        .map(|r| {
            let (cost, added, revenue) = (num(&r[2]), num(&r[4]), num(&r[5]));
            vec![
                label(&r[0]),
                grouped(num(&r[1]), 0),
                yuan(cost),
                grouped(num(&r[3]), 0),
                grouped(added, 0),
                yuan(revenue),
                yuan(num(&r[6])),
                if cost > 0.0 {
                    format!("{:.2}", revenue / cost)
                } else {
                    "-".into()
                },
                if added > 0.0 {
                    grouped(cost / added / 100.0, 2)
                } else {
                    "-".into()
                },
            ]
        })
        .collect::<Vec<_>>();
    s.table = html_table(&header, &body);
    Ok(s)
}

async fn retention_heatmap(lake: &Lake) -> Result<Section> {
    let mut s = Section::new(
        "复购留存热力图 · Retention by monthly cohort",
        "Share of each cohort (first paid order's month) who paid an order N months later.",
    );
    if !has(lake, "retention_months").await? {
        return Ok(s);
    }
    let data = rows(
        lake,
        "SELECT CAST(cohort_month AS VARCHAR) AS cohort, months_after, cohort_size, retention FROM retention_months
         WHERE first_channel = 'all' ORDER BY cohort_month, months_after",
    )
    .await?;
    let cohorts: Vec<String> = data
        .iter()
        .map(|r| r[0][..7].to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let months = data
        .iter()
        .map(|r| num(&r[1]) as usize)
        .max()
        .map_or(0, |m| m + 1);
    let mut size: BTreeMap<String, f64> = BTreeMap::new();
    let mut cell: BTreeMap<(String, usize), f64> = BTreeMap::new();
    for r in &data {
        size.insert(r[0][..7].to_string(), num(&r[2]));
        cell.insert((r[0][..7].to_string(), num(&r[1]) as usize), num(&r[3]));
    }
    let values: Vec<Vec<Option<f64>>> = cohorts
        .iter()
        .map(|c| {
            (0..months)
                .map(|m| {
                    if m == 0 {
                        None
                    } else {
                        cell.get(&(c.clone(), m)).copied()
                    }
                })
                .collect()
        })
        .collect();
    let columns: Vec<String> = (0..months).map(|m| format!("M{m}")).collect();
    let max = values
        .iter()
        .flatten()
        .flatten()
        .copied()
        .fold(0.0, f64::max);
    let rows_label: Vec<String> = cohorts
        .iter()
        .map(|c| format!("{c} ({})", grouped(size[c], 0)))
        .collect();
    if months > 1 {
        s.svg = svg::heatmap(&rows_label, &columns, &values, max, |v| {
            format!("{:.0}%", v * 100.0)
        });
    }
    let mut header = vec!["队列 cohort".to_string(), "人数 size".to_string()];
    header.extend(columns.iter().cloned());
    let body = cohorts
        .iter()
        .map(|c| {
            let mut row = vec![c.clone(), grouped(size[c], 0)];
            row.extend((0..months).map(|m| {
                cell.get(&(c.clone(), m))
                    .map_or(String::new(), |v| format!("{:.1}%", v * 100.0))
            }));
            row
        })
        .collect::<Vec<_>>();
    s.table = html_table(&header, &body);
    Ok(s)
}

async fn recall_bands(lake: &Lake) -> Result<Section> {
    let mut s = Section::new(
        "老客召回名单：按价值分层 · Recall list by value band",
        "Buyers due for recall (last purchase within the configured window), by value band: to the reps (still a WeCom contact), to the AI-call vendor, or suppressed.",
    );
    if !has(lake, "recall_list").await? {
        return Ok(s);
    }
    let data = rows(
        lake,
        "SELECT value_band, CASE WHEN suppressed THEN 'suppressed' ELSE route END, count(*), sum(gmv_fen)
         FROM recall_list GROUP BY 1, 2",
    )
    .await?;
    let bands: Vec<String> = ["high", "mid", "low"]
        .iter()
        .map(|b| b.to_string())
        .collect();
    let groups = [
        ("rep", "企微跟进 rep"),
        ("ai_call", "AI外呼 ai_call"),
        ("suppressed", "屏蔽 suppressed"),
    ];
    let get = |band: &str, g: &str, col: usize| {
        data.iter()
            .find(|r| r[0] == band && r[1] == g)
            .map_or(0.0, |r| num(&r[col]))
    };
    let series: Vec<(String, Vec<f64>)> = groups
        .iter()
        .map(|(g, name)| {
            (
                name.to_string(),
                bands.iter().map(|b| get(b, g, 2)).collect(),
            )
        })
        .collect();
    if !data.is_empty() {
        let labels: Vec<String> = bands.iter().map(|b| label(b)).collect();
        s.svg = svg::stacked_columns(&labels, &series, "customers");
    }
    let mut header = vec!["分层 band".to_string()];
    header.extend(groups.iter().map(|g| g.1.to_string()));
    header.push("累计实付 GMV 元".into());
    let body = bands
        .iter()
        .map(|b| {
            let mut row = vec![label(b)];
            row.extend(groups.iter().map(|(g, _)| grouped(get(b, g, 2), 0)));
            row.push(yuan(groups.iter().map(|(g, _)| get(b, g, 3)).sum()));
            row
        })
        .collect::<Vec<_>>();
    s.table = html_table(&header, &body);
    Ok(s)
}

async fn top_reps(lake: &Lake) -> Result<Section> {
    let mut s = Section::new("销售业绩归属 · Top reps by attributed revenue", "Revenue of the customers each WeCom owner holds, after the add, under the configured rule; the unattributed rest in the table.");
    if !has(lake, "rep_attribution").await? {
        return Ok(s);
    }
    let data = rows(
        lake,
        "SELECT COALESCE(owner_userid, '(unattributed)'), sum(orders), sum(revenue_fen), sum(private_revenue_fen),
                sum(newly_added), sum(newly_added) - sum(lost)
         FROM rep_attribution GROUP BY 1 ORDER BY 3 DESC, 1",
    )
    .await?;
    let reps: Vec<&Vec<String>> = data
        .iter()
        .filter(|r| r[0] != "(unattributed)")
        .take(10)
        .collect();
    if !reps.is_empty() {
        let labels: Vec<String> = reps.iter().map(|r| r[0].clone()).collect();
        s.svg = svg::horizontal_bars(
            &labels,
            &[(
                "归属收入 revenue 元".into(),
                reps.iter().map(|r| num(&r[2]) / 100.0).collect(),
            )],
            "元",
        );
    }
    let header: Vec<String> = [
        "企微成员 owner",
        "订单 orders",
        "收入 revenue 元",
        "私域 private 元",
        "新增 added",
        "在册 held",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let body = data
        .iter()
        .map(|r| {
            vec![
                r[0].clone(),
                grouped(num(&r[1]), 0),
                yuan(num(&r[2])),
                yuan(num(&r[3])),
                grouped(num(&r[4]), 0),
                grouped(num(&r[5]), 0),
            ]
        })
        .collect::<Vec<_>>();
    s.table = html_table(&header, &body);
    Ok(s)
}

/// The report of `lake` as one HTML page.
pub async fn render(lake: &Lake) -> Result<String> {
    let sections = [
        sales_by_channel(lake).await?,
        channel_overlap(lake).await?,
        bridge_funnel(lake).await?,
        retention_heatmap(lake).await?,
        recall_bands(lake).await?,
        top_reps(lake).await?,
    ];
    let as_of = if has(lake, "customer_rfm").await? {
        rows(lake, "SELECT CAST(max(as_of) AS VARCHAR) FROM customer_rfm")
            .await?
            .first()
            .and_then(|r| r.first().cloned())
            .filter(|d| !d.is_empty())
    } else {
        None
    };
    let mut html = String::from(HEAD);
    let _ = write!(
        html,
        "<header><h1>全域 quanyu · 经营报告</h1><p>参考日 reference day: {} · 生成于 generated {}</p></header>",
        escape(as_of.as_deref().unwrap_or("-")),
        chrono::Utc::now()
            .with_timezone(&crate::marts::beijing())
            .format("%Y-%m-%d %H:%M (UTC+8)")
    );
    for (i, s) in sections.iter().enumerate() {
        let _ = write!(
            html,
            "<figure class=\"chart\" id=\"chart-{}\"><h2>{}</h2><p class=\"about\">{}</p><div class=\"pair\"><div class=\"plot\">{}</div><div class=\"numbers\">{}</div></div></figure>",
            i + 1,
            escape(&s.title),
            escape(&s.about),
            if s.svg.is_empty() {
                "<p class=\"empty\">暂无数据 · nothing to show yet (run a sync)</p>".to_string()
            } else {
                s.svg.clone()
            },
            s.table
        );
    }
    html.push_str(TAIL);
    Ok(html)
}

const HEAD: &str = r#"<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>quanyu 经营报告</title>
<style>
body { font-family: "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", "Source Han Sans SC", sans-serif; margin: 24px; color: #222; background: #fafafa; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 0 0 16px; color: #666; }
figure.chart { background: #fff; border: 1px solid #e3e3e3; border-radius: 6px; margin: 0 0 20px; padding: 12px 16px; }
figure.chart h2 { font-size: 18px; margin: 0 0 4px; }
.about { color: #666; margin: 0 0 8px; font-size: 13px; }
.pair { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.plot { flex: 0 1 auto; overflow-x: auto; max-width: 100%; }
.numbers { flex: 1 1 480px; overflow: auto; max-height: 420px; }
table { border-collapse: collapse; font-size: 12px; }
th, td { border-bottom: 1px solid #eee; padding: 3px 8px; white-space: nowrap; }
th { background: #f3f3f3; position: sticky; top: 0; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
svg text { font-family: inherit; fill: #333; }
.empty { color: #999; }
/* report.html#chart-3 shows that chart alone (to share or screenshot it). */
body:has(figure.chart:target) figure.chart:not(:target), body:has(figure.chart:target) header { display: none; }
</style></head><body>
"#;

/// Counts each chart's drawn marks (with a size on screen) into
/// `data-drawn`: what the browser test reads.
const TAIL: &str = r#"<script>
addEventListener('load', () => {
  for (const f of document.querySelectorAll('figure.chart')) {
    const drawn = [...f.querySelectorAll('.mark')].filter(m => { const b = m.getBBox(); return b.width > 0 && b.height > 0; });
    f.dataset.drawn = String(drawn.length);
  }
  document.body.dataset.ready = '1';
});
</script>
</body></html>
"#;
