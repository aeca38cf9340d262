//! The caller's identity as the gRPC services receive it: signed by the gateway, so a service can
//! trust that a call came through Banyan and is made for the user it names.
//!
//! Every call carries three metadata entries beside the request id ([`REQUEST_ID_HEADER`]):
//!
//! - [`USER_ID_METADATA`] (`x-banyan-user-id`): the user id, in decimal;
//! - [`EXPIRES_METADATA`] (`x-banyan-identity-expires`): when the signature stops being valid,
//!   in Unix seconds;
//! - [`SIGNATURE_METADATA`] (`x-banyan-identity-signature`): `v1=` and the lowercase hex of
//!   HMAC-SHA256, keyed with the shared secret, over the text
//!   `banyan-identity-v1\n{user id}\n{expires}\n{request id}` (an empty request id when there is
//!   none). A header value holds no line break, so the four fields cannot be confused.
//!
//! [`ServiceIdentityKeys`] holds one or more secrets: the first signs, every one verifies, so a
//! secret is rotated without a flag day (services first accept `[new, old]`, then the gateway
//! signs with `new`, then `old` is dropped). Verification compares in constant time
//! ([`hmac::Mac::verify_slice`]). The gateway signs with it and the devstack's services verify with
//! the same code.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{KeyInit, Mac};
use sha2::Digest;
use tonic::metadata::{MetadataMap, MetadataValue};

use crate::identity::{REQUEST_ID_HEADER, USER_ID_METADATA};

/// Metadata key of the signature's expiry, in Unix seconds.
pub const EXPIRES_METADATA: &str = "x-banyan-identity-expires";
/// Metadata key of the signature, `v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_METADATA: &str = "x-banyan-identity-signature";
/// The shortest secret accepted, in bytes: HMAC-SHA256's own output size, so a secret is no
/// easier to guess than the MAC it keys.
pub const MIN_SECRET_BYTES: usize = 32;
/// How long a signature stays valid by default: long enough for clock skew between the gateway
/// and a service and for a call's own deadline, short enough that a captured identity is soon
/// useless.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

const SIGNATURE_PREFIX: &str = "v1=";
const DOMAIN: &str = "banyan-identity-v1";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Why a secret list is unusable, or a call's identity is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceIdentityError {
    /// No secret was given.
    #[error("at least one secret is needed")]
    NoSecret,
    /// A secret is shorter than [`MIN_SECRET_BYTES`].
    #[error("secret {index} is {length} bytes; at least {MIN_SECRET_BYTES} are needed")]
    SecretTooShort {
        /// Its position in the list, from 0.
        index: usize,
        /// Its length in bytes.
        length: usize,
    },
    /// A metadata entry is missing or not text.
    #[error("missing {0} metadata")]
    Missing(&'static str),
    /// A metadata entry does not parse.
    #[error("malformed {0} metadata")]
    Malformed(&'static str),
    /// The signature matches none of the secrets.
    #[error("the identity signature is not valid")]
    BadSignature,
    /// The signature's expiry has passed.
    #[error("the identity signature has expired")]
    Expired,
}

/// What the gateway vouches for on one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityClaims {
    /// The caller's user id.
    pub user_id: u64,
    /// Unix seconds after which the signature is no longer accepted.
    pub expires_at: u64,
    /// The request id, empty when the call has none.
    pub request_id: String,
}

impl IdentityClaims {
    /// The exact bytes the MAC covers.
    fn signing_input(&self) -> String {
        format!("{DOMAIN}\n{}\n{}\n{}", self.user_id, self.expires_at, self.request_id)
    }
}

/// The shared secrets: the first signs, all verify. Cheap to clone; never printed.
#[derive(Clone)]
pub struct ServiceIdentityKeys {
    secrets: Arc<[Vec<u8>]>,
    ttl: Duration,
}

impl std::fmt::Debug for ServiceIdentityKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceIdentityKeys")
            .field("secrets", &format_args!("<{} redacted>", self.secrets.len()))
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl ServiceIdentityKeys {
    /// Keys from `secrets` (the first signs), each at least [`MIN_SECRET_BYTES`] long, used as
    /// their UTF-8 bytes; signatures valid for [`DEFAULT_TTL`].
    pub fn new<S: AsRef<str>>(secrets: &[S]) -> Result<Self, ServiceIdentityError> {
        if secrets.is_empty() {
            return Err(ServiceIdentityError::NoSecret);
        }
        for (index, secret) in secrets.iter().enumerate() {
            let length = secret.as_ref().len();
            if length < MIN_SECRET_BYTES {
                return Err(ServiceIdentityError::SecretTooShort { index, length });
            }
        }
        Ok(Self {
            secrets: secrets.iter().map(|s| s.as_ref().as_bytes().to_vec()).collect(),
            ttl: DEFAULT_TTL,
        })
    }

    /// The same keys, with signatures valid for `ttl`.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// A new random secret: 32 bytes from the operating system's generator, as 64 hex
    /// characters (what `banyan dev` and the test kit hand to both sides).
    pub fn generate_secret() -> String {
        let mut bytes = [0u8; 32];
        // The OS generator failing leaves a process that cannot do TLS either; fall back to
        // something unique rather than stop a dev stack. Production secrets come from config.
        if getrandom::fill(&mut bytes).is_err() {
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
            let fallback = sha2::Sha256::digest(format!("{nanos}:{}", std::process::id()));
            bytes.copy_from_slice(&fallback);
        }
        hex::encode(bytes)
    }

    /// The signature of `claims` with the signing (first) secret: `v1=<hex>`.
    pub fn sign(&self, claims: &IdentityClaims) -> String {
        let secret = self.secrets.first().map(Vec::as_slice).unwrap_or_default();
        format!("{SIGNATURE_PREFIX}{}", hex::encode(mac(secret, claims).finalize().into_bytes()))
    }

    /// Whether `signature` is a `v1=` signature of `claims` by any of the secrets (constant-time
    /// comparison per secret), and the claims have not expired at `now` (Unix seconds).
    pub fn verify(
        &self,
        claims: &IdentityClaims,
        signature: &str,
        now: u64,
    ) -> Result<(), ServiceIdentityError> {
        let bytes = signature
            .strip_prefix(SIGNATURE_PREFIX)
            .and_then(|hex_text| hex::decode(hex_text).ok())
            .ok_or(ServiceIdentityError::Malformed(SIGNATURE_METADATA))?;
        let matches = self.secrets.iter().any(|secret| mac(secret, claims).verify_slice(&bytes).is_ok());
        if !matches {
            return Err(ServiceIdentityError::BadSignature);
        }
        if claims.expires_at < now {
            return Err(ServiceIdentityError::Expired);
        }
        Ok(())
    }

    /// Puts the signed identity of `user_id` (and the request id, when there is one) on a call's
    /// metadata, expiring [`ttl`](Self::with_ttl) from now. Replaces whatever those keys held.
    pub fn sign_metadata(&self, metadata: &mut MetadataMap, user_id: u64, request_id: Option<&str>) {
        // A request id that cannot be metadata is neither sent nor signed.
        let request_id = request_id.and_then(|id| id.parse::<MetadataValue<_>>().ok().map(|v| (id, v)));
        let claims = IdentityClaims {
            user_id,
            expires_at: unix_now().saturating_add(self.ttl.as_secs()),
            request_id: request_id.as_ref().map(|(id, _)| (*id).to_owned()).unwrap_or_default(),
        };
        metadata.insert(USER_ID_METADATA, MetadataValue::from(user_id));
        metadata.insert(EXPIRES_METADATA, MetadataValue::from(claims.expires_at));
        match request_id {
            Some((_, value)) => {
                metadata.insert(REQUEST_ID_HEADER, value);
            }
            None => {
                metadata.remove(REQUEST_ID_HEADER);
            }
        }
        // Hex and `v1=` are always valid metadata.
        if let Ok(signature) = self.sign(&claims).parse() {
            metadata.insert(SIGNATURE_METADATA, signature);
        }
    }

    /// The claims a call's metadata carries, once its signature is checked against every secret
    /// and its expiry against the clock.
    pub fn verify_metadata(&self, metadata: &MetadataMap) -> Result<IdentityClaims, ServiceIdentityError> {
        let text = |key: &'static str| -> Result<&str, ServiceIdentityError> {
            metadata.get(key).and_then(|v| v.to_str().ok()).ok_or(ServiceIdentityError::Missing(key))
        };
        let number = |key: &'static str| -> Result<u64, ServiceIdentityError> {
            text(key)?.parse().map_err(|_| ServiceIdentityError::Malformed(key))
        };
        let signature = text(SIGNATURE_METADATA)?;
        let claims = IdentityClaims {
            user_id: number(USER_ID_METADATA)?,
            expires_at: number(EXPIRES_METADATA)?,
            request_id: metadata
                .get(REQUEST_ID_HEADER)
                .map(|v| v.to_str().map_err(|_| ServiceIdentityError::Malformed(REQUEST_ID_HEADER)))
                .transpose()?
                .unwrap_or_default()
                .to_owned(),
        };
        self.verify(&claims, signature, unix_now())?;
        Ok(claims)
    }
}

fn mac(secret: &[u8], claims: &IdentityClaims) -> HmacSha256 {
    // HMAC takes a key of any length (longer ones are hashed), so this never fails; the
    // fallback keeps a panic out of the request path all the same.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| <HmacSha256 as KeyInit>::new(&Default::default()));
    mac.update(claims.signing_input().as_bytes());
    mac
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const OTHER: &str = "fedcba9876543210fedcba9876543210";

    /// RFC 4231, test case 2: HMAC-SHA256 with key "Jefe" — the primitive this module keys, checked
    /// against the RFC's published value.
    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(b"Jefe").expect("any key length");
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    /// The signature of a hand-built token, computed outside this code:
    /// `printf 'banyan-identity-v1\n7\n1700000000\nreq-1' | openssl dgst -sha256 -hmac 0123456789abcdef0123456789abcdef`
    #[test]
    fn signature_of_a_hand_built_token() {
        let keys = ServiceIdentityKeys::new(&[SECRET]).expect("a long secret");
        let claims = IdentityClaims { user_id: 7, expires_at: 1_700_000_000, request_id: "req-1".to_owned() };
        let independent = "v1=18f16d94b59961aa34eb9813972a64dfb8058e1916246193045666f8e3de978f";
        assert_eq!(keys.sign(&claims), independent);
        assert_eq!(keys.verify(&claims, independent, 1_699_999_999), Ok(()));
    }

    #[test]
    fn refusals() {
        let keys = ServiceIdentityKeys::new(&[SECRET]).expect("a long secret");
        let claims = IdentityClaims { user_id: 7, expires_at: 100, request_id: String::new() };
        let signature = keys.sign(&claims);
        assert_eq!(keys.verify(&claims, &signature, 100), Ok(()), "valid up to and including its expiry");
        assert_eq!(keys.verify(&claims, &signature, 101), Err(ServiceIdentityError::Expired));
        let other_user = IdentityClaims { user_id: 8, ..claims.clone() };
        assert_eq!(keys.verify(&other_user, &signature, 0), Err(ServiceIdentityError::BadSignature));
        let later = IdentityClaims { expires_at: 10_000, ..claims.clone() };
        assert_eq!(keys.verify(&later, &signature, 0), Err(ServiceIdentityError::BadSignature));
        let unknown = ServiceIdentityKeys::new(&[OTHER]).expect("a long secret");
        assert_eq!(unknown.verify(&claims, &signature, 0), Err(ServiceIdentityError::BadSignature));
        assert_eq!(
            keys.verify(&claims, signature.trim_start_matches("v1="), 0),
            Err(ServiceIdentityError::Malformed(SIGNATURE_METADATA))
        );
    }

    #[test]
    fn rotation_first_signs_all_verify() {
        let old = ServiceIdentityKeys::new(&[OTHER]).expect("valid");
        let new = ServiceIdentityKeys::new(&[SECRET]).expect("valid");
        let rotating = ServiceIdentityKeys::new(&[SECRET, OTHER]).expect("valid");
        let claims = IdentityClaims { user_id: 1, expires_at: 50, request_id: "r".to_owned() };
        assert_eq!(rotating.verify(&claims, &old.sign(&claims), 0), Ok(()));
        assert_eq!(rotating.verify(&claims, &new.sign(&claims), 0), Ok(()));
        assert_eq!(rotating.sign(&claims), new.sign(&claims), "the first secret signs");
        assert_eq!(old.verify(&claims, &rotating.sign(&claims), 0), Err(ServiceIdentityError::BadSignature));
    }

    #[test]
    fn secrets_are_validated_and_never_printed() {
        assert_eq!(ServiceIdentityKeys::new::<&str>(&[]).err(), Some(ServiceIdentityError::NoSecret));
        assert_eq!(
            ServiceIdentityKeys::new(&[SECRET, "short"]).err(),
            Some(ServiceIdentityError::SecretTooShort { index: 1, length: 5 })
        );
        let keys = ServiceIdentityKeys::new(&[SECRET]).expect("valid");
        assert!(!format!("{keys:?}").contains(SECRET));
        let generated = ServiceIdentityKeys::generate_secret();
        assert_eq!(generated.len(), 64);
        assert_ne!(generated, ServiceIdentityKeys::generate_secret());
    }

    #[test]
    fn metadata_round_trip() {
        let keys = ServiceIdentityKeys::new(&[SECRET]).expect("valid");
        let mut metadata = MetadataMap::new();
        metadata.insert(USER_ID_METADATA, MetadataValue::from(99u64));
        keys.sign_metadata(&mut metadata, 7, Some("req-9"));
        let claims = keys.verify_metadata(&metadata).expect("verifies");
        assert_eq!((claims.user_id, claims.request_id.as_str()), (7, "req-9"));
        assert!(claims.expires_at >= unix_now() + DEFAULT_TTL.as_secs() - 1);
        metadata.insert(USER_ID_METADATA, MetadataValue::from(8u64));
        assert_eq!(keys.verify_metadata(&metadata), Err(ServiceIdentityError::BadSignature));
        metadata.remove(SIGNATURE_METADATA);
        assert_eq!(keys.verify_metadata(&metadata), Err(ServiceIdentityError::Missing(SIGNATURE_METADATA)));
    }
}
