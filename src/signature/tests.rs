//! Unit tests of `signature`.

use super::*;

const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TIMESTAMP: i64 = 1614265330;
const BODY: &[u8] = br#"{"test": 2432232314}"#;

/// The Standard Webhooks specification's published example.
#[test]
fn matches_the_specification_example() {
    let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let key = decode_secret(&secret).unwrap();
    let signature = sign(&key, ID, TIMESTAMP, BODY);
    assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    assert_eq!(signer(&secret).unwrap().sign(ID, TIMESTAMP, BODY), signature);
    assert!(verify_signature(&secret, ID, TIMESTAMP, BODY, &signature));
    assert!(!verify_signature(&secret, ID, TIMESTAMP + 1, BODY, &signature));
    assert!(!verify_signature(&secret, ID, TIMESTAMP, b"{}", &signature));
}

/// The specification's Ed25519 example: its key pair (seed, then public key) and its seed alone sign alike.
#[cfg(feature = "ed25519")]
#[test]
fn matches_the_specification_ed25519_example() {
    let pair = "6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==";
    let expected = "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==";
    let bytes = BASE64.decode(pair).unwrap();
    let seed = Secret::new(format!("whsk_{}", BASE64.encode(&bytes[..32])));
    let public = PublicKey::parse(&format!("whpk_{}", BASE64.encode(&bytes[32..]))).unwrap();
    for secret in [Secret::new(format!("whsk_{pair}")), seed] {
        assert_eq!(signer(&secret).unwrap().sign(ID, TIMESTAMP, BODY), expected);
        assert_eq!(PublicKey::from_secret(&secret).unwrap(), public);
        assert!(verify_signature(&secret, ID, TIMESTAMP, BODY, expected));
    }
    assert!(verify_signature(&public, ID, TIMESTAMP, BODY, expected));
    let both = format!("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= {expected}");
    assert!(verify_signature(&public, ID, TIMESTAMP, BODY, &both));
    assert!(!verify_signature(&public, ID, TIMESTAMP, BODY, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="));
    assert!(!verify_signature(&public, ID, TIMESTAMP + 1, BODY, expected));
    assert!(!verify_signature(&public, "msg_other", TIMESTAMP, BODY, expected));
    assert!(!verify_signature(&public, ID, TIMESTAMP, b"{\"test\": 2432232315}", expected));
    // An HMAC secret does not accept an Ed25519 entry, nor a public key an HMAC one.
    let hmac = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert!(!verify_signature(&hmac, ID, TIMESTAMP, BODY, expected));
}

#[test]
fn bad_secrets_are_explained_without_the_secret() {
    for bad in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_***", "whsec_", "whsk_***", "whsk_MfKQ9r8GKYqrTwjU"] {
        let reason = signer(&Secret::new(bad)).unwrap_err().to_string();
        assert!(!reason.contains("MfKQ") && !reason.contains("***"), "{reason}");
        assert!(decode_secret(&Secret::new(bad)).is_err(), "{bad} decoded");
    }
    assert_eq!(signer(&Secret::new("whpk_AAAA")).unwrap_err(), KeyError::PublicKeyGiven);
    assert!(matches!(signer(&Secret::new("nope")).unwrap_err(), KeyError::Prefix { .. }));
}

#[cfg(feature = "ed25519")]
#[test]
fn ed25519_keys_of_the_wrong_length_or_a_damaged_pair_are_refused() {
    let encoded = |bytes: &[u8]| Secret::new(format!("whsk_{}", BASE64.encode(bytes)));
    for len in [16, 31, 33, 63, 65] {
        let error = signer(&encoded(&vec![7; len])).unwrap_err();
        assert_eq!(
            error,
            KeyError::Length {
                prefix: "whsk_",
                bytes: len,
                expected: "an Ed25519 secret key is 32 bytes (its seed) or 64 (seed and public key)"
            }
        );
    }
    assert_eq!(signer(&encoded(&[7; 64])).unwrap_err(), KeyError::Mismatch);
    assert!(matches!(PublicKey::parse("whpk_AAAA").unwrap_err(), KeyError::Length { bytes: 3, .. }));
    assert!(matches!(PublicKey::parse("whsk_AAAA").unwrap_err(), KeyError::Prefix { .. }));
    assert!(matches!(PublicKey::from_secret(&Secret::new("whsec_AAAA")).unwrap_err(), KeyError::Prefix { .. }));
}

#[cfg(not(feature = "ed25519"))]
#[test]
fn without_the_feature_ed25519_keys_name_it() {
    let error = signer(&Secret::new("whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbc=")).unwrap_err();
    assert_eq!(error, KeyError::Ed25519Disabled);
    assert!(error.to_string().contains("\"ed25519\""), "{error}");
}

#[test]
fn a_key_stops_signing_at_its_expiry() {
    use chrono::TimeZone;
    let at = Utc.with_ymd_and_hms(2026, 12, 31, 0, 0, 0).unwrap();
    let key = SigningKey::new("whsec_AAAA").expiring(at);
    assert!(key.is_current(at - chrono::Duration::nanoseconds(1)));
    assert!(!key.is_current(at) && !key.is_current(at + chrono::Duration::days(1)));
    assert!(SigningKey::new("whsec_AAAA").is_current(DateTime::<Utc>::MAX_UTC));
    let json = serde_json::to_string(&key).unwrap();
    assert_eq!(json, r#"{"secret":"whsec_AAAA","expires_at":"2026-12-31T00:00:00Z"}"#);
    assert_eq!(serde_json::from_str::<SigningKey>(&json).unwrap(), key);
    let offset: SigningKey =
        serde_json::from_str(r#"{"secret":"whsec_AAAA","expires_at":"2026-12-31T01:00:00+01:00"}"#).unwrap();
    assert_eq!(offset, key);
}
