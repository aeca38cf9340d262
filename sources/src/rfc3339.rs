//! The monolith's timestamps read quickly: `2026-11-01T12:34:56.123456Z` in one pass over its
//! bytes, anything else through chrono.
//!
//! Why: chrono's `Deserialize` for `DateTime<Utc>` reads every timestamp with its general,
//! relaxed RFC 3339 parser (a table of items, a `Parsed` to fill, a date validated from it), and
//! a page of 50 templates with their authors carries 150 of them; that was about 2% of the
//! gateway's CPU per TemplateList request in profiles. The fast path takes only the exact shape
//! Django REST framework writes (`YYYY-MM-DDTHH:MM:SS`, up to 9 digits of fraction, `Z` or a
//! `±HH:MM` offset) and gives the value chrono would; whatever it does not take (a space for the
//! `T`, a leap second, a lower-case `z`, more digits) goes to chrono's own parser, so what is
//! accepted and what it means does not change. Hand-written rather than a crate: the crates
//! that parse faster (speedate, jiff) have their own types and their own ideas of what to
//! accept, and this must agree with chrono exactly.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};
use serde::Deserializer;
use serde::de::{Error, Visitor};

/// `text` as a UTC timestamp, as chrono's `Deserialize` for `DateTime<Utc>` reads it.
pub(crate) fn parse(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    match fast(text) {
        Some(at) => Ok(at),
        None => text.parse::<DateTime<FixedOffset>>().map(|at| at.with_timezone(&Utc)),
    }
}

/// The fast path: `Some` only for the shape described in the module's doc, and then the value
/// chrono's parser gives; `None` for anything else, left to chrono.
fn fast(text: &str) -> Option<DateTime<Utc>> {
    let bytes = text.as_bytes();
    let (head, rest) = bytes.split_at_checked(19)?;
    if head[4] != b'-' || head[7] != b'-' || head[10] != b'T' || head[13] != b':' || head[16] != b':' {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(digits(&head[0..4])?).ok()?,
        digits(&head[5..7])?,
        digits(&head[8..10])?,
    )?;
    let (hour, minute, second) = (digits(&head[11..13])?, digits(&head[14..16])?, digits(&head[17..19])?);
    let (nanos, zone) = match rest.split_first() {
        Some((b'.', fraction)) => {
            let count = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
            if !(1..=9).contains(&count) {
                return None;
            }
            let scale = 10u32.pow(9 - u32::try_from(count).ok()?);
            (digits(&fraction[..count])? * scale, &fraction[count..])
        }
        _ => (0, rest),
    };
    // Refuses a leap second (60), which is chrono's to place.
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    let offset_seconds = match zone {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (hours, minutes) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = i64::from(hours * 3600 + minutes * 60);
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    let utc = NaiveDateTime::new(date, time).checked_sub_signed(TimeDelta::seconds(offset_seconds))?;
    Some(utc.and_utc())
}

/// The number `bytes` spell in decimal, when they are all digits (and at most nine).
fn digits(bytes: &[u8]) -> Option<u32> {
    bytes
        .iter()
        .try_fold(0u32, |number, byte| byte.is_ascii_digit().then(|| number * 10 + u32::from(byte - b'0')))
}

/// For `#[serde(deserialize_with)]`: a timestamp read with [`parse`].
pub(crate) fn utc<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    deserializer.deserialize_str(TimestampVisitor)
}

/// For `#[serde(deserialize_with)]`: a timestamp or `null`, read with [`parse`].
pub(crate) fn utc_or_null<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    deserializer.deserialize_option(OptionalTimestampVisitor)
}

struct TimestampVisitor;

impl Visitor<'_> for TimestampVisitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("an RFC 3339 timestamp")
    }

    fn visit_str<E: Error>(self, text: &str) -> Result<Self::Value, E> {
        parse(text).map_err(E::custom)
    }
}

struct OptionalTimestampVisitor;

impl<'de> Visitor<'de> for OptionalTimestampVisitor {
    type Value = Option<DateTime<Utc>>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("an RFC 3339 timestamp or null")
    }

    fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        utc(deserializer).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{SecondsFormat, TimeZone};
    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;

    /// chrono's own reading, as its `Deserialize` does it: the independent side of every check.
    fn chrono_reads(text: &str) -> Option<DateTime<Utc>> {
        serde_json::from_value::<DateTime<Utc>>(serde_json::Value::String(text.to_owned())).ok()
    }

    /// A timestamp in the shape the fast path takes: `fraction_digits` of the nanoseconds
    /// (truncated, as chrono truncates), then `Z` or the offset.
    fn written(local: NaiveDateTime, fraction_digits: u32, offset_minutes: Option<i32>) -> String {
        let mut text = local.format("%Y-%m-%dT%H:%M:%S").to_string();
        if fraction_digits > 0 {
            let nanos = local.and_utc().timestamp_subsec_nanos();
            let fraction = format!("{nanos:09}");
            text.push('.');
            text.push_str(&fraction[..fraction_digits as usize]);
        }
        match offset_minutes {
            None => text.push('Z'),
            Some(minutes) => {
                let sign = if minutes < 0 { '-' } else { '+' };
                text.push_str(&format!("{sign}{:02}:{:02}", minutes.abs() / 60, minutes.abs() % 60));
            }
        }
        text
    }

    fn local_times() -> impl Strategy<Value = NaiveDateTime> {
        // Years 0001-9998, so an offset cannot carry the UTC time out of four digits.
        (-62_135_596_800i64..253_370_764_800, 0u32..1_000_000_000).prop_map(|(seconds, nanos)| {
            DateTime::from_timestamp(seconds, nanos).unwrap_or_default().naive_utc()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every timestamp of the monolith's shape takes the fast path, with chrono's value.
        #[test]
        fn the_fast_path_reads_what_chrono_reads(
            local in local_times(),
            fraction_digits in 0u32..=9,
            offset_minutes in proptest::option::of(-(23 * 60 + 59)..=(23 * 60 + 59)),
        ) {
            let text = written(local, fraction_digits, offset_minutes);
            let expected = chrono_reads(&text);
            prop_assert!(expected.is_some(), "chrono refuses {text}");
            prop_assert_eq!(fast(&text), expected, "{}", text);
        }

        /// One byte changed anywhere: the fast path takes it only if chrono does, with the same
        /// value, and `parse` always agrees with chrono.
        #[test]
        fn a_damaged_timestamp_is_read_as_chrono_reads_it(
            local in local_times(),
            fraction_digits in 0u32..=9,
            offset_minutes in proptest::option::of(-(23 * 60 + 59)..=(23 * 60 + 59)),
            at in any::<prop::sample::Index>(),
            byte in prop::sample::select(b"0123456789+-:.TZtz 9x".to_vec()),
        ) {
            let mut bytes = written(local, fraction_digits, offset_minutes).into_bytes();
            let at = at.index(bytes.len());
            bytes[at] = byte;
            let text = String::from_utf8(bytes).unwrap_or_default();
            let expected = chrono_reads(&text);
            if let Some(value) = fast(&text) {
                prop_assert_eq!(Some(value), expected, "{}", text);
            }
            prop_assert_eq!(parse(&text).ok(), expected, "{}", text);
        }
    }

    #[test]
    fn what_the_fast_path_leaves_to_chrono_is_still_read() {
        let cases = [
            // A leap second: chrono keeps it in the nanoseconds.
            "2016-12-31T23:59:60Z",
            "2016-12-31T23:59:60.5+00:00",
            // Relaxed forms chrono accepts.
            "2026-11-01 12:34:56Z",
            "2026-11-01t12:34:56z",
            "2026-11-01T12:34:56.1234567891Z",
            "2026-11-01T12:34:56+0100",
        ];
        for text in cases {
            assert_eq!(fast(text), None, "{text}");
            let expected = chrono_reads(text);
            assert!(expected.is_some(), "{text}");
            assert_eq!(parse(text).ok(), expected, "{text}");
        }
        for text in
            ["", "2026-11-01", "2026-02-30T00:00:00Z", "2026-11-01T24:00:00Z", "2026-11-01T12:34:56+24:00"]
        {
            assert_eq!(parse(text).ok(), None, "{text}");
            assert_eq!(chrono_reads(text), None, "{text}");
        }
    }

    #[test]
    fn fields_read_through_serde_as_chrono_reads_them() {
        #[derive(Deserialize)]
        struct Row {
            #[serde(deserialize_with = "utc")]
            at: DateTime<Utc>,
            #[serde(default, deserialize_with = "utc_or_null")]
            maybe: Option<DateTime<Utc>>,
        }
        let at = Utc.with_ymd_and_hms(2026, 11, 1, 12, 34, 56).single().unwrap_or_default();
        let text = at.to_rfc3339_opts(SecondsFormat::Micros, true);
        // An escaped character makes serde_json hand over an owned string, not a borrowed one.
        let json = format!(r#"{{"at":"{text}","maybe":"{}"}}"#, text.replace('T', "\\u0054"));
        let row: Row = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((row.at, row.maybe), (at, Some(at)));
        let row: Row = serde_json::from_str(&format!(r#"{{"at":"{text}","maybe":null}}"#))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(row.maybe, None);
        let row: Row =
            serde_json::from_str(&format!(r#"{{"at":"{text}"}}"#)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(row.maybe, None);
        assert!(serde_json::from_str::<Row>(r#"{"at":"yesterday"}"#).is_err());
        assert!(serde_json::from_str::<Row>(r#"{"at":12}"#).is_err());
    }
}
