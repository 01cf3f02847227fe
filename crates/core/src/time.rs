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
}
