//! How severe an advisory is: the highest of its CVSS vectors' ratings
//! (v2, v3.0, v3.1 and v4.0, scored by the `cvss` crate), else the rating
//! its database gives (`database_specific.severity`, as GitHub's
//! advisories carry), else unknown.

use std::str::FromStr;

use osv::schema::Vulnerability;

/// Severity, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Unknown,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// A rating as written (`HIGH`, `moderate` …).
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "low" => Self::Low,
            "medium" | "moderate" => Self::Medium,
            "high" | "important" => Self::High,
            "critical" => Self::Critical,
            "unknown" => Self::Unknown,
            _ => return None,
        })
    }
}

fn of_cvss(vector: &str) -> Option<Severity> {
    let cvss = cvss::Cvss::from_str(vector.trim()).ok()?;
    Some(match cvss.severity() {
        cvss::Severity::None => Severity::Unknown,
        cvss::Severity::Low => Severity::Low,
        cvss::Severity::Medium => Severity::Medium,
        cvss::Severity::High => Severity::High,
        cvss::Severity::Critical => Severity::Critical,
    })
}

/// The severity of `record`.
pub fn of(record: &Vulnerability) -> Severity {
    let vectors = record
        .severity
        .iter()
        .flatten()
        .chain(
            record
                .affected
                .iter()
                .flatten()
                .flat_map(|a| a.severity.iter().flatten()),
        )
        .filter_map(|s| of_cvss(&s.score));
    if let Some(highest) = vectors.max() {
        return highest;
    }
    record
        .database_specific
        .as_ref()
        .and_then(|d| d["severity"].as_str())
        .and_then(Severity::parse)
        .unwrap_or(Severity::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(extra: serde_json::Value) -> Vulnerability {
        let mut base = serde_json::json!({"id": "X-1", "modified": "2024-01-01T00:00:00Z"});
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn vectors_are_scored_and_the_highest_wins() {
        // CVE-2021-44228's CVSS 3.1 vector: 10.0, critical.
        let log4shell = record(serde_json::json!({"severity": [
            {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"}]}));
        assert_eq!(of(&log4shell), Severity::Critical);
        let medium = record(serde_json::json!({"severity": [
            {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:N"},
            {"type": "CVSS_V3", "score": "not a vector"}]}));
        assert_eq!(of(&medium), Severity::Medium);
    }

    #[test]
    fn a_database_rating_counts_when_there_is_no_vector() {
        let ghsa = record(serde_json::json!({"database_specific": {"severity": "MODERATE"}}));
        assert_eq!(of(&ghsa), Severity::Medium);
        assert_eq!(of(&record(serde_json::json!({}))), Severity::Unknown);
        assert_eq!(Severity::parse("High"), Some(Severity::High));
        assert_eq!(Severity::parse("severe"), None);
        assert!(Severity::Critical > Severity::High && Severity::Low > Severity::Unknown);
    }
}
