//! Timestamps as Rampart stores and hashes them.
//!
//! Times are UTC, RFC 3339 with millisecond precision, e.g.
//! `2026-11-29T10:15:00.123Z`. The text form is what the audit chain hashes,
//! so it must be produced in exactly one place.

use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

const FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// A point in time, always UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    pub fn now() -> Self {
        Self(OffsetDateTime::now_utc())
    }

    pub fn from_unix_seconds(seconds: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp(seconds).ok().map(Self)
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }

    /// Parses the canonical text form produced by [`Timestamp::to_rfc3339`].
    pub fn parse(text: &str) -> Option<Self> {
        time::PrimitiveDateTime::parse(text, FORMAT)
            .ok()
            .map(|t| Self(t.assume_utc()))
    }

    pub fn to_rfc3339(self) -> String {
        // Formatting a UTC date with a fixed description cannot fail for years 0..=9999.
        self.0
            .format(FORMAT)
            .unwrap_or_else(|_| self.0.unix_timestamp().to_string())
    }

    pub fn inner(self) -> OffsetDateTime {
        self.0
    }

    /// Parses a time a person typed: a date (`2026-12-01`, its start in
    /// UTC) or an RFC 3339 time with an offset (`2026-12-01T09:30:00Z`,
    /// `…+01:00`). The error names what was expected.
    pub fn parse_user(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let date_format = format_description!("[year]-[month]-[day]");
        if let Ok(date) = time::Date::parse(text, date_format) {
            return Ok(Self(date.midnight().assume_utc()));
        }
        OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .map(Self::from)
            .ok()
            .filter(|t| (1970..=9999).contains(&t.0.year()))
            .ok_or_else(|| {
                format!(
                    "{:?} is not a date (2026-12-01) or a time (2026-12-01T09:30:00Z)",
                    text.chars().take(64).collect::<String>()
                )
            })
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(value: OffsetDateTime) -> Self {
        Self(value.to_offset(time::UtcOffset::UTC))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        let t = Timestamp::parse("2026-11-29T10:15:00.123Z").expect("valid timestamp");
        assert_eq!(t.to_rfc3339(), "2026-11-29T10:15:00.123Z");
        assert!(Timestamp::parse("2026-11-29 10:15:00").is_none());
    }

    #[test]
    fn typed_times_are_dates_or_rfc3339() {
        let day = Timestamp::parse_user("2026-12-01").expect("a date");
        assert_eq!(day.to_rfc3339(), "2026-12-01T00:00:00.000Z");
        let t = Timestamp::parse_user("2026-12-01T09:30:00+01:00").expect("a time");
        assert_eq!(t.to_rfc3339(), "2026-12-01T08:30:00.000Z");
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2026-12-01T09:30:00",
            "12/01/2026",
            "2026-12-01\u{0}",
        ] {
            let error = Timestamp::parse_user(bad).expect_err(bad);
            assert!(error.contains("is not a date"), "{error}");
        }
    }
}
