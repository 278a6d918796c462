//! Access tokens (asymmetrically signed JWTs) and refresh tokens (random, stored as hashes).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{SessionId, UserId};
use crate::error::ApiError;

/// Clock skew tolerated on `exp` (RFC 8725 asks for little; 30 s at most).
const LEEWAY_SECONDS: u64 = 30;

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
}

/// One signing key: its id, its algorithm, the private half and the public half.
pub struct SigningKey {
    kid: String,
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
    /// Derived from the private key; keys refresh-token successors when no dedicated
    /// `REFRESH_TOKEN_HMAC_KEY` is configured.
    successor_seed: [u8; 32],
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
        let mut jwk = Jwk::from_encoding_key(&encoding, algorithm.jwt())
            .with_context(|| format!("deriving the public key of {kid}"))?;
        jwk.common.key_id = Some(kid.to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let decoding = DecodingKey::from_jwk(&jwk).context("building the verification key")?;
        let mut seed = digest::Context::new(&digest::SHA256);
        seed.update(b"auth refresh-token successor v1\0");
        seed.update(pem);
        let successor_seed = seed.finish().as_ref().try_into().expect("SHA-256 is 32 bytes");
        Ok(Self { kid: kid.to_owned(), algorithm: algorithm.jwt(), encoding, decoding, jwk, successor_seed })
    }

    /// The key id (`kid`) that tokens signed with it carry.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// A signed access token and its lifetime in seconds.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: String,
    pub expires_in: u64,
}

/// The keys that sign and verify access tokens, with the issuer, audience and lifetime they
/// carry. The first key signs; every key verifies (so a rotated-out key keeps its tokens valid
/// until they expire).
pub struct TokenIssuer {
    keys: Vec<(SigningKey, Validation)>,
    issuer: String,
    audience: String,
    ttl: Duration,
    successor_key: hmac::Key,
}

impl TokenIssuer {
    /// An issuer signing with `current` and also accepting `previous`.
    pub fn new(
        current: SigningKey,
        previous: Vec<SigningKey>,
        issuer: String,
        audience: String,
        ttl: Duration,
    ) -> Self {
        let keys = std::iter::once(current)
            .chain(previous)
            .map(|key| {
                let mut validation = Validation::new(key.algorithm);
                validation.set_issuer(&[&issuer]);
                validation.set_audience(&[&audience]);
                validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                validation.leeway = LEEWAY_SECONDS;
                (key, validation)
            })
            .collect::<Vec<_>>();
        let successor_key = hmac::Key::new(hmac::HMAC_SHA256, &keys[0].0.successor_seed);
        Self { keys, issuer, audience, ttl, successor_key }
    }

    /// Keys refresh-token successors with a dedicated secret instead of one derived from the
    /// signing key (so rotating the signing key does not change successors mid-grace-window).
    pub fn with_successor_secret(mut self, secret: &SecretString) -> Self {
        self.successor_key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose_secret().as_bytes());
        self
    }

    /// The refresh token that replaces `parent`: HMAC-SHA256 of the parent under a server key.
    /// Deterministic, so within the grace window the same successor can be handed out again
    /// while only its hash is stored.
    pub fn successor_of(&self, parent: &RefreshToken) -> RefreshToken {
        let tag = hmac::sign(&self.successor_key, parent.expose().as_bytes());
        RefreshToken(SecretString::from(URL_SAFE_NO_PAD.encode(tag.as_ref())))
    }

    /// Signs an access token for `user` in `session`.
    pub fn issue(&self, user: UserId, session: SessionId) -> anyhow::Result<AccessToken> {
        let (key, _) = &self.keys[0];
        let iat = unix_now();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user.0,
            sid: session.0,
            iat,
            exp: iat + self.ttl.as_secs(),
        };
        let mut header = Header::new(key.algorithm);
        header.kid = Some(key.kid.clone());
        let token =
            jsonwebtoken::encode(&header, &claims, &key.encoding).context("signing an access token")?;
        Ok(AccessToken { token, expires_in: self.ttl.as_secs() })
    }

    /// Verifies a token's signature (with the key its `kid` names, under that key's algorithm
    /// only), `exp`, `iss` and `aud`. Every failure is the same 401.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| ApiError::InvalidToken)?;
        let kid = header.kid.ok_or(ApiError::InvalidToken)?;
        let (key, validation) =
            self.keys.iter().find(|(key, _)| key.kid == kid).ok_or(ApiError::InvalidToken)?;
        jsonwebtoken::decode::<Claims>(token, &key.decoding, validation)
            .map(|data| data.claims)
            .map_err(|_| ApiError::InvalidToken)
    }

    /// The OpenID Connect discovery document for this issuer, as served at
    /// `/.well-known/openid-configuration`: where the keys are and how tokens are signed, which
    /// is what API Gateway's JWT authorizer and other verifiers read.
    pub fn openid_configuration(&self) -> serde_json::Value {
        let base = self.issuer.trim_end_matches('/');
        let mut algorithms: Vec<String> = Vec::new();
        for (key, _) in &self.keys {
            let name = format!("{:?}", key.algorithm);
            if !algorithms.contains(&name) {
                algorithms.push(name);
            }
        }
        serde_json::json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{base}/.well-known/jwks.json"),
            "id_token_signing_alg_values_supported": algorithms,
            "subject_types_supported": ["public"],
            "response_types_supported": ["token"],
            "claims_supported": ["iss", "aud", "sub", "sid", "iat", "exp"],
        })
    }

    /// The public keys, as served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: self.keys.iter().map(|(key, _)| key.jwk.clone()).collect() }
    }
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

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshToken([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer_with(algorithm: SigningAlgorithm, kid: &str) -> TokenIssuer {
        let pem = generate_private_key_pem(algorithm).unwrap();
        let key = SigningKey::from_pem(kid, algorithm, &pem).unwrap();
        TokenIssuer::new(key, vec![], "https://issuer.test".into(), "api".into(), Duration::from_secs(900))
    }

    #[test]
    fn every_algorithm_signs_tokens_it_verifies() {
        for algorithm in [SigningAlgorithm::Rs256, SigningAlgorithm::Es256, SigningAlgorithm::EdDsa] {
            let issuer = issuer_with(algorithm, "k1");
            let (user, session) = (UserId::generate(), SessionId::generate());
            let token = issuer.issue(user, session).unwrap();
            let claims = issuer.verify(&token.token).unwrap();
            assert_eq!((claims.sub, claims.sid), (user.0, session.0), "{algorithm:?}");
            assert_eq!(claims.exp - claims.iat, 900);
            assert_eq!(jsonwebtoken::decode_header(&token.token).unwrap().kid.as_deref(), Some("k1"));
        }
    }

    #[test]
    fn a_token_from_another_key_with_the_same_kid_is_rejected() {
        let ours = issuer_with(SigningAlgorithm::Es256, "k1");
        let theirs = issuer_with(SigningAlgorithm::Es256, "k1");
        let forged = theirs.issue(UserId::generate(), SessionId::generate()).unwrap();
        assert!(matches!(ours.verify(&forged.token), Err(ApiError::InvalidToken)));
    }

    #[test]
    fn an_unknown_kid_is_rejected() {
        let ours = issuer_with(SigningAlgorithm::Es256, "k1");
        let other = issuer_with(SigningAlgorithm::Es256, "k2");
        let token = other.issue(UserId::generate(), SessionId::generate()).unwrap();
        assert!(ours.verify(&token.token).is_err());
    }

    #[test]
    fn wrong_issuer_or_audience_or_expired_tokens_are_rejected() {
        let pem = generate_private_key_pem(SigningAlgorithm::Es256).unwrap();
        let key = |kid| SigningKey::from_pem(kid, SigningAlgorithm::Es256, &pem).unwrap();
        let ours = TokenIssuer::new(key("k"), vec![], "iss".into(), "aud".into(), Duration::from_secs(60));
        let sign = |claims: &Claims| {
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some("k".into());
            jsonwebtoken::encode(&header, claims, &key("k").encoding).unwrap()
        };
        let now = unix_now();
        let good = Claims {
            iss: "iss".into(),
            aud: "aud".into(),
            sub: Uuid::nil(),
            sid: Uuid::nil(),
            iat: now,
            exp: now + 60,
        };
        assert!(ours.verify(&sign(&good)).is_ok());
        assert!(ours.verify(&sign(&Claims { iss: "other".into(), ..good.clone() })).is_err());
        assert!(ours.verify(&sign(&Claims { aud: "other".into(), ..good.clone() })).is_err());
        let expired = Claims { iat: now - 200, exp: now - LEEWAY_SECONDS - 5, ..good };
        assert!(ours.verify(&sign(&expired)).is_err());
    }

    fn claims_for(issuer: &TokenIssuer) -> Claims {
        let now = unix_now();
        Claims {
            iss: issuer.issuer.clone(),
            aud: issuer.audience.clone(),
            sub: Uuid::now_v7(),
            sid: Uuid::now_v7(),
            iat: now,
            exp: now + 60,
        }
    }

    fn b64(json: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(json.to_string())
    }

    #[test]
    fn an_unsigned_alg_none_token_is_rejected() {
        let issuer = issuer_with(SigningAlgorithm::Rs256, "k1");
        let claims = serde_json::to_value(claims_for(&issuer)).unwrap();
        for alg in ["none", "None", "NONE"] {
            let token = format!(
                "{}.{}.",
                b64(&serde_json::json!({"alg": alg, "kid": "k1", "typ": "JWT"})),
                b64(&claims)
            );
            assert!(matches!(issuer.verify(&token), Err(ApiError::InvalidToken)), "{alg}");
        }
    }

    #[test]
    fn an_hs256_token_keyed_with_the_public_key_is_rejected() {
        let issuer = issuer_with(SigningAlgorithm::Rs256, "k1");
        let jwk = serde_json::to_value(&issuer.keys[0].0.jwk).unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        // Whatever form of the public key a confused verifier would use as the HMAC secret.
        for secret in [jwk["n"].as_str().unwrap().to_owned(), jwk.to_string()] {
            let forged = jsonwebtoken::encode(
                &header,
                &claims_for(&issuer),
                &EncodingKey::from_secret(secret.as_bytes()),
            )
            .unwrap();
            assert!(matches!(issuer.verify(&forged), Err(ApiError::InvalidToken)));
        }
    }

    #[test]
    fn a_token_signed_with_the_right_key_under_another_algorithm_name_is_rejected() {
        let issuer = issuer_with(SigningAlgorithm::Es256, "k1");
        let token = issuer.issue(UserId::generate(), SessionId::generate()).unwrap().token;
        let (_, rest) = token.split_once('.').unwrap();
        let relabelled = format!("{}.{rest}", b64(&serde_json::json!({"alg": "ES384", "kid": "k1"})));
        assert!(issuer.verify(&relabelled).is_err());
    }

    #[test]
    fn expiry_allows_at_most_thirty_seconds_of_clock_skew() {
        let issuer = issuer_with(SigningAlgorithm::Es256, "k1");
        let sign = |claims: &Claims| {
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some("k1".into());
            jsonwebtoken::encode(&header, claims, &issuer.keys[0].0.encoding).unwrap()
        };
        let now = unix_now();
        let skewed = Claims { iat: now - 100, exp: now - 10, ..claims_for(&issuer) };
        let expired = Claims { iat: now - 100, exp: now - 31, ..claims_for(&issuer) };
        assert!(issuer.verify(&sign(&skewed)).is_ok(), "10 s past exp is within the leeway");
        assert!(issuer.verify(&sign(&expired)).is_err(), "31 s past exp is not");
    }

    #[test]
    fn the_openid_configuration_points_at_the_jwks() {
        let issuer = issuer_with(SigningAlgorithm::Rs256, "k1");
        let config = issuer.openid_configuration();
        assert_eq!(config["issuer"], "https://issuer.test");
        assert_eq!(config["jwks_uri"], "https://issuer.test/.well-known/jwks.json");
        assert_eq!(config["id_token_signing_alg_values_supported"], serde_json::json!(["RS256"]));
    }

    #[test]
    fn the_jwks_holds_public_parameters_only() {
        let issuer = issuer_with(SigningAlgorithm::Rs256, "k1");
        let jwks = serde_json::to_value(issuer.jwks()).unwrap();
        let key = &jwks["keys"][0];
        assert_eq!(
            (key["kty"].as_str(), key["kid"].as_str(), key["alg"].as_str()),
            (Some("RSA"), Some("k1"), Some("RS256"))
        );
        assert!(key["n"].is_string() && key["e"].is_string());
        assert!(key.get("d").is_none() && key.get("p").is_none(), "{key}");
    }

    #[test]
    fn successors_are_deterministic_per_parent_and_key() {
        let issuer = issuer_with(SigningAlgorithm::Es256, "k1");
        let parent = RefreshToken::generate().unwrap();
        let successor = issuer.successor_of(&parent);
        assert_eq!(successor.expose(), issuer.successor_of(&parent).expose());
        assert!(RefreshToken::parse(successor.expose()).is_ok(), "a successor has a token's shape");
        assert_ne!(successor.expose(), issuer.successor_of(&successor).expose());
        let other = issuer_with(SigningAlgorithm::Es256, "k1");
        assert_ne!(
            successor.expose(),
            other.successor_of(&parent).expose(),
            "another key, another successor"
        );
        let dedicated = issuer_with(SigningAlgorithm::Es256, "k1")
            .with_successor_secret(&SecretString::from("s".repeat(32)));
        assert_ne!(successor.expose(), dedicated.successor_of(&parent).expose());
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
