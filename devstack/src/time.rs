//! Time helpers shared by the stand-ins: one clock, one precision, one text format.

use chrono::{DateTime, SubsecRound, Utc};

/// Now, at microsecond precision (what Postgres stores, so what the monolith shows).
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// RFC 3339 in UTC the way Django REST framework prints it: `2026-11-20T10:00:00Z`, with six
/// fractional digits only when there is a fraction.
pub(crate) fn rfc3339(at: &DateTime<Utc>) -> String {
    if at.timestamp_subsec_micros() == 0 {
        at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }
}

/// A protobuf timestamp for `at`.
pub(crate) fn to_timestamp(at: &DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos().min(999_999_999) as i32,
    }
}

/// The instant a protobuf timestamp names; `None` when it is out of range or malformed.
pub(crate) fn from_timestamp(ts: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(ts.nanos).ok().filter(|n| *n < 1_000_000_000)?;
    DateTime::from_timestamp(ts.seconds, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_drf() {
        let whole = DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
        assert_eq!(rfc3339(&whole), "2026-11-18T11:06:40Z");
        let fraction = DateTime::from_timestamp(1_795_000_000, 120_000).unwrap_or_default();
        assert_eq!(rfc3339(&fraction), "2026-11-18T11:06:40.000120Z");
    }

    #[test]
    fn timestamps_round_trip() {
        let at = now();
        assert_eq!(from_timestamp(&to_timestamp(&at)), Some(at));
        let bad = prost_types::Timestamp { seconds: 0, nanos: -1 };
        assert_eq!(from_timestamp(&bad), None);
    }
}
