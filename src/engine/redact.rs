//! Secrets kept out of what is stored about a response: receivers that echo requests (as httpbin and many error
//! pages do) would otherwise put the `Authorization` header or the signing secret into the log.

use base64::Engine as _;

use crate::workflow::{Auth, WebhookAction};

/// What replaces a secret in stored text.
const REDACTED: &str = "[redacted]";

/// Every form in which an action's secrets could come back in a response: the Basic password, `user:password`
/// and its base64 token, and the signing secret with and without its `whsec_` prefix. Longest first, so a longer
/// form is replaced whole before a shorter one inside it.
pub(super) fn secret_texts(action: &WebhookAction) -> Vec<String> {
    let mut texts = Vec::new();
    if let Auth::Basic { username, password } = action.auth() {
        let pair = format!("{username}:{}", password.expose());
        texts.push(base64::engine::general_purpose::STANDARD.encode(&pair));
        texts.push(pair);
        texts.push(password.expose().to_owned());
    }
    if let Some(secret) = action.signing_secret() {
        let secret = secret.expose();
        texts.push(secret.to_owned());
        if let Some(key) = secret.strip_prefix("whsec_") {
            texts.push(key.to_owned());
        }
    }
    texts.retain(|t| !t.is_empty());
    texts.sort_by_key(|t| std::cmp::Reverse(t.len()));
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
}
