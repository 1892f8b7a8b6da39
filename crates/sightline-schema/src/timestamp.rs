//! Timestamps as the hub keeps them: milliseconds since the Unix epoch, written as RFC 3339 UTC
//! with exactly three fractional digits and `Z` (`2026-11-21T10:00:00.123Z`).
//!
//! Parsing accepts any RFC 3339 offset and normalises it; it must never accept a string it
//! cannot represent exactly in that canonical form.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

/// The latest timestamp we represent: 9999-12-31T23:59:59.999Z.
const MAX_MILLIS: i64 = 253_402_300_799_999;

impl Timestamp {
    /// The hub's clock, now.
    pub fn now() -> Self {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        Timestamp((nanos / 1_000_000) as i64)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339 (any offset, any fractional precision; digits past milliseconds are
    /// truncated). Refuses years before 1970 and after 9999.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parsed = OffsetDateTime::parse(text.trim(), &Rfc3339)
            .map_err(|e| format!("`{text}` is not an RFC 3339 timestamp ({e})"))?;
        let millis = parsed.unix_timestamp_nanos().div_euclid(1_000_000);
        if millis < 0 {
            return Err(format!("`{text}` is before 1970-01-01"));
        }
        if millis > MAX_MILLIS as i128 {
            return Err(format!("`{text}` is after year 9999"));
        }
        Ok(Timestamp(millis as i64))
    }

    /// Writes the canonical form into `out` without allocating a formatter.
    pub fn write_rfc3339(self, out: &mut String) {
        let (year, month, day) = civil_from_days(self.0.div_euclid(86_400_000));
        let ms_of_day = self.0.rem_euclid(86_400_000);
        let (h, m, s, ms) = (
            ms_of_day / 3_600_000,
            (ms_of_day / 60_000) % 60,
            (ms_of_day / 1000) % 60,
            ms_of_day % 1000,
        );
        use std::fmt::Write;
        let _ = write!(
            out,
            "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z"
        );
    }

    pub fn to_rfc3339(self) -> String {
        let mut s = String::with_capacity(24);
        self.write_rfc3339(&mut s);
        s
    }
}

/// Howard Hinnant's days-to-civil algorithm: exact for the whole proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// On the wire a timestamp is an RFC 3339 string (`format: date-time`), not the integer it is
/// in memory; the JSON Schema must say what the JSON holds.
impl schemars::JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }

    // A plain string with a format: naming it in `$defs` would only add an indirection.
    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339 UTC with milliseconds and `Z`, e.g. `2026-11-21T10:00:00.123Z`."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_offsets_to_utc_millis() {
        let ts = Timestamp::parse("2026-11-21T12:00:00.123456+02:00").unwrap();
        assert_eq!(ts.to_rfc3339(), "2026-11-21T10:00:00.123Z");
    }

    #[test]
    fn formats_epoch_and_leap_days() {
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
        let leap = Timestamp::parse("2024-02-29T23:59:59.999Z").unwrap();
        assert_eq!(leap.to_rfc3339(), "2024-02-29T23:59:59.999Z");
        assert_eq!(
            Timestamp(MAX_MILLIS).to_rfc3339(),
            "9999-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn round_trips_through_formatting() {
        for millis in [1, 951_782_400_000, 1_700_000_000_001, 4_102_444_800_000] {
            let ts = Timestamp(millis);
            assert_eq!(Timestamp::parse(&ts.to_rfc3339()).unwrap(), ts);
        }
    }

    #[test]
    fn refuses_garbage_and_pre_epoch() {
        assert!(Timestamp::parse("yesterday").is_err());
        assert!(Timestamp::parse("1969-12-31T23:59:59Z").is_err());
        assert!(Timestamp::parse("2026-13-01T00:00:00Z").is_err());
    }
}
