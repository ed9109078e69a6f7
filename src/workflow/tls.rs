//! An action's `"tls"` setting: extra trusted root certificates for receivers behind a private CA, and a client
//! certificate for mutual TLS; each given as PEM text or as a file path, read and checked when the action is
//! validated.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::{self, PemObject as _, SectionKind};
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::error::{Location, ValidationError};
use crate::limits::{MAX_TLS_CA_CERTIFICATES, MAX_TLS_PEM_BYTES};
use crate::secret::Secret;
use crate::shown::shown;

/// A certificate (or a bundle of them) as configured: PEM text (JSON: a string `"-----BEGIN CERTIFICATE-----..."`)
/// or the path of a PEM file (JSON: `{"path": "/etc/crm/ca.pem"}`). A path is kept as a path (the action is
/// written back with it, not with the file's content); the file is read when the action is validated, from the
/// process's working directory when it is relative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemSource {
    /// PEM text.
    Pem(String),
    /// The path of a PEM file.
    Path(PathBuf),
}

/// A private key as configured: PEM text, held as a [`Secret`] (JSON: a string), or the path of a PEM file (JSON:
/// `{"path": "..."}`), kept as a path. PKCS #8 (`PRIVATE KEY`), PKCS #1 (`RSA PRIVATE KEY`) and SEC 1
/// (`EC PRIVATE KEY`) keys, unencrypted. Like every [`Secret`], key text given inline is written back when the
/// action is serialized (configuration must round-trip through the host's database); give a path to keep the key
/// out of the stored configuration.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// PEM text.
    Pem(Secret),
    /// The path of a PEM file.
    Path(PathBuf),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Pem(secret) => f.debug_tuple("Pem").field(secret).finish(),
            KeySource::Path(path) => f.debug_tuple("Path").field(path).finish(),
        }
    }
}

/// The client certificate of mutual TLS (`"tls": {"client_certificate": {"certificate": ..., "key": ...}}`): the
/// certificate (its chain may follow it, leaf first) and its private key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertificate {
    /// The certificate, then any intermediate certificates.
    pub certificate: PemSource,
    /// Its private key.
    pub key: KeySource,
}

/// The serde form of an action's `"tls"`, before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) ca_certificates: Vec<PemSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) client_certificate: Option<ClientCertificate>,
}

/// An action's TLS setting, validated and read: the configured sources and the PEM text found in them.
///
/// The HTTP client trusts the [`ca_certificates`](Self::ca_certificates) beside its own roots for this action's
/// requests, and presents the [`client_certificate`](Self::client_certificate) when the receiver asks for one.
/// Files are read once, when the action is validated: a certificate renewed on disk is used once the workflows
/// are loaded again. Its `Debug` shows the sources (a path, or the size of a PEM text), never a key.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsSettings {
    raw: RawTls,
    ca_pem: Vec<String>,
    client_pem: Option<(String, Secret)>,
    fingerprint: [u8; 32],
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Shown<'a>(&'a PemSource);
        impl fmt::Debug for Shown<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.0 {
                    PemSource::Pem(text) => write!(f, "Pem({} bytes)", text.len()),
                    PemSource::Path(path) => f.debug_tuple("Path").field(path).finish(),
                }
            }
        }
        let cas: Vec<Shown<'_>> = self.raw.ca_certificates.iter().map(Shown).collect();
        let client = self.raw.client_certificate.as_ref().map(|c| (Shown(&c.certificate), &c.key));
        f.debug_struct("TlsSettings").field("ca_certificates", &cas).field("client_certificate", &client).finish()
    }
}

impl TlsSettings {
    /// The extra trusted root certificates, as configured.
    pub fn ca_certificates(&self) -> &[PemSource] {
        &self.raw.ca_certificates
    }
    /// The client certificate and key, as configured.
    pub fn client_certificate(&self) -> Option<&ClientCertificate> {
        self.raw.client_certificate.as_ref()
    }
    /// The PEM text of each extra root (an entry may hold several certificates), in the configured order.
    pub fn ca_certificates_pem(&self) -> &[String] {
        &self.ca_pem
    }
    /// The PEM text of the client certificate and its chain, and of its key.
    pub fn client_identity_pem(&self) -> Option<(&str, &Secret)> {
        self.client_pem.as_ref().map(|(certificate, key)| (certificate.as_str(), key))
    }
    /// A SHA-256 of every PEM text read (roots, certificate, key): equal settings have equal fingerprints, so an
    /// HTTP client can keep one configured connection pool per fingerprint.
    pub fn fingerprint(&self) -> &[u8; 32] {
        &self.fingerprint
    }
    pub(crate) fn raw(&self) -> &RawTls {
        &self.raw
    }
}

/// Reads and checks an action's `"tls"`, adding a problem for everything wrong (never a key or a file's content).
pub(crate) fn check_tls(raw: &RawTls, at: &Location, errors: &mut Vec<ValidationError>) -> Option<TlsSettings> {
    let before = errors.len();
    if raw.ca_certificates.len() > MAX_TLS_CA_CERTIFICATES {
        errors.push(ValidationError::TooManyCaCertificates { at: at.clone(), count: raw.ca_certificates.len() });
        return None;
    }
    let mut ca_pem = Vec::with_capacity(raw.ca_certificates.len());
    for (index, source) in raw.ca_certificates.iter().enumerate() {
        let field = format!("tls.ca_certificates[{index}]");
        if let Some(text) = read_certificates(source, &field, at, errors) {
            ca_pem.push(text);
        }
    }
    let mut client_pem = None;
    if let Some(client) = &raw.client_certificate {
        let field = "tls.client_certificate.certificate";
        let certificate = read_certificates(&client.certificate, field, at, errors);
        let key = read_key(&client.key, at, errors);
        if let (Some(certificate), Some(key)) = (certificate, key) {
            if let Err(reason) = deep::check_identity(&certificate, &key) {
                errors.push(ValidationError::InvalidTlsKey { at: at.clone(), reason });
            }
            client_pem = Some((certificate, key));
        }
    }
    if errors.len() > before {
        return None;
    }
    let mut hash = Sha256::new();
    let client = client_pem.iter().flat_map(|(certificate, key)| [certificate.as_str(), key.expose()]);
    for (tag, text) in ca_pem.iter().map(|t| (b'c', t.as_str())).chain(client.map(|t| (b'i', t))) {
        hash.update([tag]);
        hash.update((text.len() as u64).to_be_bytes());
        hash.update(text.as_bytes());
    }
    Some(TlsSettings { raw: raw.clone(), ca_pem, client_pem, fingerprint: hash.finalize().into() })
}

/// The PEM text of a certificate entry, checked: it holds one or more certificates and nothing else.
fn read_certificates(
    source: &PemSource,
    field: &str,
    at: &Location,
    errors: &mut Vec<ValidationError>,
) -> Option<String> {
    let text = match source {
        PemSource::Pem(text) => text.clone(),
        PemSource::Path(path) => read_file(path, field, at, errors)?,
    };
    let invalid =
        |reason: String| ValidationError::InvalidTlsCertificate { at: at.clone(), field: field.to_owned(), reason };
    let mut count = 0;
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(text.as_bytes()) {
        match section {
            Ok((SectionKind::Certificate, der)) => {
                if let Err(reason) = deep::check_certificate(der) {
                    errors.push(invalid(reason));
                    return None;
                }
                count += 1;
            }
            Ok((kind, _)) => {
                errors.push(invalid(format!("it holds a {} block, where only CERTIFICATE blocks belong", label(kind))));
                return None;
            }
            Err(error) => {
                errors.push(invalid(pem_problem(&error)));
                return None;
            }
        }
    }
    if count == 0 {
        errors.push(invalid("it holds no \"-----BEGIN CERTIFICATE-----\" block".to_owned()));
        return None;
    }
    Some(text)
}

/// The PEM text of the client key, checked: exactly one unencrypted private key of a known form.
fn read_key(source: &KeySource, at: &Location, errors: &mut Vec<ValidationError>) -> Option<Secret> {
    let text = match source {
        KeySource::Pem(secret) => secret.clone(),
        KeySource::Path(path) => Secret::new(read_file(path, "tls.client_certificate.key", at, errors)?),
    };
    let invalid = |reason: &str| ValidationError::InvalidTlsKey { at: at.clone(), reason: reason.to_owned() };
    let mut keys = 0;
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(text.expose().as_bytes()) {
        match section {
            Ok((SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey, _)) => keys += 1,
            Ok(_) => {}
            // pem's messages can quote the text; a key's is never shown.
            Err(_) => {
                errors.push(invalid("it is not valid PEM (a block is cut short or its base64 does not decode)"));
                return None;
            }
        }
    }
    match keys {
        1 => Some(text),
        0 => {
            errors.push(invalid(
                "it holds no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block (an encrypted key must be \
                 decrypted first)",
            ));
            None
        }
        _ => {
            errors.push(invalid("it holds more than one private key; keep the certificate's own"));
            None
        }
    }
}

/// A PEM file's text, at most [`MAX_TLS_PEM_BYTES`]; a problem names the path and why, never the content.
fn read_file(path: &Path, field: &str, at: &Location, errors: &mut Vec<ValidationError>) -> Option<String> {
    let unreadable = |reason: String| ValidationError::TlsFileUnreadable {
        at: at.clone(),
        field: field.to_owned(),
        path: shown(&path.display().to_string()),
        reason,
    };
    let mut bytes = Vec::new();
    let read =
        std::fs::File::open(path).and_then(|file| file.take(MAX_TLS_PEM_BYTES as u64 + 1).read_to_end(&mut bytes));
    if let Err(error) = read {
        errors.push(unreadable(error.to_string()));
        return None;
    }
    if bytes.len() > MAX_TLS_PEM_BYTES {
        errors.push(unreadable(format!("it is longer than {MAX_TLS_PEM_BYTES} bytes, too long for a PEM file")));
        return None;
    }
    match String::from_utf8(bytes) {
        Ok(text) => Some(text),
        Err(_) => {
            errors.push(unreadable("it is not PEM text (a DER file must be converted to PEM first)".to_owned()));
            None
        }
    }
}

fn pem_problem(error: &pem::Error) -> String {
    match error {
        pem::Error::MissingSectionEnd { .. } => "a block has no \"-----END ...-----\" line".to_owned(),
        pem::Error::IllegalSectionStart { .. } => "a \"-----BEGIN\" line is malformed".to_owned(),
        pem::Error::Base64Decode(_) => "a block's base64 does not decode".to_owned(),
        _ => "it is not valid PEM".to_owned(),
    }
}

fn label(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Certificate => "CERTIFICATE",
        SectionKind::PublicKey => "PUBLIC KEY",
        SectionKind::RsaPrivateKey => "RSA PRIVATE KEY",
        SectionKind::PrivateKey => "PRIVATE KEY",
        SectionKind::EcPrivateKey => "EC PRIVATE KEY",
        SectionKind::Crl => "X509 CRL",
        SectionKind::Csr => "CERTIFICATE REQUEST",
        _ => "non-certificate",
    }
}

/// The checks that need an X.509 parser and a crypto provider: rustls (with *ring*), built with the feature
/// `reqwest`, the one client that uses the setting. Without it only the PEM structure is checked.
#[cfg(feature = "reqwest")]
mod deep {
    use std::sync::Arc;

    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    use crate::secret::Secret;

    /// The DER of a certificate parses as X.509 (as a trust anchor: what the client will load it as).
    pub(super) fn check_certificate(der: Vec<u8>) -> Result<(), String> {
        let mut store = rustls::RootCertStore::empty();
        store.add(CertificateDer::from(der)).map_err(|e| format!("it is not a valid X.509 certificate ({e})"))
    }

    /// The key is of a type the provider can sign with, and belongs to the certificate.
    pub(super) fn check_identity(certificate: &str, key: &Secret) -> Result<(), String> {
        let chain = CertificateDer::pem_slice_iter(certificate.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| "the certificate is not valid PEM".to_owned())?;
        let key = PrivateKeyDer::from_pem_slice(key.expose().as_bytes())
            .map_err(|_| "it is not a valid PEM private key".to_owned())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let signing = provider
            .key_provider
            .load_private_key(key)
            .map_err(|_| "its type is not supported (RSA, ECDSA P-256/P-384 or Ed25519 keys are)".to_owned())?;
        match rustls::sign::CertifiedKey::new(chain, signing).keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                Err("it does not belong to tls.client_certificate.certificate (their public keys differ)".to_owned())
            }
            Err(e) => Err(format!("it cannot be used with tls.client_certificate.certificate ({e})")),
        }
    }
}

#[cfg(not(feature = "reqwest"))]
mod deep {
    use crate::secret::Secret;

    pub(super) fn check_certificate(_der: Vec<u8>) -> Result<(), String> {
        Ok(())
    }

    pub(super) fn check_identity(_certificate: &str, _key: &Secret) -> Result<(), String> {
        Ok(())
    }
}

/// A PEM source's JSON: a string (`Ok`), or `{"path": "..."}` (`Err`).
fn serialize_source<S: Serializer>(source: Result<&str, &Path>, serializer: S) -> Result<S::Ok, S::Error> {
    match source {
        Ok(text) => serializer.serialize_str(text),
        Err(path) => {
            let mut map = serializer.serialize_map(Some(1))?;
            map.serialize_entry("path", path)?;
            map.end()
        }
    }
}

/// Reads a string (the PEM text) or `{"path": "..."}`, as `Ok(text)` or `Err(path)`.
fn deserialize_source<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Result<String, PathBuf>, D::Error> {
    struct SourceVisitor;
    impl<'de> Visitor<'de> for SourceVisitor {
        type Value = Result<String, PathBuf>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("PEM text (\"-----BEGIN ...\") or {\"path\": \"file.pem\"}")
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            Ok(Ok(text.to_owned()))
        }
        fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
            Ok(Ok(text))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut path = None;
            while let Some(key) = map.next_key::<String>()? {
                match key.as_str() {
                    "path" if path.is_none() => path = Some(map.next_value::<PathBuf>()?),
                    "path" => return Err(de::Error::duplicate_field("path")),
                    other => return Err(de::Error::unknown_field(other, &["path"])),
                }
            }
            path.map(Err).ok_or_else(|| de::Error::missing_field("path"))
        }
    }
    deserializer.deserialize_any(SourceVisitor)
}

impl Serialize for PemSource {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            PemSource::Pem(text) => serialize_source(Ok(text), serializer),
            PemSource::Path(path) => serialize_source(Err(path), serializer),
        }
    }
}

impl<'de> Deserialize<'de> for PemSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(deserialize_source(deserializer)?.map_or_else(PemSource::Path, PemSource::Pem))
    }
}

impl Serialize for KeySource {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            KeySource::Pem(secret) => serialize_source(Ok(secret.expose()), serializer),
            KeySource::Path(path) => serialize_source(Err(path), serializer),
        }
    }
}

impl<'de> Deserialize<'de> for KeySource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(deserialize_source(deserializer)?.map_or_else(KeySource::Path, |text| KeySource::Pem(Secret::new(text))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ValidationError as E;
    use crate::WebhookAction;

    /// A CA (its PEM and issuer) and a leaf it signs (certificate and key PEM).
    fn ca() -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), rcgen::Issuer::new(params, key))
    }

    fn leaf(issuer: &rcgen::Issuer<'_, rcgen::KeyPair>) -> (String, String) {
        let params = rcgen::CertificateParams::new(vec!["crm.example".to_owned()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        (params.signed_by(&key, issuer).unwrap().pem(), key.serialize_pem())
    }

    fn action(tls: serde_json::Value) -> Result<WebhookAction, serde_json::Error> {
        serde_json::from_value(serde_json::json!({
            "title": "Hook", "url": "https://onprem.example/hook", "content_type": "JSON", "tls": tls
        }))
    }

    fn problems(tls: serde_json::Value) -> Vec<E> {
        let raw: super::super::action::RawAction = serde_json::from_value(serde_json::json!({
            "title": "Hook", "url": "https://onprem.example/hook", "content_type": "JSON", "tls": tls
        }))
        .unwrap();
        WebhookAction::from_raw(raw, &Location::workflow("w")).unwrap_err()
    }

    #[test]
    fn inline_and_file_sources_load_and_a_key_path_stays_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, issuer) = ca();
        let (cert, key) = leaf(&issuer);
        let key_path = dir.path().join("client.key");
        std::fs::write(&key_path, &key).unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, &ca_pem).unwrap();
        let json = serde_json::json!({
            "ca_certificates": [ca_pem, {"path": ca_path}],
            "client_certificate": {"certificate": cert, "key": {"path": key_path}}
        });
        let action = action(json.clone()).unwrap();
        let tls = action.tls().unwrap();
        assert_eq!(tls.ca_certificates_pem(), [ca_pem.clone(), ca_pem.clone()]);
        let (shown_cert, shown_key) = tls.client_identity_pem().unwrap();
        assert_eq!((shown_cert, shown_key.expose()), (cert.as_str(), key.as_str()));

        let written = serde_json::to_value(&action).unwrap();
        assert_eq!(written["tls"], json, "the form round-trips, the key as its path");
        assert!(!written.to_string().contains("PRIVATE KEY"), "{written}");
        let debug = format!("{action:?}");
        assert!(!debug.contains("PRIVATE KEY") && debug.contains("client.key"), "{debug}");
        let again: WebhookAction = serde_json::from_value(written).unwrap();
        assert_eq!(again, action);
        assert_eq!(again.tls().unwrap().fingerprint(), tls.fingerprint());

        // An inline key is a Secret: written back (configuration round-trips), never in Debug.
        let inline = action_with_inline_key(&cert, &key);
        assert!(!format!("{inline:?}").contains("PRIVATE KEY"));
        assert_ne!(inline.tls().unwrap().fingerprint(), &[0; 32]);
    }

    fn action_with_inline_key(cert: &str, key: &str) -> WebhookAction {
        WebhookAction::builder("Hook", "https://onprem.example/hook", crate::payload::ContentType::Json)
            .tls_client_certificate(PemSource::Pem(cert.to_owned()), KeySource::Pem(Secret::new(key)))
            .build()
            .unwrap()
    }

    #[test]
    fn an_unreadable_path_names_the_action_and_the_path() {
        let found = problems(serde_json::json!({"ca_certificates": [{"path": "/nonexistent/ca.pem"}]}));
        let [E::TlsFileUnreadable { at, field, path, .. }] = found.as_slice() else { panic!("{found:?}") };
        assert_eq!(
            (at.action.as_deref(), field.as_str(), path.as_str()),
            (Some("Hook"), "tls.ca_certificates[0]", "/nonexistent/ca.pem")
        );
        let text = found[0].to_string();
        assert!(
            text.starts_with(
                "workflow \"w\", action \"Hook\": tls.ca_certificates[0] names the file \"/nonexistent/ca.pem\""
            ),
            "{text}"
        );
    }

    #[test]
    fn what_is_not_a_certificate_or_a_key_is_refused_without_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "TOP-SECRET-CONTENT").unwrap();
        let (ca_pem, issuer) = ca();
        let (cert, key) = leaf(&issuer);
        let cases = [
            (
                serde_json::json!({"ca_certificates": [{"path": junk}]}),
                "holds no \"-----BEGIN CERTIFICATE-----\" block",
            ),
            (serde_json::json!({"ca_certificates": [key.clone()]}), "holds a PRIVATE KEY block"),
            (serde_json::json!({"ca_certificates": ["-----BEGIN CERTIFICATE-----\nAAAA\n"]}), "has no \"-----END"),
            (
                serde_json::json!({"client_certificate": {"certificate": cert.clone(), "key": cert.clone()}}),
                "holds no PRIVATE KEY",
            ),
            (
                serde_json::json!({"client_certificate": {"certificate": cert.clone(), "key": format!("{key}{key}")}}),
                "more than one private key",
            ),
        ];
        for (tls, expected) in cases {
            let text = crate::error::join(&problems(tls));
            assert!(text.contains(expected), "{text}");
            assert!(!text.contains("TOP-SECRET") && !text.contains("PRIVATE KEY-----"), "{text}");
        }
        let _ = ca_pem;
    }

    #[cfg(feature = "reqwest")]
    #[test]
    fn deep_checks_parse_the_certificate_and_match_the_key() {
        let (_, issuer) = ca();
        let (cert, _) = leaf(&issuer);
        let (_, other_key) = leaf(&issuer);
        let found = problems(serde_json::json!({"client_certificate": {"certificate": cert, "key": other_key}}));
        assert!(
            matches!(&found[..], [E::InvalidTlsKey { reason, .. }] if reason.contains("does not belong")),
            "{found:?}"
        );
        // Valid PEM around bytes that are no X.509 certificate.
        let not_x509 = "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n";
        let found = problems(serde_json::json!({"ca_certificates": [not_x509]}));
        assert!(crate::error::join(&found).contains("is not a valid X.509 certificate"), "{found:?}");
    }

    #[test]
    fn the_json_form_is_strict() {
        for (tls, expected) in [
            (serde_json::json!({"ca": []}), "unknown field `ca`"),
            (serde_json::json!({"ca_certificates": [{"file": "x"}]}), "unknown field `file`"),
            (serde_json::json!({"ca_certificates": [42]}), "PEM text"),
        ] {
            let error = action(tls).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }
}
