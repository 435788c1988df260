//! Request signatures that live in headers or the URL: Standard Webhooks and DingTalk's
//! robot. (cloudmonitor-form's `signature` is a body field: see `render::form`.)

use crate::util::{base64_decode, base64_into, hmac_sha256 as sign, percent_encode_into};

/// The signing key of a Standard Webhooks secret: the base64 after `whsec_`.
///
/// # Errors
/// A secret without the `whsec_` prefix, or not base64 after it, or empty.
pub fn standard_webhooks_key(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret
        .strip_prefix("whsec_")
        .ok_or("a Standard Webhooks secret starts with `whsec_`")?;
    match base64_decode(b64) {
        Some(k) if !k.is_empty() => Ok(k),
        _ => Err("a Standard Webhooks secret is base64 after `whsec_`".into()),
    }
}

/// `webhook-signature`: `v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>` for each key,
/// space-separated (several keys while a secret is rotated).
pub fn standard_webhooks_signature(
    keys: &[Vec<u8>],
    id: &str,
    timestamp: u64,
    body: &[u8],
) -> String {
    let mut signed = Vec::with_capacity(id.len() + 24 + body.len());
    signed.extend_from_slice(id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(timestamp.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    let mut out = String::new();
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str("v1,");
        base64_into(sign(k, &signed).as_ref(), &mut out);
    }
    out
}

/// DingTalk's robot signature: `timestamp=MS&sign=` urlencoded base64 of
/// HMAC-SHA256(key = secret, "MS\nsecret").
pub fn dingtalk_query(secret: &str, now_ms: u64) -> String {
    let tag = sign(secret.as_bytes(), format!("{now_ms}\n{secret}").as_bytes());
    let mut b64 = String::new();
    base64_into(tag.as_ref(), &mut b64);
    let mut out = format!("timestamp={now_ms}&sign=");
    percent_encode_into(&b64, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector published with the Standard Webhooks specification.
    #[test]
    fn standard_webhooks_published_vector() {
        let key = standard_webhooks_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = standard_webhooks_signature(
            &[key],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn rotation_sends_every_signature() {
        let a = standard_webhooks_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let b = standard_webhooks_key("whsec_c2Vjb25k").unwrap();
        let sig = standard_webhooks_signature(
            &[a, b.clone()],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        let parts: Vec<&str> = sig.split(' ').collect();
        assert_eq!(parts[0], "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert_eq!(
            parts[1],
            standard_webhooks_signature(
                &[b],
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            )
        );
        assert_eq!(parts.len(), 2);
    }

    #[test]
    fn keys_and_base64() {
        assert!(standard_webhooks_key("MfKQ9r8").is_err());
        assert!(standard_webhooks_key("whsec_").is_err());
        assert!(standard_webhooks_key("whsec_***").is_err());
    }

    /// DingTalk's recipe (its docs' Python: quote_plus(b64encode(hmac(secret, f"{ts}\n{secret}")))).
    #[test]
    fn dingtalk_reference() {
        assert_eq!(
            dingtalk_query("SECabc123", 1_700_000_000_000),
            "timestamp=1700000000000&sign=N5P09a4%2Bp1AMJIJWnIvQd2Yxw9%2Bfu%2FoEBnPrjCcsLXk%3D"
        );
    }
}
