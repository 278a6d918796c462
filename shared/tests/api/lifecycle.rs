//! The lazy pool: nothing connects until a handler needs the database, and an unreachable
//! database is a 503 JSON answer within the acquire timeout, never a hang or a 5xx of our own.

use std::time::{Duration, Instant};

use crate::helpers::{PASSWORD, call, get, json_request};
use serde_json::json;
use shared::app::App;
use shared::config::{Config, Keys, Needs};
use shared::handlers;
use shared::tokens::{SigningAlgorithm, SigningKey, public_key_set};

/// A loopback port nothing listens on: bind, read the port, close.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn app_with_unreachable_database(needs: Needs) -> App {
    let port = closed_port().to_string();
    let url = format!("postgres://nobody@127.0.0.1:{port}/none");
    let vars = [
        ("DATABASE_URL", url.as_str()),
        ("DB_ACQUIRE_TIMEOUT_MS", "500"),
        ("JWT_KEY_ID", "k"),
        ("JWT_ISSUER", crate::helpers::ISSUER),
        ("JWT_AUDIENCE", crate::helpers::AUDIENCE),
        ("REFRESH_TOKEN_HMAC_KEY", crate::helpers::REFRESH_TOKEN_KEY),
    ];
    let pem = shared::tokens::generate_private_key_pem(shared::tokens::SigningAlgorithm::EdDsa).unwrap();
    let key = SigningKey::from_pem("k", SigningAlgorithm::EdDsa, &pem).unwrap();
    let public_keys = public_key_set(&[&key]).to_string();
    let config = Config::from_lookup(needs, |name| {
        if name == "JWT_PRIVATE_KEY" {
            return Some(secrecy::ExposeSecret::expose_secret(&pem).to_owned());
        }
        if name == "JWT_PUBLIC_KEYS" {
            return Some(public_keys.clone());
        }
        if name == "JWT_ALGORITHM" {
            return Some("EdDSA".to_owned());
        }
        vars.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string())
    })
    .unwrap();
    App::from_config(config).unwrap()
}

#[tokio::test]
async fn a_function_that_never_touches_the_database_never_creates_the_pool() {
    let app = app_with_unreachable_database(Needs {
        database: true,
        keys: Keys::Verify,
        mail: false,
        mfa: false,
        passkeys: false,
        query: false,
    });

    let response = call(&app, handlers::jwks::handle, get("/.well-known/jwks.json")).await;

    assert_eq!(response.status, 200);
    assert!(!app.database_initialised());
}

#[tokio::test]
async fn an_unreachable_database_is_503_json_on_health_and_auth_endpoints() {
    let app = app_with_unreachable_database(Needs {
        database: true,
        keys: Keys::Sign,
        mail: false,
        mfa: false,
        passkeys: false,
        query: false,
    });
    let started = Instant::now();

    let health = call(&app, handlers::health::handle, get("/health")).await;
    let body = json!({ "email": "alice@example.com", "password": PASSWORD }).to_string();
    let signup = call(&app, handlers::signup::handle, json_request(&body)).await;
    let login = call(&app, handlers::login::handle, json_request(&body)).await;

    assert!(app.database_initialised());
    assert_eq!(health.status, 503);
    assert_eq!(
        (&health.body["status"], &health.body["database"]),
        (&json!("unhealthy"), &json!("disconnected"))
    );
    for response in [signup, login] {
        assert_eq!(response.status, 503, "{}", response.body);
        let error = &response.body;
        assert_eq!(error["error"], "service_unavailable");
    }
    assert!(started.elapsed() < Duration::from_secs(6), "bounded by the acquire and ping timeouts");
}
