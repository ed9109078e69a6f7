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

/// Where a redirect points, for the log and the email: `scheme://host[:port]/path` of its `Location` (resolved
/// against the delivery's `url` when relative), without userinfo, query or fragment: a query often holds a token
/// (a signed link, a session), userinfo a password. Escaped to one line and cut short, as a message quotes text.
pub(super) fn redirect_target(location: &str, url: &str) -> String {
    let location = location.trim();
    let location = &location[..location.find(['?', '#']).unwrap_or(location.len())];
    let (base_scheme, base_authority, base_path) = parts(url).unwrap_or(("", "", "/"));
    let (scheme, authority, path) = if let Some(found) = parts(location) {
        found
    } else if let Some(rest) = location.strip_prefix("//") {
        let end = rest.find('/').unwrap_or(rest.len());
        (base_scheme, without_userinfo(&rest[..end]), &rest[end..])
    } else if location.starts_with('/') {
        (base_scheme, base_authority, location)
    } else {
        // A relative path replaces the last segment of the delivery's path.
        let directory = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        return crate::shown::shown(&format!("{base_scheme}://{base_authority}{directory}{location}"));
    };
    let path = if path.is_empty() { "/" } else { path };
    crate::shown::shown(&format!("{scheme}://{authority}{path}"))
}

/// An absolute URL's scheme, authority without userinfo, and path (without query or fragment).
fn parts(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) {
        return None;
    }
    let rest = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    let end = rest.find('/').unwrap_or(rest.len());
    Some((scheme, without_userinfo(&rest[..end]), &rest[end..]))
}

fn without_userinfo(authority: &str) -> &str {
    authority.rfind('@').map_or(authority, |at| &authority[at + 1..])
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_redirect_target_keeps_scheme_host_and_path_only() {
        let url = "https://user:pw@hooks.example/v1/hook?token=T0KEN";
        #[rustfmt::skip]
        let table = [
            ("https://new.example/v2/hook?token=SECRET#x", "https://new.example/v2/hook"),
            ("http://admin:hunter2@new.example:8080?sig=abc", "http://new.example:8080/"),
            ("/v2/hook?token=SECRET", "https://hooks.example/v2/hook"),
            ("//cdn.example/x?y=SECRET", "https://cdn.example/x"),
            ("other?token=SECRET", "https://hooks.example/v1/other"),
            ("  https://new.example/a\r\nb  ", "https://new.example/a\\r\\nb"),
        ];
        for (location, shown) in table {
            assert_eq!(redirect_target(location, url), shown, "{location}");
        }
        assert_eq!(redirect_target("https://x.example/\r\nSet-Cookie", url), "https://x.example/\\r\\nSet-Cookie");
        let long = format!("https://x.example/{}", "a".repeat(500));
        assert!(redirect_target(&long, url).len() < 150, "cut short");
    }
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
