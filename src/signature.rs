//! Standard Webhooks signatures. STUB.

use crate::secret::Secret;

pub(crate) fn decode_secret(secret: &Secret) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    let Some(encoded) = secret.expose().strip_prefix("whsec_") else {
        return Err("it must start with \"whsec_\" followed by base64".to_owned());
    };
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| "the part after \"whsec_\" is not valid base64".to_owned())?;
    if key.is_empty() {
        return Err("the key is empty".to_owned());
    }
    Ok(key)
}
