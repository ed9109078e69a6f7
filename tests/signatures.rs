//! Standard Webhooks signatures through the public API: the specification's vectors, `v1a` checked both ways
//! against ed25519-dalek (an Ed25519 independent of ring, which the crate signs with), and the checks of
//! `signing_keys`.

use crm_webhooks::error::ValidationError;
use crm_webhooks::signature::KeyError;
use crm_webhooks::{ConfigError, WebhookAction, WorkflowSet};

/// The specification's Ed25519 key pair: the seed, then the public key.
const KEY_PAIR: &str = "6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==";
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn action(keys: serde_json::Value) -> Result<WebhookAction, String> {
    let doc = serde_json::json!({"title": "T", "url": "https://r.example/hook", "content_type": "JSON",
        "signing_keys": keys});
    serde_json::from_value(doc).map_err(|e| e.to_string())
}

fn problems(keys: serde_json::Value, secret: Option<&str>) -> Vec<ValidationError> {
    let mut action = serde_json::json!({"title": "T", "url": "https://r.example/hook", "content_type": "JSON",
        "signing_keys": keys});
    if let Some(secret) = secret {
        action["signing_secret"] = secret.into();
    }
    let doc = serde_json::json!([{"id": "w", "module": "Leads", "trigger": "every_save", "actions": [action]}]);
    match WorkflowSet::from_value(doc) {
        Ok(_) => vec![],
        Err(ConfigError::Invalid(problems)) => problems,
        Err(other) => panic!("{other}"),
    }
}

#[cfg(feature = "ed25519")]
mod ed25519 {
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine as _;
    use chrono::{TimeZone, Utc};
    use crm_webhooks::engine::preview;
    use crm_webhooks::signature::{verify_signature, PublicKey, SigningKey};
    use crm_webhooks::{Change, RecordEvent, Secret, WorkflowSet};
    use ed25519_dalek::{Signer as _, SigningKey as DalekKey, Verifier as _};
    use proptest::prelude::*;

    use super::*;

    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const V1A: &str = "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==";
    const V1: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn the_specification_vectors_verify_and_round_trip_through_an_action() {
        let secret = Secret::new(WHSEC);
        let both = format!("{V1} {V1A}");
        assert!(verify_signature(&secret, ID, TIMESTAMP, BODY, &both));
        assert!(!verify_signature(&secret, ID, TIMESTAMP, BODY, V1A), "a whsec_ secret checks v1 entries only");
        let loaded = action(serde_json::json!([
            {"secret": format!("whsk_{KEY_PAIR}")},
            {"secret": WHSEC, "expires_at": "2026-12-31T00:00:00Z"}
        ]))
        .unwrap();
        let expiry = Utc.with_ymd_and_hms(2026, 12, 31, 0, 0, 0).unwrap();
        assert_eq!(
            loaded.signing_keys(),
            [SigningKey::new(format!("whsk_{KEY_PAIR}")), SigningKey::new(WHSEC).expiring(expiry)]
        );
        let json = serde_json::to_string(&loaded).unwrap();
        assert!(json.contains(r#""signing_keys":[{"secret":"whsk_6Xb/"#), "{json}");
        assert_eq!(serde_json::from_str::<WebhookAction>(&json).unwrap(), loaded);
        assert!(!format!("{loaded:?}").contains("6Xb/"), "Debug redacts the keys");
    }

    #[test]
    fn the_specification_ed25519_vector_matches_dalek() {
        let pair = BASE64.decode(KEY_PAIR).unwrap();
        let dalek = DalekKey::from_bytes(&pair[..32].try_into().unwrap());
        assert_eq!(dalek.verifying_key().as_bytes(), &pair[32..]);
        let signature = dalek.sign(format!("{ID}.{TIMESTAMP}.{}", std::str::from_utf8(BODY).unwrap()).as_bytes());
        assert_eq!(format!("v1a,{}", BASE64.encode(signature.to_bytes())), V1A);
        let public = PublicKey::from_secret(&Secret::new(format!("whsk_{KEY_PAIR}"))).unwrap();
        assert_eq!(public.as_bytes(), dalek.verifying_key().as_bytes());
        assert!(verify_signature(&public, ID, TIMESTAMP, BODY, V1A));
    }

    fn id_text() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_]{1,40}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// dalek signs, the crate verifies: with the `whpk_` public key and with the `whsk_` secret key, and the
        /// public key the crate derives from the seed is dalek's. Any change of id, timestamp or body fails.
        #[test]
        fn what_dalek_signs_the_crate_verifies(
            seed in any::<[u8; 32]>(),
            id in id_text(),
            timestamp in 0i64..4_000_000_000,
            body in proptest::collection::vec(any::<u8>(), 0..300),
            flip in any::<usize>(),
        ) {
            let dalek = DalekKey::from_bytes(&seed);
            let mut content = format!("{id}.{timestamp}.").into_bytes();
            content.extend_from_slice(&body);
            let header = format!("v1,bm9pc2U= v1a,{}", BASE64.encode(dalek.sign(&content).to_bytes()));
            let public = PublicKey::parse(&format!("whpk_{}", BASE64.encode(dalek.verifying_key().as_bytes()))).unwrap();
            let secret = Secret::new(format!("whsk_{}", BASE64.encode(seed)));
            prop_assert_eq!(PublicKey::from_secret(&secret).unwrap(), public);
            let pair = Secret::new(format!("whsk_{}", BASE64.encode(dalek.to_keypair_bytes())));
            prop_assert_eq!(PublicKey::from_secret(&pair).unwrap(), public);
            prop_assert!(verify_signature(&public, &id, timestamp, &body, &header));
            prop_assert!(verify_signature(&secret, &id, timestamp, &body, &header));
            prop_assert!(!verify_signature(&public, &id, timestamp + 1, &body, &header));
            let other_id = format!("{id}x");
            prop_assert!(!verify_signature(&public, &other_id, timestamp, &body, &header));
            let mut tampered = body.clone();
            if tampered.is_empty() {
                tampered.push(0);
            } else {
                let at = flip % tampered.len();
                tampered[at] ^= 1;
            }
            prop_assert!(!verify_signature(&public, &id, timestamp, &tampered, &header));
        }

        /// The crate signs (an action's request, as the engine builds it), dalek verifies: the `v1a` entry is
        /// dalek's own signature of `id.timestamp.body`, byte for byte (Ed25519 is deterministic).
        #[test]
        fn what_the_crate_signs_dalek_verifies(
            seed in any::<[u8; 32]>(),
            text in "\\PC{0,200}",
            minute in 0i64..10_000_000,
        ) {
            let whsk = format!("whsk_{}", BASE64.encode(seed));
            let set = WorkflowSet::from_json(&serde_json::json!({"workflows": [{"id": "w", "module": "Leads",
                "trigger": "every_save", "actions": [{"title": "T", "url": "https://r.example/hook",
                "content_type": "JSON", "signing_keys": [{"secret": whsk}],
                "parameters": [{"name": "text", "field": "text"}]}]}]}).to_string()).unwrap();
            let event = RecordEvent::new("acme", "Leads", "10x1", Change::Created, "19x1").field("text", text);
            let now = (chrono::DateTime::UNIX_EPOCH + chrono::Duration::minutes(minute)).with_timezone(&chrono_tz::UTC);
            let request = preview(&set, &event, now).unwrap().remove(0);
            let (id, timestamp) = (&request.headers["webhook-id"], &request.headers["webhook-timestamp"]);
            prop_assert_eq!(timestamp, &now.timestamp().to_string());
            let header = &request.headers["webhook-signature"];
            let signature = header.strip_prefix("v1a,").unwrap();
            let dalek = DalekKey::from_bytes(&seed);
            let content = format!("{id}.{timestamp}.{}", request.body);
            let bytes: [u8; 64] = BASE64.decode(signature).unwrap().try_into().unwrap();
            let signature = ed25519_dalek::Signature::from_bytes(&bytes);
            prop_assert!(dalek.verifying_key().verify_strict(content.as_bytes(), &signature).is_ok());
            prop_assert!(dalek.verifying_key().verify(content.as_bytes(), &signature).is_ok());
            prop_assert_eq!(dalek.sign(content.as_bytes()), signature);
        }
    }
}

#[test]
fn bad_signing_keys_are_typed_problems_without_the_key() {
    type Check = fn(&KeyError) -> bool;
    let mut cases: Vec<(&str, Check)> = vec![
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", |p| matches!(p, KeyError::Prefix { .. })),
        ("whsec_MfKQ9r8GKYqrTwjU*PD8ILPZIo2LaLaSw", |p| matches!(p, KeyError::Base64 { prefix: "whsec_" })),
        ("whsec_", |p| matches!(p, KeyError::Empty { prefix: "whsec_" })),
        ("whpk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", |p| matches!(p, KeyError::PublicKeyGiven)),
    ];
    if cfg!(feature = "ed25519") {
        cases.push(("whsk_", |p| matches!(p, KeyError::Empty { prefix: "whsk_" })));
        cases.push(("whsk_MfKQ9r8GKYqrTwjU*PD8ILPZIo2LaLaSw", |p| matches!(p, KeyError::Base64 { prefix: "whsk_" })));
        cases.push(("whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", |p| matches!(p, KeyError::Length { bytes: 24, .. })));
    } else {
        cases.push(("whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", |p| matches!(p, KeyError::Ed25519Disabled)));
    }
    for (secret, expected) in cases {
        let found = problems(serde_json::json!([{"secret": WHSEC}, {"secret": secret}]), None);
        match found.as_slice() {
            [ValidationError::InvalidSigningKey { index: 1, problem, .. }] => assert!(expected(problem), "{problem:?}"),
            other => panic!("{secret}: {other:?}"),
        }
        let text = found[0].to_string();
        assert!(text.starts_with("workflow \"w\", action \"T\": signing_keys[1] is invalid: "), "{text}");
        assert!(!text.contains("MfKQ9r8GKYqrTwjU"), "the key is not quoted: {text}");
    }
    #[cfg(feature = "ed25519")]
    {
        let damaged = format!("whsk_{}", KEY_PAIR.replacen("K", "L", 1));
        let found = problems(serde_json::json!([{"secret": damaged}]), None);
        assert!(matches!(found.as_slice(), [ValidationError::InvalidSigningKey { problem: KeyError::Mismatch, .. }]));
    }
}

/// In a build without the feature, a `whsk_` key is refused and the message names the feature.
#[cfg(not(feature = "ed25519"))]
#[test]
fn without_the_feature_an_ed25519_key_names_it() {
    let error = action(serde_json::json!([{"secret": format!("whsk_{KEY_PAIR}")}])).unwrap_err();
    assert!(error.contains("cargo feature \"ed25519\""), "{error}");
}

#[test]
fn keys_are_limited_one_must_not_expire_and_the_signing_secret_stays_hmac() {
    let key = |n: usize| serde_json::json!({"secret": format!("whsec_{}", "QUFB".repeat(n + 1))});
    assert!(problems((0..10).map(key).collect(), None).is_empty());
    let found = problems((0..11).map(key).collect(), None);
    assert!(matches!(found.as_slice(), [ValidationError::TooManySigningKeys { count: 11, .. }]), "{found:?}");

    let expiring = serde_json::json!([{"secret": WHSEC, "expires_at": "2026-12-31T00:00:00Z"}]);
    let found = problems(expiring.clone(), None);
    assert!(matches!(found.as_slice(), [ValidationError::EverySigningKeyExpires { .. }]), "{found:?}");
    assert!(found[0].to_string().contains("leave \"expires_at\" off the current key"), "{}", found[0]);
    assert!(problems(expiring, Some(WHSEC)).is_empty(), "the signing secret never expires");

    let found = problems(serde_json::json!([]), Some(&format!("whsk_{KEY_PAIR}")));
    assert!(matches!(found.as_slice(), [ValidationError::InvalidSigningSecret { .. }]), "{found:?}");
    assert!(found[0].to_string().contains("goes in \"signing_keys\""), "{}", found[0]);
    assert!(!found[0].to_string().contains("6Xb/"), "{}", found[0]);

    let error = action(serde_json::json!([{"secret": WHSEC, "expires": "2026-12-31"}])).unwrap_err();
    assert!(error.contains("unknown field `expires`"), "{error}");
    assert!(action(serde_json::json!([{"secret": WHSEC, "expires_at": "tomorrow"}])).is_err());
}
