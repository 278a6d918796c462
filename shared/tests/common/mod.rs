//! A typed client around the real handlers and a real, per-test Postgres database.

#![allow(dead_code)] // each test binary uses a different part of the helpers

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};
use shared::app::App;
use shared::handlers;
use shared::handlers::health::HealthEvent;
use shared::http::{HttpRequest, HttpResponse};
use shared::tokens::{TokenSigner, TokenVerifier, public_key_set};
use sqlx::PgPool;
pub use test_support::{PASSWORD, REFRESH_TOKEN_KEY};

pub const ISSUER: &str = "https://auth.test";
pub const AUDIENCE: &str = "auth-test-api";

fn signing_key() -> shared::tokens::SigningKey {
    test_support::signing_key("test-key")
}

/// Signs with the test key.
pub fn token_signer() -> TokenSigner {
    let refresh_key = SecretString::from(REFRESH_TOKEN_KEY);
    TokenSigner::new(signing_key(), &refresh_key, ISSUER.into(), AUDIENCE.into(), Duration::from_secs(900))
        .expect("test signer")
}

/// Verifies with the test key's public half.
pub fn token_verifier() -> TokenVerifier {
    let set = public_key_set(&[&signing_key()]).to_string();
    TokenVerifier::from_jwks_json(&set, ISSUER.into(), AUDIENCE.into()).expect("test verifier")
}

/// A response as a client sees it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

impl Response {
    fn from(response: HttpResponse) -> Self {
        let body = if response.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&response.body).expect("every body is JSON")
        };
        Self { status: response.status_code, headers: response.headers, body }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The error code of an error body, checking the error shape on the way.
    pub fn error_code(&self) -> &str {
        assert!(self.body["message"].is_string(), "error bodies carry a message: {}", self.body);
        self.body["error"].as_str().unwrap_or_else(|| panic!("not an error body: {}", self.body))
    }

    pub fn refresh_token(&self) -> String {
        self.body["refresh_token"].as_str().expect("a refresh token").to_owned()
    }

    pub fn access_token(&self) -> String {
        self.body["access_token"].as_str().expect("an access token").to_owned()
    }
}

/// Which endpoint a request goes to.
#[derive(Debug, Clone, Copy)]
pub enum Endpoint {
    Signup,
    Login,
    Refresh,
    Logout,
    Me,
    Health,
    Jwks,
}

/// The handlers behind a test database.
#[derive(Clone)]
pub struct TestApp {
    pub app: Arc<App>,
    pub pool: PgPool,
}

impl TestApp {
    /// The handlers with the default settings (a 10 s refresh-reuse grace window).
    pub fn new(pool: PgPool) -> Self {
        Self::with_reuse_grace(pool, Duration::from_secs(10))
    }

    pub fn with_reuse_grace(pool: PgPool, grace: Duration) -> Self {
        let app = App::with_pool(
            pool.clone(),
            token_signer(),
            token_verifier(),
            Duration::from_secs(30 * 24 * 3600),
            grace,
        );
        Self { app: Arc::new(app), pool }
    }

    pub async fn send(&self, endpoint: Endpoint, request: HttpRequest) -> Response {
        let app = &*self.app;
        let response = match endpoint {
            Endpoint::Signup => handlers::signup::handle(app, request).await,
            Endpoint::Login => handlers::login::handle(app, request).await,
            Endpoint::Refresh => handlers::refresh::handle(app, request).await,
            Endpoint::Logout => handlers::logout::handle(app, request).await,
            Endpoint::Me => handlers::me::handle(app, request).await,
            Endpoint::Health => handlers::health::handle(app, HealthEvent::Http(Box::new(request))).await,
            Endpoint::Jwks => handlers::jwks::handle(app, request).await,
        };
        Response::from(response)
    }

    pub async fn post_json(&self, endpoint: Endpoint, body: &Value) -> Response {
        self.send(endpoint, json_request(&body.to_string())).await
    }

    pub async fn post_signup(&self, email: &str, password: &str) -> Response {
        self.post_json(Endpoint::Signup, &json!({ "email": email, "password": password })).await
    }

    pub async fn post_login(&self, email: &str, password: &str) -> Response {
        self.post_json(Endpoint::Login, &json!({ "email": email, "password": password })).await
    }

    pub async fn post_refresh(&self, refresh_token: &str) -> Response {
        self.post_json(Endpoint::Refresh, &json!({ "refresh_token": refresh_token })).await
    }

    pub async fn post_logout(&self, refresh_token: &str) -> Response {
        self.post_json(Endpoint::Logout, &json!({ "refresh_token": refresh_token })).await
    }

    pub async fn get_me(&self, access_token: &str) -> Response {
        self.send(Endpoint::Me, bearer_request(access_token)).await
    }

    /// Signs up `email` and returns the 201 response.
    pub async fn signed_up(&self, email: &str) -> Response {
        let response = self.post_signup(email, PASSWORD).await;
        assert_eq!(response.status, 201, "signup failed: {:?}", response.body);
        response
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.expect("count query")
    }
}

/// A POST with a JSON body, as API Gateway delivers it.
pub fn json_request(body: &str) -> HttpRequest {
    request_with(Some("application/json"), body, false)
}

pub fn request_with(content_type: Option<&str>, body: &str, base64: bool) -> HttpRequest {
    let mut headers = BTreeMap::new();
    if let Some(content_type) = content_type {
        headers.insert("content-type".to_owned(), content_type.to_owned());
    }
    HttpRequest {
        version: "2.0".into(),
        headers,
        body: Some(body.to_owned()),
        is_base64_encoded: base64,
        ..HttpRequest::default()
    }
}

pub fn bearer_request(token: &str) -> HttpRequest {
    let mut request = HttpRequest { version: "2.0".into(), ..HttpRequest::default() };
    request.headers.insert("authorization".into(), format!("Bearer {token}"));
    request
}
