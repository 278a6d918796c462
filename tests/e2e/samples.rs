//! Every function answers its sample event (`events/<binary>.json`, its placeholders filled with
//! a fresh account) as a user would be answered: a 2xx through the front door, or a response
//! (not a function error) when invoked directly. The bench and the rehearsal drive every function
//! with these samples, so a sample that stopped working would stop them first.

use std::path::PathBuf;

use bytes::Bytes;
use http::Method;
use local_lambda::InvokeOutcome;
use shared::tokens::TokenSigner;
use test_support::samples::{Fixture, request_of, sample_event_path};

use crate::helpers::{AUDIENCE, ISSUER, KEY_ID, REFRESH_TOKEN_KEY, TestApi, template};

fn test_signer() -> TokenSigner {
    let refresh_key = secrecy::SecretString::from(REFRESH_TOKEN_KEY);
    TokenSigner::new(
        test_support::signing_key(KEY_ID),
        &refresh_key,
        ISSUER.into(),
        AUDIENCE.into(),
        std::time::Duration::from_secs(900),
    )
    .expect("the test signer")
}

#[tokio::test]
async fn every_function_answers_its_sample_event_with_a_success() {
    let api = TestApi::start().await;
    let fixture = Fixture::new(api.db.pool.clone(), test_signer()).await.expect("the fixture");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let functions = local_lambda::Template::load(&template(), "us-east-1").expect("the template").functions;
    let mut failed = Vec::new();
    for function in &functions {
        let path = sample_event_path(&root, &function.binary);
        let event =
            std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let filled = fixture.fill(&event).await.expect("filling the sample");
        let parsed: serde_json::Value = serde_json::from_str(&filled).expect("a JSON event");
        let answer = match request_of(&parsed) {
            Some(request) => {
                let headers: Vec<(&str, &str)> =
                    request.headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
                let method = Method::from_bytes(request.method.as_bytes()).expect("a method");
                let response = api.request(method, &request.path, &headers, Some(&request.body)).await;
                (200..300)
                    .contains(&response.status)
                    .then_some(())
                    .ok_or(format!("{} {}", response.status, response.text))
            }
            None => match api.emulator.invoke(&function.logical_id, Bytes::from(filled)).await {
                // An HTTP request invoked as its gateway delivers it: its answer's status too.
                Ok(InvokeOutcome::Response(body)) if parsed.pointer("/requestContext/http").is_some() => {
                    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    let status = answer["statusCode"].as_u64().unwrap_or_default();
                    (200..300).contains(&status).then_some(()).ok_or(format!("{status} {answer}"))
                }
                Ok(InvokeOutcome::Response(_)) => Ok(()),
                other => Err(format!("{other:?}")),
            },
        };
        if let Err(problem) = answer {
            failed.push(format!("{} ({}): {problem}", function.logical_id, path.display()));
        }
    }
    assert!(failed.is_empty(), "sample events not answered with a success:\n{}", failed.join("\n"));
}
