//! Standard Webhooks signatures over `"{id}.{timestamp}.{body}"`: `v1` (HMAC-SHA256 with a `whsec_` secret) and
//! `v1a` (Ed25519 with a `whsk_` secret key, checked with its `whpk_` public key), space-separated in
//! `webhook-signature`, one per signing key.
//!
//! An action signs with its [`signing_secret`](crate::WebhookAction::signing_secret) and every current key of its
//! [`signing_keys`](crate::WebhookAction::signing_keys); a [`SigningKey`] with an expiry stops signing at that
//! moment (the attempt's time, never the system clock). Receivers check a request with [`verify_signature`].
//! Ed25519 needs the cargo feature `ed25519` (on by default).

use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::secret::Secret;

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The prefix of an HMAC-SHA256 (`v1`) secret.
pub(crate) const HMAC_PREFIX: &str = "whsec_";
/// The prefix of an Ed25519 (`v1a`) secret key.
pub(crate) const SECRET_KEY_PREFIX: &str = "whsk_";
/// The prefix of an Ed25519 (`v1a`) public key.
const PUBLIC_KEY_PREFIX: &str = "whpk_";
/// The length of an Ed25519 seed and of a public key.
#[cfg(feature = "ed25519")]
const ED25519_KEY_BYTES: usize = 32;

/// What is wrong with a signing key or a public key. The message never contains the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key does not start with a prefix this place takes.
    #[error("it must start with {expected} followed by base64")]
    Prefix {
        /// The prefixes that would do, as the message words them.
        expected: &'static str,
    },
    /// A `whpk_` public key where a secret is needed.
    #[error(
        "it is a public key (\"whpk_\"), which only verifies; sign with the \"whsk_\" secret key and give the \
         \"whpk_\" key to the receiver"
    )]
    PublicKeyGiven,
    /// The part after the prefix is not base64 (standard alphabet, with padding).
    #[error("the part after \"{prefix}\" is not valid base64")]
    Base64 {
        /// The key's prefix.
        prefix: &'static str,
    },
    /// Nothing after the prefix.
    #[error("the key after \"{prefix}\" is empty")]
    Empty {
        /// The key's prefix.
        prefix: &'static str,
    },
    /// An Ed25519 key of the wrong length.
    #[error("the key after \"{prefix}\" is {bytes} bytes long, but {expected}")]
    Length {
        /// The key's prefix.
        prefix: &'static str,
        /// How many bytes it decodes to.
        bytes: usize,
        /// What it should be, as the message words it.
        expected: &'static str,
    },
    /// A 64-byte `whsk_` key pair whose second half is not the public key of its first half.
    #[error(
        "the last 32 bytes of the \"whsk_\" key pair are not the public key of its first 32 (its seed); the key \
         pair is damaged, copy it again"
    )]
    Mismatch,
    /// An Ed25519 key in a build without the cargo feature `ed25519`.
    #[error(
        "Ed25519 (\"whsk_\", v1a) keys need the cargo feature \"ed25519\" of crm-webhooks (on by default), which \
         this build leaves out"
    )]
    Ed25519Disabled,
}

/// One key an action signs with, and when it stops: JSON `{"secret": "whsk_...", "expires_at":
/// "2026-12-31T00:00:00Z"}` (`expires_at` optional, RFC 3339).
///
/// The secret is a `whsec_` HMAC secret (signs `v1`) or a `whsk_` Ed25519 secret key (signs `v1a`; the 32-byte
/// seed or the 64-byte key pair, base64). A key signs every attempt that leaves before its `expires_at`, and none
/// after: to rotate, add the new key and give the old one an expiry, and receivers accept either meanwhile.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use crm_webhooks::signature::SigningKey;
/// let old = SigningKey::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
///     .expiring(Utc.with_ymd_and_hms(2026, 12, 31, 0, 0, 0).unwrap());
/// assert!(old.is_current(Utc.with_ymd_and_hms(2026, 12, 30, 23, 59, 59).unwrap()));
/// assert!(!old.is_current(Utc.with_ymd_and_hms(2026, 12, 31, 0, 0, 0).unwrap()));
/// assert_eq!(format!("{old:?}"), "SigningKey { secret: Secret([redacted]), expires_at: Some(2026-12-31T00:00:00Z) }");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKey {
    secret: Secret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
}

impl SigningKey {
    /// A key that signs until it is removed. [`WebhookAction`](crate::WebhookAction) validates it.
    pub fn new(secret: impl Into<Secret>) -> Self {
        SigningKey { secret: secret.into(), expires_at: None }
    }

    /// The same key, signing only attempts that leave before `at`.
    pub fn expiring(mut self, at: DateTime<Utc>) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// The secret: `whsec_` or `whsk_` followed by base64.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// When the key stops signing, if it does.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires_at
    }

    /// Whether the key signs an attempt leaving at `now`: it has no expiry, or `now` is before it.
    pub fn is_current(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|expiry| now < expiry)
    }
}

/// What a receiver checks a `webhook-signature` header with: a secret or an Ed25519 public key. Made from either
/// with `From`, so [`verify_signature`] takes `&Secret` or `&PublicKey`.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum VerifyKey<'a> {
    /// A `whsec_` secret checks the `v1` entries; a `whsk_` secret key checks the `v1a` entries with its public key.
    Secret(&'a Secret),
    /// A `whpk_` public key checks the `v1a` entries.
    #[cfg(feature = "ed25519")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ed25519")))]
    Public(&'a PublicKey),
}

impl<'a> From<&'a Secret> for VerifyKey<'a> {
    fn from(secret: &'a Secret) -> Self {
        VerifyKey::Secret(secret)
    }
}

#[cfg(feature = "ed25519")]
impl<'a> From<&'a PublicKey> for VerifyKey<'a> {
    fn from(key: &'a PublicKey) -> Self {
        VerifyKey::Public(key)
    }
}

/// An Ed25519 public key, the `whpk_` form a receiver is given to check `v1a` signatures (feature `ed25519`).
///
/// ```
/// use crm_webhooks::Secret;
/// use crm_webhooks::signature::PublicKey;
/// let secret = Secret::new("whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbc=");
/// let public = PublicKey::from_secret(&secret).unwrap();
/// assert_eq!(public.to_string(), "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=");
/// assert_eq!(public.to_string().parse::<PublicKey>().unwrap(), public);
/// ```
#[cfg(feature = "ed25519")]
#[cfg_attr(docsrs, doc(cfg(feature = "ed25519")))]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; ED25519_KEY_BYTES]);

#[cfg(feature = "ed25519")]
impl PublicKey {
    /// Reads a `whpk_` public key.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let Some(encoded) = text.strip_prefix(PUBLIC_KEY_PREFIX) else {
            return Err(KeyError::Prefix { expected: "\"whpk_\"" });
        };
        let bytes = decode_base64(PUBLIC_KEY_PREFIX, encoded)?;
        let key = <[u8; ED25519_KEY_BYTES]>::try_from(bytes.as_slice()).map_err(|_| KeyError::Length {
            prefix: PUBLIC_KEY_PREFIX,
            bytes: bytes.len(),
            expected: "an Ed25519 public key is 32 bytes",
        })?;
        Ok(PublicKey(key))
    }

    /// The public key of a `whsk_` secret key: what to give the receiver.
    pub fn from_secret(secret: &Secret) -> Result<Self, KeyError> {
        match signer(secret)? {
            Signer::Ed25519(pair) => Ok(pair.public_key()),
            Signer::Hmac(_) => Err(KeyError::Prefix { expected: "\"whsk_\" (an Ed25519 secret key)" }),
        }
    }

    /// The 32 bytes of the key.
    pub fn as_bytes(&self) -> &[u8; ED25519_KEY_BYTES] {
        &self.0
    }

    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &self.0).verify(message, signature).is_ok()
    }
}

#[cfg(feature = "ed25519")]
impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_KEY_PREFIX}{}", BASE64.encode(self.0))
    }
}

#[cfg(feature = "ed25519")]
impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

#[cfg(feature = "ed25519")]
impl std::str::FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, KeyError> {
        PublicKey::parse(text)
    }
}

/// A signing key decoded, ready to sign.
pub(crate) enum Signer {
    /// HMAC-SHA256 with these key bytes: `v1`.
    Hmac(Vec<u8>),
    /// Ed25519: `v1a`.
    #[cfg(feature = "ed25519")]
    Ed25519(KeyPair),
}

/// An Ed25519 key pair and its public key (ring keeps the public key but hands it out only as bytes).
#[cfg(feature = "ed25519")]
pub(crate) struct KeyPair(ring::signature::Ed25519KeyPair);

#[cfg(feature = "ed25519")]
impl KeyPair {
    fn public_key(&self) -> PublicKey {
        use ring::signature::KeyPair as _;
        let mut key = [0; ED25519_KEY_BYTES];
        key.copy_from_slice(self.0.public_key().as_ref());
        PublicKey(key)
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signer::Hmac(_) => "Signer::Hmac([redacted])",
            #[cfg(feature = "ed25519")]
            Signer::Ed25519(_) => "Signer::Ed25519([redacted])",
        })
    }
}

impl Signer {
    /// This key's entry of the `webhook-signature` header: `v1,<base64>` or `v1a,<base64>`.
    pub(crate) fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        match self {
            Signer::Hmac(key) => sign(key, id, timestamp, body),
            #[cfg(feature = "ed25519")]
            Signer::Ed25519(pair) => {
                format!("v1a,{}", BASE64.encode(pair.0.sign(&signed_content(id, timestamp, body)).as_ref()))
            }
        }
    }
}

/// Decodes a signing key of either kind: `whsec_` (HMAC) or `whsk_` (Ed25519). The error never contains the key.
pub(crate) fn signer(secret: &Secret) -> Result<Signer, KeyError> {
    let text = secret.expose();
    if let Some(encoded) = text.strip_prefix(HMAC_PREFIX) {
        return decode_base64(HMAC_PREFIX, encoded).map(Signer::Hmac);
    }
    if let Some(encoded) = text.strip_prefix(SECRET_KEY_PREFIX) {
        return ed25519_signer(encoded);
    }
    if text.starts_with(PUBLIC_KEY_PREFIX) {
        return Err(KeyError::PublicKeyGiven);
    }
    Err(KeyError::Prefix { expected: "\"whsec_\" (HMAC, signs v1) or \"whsk_\" (Ed25519, signs v1a)" })
}

#[cfg(feature = "ed25519")]
fn ed25519_signer(encoded: &str) -> Result<Signer, KeyError> {
    use ring::signature::Ed25519KeyPair;
    let bytes = decode_base64(SECRET_KEY_PREFIX, encoded)?;
    let pair = match bytes.len() {
        ED25519_KEY_BYTES => Ed25519KeyPair::from_seed_unchecked(&bytes),
        64 => Ed25519KeyPair::from_seed_and_public_key(&bytes[..32], &bytes[32..]),
        other => {
            return Err(KeyError::Length {
                prefix: SECRET_KEY_PREFIX,
                bytes: other,
                expected: "an Ed25519 secret key is 32 bytes (its seed) or 64 (seed and public key)",
            })
        }
    };
    // ring refuses a seed only for its length, handled above, and a key pair whose halves do not match.
    pair.map(|pair| Signer::Ed25519(KeyPair(pair))).map_err(|_| KeyError::Mismatch)
}

#[cfg(not(feature = "ed25519"))]
fn ed25519_signer(_encoded: &str) -> Result<Signer, KeyError> {
    Err(KeyError::Ed25519Disabled)
}

fn decode_base64(prefix: &'static str, encoded: &str) -> Result<Vec<u8>, KeyError> {
    let key = BASE64.decode(encoded).map_err(|_| KeyError::Base64 { prefix })?;
    if key.is_empty() {
        return Err(KeyError::Empty { prefix });
    }
    Ok(key)
}

/// Decodes a `whsec_`-prefixed base64 signing secret into its key bytes. The error never contains the secret.
pub(crate) fn decode_secret(secret: &Secret) -> Result<Vec<u8>, KeyError> {
    match secret.expose().strip_prefix(HMAC_PREFIX) {
        Some(encoded) => decode_base64(HMAC_PREFIX, encoded),
        None => Err(KeyError::Prefix { expected: "\"whsec_\"" }),
    }
}

/// What is signed: `{id}.{timestamp}.{body}`.
fn signed_content(id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    content
}

/// The `v1` entry of the `webhook-signature` header for a message.
pub(crate) fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail; fall back to an empty signature rather than panic.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else { return String::new() };
    mac.update(&signed_content(id, timestamp, body));
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// Checks a `webhook-signature` header (space-separated `v1,<sig>` and `v1a,<sig>` entries) as a receiver would:
/// true when one entry of the key's version is a valid signature of `"{id}.{timestamp}.{body}"`.
///
/// `key` is a `&Secret` (a `whsec_` secret checks `v1` entries; a `whsk_` secret key checks `v1a` entries) or a
/// `&PublicKey` (`whpk_`, checks `v1a` entries; feature `ed25519`). A key that does not decode verifies nothing.
/// Check the timestamp against your own clock too (the specification suggests a tolerance of minutes), so that a
/// recorded request cannot be replayed later.
///
/// ```
/// use crm_webhooks::Secret;
/// use crm_webhooks::signature::{verify_signature, PublicKey};
/// let body = br#"{"test": 2432232314}"#;
/// let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
/// let header = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= \
///     v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==";
/// assert!(verify_signature(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, header));
/// # #[cfg(feature = "ed25519")] {
/// let public = PublicKey::parse("whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=").unwrap();
/// assert!(verify_signature(&public, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, header));
/// assert!(!verify_signature(&public, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body, header));
/// # }
/// assert!(!verify_signature(&secret, "msg_1", 1614265330, b"{}", "v1,bm9wZQ=="));
/// ```
pub fn verify_signature<'k>(
    key: impl Into<VerifyKey<'k>>,
    id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
) -> bool {
    let content = signed_content(id, timestamp, body);
    let entries = |version: &'static str| {
        header.split(' ').filter_map(move |entry| entry.strip_prefix(version)).filter_map(|sig| BASE64.decode(sig).ok())
    };
    match key.into() {
        VerifyKey::Secret(secret) => match signer(secret) {
            Ok(Signer::Hmac(key)) => {
                let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else { return false };
                mac.update(&content);
                entries("v1,").any(|sig| mac.clone().verify_slice(&sig).is_ok())
            }
            #[cfg(feature = "ed25519")]
            Ok(Signer::Ed25519(pair)) => entries("v1a,").any(|sig| pair.public_key().verifies(&content, &sig)),
            Err(_) => false,
        },
        #[cfg(feature = "ed25519")]
        VerifyKey::Public(public) => entries("v1a,").any(|sig| public.verifies(&content, &sig)),
    }
}

#[cfg(test)]
mod tests;
