//! The evidence as one self-contained HTML page: no script, no external
//! resource, every value escaped; tables per control and bar charts drawn
//! as inline SVG.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::Value;

/// Rows shown per table; the rest are in evidence.json.
const MAX_ROWS: usize = 2000;

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:72em;\
color:#1d2430;padding:0 1em}h1{font-size:1.6em}h2{margin-top:2em;border-bottom:2px solid #d8dde6;\
padding-bottom:.2em}table{border-collapse:collapse;width:100%;margin:.6em 0 1.2em}\
th,td{border:1px solid #d8dde6;padding:.3em .5em;text-align:left;vertical-align:top;\
word-break:break-word}th{background:#eef1f6}tr:nth-child(even) td{background:#fafbfc}\
.tiles{display:flex;flex-wrap:wrap;gap:.8em}.tile{border:1px solid #d8dde6;border-radius:6px;\
padding:.6em 1em;min-width:9em}.tile b{display:block;font-size:1.5em}.ok{color:#1a7f37}\
.bad{color:#b42318}.warn{color:#9a6700}.muted{color:#667085}svg{max-width:100%}";

/// Text made safe for HTML, attributes included.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as table text.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "–".into(),
        Value::String(s) => s.clone(),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// A table of `rows` (JSON objects), one column per `(header, field)`.
fn table(out: &mut String, rows: &[Value], columns: &[(&str, &str)]) {
    if rows.is_empty() {
        out.push_str("<p class=\"muted\">None in this period.</p>\n");
        return;
    }
    out.push_str("<table>\n<thead><tr>");
    for (header, _) in columns {
        let _ = write!(out, "<th>{}</th>", esc(header));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in rows.iter().take(MAX_ROWS) {
        out.push_str("<tr>");
        for (_, field) in columns {
            let value = field
                .split('.')
                .fold(row, |v, part| v.get(part).unwrap_or(&Value::Null));
            let _ = write!(out, "<td>{}</td>", esc(&cell(value)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    if rows.len() > MAX_ROWS {
        let _ = writeln!(
            out,
            "<p class=\"muted\">{} more rows are in evidence.json.</p>",
            rows.len() - MAX_ROWS
        );
    }
}

fn rows<'a>(doc: &'a Value, path: &str) -> &'a [Value] {
    path.split('.')
        .fold(doc, |v, part| v.get(part).unwrap_or(&Value::Null))
        .as_array()
        .map_or(&[], Vec::as_slice)
}

/// The ISO week (`2026-W48`) of an RFC 3339 time.
fn week(at: &str) -> Option<String> {
    let date = time::Date::parse(
        at.get(..10)?,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()?;
    let (year, week, _) = date.to_iso_week_date();
    Some(format!("{year}-W{week:02}"))
}

/// A bar chart of good and bad counts per week, as inline SVG.
fn weekly_chart(
    out: &mut String,
    title: &str,
    items: &[Value],
    at: &str,
    good: impl Fn(&Value) -> bool,
) {
    let mut weeks: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for item in items {
        let Some(w) = item[at].as_str().and_then(week) else {
            continue;
        };
        let entry = weeks.entry(w).or_default();
        if good(item) {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    if weeks.is_empty() {
        return;
    }
    let weeks: Vec<(String, (u32, u32))> = weeks.into_iter().rev().take(26).rev().collect();
    let max = weeks
        .iter()
        .map(|(_, (g, b))| g + b)
        .max()
        .unwrap_or(1)
        .max(1);
    let bar = 28;
    let gap = 10;
    let height = 140;
    let width = weeks.len() * (bar + gap) + 40;
    let _ = writeln!(
        out,
        "<figure><svg role=\"img\" aria-label=\"{}\" width=\"{width}\" height=\"{}\" \
         xmlns=\"http://www.w3.org/2000/svg\">",
        esc(title),
        height + 40
    );
    for (i, (label, (g, b))) in weeks.iter().enumerate() {
        let x = 30 + i * (bar + gap);
        let gh = (*g as usize * height) / max as usize;
        let bh = (*b as usize * height) / max as usize;
        let _ = writeln!(
            out,
            "<rect x=\"{x}\" y=\"{}\" width=\"{bar}\" height=\"{gh}\" fill=\"#2da44e\"><title>{} ok: {g}</title></rect>\
             <rect x=\"{x}\" y=\"{}\" width=\"{bar}\" height=\"{bh}\" fill=\"#cf222e\"><title>{} failed: {b}</title></rect>\
             <text x=\"{}\" y=\"{}\" font-size=\"9\" text-anchor=\"middle\">{}</text>",
            10 + height - gh,
            esc(label),
            10 + height - gh - bh,
            esc(label),
            x + bar / 2,
            height + 25,
            esc(label.get(5..).unwrap_or(label)),
        );
    }
    let _ = writeln!(
        out,
        "<line x1=\"25\" y1=\"{0}\" x2=\"{width}\" y2=\"{0}\" stroke=\"#667085\"/>\
         <text x=\"0\" y=\"18\" font-size=\"10\">{max}</text></svg>\
         <figcaption>{1} per week: <span class=\"ok\">ok</span> and <span class=\"bad\">failed</span></figcaption></figure>",
        10 + height,
        esc(title)
    );
}

fn tile(out: &mut String, label: &str, value: impl std::fmt::Display, class: &str) {
    let _ = write!(
        out,
        "<div class=\"tile\"><b class=\"{class}\">{}</b>{}</div>",
        esc(&value.to_string()),
        esc(label)
    );
}

/// The whole report.
pub(super) fn render(doc: &Value) -> String {
    let c = &doc["controls"];
    let mut out = String::with_capacity(64 * 1024);
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>Rampart evidence {} to {}</title><style>{STYLE}</style></head><body>",
        esc(&cell(&doc["period"]["from"])),
        esc(&cell(&doc["period"]["to"]))
    );
    let _ = writeln!(
        out,
        "<h1>Control evidence</h1><p>Period <b>{}</b> to <b>{}</b> (end not included). \
         Exported {} by {} from Rampart {}. The bundle is signed: <code>rampart evidence verify DIR</code> \
         proves it was not changed after export.</p>",
        esc(&cell(&doc["period"]["from"])),
        esc(&cell(&doc["period"]["to"])),
        esc(&cell(&doc["exported_at"])),
        esc(&cell(&doc["exported_by"])),
        esc(&cell(&doc["platform"]["version"])),
    );

    let releases = rows(c, "change_management.releases");
    let backups = rows(c, "backups.results");
    let incidents = rows(c, "incidents.incidents");
    let doctor = rows(c, "doctor.runs");
    let findings = rows(c, "vulnerability_management.findings_now");
    let chain_ok = c["audit"]["verification"]["ok"] == true;
    let failed =
        |items: &[Value], good: &dyn Fn(&Value) -> bool| items.iter().filter(|v| !good(v)).count();
    let release_ok = |v: &Value| v["outcome"] != "failed";
    let backup_ok = |v: &Value| v["ok"] == true;
    out.push_str("<div class=\"tiles\">");
    tile(&mut out, "releases", releases.len(), "");
    tile(
        &mut out,
        "failed releases",
        failed(releases, &release_ok),
        if failed(releases, &release_ok) > 0 {
            "bad"
        } else {
            "ok"
        },
    );
    tile(&mut out, "backup jobs", backups.len(), "");
    tile(
        &mut out,
        "failed backup jobs",
        failed(backups, &backup_ok),
        if failed(backups, &backup_ok) > 0 {
            "bad"
        } else {
            "ok"
        },
    );
    tile(&mut out, "incidents", incidents.len(), "");
    tile(&mut out, "self-audits", doctor.len(), "");
    tile(&mut out, "open findings now", findings.len(), "warn");
    tile(
        &mut out,
        "audit chain",
        if chain_ok { "intact" } else { "BROKEN" },
        if chain_ok { "ok" } else { "bad" },
    );
    out.push_str("</div>\n");

    out.push_str("<h2 id=\"access\">Access control</h2>\n<h3>Users, roles and MFA</h3>\n");
    table(
        &mut out,
        rows(c, "access.users"),
        &[
            ("User", "user"),
            ("Role", "role"),
            ("Status", "status"),
            ("MFA", "mfa"),
            ("Apps granted", "grants"),
            ("Since", "created_at"),
        ],
    );
    out.push_str("<h3>API tokens</h3>\n");
    table(
        &mut out,
        rows(c, "access.tokens"),
        &[
            ("Token", "id"),
            ("Name", "name"),
            ("User", "user"),
            ("Role", "role"),
            ("App", "app"),
            ("Created", "created_at"),
            ("Expires", "expires_at"),
            ("Last used", "last_used_at"),
            ("Revoked", "revoked_at"),
        ],
    );
    out.push_str("<h3>Changes to access in the period</h3>\n");
    table(
        &mut out,
        rows(c, "access.changes"),
        &[
            ("Audit #", "seq"),
            ("At", "at"),
            ("By", "actor"),
            ("Action", "action"),
            ("Target", "target"),
            ("Outcome", "outcome"),
        ],
    );
    out.push_str("<h3>Access reviews</h3>\n");
    table(
        &mut out,
        rows(c, "access.reviews"),
        &[
            ("At", "at"),
            ("Reviewer", "reviewer"),
            ("Conclusion", "note"),
        ],
    );

    out.push_str("<h2 id=\"changes\">Change management</h2>\n");
    weekly_chart(&mut out, "Releases", releases, "created_at", release_ok);
    table(
        &mut out,
        releases,
        &[
            ("App", "app"),
            ("Release", "release"),
            ("Created", "created_at"),
            ("By", "created_by"),
            ("Image", "image"),
            ("Outcome", "outcome"),
            ("Reason", "reason"),
        ],
    );

    out.push_str("<h2 id=\"backups\">Backups and test restores</h2>\n");
    if c["backups"]["configured"] != true {
        out.push_str("<p class=\"bad\">No backup repository was configured at export.</p>\n");
    }
    weekly_chart(&mut out, "Backup jobs", backups, "started_at", backup_ok);
    table(
        &mut out,
        backups,
        &[
            ("App", "app"),
            ("Kind", "kind"),
            ("Started", "started_at"),
            ("Finished", "finished_at"),
            ("Snapshot", "snapshot"),
            ("Bytes", "bytes"),
            ("OK", "ok"),
            ("Detail", "detail"),
        ],
    );

    out.push_str("<h2 id=\"vulns\">Vulnerability management</h2>\n<h3>Advisory data</h3>\n");
    table(
        &mut out,
        std::slice::from_ref(&c["vulnerability_management"]["data"]),
        &[
            ("Advisories", "advisories"),
            ("Newest record", "newest_record"),
            ("Age (days)", "age_days"),
            ("Stale", "stale"),
            ("Last import", "last_import"),
        ],
    );
    out.push_str("<h3>Imports in the period</h3>\n");
    table(
        &mut out,
        rows(c, "vulnerability_management.imports"),
        &[
            ("At", "at"),
            ("By", "by"),
            ("New", "new"),
            ("Updated", "updated"),
            ("Unchanged", "unchanged"),
            ("Refused", "refused"),
        ],
    );
    out.push_str("<h3>Findings on live releases at export</h3>\n");
    table(
        &mut out,
        findings,
        &[
            ("App", "app"),
            ("Release", "release"),
            ("Package", "package"),
            ("Version", "version"),
            ("Advisory", "advisory"),
            ("Severity", "severity"),
            ("Fixed in", "fixed"),
            ("Accepted", "accepted.reason"),
        ],
    );
    out.push_str("<h3>Fixes deployed</h3>\n");
    table(
        &mut out,
        rows(c, "vulnerability_management.fixes"),
        &[("App", "app"), ("At", "at"), ("What", "what")],
    );
    out.push_str("<h3>Accepted risks</h3>\n");
    table(
        &mut out,
        rows(c, "vulnerability_management.accepted_risks"),
        &[
            ("App", "app"),
            ("Advisory", "advisory"),
            ("Reason", "reason"),
            ("By", "by"),
            ("At", "at"),
            ("Until", "expires_at"),
        ],
    );

    out.push_str("<h2 id=\"incidents\">Incidents</h2>\n");
    table(
        &mut out,
        std::slice::from_ref(&c["incidents"]["stats"]),
        &[
            ("Opened", "opened"),
            ("Acknowledged", "acknowledged"),
            ("Resolved", "resolved"),
            ("Reviewed", "reviewed"),
            ("Median s to ack", "median_ack_secs"),
            ("Median s to resolve", "median_resolve_secs"),
            ("Open actions", "open_actions"),
            ("Overdue actions", "overdue_actions"),
        ],
    );
    table(
        &mut out,
        incidents,
        &[
            ("Incident", "incident.id"),
            ("Title", "incident.title"),
            ("Severity", "incident.severity"),
            ("State", "incident.state"),
            ("App", "incident.app"),
            ("Opened", "incident.opened_at"),
            ("Owner", "incident.owner"),
            ("Cause", "incident.cause"),
            ("Impact", "incident.impact"),
        ],
    );
    let actions: Vec<Value> = incidents
        .iter()
        .flat_map(|i| i["actions"].as_array().cloned().unwrap_or_default())
        .collect();
    if !actions.is_empty() {
        out.push_str("<h3>Follow-up actions</h3>\n");
        table(
            &mut out,
            &actions,
            &[
                ("Incident", "incident"),
                ("#", "number"),
                ("Action", "text"),
                ("Owner", "owner"),
                ("Due", "due"),
                ("Done", "done_at"),
                ("Overdue", "overdue"),
            ],
        );
    }

    out.push_str("<h2 id=\"reports\">Security reports</h2>\n");
    table(
        &mut out,
        rows(c, "security_reports.reports"),
        &[
            ("Report", "id"),
            ("Received", "received_at"),
            ("Host", "host"),
            ("Summary", "title"),
            ("State", "state"),
            ("Severity", "severity"),
            ("Incident", "incident"),
            ("Resolution", "resolution"),
        ],
    );

    out.push_str("<h2 id=\"doctor\">Self-audits</h2>\n");
    weekly_chart(&mut out, "Self-audits", doctor, "at", |v| v["failed"] == 0);
    table(
        &mut out,
        doctor,
        &[
            ("At", "at"),
            ("By", "by"),
            ("Passed", "passed"),
            ("Warned", "warned"),
            ("Failed", "failed"),
        ],
    );
    if let Some(last) = doctor.last() {
        let _ = writeln!(
            out,
            "<h3>The last self-audit ({})</h3>",
            esc(&cell(&last["at"]))
        );
        table(
            &mut out,
            last["checks"].as_array().map_or(&[], Vec::as_slice),
            &[
                ("Control", "control"),
                ("Status", "status"),
                ("Detail", "detail"),
            ],
        );
    }

    out.push_str("<h2 id=\"audit\">Audit trail</h2>\n");
    table(
        &mut out,
        std::slice::from_ref(&c["audit"]),
        &[
            ("Entries in period", "entries_in_period"),
            ("First #", "first_seq"),
            ("Last #", "last_seq"),
            ("Head #", "head_seq"),
            ("Head hash", "head_hash"),
            ("Chain verified", "verification.ok"),
            ("Entries verified", "verification.verified"),
        ],
    );
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_values_are_inert() {
        let doc = serde_json::json!({
            "period": {"from": "<script>alert(1)</script>", "to": "x"},
            "controls": {"access": {"users": [
                {"user": "\"><img src=x onerror=alert(1)>", "role": "owner\u{1b}[2J"}
            ]}},
        });
        let html = render(&doc);
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("owner\\u{1b}[2J"));
        assert!(html.contains("Content-Security-Policy"));
    }

    #[test]
    fn weeks_are_iso_weeks() {
        assert_eq!(
            week("2026-12-01T10:00:00.000Z").as_deref(),
            Some("2026-W49")
        );
        assert_eq!(
            week("2027-01-01T00:00:00.000Z").as_deref(),
            Some("2026-W53")
        );
        assert_eq!(week("garbage"), None);
    }
}
