//! Random identifiers and timestamps in the shapes Graph and the identity platform use.
//!
//! Message ids imitate Exchange's: a default id (`AAMkAD…`) that would change on a move, and an
//! immutable id (`AAkAL…`) that would not. Both are base64url-like and always contain `-`, `_`
//! and a trailing `=`, so a client that forgets to percent-encode a path segment, or encodes it
//! twice, is caught by the tests that use the simulator.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Timelike, Utc};

/// `n` random bytes from the operating system.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    // The OS random source failing means the machine is unusable; there is nothing to recover.
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}

/// A random version-4 GUID in lower-case hex, e.g. `7f105c7d-2dc5-4530-97cd-4e7ae6534c07`.
pub fn guid() -> String {
    let mut b = random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Random base64url text (no padding) from `n` random bytes.
pub fn random_b64url(n: usize) -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(n))
}

/// A default (move-sensitive) message or folder id.
pub fn default_item_id() -> String {
    format!("AAMkAD{}-{}_AAA=", random_b64url(30), random_b64url(24))
}

/// An immutable message id.
pub fn immutable_item_id() -> String {
    format!(
        "AAkALgAAAAAAHYQD{}_{}-AAAA=",
        random_b64url(24),
        random_b64url(12)
    )
}

/// A conversation id.
pub fn conversation_id() -> String {
    format!("AAQkAD{}=", random_b64url(30))
}

/// A change key, also used (quoted, weak) as the item's etag.
pub fn change_key() -> String {
    format!("CQAAABYAAAD{}", STANDARD.encode(random_bytes(15)))
}

/// An opaque access token.
pub fn access_token() -> String {
    format!("sim.{}", random_b64url(48))
}

/// Graph's long date-time form with seven fractional digits, used for subscription expiry:
/// `2026-05-08T10:00:00.0000000Z`.
pub fn graph_datetime_7(t: DateTime<Utc>) -> String {
    format!(
        "{}.{:07}Z",
        t.format("%Y-%m-%dT%H:%M:%S"),
        t.nanosecond() % 1_000_000_000 / 100
    )
}

/// Graph's short date-time form, used for message times: `2026-05-08T10:00:00Z`.
pub fn graph_datetime(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The `date` of a Graph error's `innerError`: `2026-05-08T10:00:00` (no zone, as Graph sends it).
pub fn inner_error_date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// The `timestamp` of an identity platform error: `2026-05-08 10:00:00Z`.
pub fn identity_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn guid_is_a_version_4_guid() {
        let id = guid();

        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_eq!(&id[14..15], "4");
        assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn default_and_immutable_ids_differ_in_shape_and_need_path_encoding_care() {
        let default = default_item_id();
        let immutable = immutable_item_id();

        assert!(default.starts_with("AAMkAD"));
        assert!(immutable.starts_with("AAkAL"));
        for id in [&default, &immutable] {
            assert!(id.ends_with('='));
            assert!(id.contains('-'));
            assert!(id.contains('_'));
        }
    }

    #[test]
    fn subscription_expiry_has_seven_fractional_digits() {
        let t = Utc.with_ymd_and_hms(2026, 5, 8, 10, 0, 0).unwrap()
            + chrono::Duration::nanoseconds(123_456_789);

        assert_eq!(graph_datetime_7(t), "2026-05-08T10:00:00.1234567Z");
        assert_eq!(graph_datetime(t), "2026-05-08T10:00:00Z");
    }
}
