//! How a webhook delivery is signed, the way Stripe and GitHub sign
//! theirs: `Rampart-Signature: t=TIMESTAMP,v1=HEX` where HEX is the
//! HMAC-SHA256, under the channel's secret, of `TIMESTAMP.BODY`. A
//! receiver recomputes it, compares in constant time and refuses old
//! timestamps, so a captured delivery cannot be replayed later.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Rampart-Signature";
/// The header carrying the delivery's id: a receiver that sees it twice
/// has the same alert again (deliveries are retried until acknowledged).
pub const DELIVERY_HEADER: &str = "Rampart-Delivery";

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The signature header's value for `body` sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(tag))
}

/// Whether `header` is a valid signature of `body` made within
/// `tolerance_secs` of `now`.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut timestamp = None;
    let mut tag = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => tag = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(timestamp), Some(tag)) = (timestamp, tag) else {
        return false;
    };
    if now.abs_diff(timestamp) > tolerance_secs.unsigned_abs() {
        return false;
    }
    mac(secret, timestamp, body).verify_slice(&tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let header = sign(b"s3cret", 1_700_000_000, b"{\"a\":1}");
        assert!(header.starts_with("t=1700000000,v1="));
        assert!(verify(b"s3cret", &header, b"{\"a\":1}", 1_700_000_100, 300));
        assert!(!verify(b"other", &header, b"{\"a\":1}", 1_700_000_100, 300));
        assert!(!verify(
            b"s3cret",
            &header,
            b"{\"a\":2}",
            1_700_000_100,
            300
        ));
        assert!(
            !verify(b"s3cret", &header, b"{\"a\":1}", 1_700_001_000, 300),
            "too old"
        );
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert!(!verify(b"s3cret", &moved, b"{\"a\":1}", 1_700_000_100, 300));
        for junk in ["", "t=x,v1=zz", "v1=00", "t=1700000000", "garbage"] {
            assert!(
                !verify(b"s3cret", junk, b"{\"a\":1}", 1_700_000_000, 300),
                "{junk}"
            );
        }
    }
}
