//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

/// Decodes a `whsec_`-prefixed base64 signing secret into its key bytes. The error never contains the secret.
pub(crate) fn decode_secret(secret: &Secret) -> Result<Vec<u8>, String> {
    let Some(encoded) = secret.expose().strip_prefix("whsec_") else {
        return Err("it must start with \"whsec_\" followed by base64".to_owned());
    };
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| "the part after \"whsec_\" is not valid base64".to_owned())?;
    if key.is_empty() {
        return Err("the key after \"whsec_\" is empty".to_owned());
    }
    Ok(key)
}

/// The `webhook-signature` header value for a message.
pub(crate) fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail; fall back to an empty signature rather than panic.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else { return String::new() };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// Checks a `webhook-signature` header (space-separated `v1,<sig>` entries) as a receiver would.
///
/// Receivers in Rust can use it to verify what this crate sends; `secret` is the `whsec_` secret.
///
/// ```
/// use crm_webhooks::Secret;
/// use crm_webhooks::signature::verify_signature;
/// let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
/// assert!(!verify_signature(&secret, "msg_1", 1614265330, b"{}", "v1,bm9wZQ=="));
/// ```
pub fn verify_signature(secret: &Secret, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let Ok(key) = decode_secret(secret) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else { return false };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    header.split(' ').filter_map(|entry| entry.strip_prefix("v1,")).any(|sig| {
        base64::engine::general_purpose::STANDARD
            .decode(sig)
            .is_ok_and(|bytes| mac.clone().verify_slice(&bytes).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's published example.
    #[test]
    fn matches_the_specification_example() {
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let key = decode_secret(&secret).unwrap();
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify_signature(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, &signature));
        assert!(!verify_signature(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body, &signature));
        assert!(!verify_signature(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b"{}", &signature));
    }

    #[test]
    fn bad_secrets_are_explained_without_the_secret() {
        for bad in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_***", "whsec_"] {
            let reason = decode_secret(&Secret::new(bad)).unwrap_err();
            assert!(!reason.contains("MfKQ") && !reason.contains("***"), "{reason}");
        }
    }
}
