//! Access tokens (asymmetrically signed JWTs) and refresh tokens (random, stored as hashes).
//!
//! Signing and verifying are separate types: a [`TokenSigner`] holds one private key and the
//! refresh-token key (signup, login, refresh); a [`TokenVerifier`] holds public keys only (me,
//! jwks), so a function that only verifies never sees a private key.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{Aal, Assurance, SessionId, UserId};
use crate::error::ApiError;
use crate::issuer::Issuer;

/// Clock skew tolerated on `exp` (RFC 8725 asks for little; 30 s at most).
const LEEWAY_SECONDS: u64 = 30;

/// The shortest refresh-token HMAC key accepted, in bytes.
pub const MIN_REFRESH_TOKEN_KEY_BYTES: usize = 32;

/// JWK members that only a private (or symmetric) key has (RFC 7518 §6.2.2, §6.3.2, §6.4).
const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user's id.
    pub sub: Uuid,
    /// The session's id, so a revoked session's tokens can be refused.
    pub sid: Uuid,
    pub iat: u64,
    pub exp: u64,
    /// The session's assurance level; a token signed before sessions had one is `aal1`.
    #[serde(default)]
    pub aal: Aal,
    /// How the session was proven (RFC 8176: `pwd`, `otp`, `hwk`, `swk`, `user`, ...).
    #[serde(default)]
    pub amr: Vec<String>,
}

/// The signing algorithms on offer. RS256 is the default because API Gateway's built-in JWT
/// authorizer verifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgorithm {
    Rs256,
    Es256,
    EdDsa,
}

impl SigningAlgorithm {
    /// Parses `RS256`, `ES256` or `EdDSA` (case-insensitive).
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.to_ascii_uppercase().as_str() {
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            "EDDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }

    fn jwt(self) -> Algorithm {
        match self {
            Self::Rs256 => Algorithm::RS256,
            Self::Es256 => Algorithm::ES256,
            Self::EdDsa => Algorithm::EdDSA,
        }
    }

    fn jwk(self) -> KeyAlgorithm {
        match self {
            Self::Rs256 => KeyAlgorithm::RS256,
            Self::Es256 => KeyAlgorithm::ES256,
            Self::EdDsa => KeyAlgorithm::EdDSA,
        }
    }

    /// The algorithm a public JWK is for: its `alg`, or what its key type implies.
    fn of_jwk(jwk: &Jwk) -> Option<Self> {
        match (jwk.common.key_algorithm, &jwk.algorithm) {
            (Some(KeyAlgorithm::RS256), AlgorithmParameters::RSA(_)) => Some(Self::Rs256),
            (Some(KeyAlgorithm::ES256), AlgorithmParameters::EllipticCurve(ec))
                if ec.curve == EllipticCurve::P256 =>
            {
                Some(Self::Es256)
            }
            (Some(KeyAlgorithm::EdDSA), AlgorithmParameters::OctetKeyPair(okp))
                if okp.curve == EllipticCurve::Ed25519 =>
            {
                Some(Self::EdDsa)
            }
            (None, AlgorithmParameters::RSA(_)) => Some(Self::Rs256),
            (None, AlgorithmParameters::EllipticCurve(ec)) if ec.curve == EllipticCurve::P256 => {
                Some(Self::Es256)
            }
            (None, AlgorithmParameters::OctetKeyPair(okp)) if okp.curve == EllipticCurve::Ed25519 => {
                Some(Self::EdDsa)
            }
            _ => None,
        }
    }
}

/// One private signing key: its id, its algorithm, the parsed private half and its public JWK.
///
/// The key is parsed and checked once, when it is loaded: `jsonwebtoken::encode` would parse
/// the DER again on every signature, which for RSA-2048 costs more than the signature itself.
pub struct SigningKey {
    kid: String,
    algorithm: Algorithm,
    pair: KeyPair,
    /// The encoded JWS header (`{"typ":"JWT","alg":...,"kid":...}`), the same for every token.
    header: String,
    /// Kept for [`SigningKey::sign_reparsing`], the per-signature path this one replaced.
    encoding: EncodingKey,
    jwk: Jwk,
}

/// A private key parsed into aws-lc-rs's form, the same parse jsonwebtoken's aws-lc signer
/// makes.
enum KeyPair {
    Rsa(aws_lc_rs::signature::RsaKeyPair),
    Ecdsa(aws_lc_rs::signature::EcdsaKeyPair),
    Ed25519(aws_lc_rs::signature::Ed25519KeyPair),
}

impl KeyPair {
    fn parse(algorithm: SigningAlgorithm, der: &[u8]) -> Result<Self, aws_lc_rs::error::KeyRejected> {
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair,
        };
        Ok(match algorithm {
            SigningAlgorithm::Rs256 => Self::Rsa(RsaKeyPair::from_der(der)?),
            SigningAlgorithm::Es256 => {
                Self::Ecdsa(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)?)
            }
            SigningAlgorithm::EdDsa => Self::Ed25519(Ed25519KeyPair::from_pkcs8(der)?),
        })
    }

    /// The signature of `message`: RSASSA-PKCS1-v1_5 with SHA-256, ECDSA P-256 with SHA-256 in
    /// the fixed-length form JWS uses, or Ed25519.
    fn sign(&self, message: &[u8]) -> anyhow::Result<Vec<u8>> {
        let failed = |_| anyhow::anyhow!("signing failed");
        let rng = aws_lc_rs::rand::SystemRandom::new();
        match self {
            Self::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .map_err(failed)?;
                Ok(signature)
            }
            Self::Ecdsa(pair) => Ok(pair.sign(&rng, message).map_err(failed)?.as_ref().to_vec()),
            Self::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

impl SigningKey {
    /// Loads a PKCS#8 (or, for RSA, PKCS#1) PEM private key.
    pub fn from_pem(kid: &str, algorithm: SigningAlgorithm, pem: &SecretString) -> anyhow::Result<Self> {
        let pem = pem.expose_secret().as_bytes();
        let encoding = match algorithm {
            SigningAlgorithm::Rs256 => EncodingKey::from_rsa_pem(pem),
            SigningAlgorithm::Es256 => EncodingKey::from_ec_pem(pem),
            SigningAlgorithm::EdDsa => EncodingKey::from_ed_pem(pem),
        }
        .with_context(|| format!("the private key {kid} is not a valid {algorithm:?} PEM key"))?;
        let pair = KeyPair::parse(algorithm, encoding.as_bytes())
            .map_err(|rejected| anyhow::anyhow!("the private key {kid} is refused ({rejected})"))?;
        let mut jwk = Jwk::from_encoding_key(&encoding, algorithm.jwt())
            .with_context(|| format!("deriving the public key of {kid}"))?;
        jwk.common.key_id = Some(kid.to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let mut header = Header::new(algorithm.jwt());
        header.kid = Some(kid.to_owned());
        let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).context("encoding the JWS header")?);
        Ok(Self { kid: kid.to_owned(), algorithm: algorithm.jwt(), pair, header, encoding, jwk })
    }

    /// A compact JWS of `claims` under this key, with the key parsed at load time. The bytes are
    /// those `jsonwebtoken::encode` makes with the same header (RS256 and EdDSA signatures are
    /// deterministic; ES256 ones are random by design).
    pub fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).context("encoding the claims")?);
        let mut token = String::with_capacity(self.header.len() + claims.len() + 2 + 512 * 4 / 3);
        token.push_str(&self.header);
        token.push('.');
        token.push_str(&claims);
        let signature = self.pair.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }

    /// The same token through `jsonwebtoken::encode`, which parses the private key again for
    /// each signature: the path [`SigningKey::sign`] replaced, kept to be measured against it
    /// (`make bench`) and to check that both make the same bytes.
    pub fn sign_reparsing(&self, claims: &Claims) -> anyhow::Result<String> {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).context("signing an access token")
    }

    /// The key id (`kid`) that tokens signed with it carry.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half, as a JWK with `kid`, `alg` and `use`: what the verification key set
    /// lists for this key.
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }
}

/// A signed access token and its lifetime in seconds.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: String,
    pub expires_in: u64,
}

/// Signs access tokens with one private key and derives refresh-token successors with a
/// dedicated HMAC key. The successor key is never derived from the signing key: two sandboxes
/// on either side of a signing-key rotation must hand out the same successor.
pub struct TokenSigner {
    key: SigningKey,
    issuer: Issuer,
    audience: String,
    ttl: Duration,
    successor_key: hmac::Key,
}

impl TokenSigner {
    /// A signer with `key`, keying successors with `refresh_token_key` (at least
    /// [`MIN_REFRESH_TOKEN_KEY_BYTES`] bytes).
    pub fn new(
        key: SigningKey,
        refresh_token_key: &SecretString,
        issuer: Issuer,
        audience: String,
        ttl: Duration,
    ) -> anyhow::Result<Self> {
        let secret = refresh_token_key.expose_secret().as_bytes();
        if secret.len() < MIN_REFRESH_TOKEN_KEY_BYTES {
            bail!("the refresh-token key is shorter than {MIN_REFRESH_TOKEN_KEY_BYTES} bytes");
        }
        let successor_key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        Ok(Self { key, issuer, audience, ttl, successor_key })
    }

    /// The `kid` of the key that signs.
    pub fn kid(&self) -> &str {
        self.key.kid()
    }

    /// The refresh token that replaces `parent`: HMAC-SHA256 of the parent under the
    /// refresh-token key. Deterministic, so within the grace window the same successor can be
    /// handed out again while only its hash is stored.
    pub fn successor_of(&self, parent: &RefreshToken) -> RefreshToken {
        let tag = hmac::sign(&self.successor_key, parent.expose().as_bytes());
        RefreshToken(SecretString::from(URL_SAFE_NO_PAD.encode(tag.as_ref())))
    }

    /// Signs an access token for `user` in `session`; fails while a derived issuer is unknown.
    pub fn issue(
        &self,
        user: UserId,
        session: SessionId,
        assurance: &Assurance,
    ) -> anyhow::Result<AccessToken> {
        let iat = unix_now();
        let claims = Claims {
            iss: self.issuer.require()?.to_owned(),
            aud: self.audience.clone(),
            sub: user.0,
            sid: session.0,
            iat,
            exp: iat + self.ttl.as_secs(),
            aal: assurance.aal,
            amr: assurance.amr.clone(),
        };
        let token = self.key.sign(&claims).context("signing an access token")?;
        Ok(AccessToken { token, expires_in: self.ttl.as_secs() })
    }
}

/// Why a token was refused. Both are the same 401 to the client; an unknown key may also mean
/// this verifier's key set is older than the signer's (see `keys::Verifier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The token names no key of this set (or names none at all).
    UnknownKey,
    /// Bad signature, algorithm, issuer, audience or expiry, or not a JWT.
    Invalid,
}

impl From<Rejection> for ApiError {
    fn from(_: Rejection) -> Self {
        ApiError::InvalidToken
    }
}

/// One public key of a [`TokenVerifier`].
struct VerificationKey {
    kid: String,
    algorithm: Algorithm,
    decoding: DecodingKey,
    validation: Validation,
    jwk: Jwk,
}

/// Verifies access tokens against a set of public keys (the `next`, `current` and `previous`
/// keys' public halves), and publishes that set and the discovery document.
pub struct TokenVerifier {
    keys: Vec<VerificationKey>,
    issuer: Issuer,
}

impl TokenVerifier {
    /// Reads a JWK set (`{"keys":[...]}`). Refuses a key with a private member (`d`, ...), a
    /// symmetric key, a key without `kid`, a duplicate `kid` and an algorithm other than RS256,
    /// ES256 or EdDSA. Errors name the key and the member, never a value.
    pub fn from_jwks_json(text: &str, issuer: Issuer, audience: String) -> anyhow::Result<Self> {
        let set: serde_json::Value = serde_json::from_str(text).map_err(|error| {
            anyhow::anyhow!("the key set is not JSON ({})", crate::secrets::describe_json_error(&error))
        })?;
        let keys = set.get("keys").and_then(serde_json::Value::as_array).context(
            "the key set has no \"keys\" array (expected {\"keys\":[{\"kty\",\"kid\",\"alg\",...}]})",
        )?;
        for (index, key) in keys.iter().enumerate() {
            let kid = key.get("kid").and_then(serde_json::Value::as_str).unwrap_or("(no kid)");
            if let Some(member) = PRIVATE_JWK_MEMBERS.iter().find(|member| key.get(**member).is_some()) {
                bail!(
                    "key {index} ({kid}) has the private member {member:?}: a verification key set \
                     holds public keys only"
                );
            }
        }
        let set: JwkSet = serde_json::from_value(set).map_err(|error| {
            anyhow::anyhow!("the key set is not a JWK set ({})", crate::secrets::describe_json_error(&error))
        })?;
        Self::new(set, issuer, audience)
    }

    /// A verifier for the public keys in `set` (see [`TokenVerifier::from_jwks_json`]).
    pub fn new(set: JwkSet, issuer: Issuer, audience: String) -> anyhow::Result<Self> {
        let mut keys: Vec<VerificationKey> = Vec::with_capacity(set.keys.len());
        for (index, mut jwk) in set.keys.into_iter().enumerate() {
            let kid = jwk.common.key_id.clone().with_context(|| format!("key {index} has no \"kid\""))?;
            if keys.iter().any(|key| key.kid == kid) {
                bail!("the key id {kid} appears twice");
            }
            let signing = SigningAlgorithm::of_jwk(&jwk).with_context(|| {
                format!("key {kid} is not an RS256, ES256 (P-256) or EdDSA (Ed25519) public key")
            })?;
            let algorithm = signing.jwt();
            let decoding = DecodingKey::from_jwk(&jwk).with_context(|| format!("key {kid} is malformed"))?;
            // `iss` is compared in `verify`: a derived issuer is known only after construction.
            let mut validation = Validation::new(algorithm);
            validation.set_audience(&[&audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            validation.leeway = LEEWAY_SECONDS;
            jwk.common.key_algorithm = Some(signing.jwk());
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            keys.push(VerificationKey { kid, algorithm, decoding, validation, jwk });
        }
        Ok(Self { keys, issuer })
    }

    /// Whether a key with this `kid` is in the set.
    pub fn knows(&self, kid: &str) -> bool {
        self.keys.iter().any(|key| key.kid == kid)
    }

    /// Verifies a token's signature (with the key its `kid` names, under that key's algorithm
    /// only), `exp`, `iss` and `aud`. While a derived issuer is unknown no token is valid.
    pub fn verify(&self, token: &str) -> Result<Claims, Rejection> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Rejection::Invalid)?;
        let kid = header.kid.ok_or(Rejection::UnknownKey)?;
        let key = self.keys.iter().find(|key| key.kid == kid).ok_or(Rejection::UnknownKey)?;
        let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &key.validation)
            .map(|data| data.claims)
            .map_err(|_| Rejection::Invalid)?;
        if self.issuer.get() != Some(claims.iss.as_str()) {
            return Err(Rejection::Invalid);
        }
        Ok(claims)
    }

    /// The OpenID Connect discovery document for this issuer, as served at
    /// `/.well-known/openid-configuration`: where the keys are and how tokens are signed, which
    /// is what API Gateway's JWT authorizer and other verifiers read.
    /// Fails while a derived issuer is unknown.
    pub fn openid_configuration(&self) -> anyhow::Result<serde_json::Value> {
        let issuer = self.issuer.require()?;
        let base = issuer.trim_end_matches('/');
        let mut algorithms: Vec<String> = Vec::new();
        for key in &self.keys {
            let name = format!("{:?}", key.algorithm);
            if !algorithms.contains(&name) {
                algorithms.push(name);
            }
        }
        Ok(serde_json::json!({
            "issuer": issuer,
            "jwks_uri": format!("{base}/.well-known/jwks.json"),
            "id_token_signing_alg_values_supported": algorithms,
            "subject_types_supported": ["public"],
            "response_types_supported": ["token"],
            "claims_supported": ["iss", "aud", "sub", "sid", "iat", "exp"],
        }))
    }

    /// The public keys, as served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: self.keys.iter().map(|key| key.jwk.clone()).collect() }
    }
}

/// The JWK set of the public halves of `keys`: what a verifier's secret or `JWT_PUBLIC_KEYS`
/// holds for them.
pub fn public_key_set(keys: &[&SigningKey]) -> serde_json::Value {
    serde_json::json!({ "keys": keys.iter().map(|key| key.public_jwk()).collect::<Vec<_>>() })
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}

/// Creates a new private key as PKCS#8 PEM, for local development and tests.
pub fn generate_private_key_pem(algorithm: SigningAlgorithm) -> anyhow::Result<SecretString> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
    let unspecified = |_| anyhow::anyhow!("key generation failed");
    let der = match algorithm {
        SigningAlgorithm::Rs256 => {
            let pair =
                aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(unspecified)?;
            pair.as_der().map_err(unspecified)?.as_ref().to_vec()
        }
        SigningAlgorithm::Es256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(unspecified)?
            .to_pkcs8v1()
            .map_err(unspecified)?
            .as_ref()
            .to_vec(),
        SigningAlgorithm::EdDsa => Ed25519KeyPair::generate()
            .map_err(unspecified)?
            .to_pkcs8v1()
            .map_err(unspecified)?
            .as_ref()
            .to_vec(),
    };
    let body = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(SecretString::from(pem))
}

/// Length of a refresh token's random part in bytes (256 bits).
const REFRESH_TOKEN_BYTES: usize = 32;

/// An opaque refresh token: 256 random bits, base64url. Only its [`TokenHash`] is stored.
pub struct RefreshToken(SecretString);

/// The SHA-256 of a refresh token: what the database stores and looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// The SHA-256 of any bearer value (a sealed sign-in ceremony's id).
    pub fn of(value: &[u8]) -> Self {
        let digest = digest::digest(&digest::SHA256, value);
        Self(digest.as_ref().try_into().expect("SHA-256 is 32 bytes"))
    }
}

impl RefreshToken {
    /// A new random token.
    pub fn generate() -> anyhow::Result<Self> {
        let mut bytes = [0u8; REFRESH_TOKEN_BYTES];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("the system RNG failed"))?;
        Ok(Self(SecretString::from(URL_SAFE_NO_PAD.encode(bytes))))
    }

    /// A presented token, if it has the shape of one of ours; anything else is 401 without a
    /// database lookup.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        match URL_SAFE_NO_PAD.decode(raw) {
            Ok(bytes) if bytes.len() == REFRESH_TOKEN_BYTES => Ok(Self(SecretString::from(raw.to_owned()))),
            _ => Err(ApiError::InvalidRefreshToken),
        }
    }

    /// The token's hash.
    pub fn hash(&self) -> TokenHash {
        let digest = digest::digest(&digest::SHA256, self.0.expose_secret().as_bytes());
        TokenHash(digest.as_ref().try_into().expect("SHA-256 is 32 bytes"))
    }

    /// The token itself, for the response body only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// A link token sent by mail (email verification, password reset): 256 random bits like a
/// refresh token, and likewise stored only as its SHA-256.
pub struct MailToken(RefreshToken);

impl MailToken {
    /// A new random token.
    pub fn generate() -> anyhow::Result<Self> {
        RefreshToken::generate().map(Self)
    }

    /// A presented token; one without the shape of ours is refused as any dead one is (400
    /// `invalid_token`), without a database lookup.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        RefreshToken::parse(raw).map(Self).map_err(|_| ApiError::InvalidLinkToken)
    }

    /// The token's hash, what `mail_tokens` stores.
    pub fn hash(&self) -> TokenHash {
        self.0.hash()
    }

    /// The token itself, for the link only.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl std::fmt::Debug for MailToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MailToken([REDACTED])")
    }
}

/// A sign-in's `mfa_token`: the password was right, the second factor is still to come. 256
/// random bits like a refresh token, and likewise stored only as its SHA-256.
pub struct MfaToken(RefreshToken);

impl MfaToken {
    /// A new random token.
    pub fn generate() -> anyhow::Result<Self> {
        RefreshToken::generate().map(Self)
    }

    /// A presented token; one without the shape of ours is refused as any dead one is (401
    /// `invalid_mfa_token`), without a database lookup.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        RefreshToken::parse(raw).map(Self).map_err(|_| ApiError::InvalidMfaToken)
    }

    /// The token's hash, what `mfa_tokens` stores.
    pub fn hash(&self) -> TokenHash {
        self.0.hash()
    }

    /// The token itself, for the response body only.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

/// A passkey ceremony's `challenge_id`: names the ceremony's state between its begin and its
/// finish. 256 random bits like a refresh token, and likewise stored only as its SHA-256.
pub struct ChallengeId(RefreshToken);

impl ChallengeId {
    /// A new random id.
    pub fn generate() -> anyhow::Result<Self> {
        RefreshToken::generate().map(Self)
    }

    /// A presented id; `None` for one without the shape of ours (refused as a dead one is,
    /// without a database lookup).
    pub fn parse(raw: &str) -> Option<Self> {
        RefreshToken::parse(raw).ok().map(Self)
    }

    /// The id's hash, what `webauthn_challenges` stores.
    pub fn hash(&self) -> TokenHash {
        self.0.hash()
    }

    /// The id itself, for the response body only.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl std::fmt::Debug for ChallengeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChallengeId([REDACTED])")
    }
}

impl std::fmt::Debug for MfaToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MfaToken([REDACTED])")
    }
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshToken([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFRESH_KEY: &str = "a refresh-token key of 32+ bytes!";

    fn key(algorithm: SigningAlgorithm, kid: &str) -> SigningKey {
        let pem = generate_private_key_pem(algorithm).unwrap();
        SigningKey::from_pem(kid, algorithm, &pem).unwrap()
    }

    fn verifier_of(keys: &[&SigningKey]) -> TokenVerifier {
        let set = JwkSet { keys: keys.iter().map(|key| key.public_jwk().clone()).collect() };
        TokenVerifier::new(set, "https://issuer.test".into(), "api".into()).unwrap()
    }

    fn signer(key: SigningKey, refresh_key: &str) -> TokenSigner {
        let refresh_key = SecretString::from(refresh_key.to_owned());
        TokenSigner::new(
            key,
            &refresh_key,
            "https://issuer.test".into(),
            "api".into(),
            Duration::from_secs(900),
        )
        .unwrap()
    }

    /// A signer and a verifier that knows its key.
    fn pair(algorithm: SigningAlgorithm, kid: &str) -> (TokenSigner, TokenVerifier) {
        let key = key(algorithm, kid);
        let verifier = verifier_of(&[&key]);
        (signer(key, REFRESH_KEY), verifier)
    }

    #[test]
    fn every_algorithm_signs_tokens_it_verifies() {
        for algorithm in [SigningAlgorithm::Rs256, SigningAlgorithm::Es256, SigningAlgorithm::EdDsa] {
            let (signer, verifier) = pair(algorithm, "k1");
            let (user, session) = (UserId::generate(), SessionId::generate());
            let token = signer.issue(user, session, &Assurance::password()).unwrap();
            let claims = verifier.verify(&token.token).unwrap();
            assert_eq!((claims.sub, claims.sid), (user.0, session.0), "{algorithm:?}");
            assert_eq!(claims.exp - claims.iat, 900);
            assert_eq!(jsonwebtoken::decode_header(&token.token).unwrap().kid.as_deref(), Some("k1"));
        }
    }

    #[test]
    fn a_verifier_reads_the_public_key_set_a_signer_publishes() {
        let key = key(SigningAlgorithm::EdDsa, "k1");
        let text = serde_json::to_string(&JwkSet { keys: vec![key.public_jwk().clone()] }).unwrap();
        let verifier =
            TokenVerifier::from_jwks_json(&text, "https://issuer.test".into(), "api".into()).unwrap();
        let token = signer(key, REFRESH_KEY)
            .issue(UserId::generate(), SessionId::generate(), &Assurance::password())
            .unwrap();
        assert!(verifier.verify(&token.token).is_ok());
    }

    #[test]
    fn a_verification_key_set_holding_a_private_member_is_refused() {
        let key = key(SigningAlgorithm::Es256, "k1");
        let mut jwk = serde_json::to_value(key.public_jwk()).unwrap();
        for member in ["d", "p", "k"] {
            jwk[member] = serde_json::json!("c2VjcmV0LXZhbHVl");
            let text = serde_json::json!({ "keys": [jwk] }).to_string();
            let error = TokenVerifier::from_jwks_json(&text, "i".into(), "a".into()).err().unwrap();
            let message = format!("{error:#}");
            assert!(message.contains(&format!("{member:?}")) && message.contains("k1"), "{message}");
            assert!(!message.contains("c2VjcmV0LXZhbHVl"), "the value is never quoted: {message}");
            jwk.as_object_mut().unwrap().remove(member);
        }
    }

    #[test]
    fn a_verification_key_set_without_kids_or_with_a_symmetric_key_is_refused() {
        let key = key(SigningAlgorithm::Rs256, "k1");
        let mut jwk = serde_json::to_value(key.public_jwk()).unwrap();
        jwk.as_object_mut().unwrap().remove("kid");
        let no_kid = serde_json::json!({ "keys": [jwk] }).to_string();
        assert!(TokenVerifier::from_jwks_json(&no_kid, "i".into(), "a".into()).is_err());
        let hmac = r#"{"keys":[{"kty":"oct","kid":"h","alg":"HS256"}]}"#;
        assert!(TokenVerifier::from_jwks_json(hmac, "i".into(), "a".into()).is_err());
        let both = serde_json::json!({ "keys": [key.public_jwk(), key.public_jwk()] }).to_string();
        assert!(TokenVerifier::from_jwks_json(&both, "i".into(), "a".into()).is_err(), "duplicate kid");
    }

    #[test]
    fn a_token_from_another_key_with_the_same_kid_is_rejected() {
        let (_, ours) = pair(SigningAlgorithm::Es256, "k1");
        let (theirs, _) = pair(SigningAlgorithm::Es256, "k1");
        let forged = theirs.issue(UserId::generate(), SessionId::generate(), &Assurance::password()).unwrap();
        assert_eq!(ours.verify(&forged.token).err(), Some(Rejection::Invalid));
    }

    #[test]
    fn an_unknown_kid_is_rejected_as_an_unknown_key() {
        let (_, ours) = pair(SigningAlgorithm::Es256, "k1");
        let (other, _) = pair(SigningAlgorithm::Es256, "k2");
        let token = other.issue(UserId::generate(), SessionId::generate(), &Assurance::password()).unwrap();
        assert_eq!(ours.verify(&token.token).err(), Some(Rejection::UnknownKey));
        assert_eq!(ApiError::from(Rejection::UnknownKey).into_response().status(), 401);
    }

    #[test]
    fn wrong_issuer_or_audience_or_expired_tokens_are_rejected() {
        let key = key(SigningAlgorithm::Es256, "k");
        let ours = verifier_of(&[&key]);
        let sign = |claims: &Claims| {
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some("k".into());
            jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
        };
        let good = claims_for(&ours);
        let now = good.iat;
        assert!(ours.verify(&sign(&good)).is_ok());
        assert!(ours.verify(&sign(&Claims { iss: "other".into(), ..good.clone() })).is_err());
        assert!(ours.verify(&sign(&Claims { aud: "other".into(), ..good.clone() })).is_err());
        let expired = Claims { iat: now - 200, exp: now - LEEWAY_SECONDS - 5, ..good };
        assert!(ours.verify(&sign(&expired)).is_err());
    }

    fn claims_for(verifier: &TokenVerifier) -> Claims {
        let now = unix_now();
        Claims {
            iss: verifier.issuer.get().unwrap().to_owned(),
            aud: "api".into(),
            sub: Uuid::now_v7(),
            sid: Uuid::now_v7(),
            iat: now,
            exp: now + 60,
            aal: Aal::Aal1,
            amr: vec!["pwd".into()],
        }
    }

    fn b64(json: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(json.to_string())
    }

    #[test]
    fn an_unsigned_alg_none_token_is_rejected() {
        let (_, verifier) = pair(SigningAlgorithm::Rs256, "k1");
        let claims = serde_json::to_value(claims_for(&verifier)).unwrap();
        for alg in ["none", "None", "NONE"] {
            let token = format!(
                "{}.{}.",
                b64(&serde_json::json!({"alg": alg, "kid": "k1", "typ": "JWT"})),
                b64(&claims)
            );
            assert!(verifier.verify(&token).is_err(), "{alg}");
        }
    }

    #[test]
    fn an_hs256_token_keyed_with_the_public_key_is_rejected() {
        let (_, verifier) = pair(SigningAlgorithm::Rs256, "k1");
        let jwk = serde_json::to_value(&verifier.keys[0].jwk).unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        // Whatever form of the public key a confused verifier would use as the HMAC secret.
        for secret in [jwk["n"].as_str().unwrap().to_owned(), jwk.to_string()] {
            let forged = jsonwebtoken::encode(
                &header,
                &claims_for(&verifier),
                &EncodingKey::from_secret(secret.as_bytes()),
            )
            .unwrap();
            assert_eq!(verifier.verify(&forged).err(), Some(Rejection::Invalid));
        }
    }

    #[test]
    fn a_token_signed_with_the_right_key_under_another_algorithm_name_is_rejected() {
        let (signer, verifier) = pair(SigningAlgorithm::Es256, "k1");
        let token =
            signer.issue(UserId::generate(), SessionId::generate(), &Assurance::password()).unwrap().token;
        let (_, rest) = token.split_once('.').unwrap();
        let relabelled = format!("{}.{rest}", b64(&serde_json::json!({"alg": "ES384", "kid": "k1"})));
        assert!(verifier.verify(&relabelled).is_err());
    }

    #[test]
    fn expiry_allows_at_most_thirty_seconds_of_clock_skew() {
        let key = key(SigningAlgorithm::Es256, "k1");
        let verifier = verifier_of(&[&key]);
        let sign = |claims: &Claims| {
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some("k1".into());
            jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
        };
        let now = unix_now();
        let skewed = Claims { iat: now - 100, exp: now - 10, ..claims_for(&verifier) };
        let expired = Claims { iat: now - 100, exp: now - 31, ..claims_for(&verifier) };
        assert!(verifier.verify(&sign(&skewed)).is_ok(), "10 s past exp is within the leeway");
        assert!(verifier.verify(&sign(&expired)).is_err(), "31 s past exp is not");
    }

    #[test]
    fn the_openid_configuration_points_at_the_jwks() {
        let rsa = key(SigningAlgorithm::Rs256, "k1");
        let ec = key(SigningAlgorithm::Es256, "k2");
        let config = verifier_of(&[&rsa, &ec]).openid_configuration().unwrap();
        assert_eq!(config["issuer"], "https://issuer.test");
        assert_eq!(config["jwks_uri"], "https://issuer.test/.well-known/jwks.json");
        assert_eq!(config["id_token_signing_alg_values_supported"], serde_json::json!(["RS256", "ES256"]));
    }

    #[test]
    fn the_jwks_holds_public_parameters_only() {
        let (_, verifier) = pair(SigningAlgorithm::Rs256, "k1");
        let jwks = serde_json::to_value(verifier.jwks()).unwrap();
        let key = &jwks["keys"][0];
        assert_eq!(
            (key["kty"].as_str(), key["kid"].as_str(), key["alg"].as_str(), key["use"].as_str()),
            (Some("RSA"), Some("k1"), Some("RS256"), Some("sig"))
        );
        assert!(key["n"].is_string() && key["e"].is_string());
        assert!(key.get("d").is_none() && key.get("p").is_none(), "{key}");
    }

    #[test]
    fn successors_are_deterministic_per_parent() {
        let (signer, _) = pair(SigningAlgorithm::Es256, "k1");
        let parent = RefreshToken::generate().unwrap();
        let successor = signer.successor_of(&parent);
        assert_eq!(successor.expose(), signer.successor_of(&parent).expose());
        assert!(RefreshToken::parse(successor.expose()).is_ok(), "a successor has a token's shape");
        assert_ne!(successor.expose(), signer.successor_of(&successor).expose());
    }

    #[test]
    fn successors_depend_only_on_the_refresh_token_key() {
        let parent = RefreshToken::generate().unwrap();
        let old_generation = signer(key(SigningAlgorithm::Rs256, "k1"), REFRESH_KEY);
        let new_generation = signer(key(SigningAlgorithm::Es256, "k2"), REFRESH_KEY);
        let other_refresh_key = signer(key(SigningAlgorithm::Rs256, "k1"), &"x".repeat(32));

        assert_eq!(
            old_generation.successor_of(&parent).expose(),
            new_generation.successor_of(&parent).expose(),
            "sandboxes on either side of a signing-key rotation hand out the same successor"
        );
        assert_ne!(
            old_generation.successor_of(&parent).expose(),
            other_refresh_key.successor_of(&parent).expose()
        );
    }

    #[test]
    fn a_refresh_token_key_shorter_than_32_bytes_is_refused() {
        let short = SecretString::from("s".repeat(31));
        let key = key(SigningAlgorithm::EdDsa, "k1");
        let error = TokenSigner::new(key, &short, "i".into(), "a".into(), Duration::from_secs(60))
            .err()
            .expect("a 31-byte key is refused");
        assert!(error.to_string().contains("32 bytes"), "{error}");
    }

    #[test]
    fn refresh_tokens_are_256_random_bits_and_only_well_formed_ones_parse() {
        let token = RefreshToken::generate().unwrap();
        assert_eq!(token.expose().len(), 43);
        assert_ne!(token.expose(), RefreshToken::generate().unwrap().expose());
        let parsed = RefreshToken::parse(token.expose()).unwrap();
        assert_eq!(parsed.hash(), token.hash());
        for bad in ["", "short", &"A".repeat(44), "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"] {
            assert!(RefreshToken::parse(bad).is_err(), "{bad}");
        }
    }
}
