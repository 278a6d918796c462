//! Access-token signing and verification per algorithm, with the crypto backend the functions
//! use (aws-lc-rs). `make bench` runs this and copies the medians into BENCHMARKS.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::jwk::JwkSet;
use secrecy::SecretString;
use shared::domain::{Aal, Assurance, SessionId, UserId};
use shared::tokens::{
    Claims, SigningAlgorithm, SigningKey, TokenSigner, TokenVerifier, generate_private_key_pem,
};

const ALGORITHMS: [(SigningAlgorithm, &str); 3] = [
    (SigningAlgorithm::Rs256, "RS256"),
    (SigningAlgorithm::Es256, "ES256"),
    (SigningAlgorithm::EdDsa, "EdDSA"),
];

fn issuer(algorithm: SigningAlgorithm, name: &str) -> (TokenSigner, TokenVerifier) {
    let pem = generate_private_key_pem(algorithm).expect("a private key");
    let key = SigningKey::from_pem(name, algorithm, &pem).expect("the key loads");
    let issuer = "https://auth.example.com".to_owned();
    let set = JwkSet { keys: vec![key.public_jwk().clone()] };
    let verifier = TokenVerifier::new(set, issuer.clone().into(), "api".to_owned()).expect("the public key");
    let refresh_key = SecretString::from("a refresh-token key of 32+ bytes!");
    let signer =
        TokenSigner::new(key, &refresh_key, issuer.into(), "api".to_owned(), Duration::from_secs(900))
            .expect("the signer");
    (signer, verifier)
}

fn access_tokens(c: &mut Criterion) {
    let issuers: Vec<_> =
        ALGORITHMS.iter().map(|(algorithm, name)| (*name, issuer(*algorithm, name))).collect();
    let (user, session) = (UserId::generate(), SessionId::generate());
    let assurance = Assurance::password();
    let signing_keys: Vec<_> = ALGORITHMS
        .iter()
        .map(|(algorithm, name)| {
            let pem = generate_private_key_pem(*algorithm).expect("a private key");
            (*name, SigningKey::from_pem(name, *algorithm, &pem).expect("the key loads"))
        })
        .collect();

    let mut sign = c.benchmark_group("access_token_sign");
    for (name, issuer) in &issuers {
        sign.bench_function(*name, |b| {
            b.iter(|| issuer.0.issue(black_box(user), black_box(session), &assurance).unwrap())
        });
    }
    sign.finish();

    // The path the signer replaced: jsonwebtoken::encode, which parses the key every time.
    let claims = Claims {
        iss: "https://auth.example.com".to_owned(),
        aud: "api".to_owned(),
        sub: user.0,
        sid: session.0,
        iat: 1_800_000_000,
        exp: 1_800_000_900,
        aal: Aal::Aal1,
        amr: vec!["pwd".to_owned()],
    };
    let mut reparsing = c.benchmark_group("access_token_sign_reparsing");
    for (name, keys) in &signing_keys {
        reparsing.bench_function(*name, |b| b.iter(|| keys.sign_reparsing(black_box(&claims)).unwrap()));
    }
    reparsing.finish();

    let mut verify = c.benchmark_group("access_token_verify");
    for (name, issuer) in &issuers {
        let token = issuer.0.issue(user, session, &assurance).unwrap().token;
        verify.bench_function(*name, |b| b.iter(|| issuer.1.verify(black_box(&token)).unwrap()));
    }
    verify.finish();
}

criterion_group!(benches, access_tokens);
criterion_main!(benches);
