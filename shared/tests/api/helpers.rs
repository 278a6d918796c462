//! A typed client around the real handlers and a real, per-test Postgres database.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};
use shared::app::App;
use shared::handlers;
use shared::http::{Body, Request};
use shared::runtime;
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
    fn from(response: shared::http::Response) -> Self {
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap().to_owned()))
            .collect();
        let body = match response.body() {
            Body::Empty => Value::Null,
            Body::Text(text) => serde_json::from_str(text).expect("every body is JSON"),
            Body::Binary(bytes) => panic!("a binary body: {bytes:?}"),
            _ => panic!("an unknown body"),
        };
        Self { status: response.status().as_u16(), headers, body }
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

/// Sends `request` to `handler` through the functions' own wiring (`runtime::handle`: the issuer
/// learnt from the request, errors and panics answered) and reads the answer. The future is
/// boxed: a debug build's futures are large, and a test that awaits several in a row would
/// overflow its thread's 2 MiB stack.
pub async fn call<'a, F, Fut>(app: &'a App, handler: F, request: Request) -> Response
where
    F: FnOnce(&'a App, Request) -> Fut,
    Fut: std::future::Future<Output = shared::http::Reply>,
{
    Response::from(Box::pin(runtime::handle(app, handler, request)).await)
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
    VerifyEmail,
    ResendVerification,
    ForgotPassword,
    ResetPassword,
    ChangePassword,
    DeleteAccount,
    Sessions,
    RevokeSession,
    MfaVerify,
    MfaEnroll,
    MfaConfirm,
    MfaRemove,
    RecoveryCodes,
    Reauthenticate,
    UndoChange,
    PasskeyRegisterBegin,
    PasskeyRegisterFinish,
    Passkeys,
    PasskeyRemove,
    PasskeyLoginBegin,
    PasskeyLoginFinish,
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

    /// The handlers sending mail through the local SES (`scripts/with-moto`), from the tests'
    /// verified identity, with `configure` applied to the state first.
    pub async fn with_mail(pool: PgPool, configure: impl FnOnce(&mut App)) -> Self {
        test_support::verify_mail_identity().await;
        let mut app = App::with_pool(
            pool.clone(),
            token_signer(),
            token_verifier(),
            Duration::from_secs(30 * 24 * 3600),
            Duration::from_secs(10),
        );
        app.mailer = shared::mail::Mailer::new(Some(mail_config()));
        app.mfa = Some(shared::mfa::MfaKeys::fixed(test_support::mfa_keys()));
        app.passkeys = Some(relying_party());
        configure(&mut app);
        Self { app: Arc::new(app), pool }
    }

    pub fn with_reuse_grace(pool: PgPool, grace: Duration) -> Self {
        let mut app = App::with_pool(
            pool.clone(),
            token_signer(),
            token_verifier(),
            Duration::from_secs(30 * 24 * 3600),
            grace,
        );
        app.mfa = Some(shared::mfa::MfaKeys::fixed(test_support::mfa_keys()));
        app.passkeys = Some(relying_party());
        Self { app: Arc::new(app), pool }
    }

    /// Sends `request` to an endpoint's handler through the functions' own wiring ([`call`]).
    pub async fn send(&self, endpoint: Endpoint, request: Request) -> Response {
        let app = &*self.app;
        match endpoint {
            Endpoint::Signup => call(app, handlers::signup::handle, request).await,
            Endpoint::Login => call(app, handlers::login::handle, request).await,
            Endpoint::Refresh => call(app, handlers::refresh::handle, request).await,
            Endpoint::Logout => call(app, handlers::logout::handle, request).await,
            Endpoint::Me => call(app, handlers::me::handle, request).await,
            Endpoint::Health => call(app, handlers::health::handle, request).await,
            Endpoint::Jwks => call(app, handlers::jwks::handle, request).await,
            Endpoint::VerifyEmail => call(app, handlers::verify_email::handle, request).await,
            Endpoint::ResendVerification => call(app, handlers::resend_verification::handle, request).await,
            Endpoint::ForgotPassword => call(app, handlers::forgot_password::handle, request).await,
            Endpoint::ResetPassword => call(app, handlers::reset_password::handle, request).await,
            Endpoint::ChangePassword => call(app, handlers::change_password::handle, request).await,
            Endpoint::DeleteAccount => call(app, handlers::delete_account::handle, request).await,
            Endpoint::Sessions => call(app, handlers::sessions::handle, request).await,
            Endpoint::RevokeSession => call(app, handlers::revoke_session::handle, request).await,
            Endpoint::MfaVerify => call(app, handlers::mfa_verify::handle, request).await,
            Endpoint::MfaEnroll => call(app, handlers::mfa_enroll::handle, request).await,
            Endpoint::MfaConfirm => call(app, handlers::mfa_confirm::handle, request).await,
            Endpoint::MfaRemove => call(app, handlers::mfa_remove::handle, request).await,
            Endpoint::RecoveryCodes => call(app, handlers::mfa_recovery_codes::handle, request).await,
            Endpoint::Reauthenticate => call(app, handlers::reauthenticate::handle, request).await,
            Endpoint::UndoChange => call(app, handlers::undo_change::handle, request).await,
            Endpoint::PasskeyRegisterBegin => {
                call(app, handlers::passkey_register_begin::handle, request).await
            }
            Endpoint::PasskeyRegisterFinish => {
                call(app, handlers::passkey_register_finish::handle, request).await
            }
            Endpoint::Passkeys => call(app, handlers::passkeys::handle, request).await,
            Endpoint::PasskeyRemove => call(app, handlers::passkey_remove::handle, request).await,
            Endpoint::PasskeyLoginBegin => call(app, handlers::passkey_login_begin::handle, request).await,
            Endpoint::PasskeyLoginFinish => call(app, handlers::passkey_login_finish::handle, request).await,
        }
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

    /// A login from the source address `ip` (API Gateway's `sourceIp`), with `headers` besides
    /// the content type.
    pub async fn post_login_from(&self, ip: &str, email: &str, password: &str, headers: Value) -> Response {
        let body = json!({ "email": email, "password": password }).to_string();
        let mut all = json!({ "content-type": "application/json" });
        for (name, value) in headers.as_object().into_iter().flatten() {
            all[name] = value.clone();
        }
        self.send_from(ip, Endpoint::Login, event("POST", "/auth/login", all, Some(&body), false)).await
    }

    /// Sends `request` as if from the source address `ip` (API Gateway's `sourceIp`).
    pub async fn send_from(&self, ip: &str, endpoint: Endpoint, request: Request) -> Response {
        let mut request = request;
        if let Some(lambda_http::request::RequestContext::ApiGatewayV2(mut context)) =
            lambda_http::RequestExt::request_context_ref(&request).cloned()
        {
            context.http.source_ip = Some(ip.to_owned());
            request = lambda_http::RequestExt::with_request_context(
                request,
                lambda_http::request::RequestContext::ApiGatewayV2(context),
            );
        }
        self.send(endpoint, request).await
    }

    pub async fn post_refresh(&self, refresh_token: &str) -> Response {
        self.post_json(Endpoint::Refresh, &json!({ "refresh_token": refresh_token })).await
    }

    pub async fn post_logout(&self, refresh_token: &str) -> Response {
        self.post_json(Endpoint::Logout, &json!({ "refresh_token": refresh_token })).await
    }

    /// The security events of the user `email` has (or had: by their id once known), oldest
    /// first: (type, detail).
    pub async fn events_of(&self, user: uuid::Uuid) -> Vec<(String, Value)> {
        sqlx::query_as("select type, detail from security_events where user_id = $1 order by at, id")
            .bind(user)
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    /// The id of the user with `email`.
    pub async fn user_id(&self, email: &str) -> uuid::Uuid {
        sqlx::query_scalar("select id from users where email = $1")
            .bind(email)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// The types of `email`'s security events, oldest first.
    pub async fn event_types(&self, email: &str) -> Vec<String> {
        self.events_of(self.user_id(email).await).await.into_iter().map(|(kind, _)| kind).collect()
    }

    /// `GET /auth/me/security-events?{query}` with `access_token`, as an HTTP API delivers it
    /// and the function's runtime reads it (its query string kept: `Needs::query`).
    pub async fn security_events(&self, access_token: &str, query: &str) -> Response {
        let mut event = json!({
            "version": "2.0", "routeKey": "GET /auth/me/security-events", "rawPath": "/auth/me/security-events",
            "rawQueryString": query, "headers": { "authorization": format!("Bearer {access_token}") },
            "isBase64Encoded": false,
            "requestContext": {
                "apiId": "testapi", "stage": "$default", "requestId": "test",
                "http": {"method": "GET", "path": "/auth/me/security-events", "protocol": "HTTP/1.1",
                         "sourceIp": SOURCE_IP, "userAgent": "tests"},
            },
        });
        shared::event::sanitize(&mut event, handlers::me_security_events::NEEDS.query);
        let request = lambda_http::request::from_str(&event.to_string()).expect("a payload 2.0 event");
        call(&self.app, handlers::me_security_events::handle, request).await
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

    /// Sets `email`'s count of failures across source addresses to `count`, its window begun
    /// `minutes_ago`.
    pub async fn set_email_failures(&self, email: &str, count: i32, minutes_ago: i32) {
        sqlx::query(
            "insert into login_failure_windows (scope, key, window_started_at, failed_count)
             values ('email', $1, now() - make_interval(mins => $3), $2)
             on conflict (scope, key) do update
             set window_started_at = excluded.window_started_at, failed_count = excluded.failed_count",
        )
        .bind(email)
        .bind(count)
        .bind(minutes_ago)
        .execute(&self.pool)
        .await
        .expect("setting an email's failures across sources");
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.expect("count query")
    }
}

/// A unique address (moto's record of sent mail is shared by every test of the run).
pub fn address(tag: &str) -> String {
    format!("{tag}-{}@example.com", uuid::Uuid::new_v4().simple())
}

impl TestApp {
    /// The claims of a valid access token.
    pub async fn claims(&self, access: &str) -> shared::tokens::Claims {
        self.app.verify_access_token(access).await.expect("a valid access token")
    }

    /// Moves the session's proofs back by `minutes`, as time passing would.
    pub async fn proofs_ago(&self, access: &str, minutes: i32) {
        let session = self.claims(access).await.sid;
        sqlx::query(
            "update sessions set authenticated_at = authenticated_at - make_interval(mins => $2),
                                 second_factor_at = second_factor_at - make_interval(mins => $2)
             where id = $1",
        )
        .bind(session)
        .bind(minutes)
        .execute(&self.pool)
        .await
        .unwrap();
    }

    /// The "this wasn't me" links mailed to `email`, oldest first, with their subjects (the
    /// signup's verification mail left out).
    pub async fn undo_links(&self, email: &str) -> Vec<(String, String)> {
        test_support::sent_mail(email)
            .await
            .iter()
            .map(|mime| (test_support::read_mail(mime).subject, test_support::link_token(mime)))
            .filter(|(subject, _)| subject != "Verify your email address")
            .collect()
    }
}

/// Sends `times` requests at once through `send` (given the app and the request's number), each
/// on a task of its own, and returns their statuses.
pub async fn at_once<F, Fut>(app: &TestApp, times: usize, send: F) -> Vec<u16>
where
    F: Fn(TestApp, usize) -> Fut,
    Fut: std::future::Future<Output = u16> + Send + 'static,
{
    let tasks = (0..times).map(|n| tokio::spawn(send(app.clone(), n)));
    futures_util::future::join_all(tasks).await.into_iter().map(Result::unwrap).collect()
}

/// The tests' WebAuthn relying party: their app URL.
pub fn relying_party() -> shared::passkeys::relying_party::RelyingParty {
    shared::passkeys::relying_party::RelyingParty::new(test_support::APP_URL)
        .expect("the tests' APP_URL as a relying party")
}

/// The tests' mail settings: their verified identity, their app URL.
pub fn mail_config() -> shared::mail::MailConfig {
    shared::mail::MailConfig {
        from: test_support::MAIL_FROM.to_owned(),
        app_url: test_support::APP_URL.to_owned(),
        hourly_limit: 1_000,
        outbox: None,
    }
}

/// An HTTP API (payload 2.0) event, read by lambda_http as the functions' runtime reads it.
/// The source address of every request [`event`] makes, as API Gateway would give it.
pub const SOURCE_IP: &str = "192.0.2.1";

pub fn event(method: &str, path: &str, headers: Value, body: Option<&str>, base64: bool) -> Request {
    let event = json!({
        "version": "2.0", "routeKey": format!("{method} {path}"), "rawPath": path, "rawQueryString": "",
        "headers": headers, "body": body, "isBase64Encoded": base64,
        "requestContext": {
            "apiId": "testapi", "stage": "$default", "requestId": "test",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": SOURCE_IP,
                     "userAgent": "tests"},
        },
    });
    lambda_http::request::from_str(&event.to_string()).expect("a payload 2.0 event")
}

/// A GET with no headers.
pub fn get(path: &str) -> Request {
    event("GET", path, json!({}), None, false)
}

/// A POST with a JSON body, as API Gateway delivers it.
pub fn json_request(body: &str) -> Request {
    request_with(Some("application/json"), body, false)
}

pub fn request_with(content_type: Option<&str>, body: &str, base64: bool) -> Request {
    let headers = match content_type {
        Some(content_type) => json!({ "content-type": content_type }),
        None => json!({}),
    };
    event("POST", "/", headers, Some(body), base64)
}

pub fn bearer_request(token: &str) -> Request {
    event("GET", "/auth/me", json!({ "authorization": format!("Bearer {token}") }), None, false)
}

/// A request with a bearer token and, when given, a JSON body.
pub fn bearer_json(method: &str, path: &str, token: &str, body: Option<&Value>) -> Request {
    let mut headers = json!({ "authorization": format!("Bearer {token}") });
    if body.is_some() {
        headers["content-type"] = json!("application/json");
    }
    event(method, path, headers, body.map(Value::to_string).as_deref(), false)
}
