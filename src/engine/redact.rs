//! Secrets kept out of what is stored about a response: receivers that echo requests (as httpbin and many error
//! pages do) would otherwise put the `Authorization` header or the signing secret into the log.

use base64::Engine as _;

use crate::workflow::{Auth, WebhookAction};

/// What replaces a secret in stored text.
const REDACTED: &str = "[redacted]";

/// Every form in which an action's secrets could come back in a response: the Basic password, `user:password`
/// and its base64 token, the bearer token, the API key, and each signing key with and without its `whsec_` or
/// `whsk_` prefix. Longest first, so a longer form is replaced whole before a shorter one inside it.
pub(super) fn secret_texts(action: &WebhookAction) -> Vec<String> {
    let mut texts = Vec::new();
    match action.auth() {
        Auth::Basic { username, password } => {
            let pair = format!("{username}:{}", password.expose());
            texts.push(base64::engine::general_purpose::STANDARD.encode(&pair));
            texts.push(pair);
            texts.push(password.expose().to_owned());
        }
        Auth::Bearer { token: secret } | Auth::ApiKey { value: secret, .. } => texts.push(secret.expose().to_owned()),
        Auth::None => {}
    }
    let keys = action.signing_keys().iter().map(|key| key.secret());
    for secret in action.signing_secret().into_iter().chain(keys) {
        let secret = secret.expose();
        texts.push(secret.to_owned());
        if let Some(key) = secret.strip_prefix("whsec_").or_else(|| secret.strip_prefix("whsk_")) {
            texts.push(key.to_owned());
        }
    }
    texts.retain(|t| !t.is_empty());
    texts.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    texts.dedup();
    texts
}

/// `text` with every occurrence of each secret replaced by `[redacted]`.
pub(super) fn scrub(text: String, secrets: &[String]) -> String {
    secrets.iter().fold(text, |text, secret| {
        if text.contains(secret.as_str()) {
            text.replace(secret.as_str(), REDACTED)
        } else {
            text
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{ContentType, Parameter};
    use crate::secret::Secret;

    #[test]
    fn every_form_of_the_credentials_is_redacted() {
        let action = WebhookAction::builder("Notify", "https://receiver.example/", ContentType::Json)
            .auth(Auth::Basic { username: "api".into(), password: Secret::new("s3cret") })
            .signing_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .parameter(Parameter::value("public_id", "ACME"))
            .build()
            .unwrap();
        let secrets = secret_texts(&action);
        let echo = "Authorization: Basic YXBpOnMzY3JldA==\napi:s3cret s3cret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw \
                    MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
            .to_owned();
        let clean = scrub(echo, &secrets);
        for secret in ["YXBpOnMzY3JldA==", "s3cret", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] {
            assert!(!clean.contains(secret), "{secret} is still in {clean}");
        }
        assert!(clean.starts_with("Authorization: Basic [redacted]"), "{clean}");
        assert_eq!(scrub("nothing secret".into(), &secrets), "nothing secret");
    }

    #[cfg(feature = "ed25519")]
    #[test]
    fn bearer_tokens_api_keys_and_every_signing_key_are_redacted() {
        let build = |auth: Auth| {
            WebhookAction::builder("Notify", "https://receiver.example/", ContentType::Json)
                .auth(auth)
                .signing_key(crate::signature::SigningKey::new("whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbc="))
                .signing_key(
                    crate::signature::SigningKey::new("whsec_c2Vjb25kIGtleSBvZiB0aGUgcm90YXRpb24=")
                        .expiring(chrono::DateTime::<chrono::Utc>::MIN_UTC),
                )
                .build()
                .unwrap()
        };
        let keys = ["6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbc=", "c2Vjb25kIGtleSBvZiB0aGUgcm90YXRpb24="];
        for (auth, secret) in [
            (Auth::Bearer { token: Secret::new("tok-123") }, "tok-123"),
            (Auth::ApiKey { header: "X-Api-Key".into(), value: Secret::new("key-456") }, "key-456"),
        ] {
            let secrets = secret_texts(&build(auth));
            let echo = format!(
                "Authorization: Bearer {secret}\nX-Api-Key: {secret}\nkeys whsk_{} whsec_{} {} {}",
                keys[0], keys[1], keys[0], keys[1]
            );
            let clean = scrub(echo, &secrets);
            for text in [secret, keys[0], keys[1]] {
                assert!(!clean.contains(text), "{text} is still in {clean}");
            }
            assert!(clean.starts_with("Authorization: Bearer [redacted]\nX-Api-Key: [redacted]"), "{clean}");
        }
    }
}
