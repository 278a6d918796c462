//! The access-token signer parses its key once (`SigningKey::sign`). These tests hold it to the
//! tokens `jsonwebtoken::encode` made before (byte for byte where the algorithm is
//! deterministic), and have an independent implementation, the OpenSSL command line, verify its
//! signatures with the public key the JWK set publishes.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use shared::tokens::{Claims, SigningAlgorithm, SigningKey, generate_private_key_pem};
use uuid::Uuid;

fn claims() -> Claims {
    Claims {
        iss: "https://auth.example.com".to_owned(),
        aud: "api".to_owned(),
        sub: Uuid::new_v4(),
        sid: Uuid::new_v4(),
        iat: 1_800_000_000,
        exp: 1_800_000_900,
        aal: shared::domain::Aal::Aal1,
        amr: vec!["pwd".to_owned()],
    }
}

fn openssl(args: &[&str], dir: &Path) -> Vec<u8> {
    let output = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("signatures-{name}-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The same RSA key in PKCS#1 form (`BEGIN RSA PRIVATE KEY`), as `openssl rsa -traditional`
/// writes it.
fn pkcs1(pem: &SecretString) -> SecretString {
    let dir = scratch("pkcs1");
    std::fs::write(dir.join("key.pem"), pem.expose_secret()).unwrap();
    let out = openssl(&["rsa", "-in", "key.pem", "-traditional"], &dir);
    std::fs::remove_dir_all(dir).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "{out}");
    SecretString::from(out)
}

#[test]
fn rs256_tokens_are_the_bytes_jsonwebtoken_makes_from_pkcs8_and_pkcs1_keys() {
    let pkcs8 = generate_private_key_pem(SigningAlgorithm::Rs256).unwrap();
    for pem in [pkcs8.clone(), pkcs1(&pkcs8)] {
        let key = SigningKey::from_pem("rsa", SigningAlgorithm::Rs256, &pem).unwrap();
        for _ in 0..3 {
            let claims = claims();
            assert_eq!(key.sign(&claims).unwrap(), key.sign_reparsing(&claims).unwrap());
        }
    }
}

#[test]
fn eddsa_tokens_are_the_bytes_jsonwebtoken_makes() {
    let pem = generate_private_key_pem(SigningAlgorithm::EdDsa).unwrap();
    let key = SigningKey::from_pem("ed", SigningAlgorithm::EdDsa, &pem).unwrap();
    for _ in 0..3 {
        let claims = claims();
        assert_eq!(key.sign(&claims).unwrap(), key.sign_reparsing(&claims).unwrap());
    }
}

#[test]
fn every_algorithm_verifies_with_jsonwebtoken_and_the_published_key() {
    for algorithm in [SigningAlgorithm::Rs256, SigningAlgorithm::Es256, SigningAlgorithm::EdDsa] {
        let pem = generate_private_key_pem(algorithm).unwrap();
        let key = SigningKey::from_pem("k1", algorithm, &pem).unwrap();
        let claims = claims();
        let token = key.sign(&claims).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some("k1"));
        let decoding = DecodingKey::from_jwk(key.public_jwk()).unwrap();
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&["api"]);
        validation.validate_exp = false;
        let decoded = jsonwebtoken::decode::<Claims>(&token, &decoding, &validation).unwrap();
        assert_eq!(decoded.claims, claims, "{algorithm:?}");

        let (message, _) = token.rsplit_once('.').unwrap();
        let forged = format!("{message}.{}", URL_SAFE_NO_PAD.encode(flip(&signature(&token))));
        assert!(jsonwebtoken::decode::<Claims>(&forged, &decoding, &validation).is_err(), "{algorithm:?}");
    }
}

fn signature(token: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(token.rsplit_once('.').unwrap().1).unwrap()
}

fn flip(bytes: &[u8]) -> Vec<u8> {
    let mut flipped = bytes.to_vec();
    flipped[bytes.len() / 2] ^= 0x01;
    flipped
}

/// The public key as the JWK set publishes it, in the raw form that ends OpenSSL's DER
/// SubjectPublicKeyInfo: the RSA modulus, the uncompressed P-256 point or the Ed25519 key.
fn published_key_bytes(jwk: &Jwk) -> Vec<u8> {
    let decode = |text: &str| URL_SAFE_NO_PAD.decode(text).unwrap();
    match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => decode(&rsa.n),
        AlgorithmParameters::EllipticCurve(ec) => [vec![0x04], decode(&ec.x), decode(&ec.y)].concat(),
        AlgorithmParameters::OctetKeyPair(okp) => decode(&okp.x),
        other => panic!("unexpected key type {other:?}"),
    }
}

/// An ECDSA signature in the DER form OpenSSL reads, from JWS's fixed-length `r || s`.
fn ecdsa_der(fixed: &[u8]) -> Vec<u8> {
    let integer = |half: &[u8]| {
        let trimmed: Vec<u8> = half.iter().copied().skip_while(|byte| *byte == 0).collect();
        let body = if trimmed.first().is_some_and(|byte| byte & 0x80 != 0) {
            [vec![0], trimmed].concat()
        } else {
            trimmed
        };
        [vec![0x02, body.len() as u8], body].concat()
    };
    let body = [integer(&fixed[..32]), integer(&fixed[32..])].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

#[test]
fn openssl_verifies_every_algorithm_with_the_published_key_and_refuses_a_changed_byte() {
    for algorithm in [SigningAlgorithm::Rs256, SigningAlgorithm::Es256, SigningAlgorithm::EdDsa] {
        let dir = scratch("openssl");
        let pem = generate_private_key_pem(algorithm).unwrap();
        let key = SigningKey::from_pem("k1", algorithm, &pem).unwrap();
        std::fs::write(dir.join("key.pem"), pem.expose_secret()).unwrap();
        openssl(&["pkey", "-in", "key.pem", "-pubout", "-out", "public.pem"], &dir);
        let spki = openssl(&["pkey", "-pubin", "-in", "public.pem", "-outform", "DER"], &dir);
        let published = published_key_bytes(key.public_jwk());
        match algorithm {
            // The DER ends with the modulus, then the public exponent 65537 (02 03 01 00 01).
            SigningAlgorithm::Rs256 => {
                assert!(spki.windows(published.len()).any(|window| window == published), "RSA modulus")
            }
            _ => assert!(spki.ends_with(&published), "{algorithm:?} public key"),
        }

        let token = key.sign(&claims()).unwrap();
        let (message, _) = token.rsplit_once('.').unwrap();
        std::fs::write(dir.join("message"), message).unwrap();
        let raw = signature(&token);
        let wire = if algorithm == SigningAlgorithm::Es256 { ecdsa_der(&raw) } else { raw.clone() };
        let verify = |signature: &[u8]| {
            std::fs::write(dir.join("signature"), signature).unwrap();
            let mut args =
                vec!["pkeyutl", "-verify", "-pubin", "-inkey", "public.pem", "-sigfile", "signature"];
            if algorithm == SigningAlgorithm::EdDsa {
                args.extend(["-rawin", "-in", "message"]);
            } else {
                args.extend(["-rawin", "-digest", "sha256", "-in", "message"]);
            }
            Command::new("openssl").args(&args).current_dir(&dir).output().unwrap().status.success()
        };
        assert!(verify(&wire), "OpenSSL refused a {algorithm:?} token");
        let flipped = if algorithm == SigningAlgorithm::Es256 { ecdsa_der(&flip(&raw)) } else { flip(&raw) };
        assert!(!verify(&flipped), "OpenSSL accepted a changed {algorithm:?} signature");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
